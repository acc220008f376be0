//! The whole contract suite against the PostgreSQL (a throwaway schema per test; skipped when no server answers) stores.

waymark_tests::all_contracts!(waymark_tests::backends::sql::postgres);
