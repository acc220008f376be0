//! Shared pieces of the application-layer integration tests (`app_*.rs`): a message codec
//! for tests, the services wired over a test backend, and a macro that runs each scenario on
//! the in-memory store, a SQLite file and PostgreSQL (skipped with a message when no server
//! answers). Included by the other `app_*` files with `#[path]`; on its own it has no tests.

#![allow(dead_code, unused_macros)]

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Value, json};
use waymark_application::codec::{ChannelMessage, MessageCodec};
use waymark_application::thread_checkpoints::NewCheckpoint;
use waymark_application::{
    ChatStreamConfig, ChatStreamService, HistoryManager, SessionCheckpointManager,
    ThreadCheckpointManager, ThreadHistoryService, ThreadManager,
};
use waymark_domain::checkpoint::TypedValue;
use waymark_domain::clock::Clock;
use waymark_domain::thread::NewThread;
use waymark_domain::{ChannelName, CheckpointNamespace, SessionId, ThreadId, UserId, UserScope};
use waymark_tests::harness::TestBackend;

/// Runs each listed scenario (`async fn(&TestBackend)` in the including file) on every
/// backend: modules `memory`, `sqlite_file` and `postgres`.
macro_rules! app_scenarios {
    ($($name:ident),* $(,)?) => {
        app_scenarios!(@backend memory, waymark_tests::backends::memory::backend, [$($name),*]);
        app_scenarios!(@backend sqlite_file, waymark_tests::backends::sql::sqlite_file, [$($name),*]);
        app_scenarios!(@backend postgres, waymark_tests::backends::sql::postgres, [$($name),*]);
    };
    (@backend $backend:ident, $factory:path, [$($name:ident),*]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    waymark_tests::harness::run(
                        concat!("app::", stringify!($backend), "::", stringify!($name)),
                        $factory,
                        |b| ::std::boxed::Box::pin(super::$name(b)),
                    )
                    .await;
                }
            )*
        }
    };
}

/// Messages as a JSON array tagged `json`: lets tests build and read message channels
/// without msgpack (the production codec lives in the adapters crate).
#[derive(Debug, Default)]
pub struct JsonMessages;

impl MessageCodec for JsonMessages {
    fn decode_messages(&self, value: &TypedValue) -> Result<Vec<ChannelMessage>, String> {
        if value.type_tag() != TypedValue::JSON {
            return Err(format!("not a json value: {}", value.type_tag()));
        }
        let v: Value = serde_json::from_slice(value.bytes()).map_err(|e| e.to_string())?;
        v.as_array()
            .ok_or("not an array")?
            .iter()
            .map(|m| {
                m.as_object()
                    .cloned()
                    .map(ChannelMessage::new)
                    .ok_or_else(|| "not an object".to_owned())
            })
            .collect()
    }

    fn encode_messages(&self, messages: &[ChannelMessage]) -> Result<TypedValue, String> {
        let arr: Vec<Value> = messages
            .iter()
            .map(|m| Value::Object(m.fields().clone()))
            .collect();
        TypedValue::new(TypedValue::JSON, serde_json::to_vec(&arr).unwrap())
            .map_err(|e| e.to_string())
    }
}

/// A `messages` channel value holding these message objects.
pub fn messages_value(messages: Value) -> TypedValue {
    TypedValue::new(TypedValue::JSON, serde_json::to_vec(&messages).unwrap()).unwrap()
}

/// A human message.
pub fn human(text: &str) -> Value {
    json!({"type": "human", "content": text, "id": null})
}

/// An AI message.
pub fn ai(id: &str, text: &str) -> Value {
    json!({"type": "ai", "content": text, "id": id})
}

/// A root-namespace checkpoint state with a `messages` channel and a `step` channel.
pub fn state(messages: Value, step: i64) -> NewCheckpoint {
    let mut values = IndexMap::new();
    values.insert(ch("messages"), messages_value(messages));
    values.insert(ch("step"), TypedValue::msgpack(vec![step as u8]));
    NewCheckpoint {
        namespace: CheckpointNamespace::root(),
        channel_values: values,
        metadata: Default::default(),
    }
}

pub fn ch(s: &str) -> ChannelName {
    ChannelName::parse(s).unwrap()
}

/// A random id with a readable prefix (tests may share a server).
pub fn thread_id(prefix: &str) -> ThreadId {
    ThreadId::parse(format!("{prefix}-{}", uuid::Uuid::new_v4())).unwrap()
}

pub fn session_id() -> SessionId {
    SessionId::parse(format!("s-{}", uuid::Uuid::new_v4())).unwrap()
}

/// The user every scenario acts as.
pub fn alice() -> UserScope {
    UserScope::User(UserId::parse("alice").unwrap())
}

/// The services of the application layer over one backend.
pub struct App {
    pub clock: Arc<dyn Clock>,
    pub threads: ThreadManager,
    pub checkpoints: ThreadCheckpointManager,
    pub sessions: SessionCheckpointManager,
    pub session_manager: waymark_application::SessionManager,
    pub history: HistoryManager,
    pub reader: ThreadHistoryService,
    pub chat: Arc<ChatStreamService>,
}

impl App {
    pub fn new(b: &TestBackend) -> Self {
        let clock: Arc<dyn Clock> = b.clock.clone();
        let codec: Arc<dyn MessageCodec> = Arc::new(JsonMessages);
        let chat = Arc::new(
            ChatStreamService::new(
                b.stores.chat_streams.clone(),
                clock.clone(),
                ChatStreamConfig::default(),
            )
            .unwrap(),
        );
        let threads = ThreadManager::from_stores(&b.stores).with_chat_streams(chat.clone());
        let checkpoints = ThreadCheckpointManager::from_stores(&b.stores, clock.clone())
            .with_codec(codec.clone());
        Self {
            sessions: SessionCheckpointManager::from_stores(&b.stores, checkpoints.clone()),
            session_manager: waymark_application::SessionManager::from_stores(
                &b.stores,
                threads.clone(),
                clock.clone(),
            ),
            history: HistoryManager::from_stores(&b.stores, clock.clone()),
            reader: ThreadHistoryService::from_stores(&b.stores).with_codec(codec),
            clock,
            threads,
            checkpoints,
            chat,
        }
    }

    /// Creates a thread owned by alice, optionally in a session.
    pub async fn thread(&self, prefix: &str, session: Option<&SessionId>) -> ThreadId {
        let id = thread_id(prefix);
        let mut new = NewThread::with_id(id.clone());
        new.session_id = session.cloned();
        self.threads.create(&alice(), new).await.unwrap();
        id
    }

    /// Creates a session owned by alice.
    pub async fn session(&self) -> SessionId {
        let id = session_id();
        self.session_manager
            .create(
                &alice(),
                waymark_application::sessions::NewSession {
                    id: Some(id.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        id
    }
}
