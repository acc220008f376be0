//! The checkpoint contract against LangGraph's PostgreSQL layout
//! (`waymark_adapters::postgres_layout`), one schema per test.

waymark_tests::checkpoint_contract!(waymark_tests::backends::langgraph::postgres_backend);
