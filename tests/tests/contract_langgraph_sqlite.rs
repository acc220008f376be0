//! The checkpoint contract against LangGraph's SQLite layout (`waymark_adapters::sqlite_layout`).

waymark_tests::checkpoint_contract!(waymark_tests::backends::langgraph::sqlite_backend);
