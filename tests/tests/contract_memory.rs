//! The whole contract suite against the in-memory stores.

waymark_tests::all_contracts!(waymark_tests::backends::memory::backend);
