//! The whole contract suite against the SQLite in-memory database stores.

waymark_tests::all_contracts!(waymark_tests::backends::sql::sqlite_memory);
