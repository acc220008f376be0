//! The whole contract suite against the SQLite file stores.

waymark_tests::all_contracts!(waymark_tests::backends::sql::sqlite_file);
