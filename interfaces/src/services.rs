//! The application services the HTTP layer and the CLI call, built once over the opened
//! stores, and the bridge from the adapters' LangGraph codec to the application's
//! [`MessageCodec`] port (the one place that knows both crates).
//!
//! Shutdown flushes what the server buffers: the chat-stream frames recorded through the HTTP
//! API are persisted (`end_stream`) after the last request has drained. The server holds no
//! run journals of its own (run events arrive in complete batches over HTTP and are written
//! before the request answers), so there is no journal to drain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use waymark_adapters::codec::{Message, decode_messages, encode_messages};
use waymark_application::{
    ChannelMessage, ChatStreamConfig, ChatStreamService, FeedbackService, HistoryManager,
    MessageCodec, RunService, SessionCheckpointManager, SessionManager, ThreadCheckpointManager,
    ThreadHistoryService, ThreadManager,
};
use waymark_domain::checkpoint::TypedValue;
use waymark_domain::clock::{Clock, SystemClock};
use waymark_domain::{JsonValue, Stores, ThreadId, UserScope};

use crate::backend::Backend;

/// LangChain messages in a LangGraph channel value, read and written with the adapters codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct LangGraphMessageCodec;

impl MessageCodec for LangGraphMessageCodec {
    fn decode_messages(&self, value: &TypedValue) -> Result<Vec<ChannelMessage>, String> {
        let messages = decode_messages(value).map_err(|e| e.to_string())?;
        Ok(messages
            .iter()
            .map(|m| match m.to_json() {
                JsonValue::Object(fields) => ChannelMessage::new(fields),
                _ => ChannelMessage::new(Default::default()),
            })
            .collect())
    }

    fn encode_messages(&self, messages: &[ChannelMessage]) -> Result<TypedValue, String> {
        let messages = messages
            .iter()
            .map(|m| Message::from_json(&JsonValue::Object(m.fields().clone())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        encode_messages(&messages).map_err(|e| e.to_string())
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The services of one server.
#[derive(Clone)]
pub struct Services {
    /// The ports, for operations no service covers.
    pub stores: Stores,
    /// Where services read "now".
    pub clock: Arc<dyn Clock>,
    /// Thread lifecycle.
    pub threads: ThreadManager,
    /// Session lifecycle.
    pub sessions: SessionManager,
    /// Checkpoints, branches and snapshots of a thread.
    pub checkpoints: ThreadCheckpointManager,
    /// Session policy and statistics.
    pub session_checkpoints: SessionCheckpointManager,
    /// Messages and token usage.
    pub history: HistoryManager,
    /// Summarization-safe history and the visible feed.
    pub thread_history: ThreadHistoryService,
    /// Chat-stream buffers and records.
    pub chat_streams: Arc<ChatStreamService>,
    /// Feedback.
    pub feedback: FeedbackService,
    /// The run lifecycle and leases.
    pub runs: RunService,
    /// Threads with frames recorded through this server, flushed on shutdown.
    streamed: Arc<Mutex<HashMap<ThreadId, UserScope>>>,
}

impl Services {
    /// Builds every service over the backend's stores.
    pub fn new(backend: &Backend) -> Self {
        Self::over(backend.stores.clone())
    }

    /// Builds every service over `stores` (the server passes timed ones).
    pub fn over(stores: Stores) -> Self {
        Self::over_with(stores, ChatStreamConfig::default())
    }

    /// Builds every service over `stores`, with the chat-stream settings of `chat_streams`.
    ///
    /// # Panics
    /// When `chat_streams` is invalid; [`ChatStreamService::new`] says which setting (the
    /// binary validates its flags before it gets here).
    pub fn over_with(stores: Stores, chat_streams: ChatStreamConfig) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let codec: Arc<dyn MessageCodec> = Arc::new(LangGraphMessageCodec);
        let chat_streams = Arc::new(
            ChatStreamService::new(stores.chat_streams.clone(), clock.clone(), chat_streams)
                .expect(
                    "the chat-stream configuration was validated before the services were built",
                ),
        );
        let threads = ThreadManager::from_stores(&stores).with_chat_streams(chat_streams.clone());
        let sessions = SessionManager::from_stores(&stores, threads.clone(), clock.clone());
        let checkpoints =
            ThreadCheckpointManager::from_stores(&stores, clock.clone()).with_codec(codec.clone());
        let session_checkpoints =
            SessionCheckpointManager::from_stores(&stores, checkpoints.clone());
        let history = HistoryManager::from_stores(&stores, clock.clone());
        let thread_history = ThreadHistoryService::from_stores(&stores)
            .with_feedback(stores.feedback.clone())
            .with_codec(codec);
        let feedback =
            FeedbackService::from_stores(&stores).with_run_check(stores.run_events.clone());
        let runs = RunService::from_stores(&stores);
        Self {
            stores,
            clock,
            threads,
            sessions,
            checkpoints,
            session_checkpoints,
            history,
            thread_history,
            chat_streams,
            feedback,
            runs,
            streamed: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Remembers that a thread has frames buffered by this server.
    pub fn note_streamed(&self, thread_id: &ThreadId, scope: &UserScope) {
        self.streamed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(thread_id.clone(), scope.clone());
    }

    /// Starts background housekeeping (idle chat-stream buffers, retention); call inside the
    /// runtime that serves.
    pub fn start_housekeeping(&self) -> tokio::task::JoinHandle<()> {
        let chat = self
            .chat_streams
            .spawn_housekeeping(Duration::from_secs(60));
        // Expired run leases are swept every lease period (back to pending, or error).
        let runs = self.runs.clone();
        let period = runs
            .config()
            .lease
            .duration()
            .to_std()
            .unwrap_or(Duration::from_secs(30));
        tokio::spawn(async move {
            // Aborting this task drops the guard, which stops the chat-stream housekeeping too.
            let _chat = AbortOnDrop(chat);
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                match runs.reclaim_expired().await {
                    Ok(r) if !r.is_empty() => {
                        tracing::info!(reclaimed = r.len(), "expired run leases reclaimed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "run lease sweep failed"),
                }
            }
        })
    }

    /// Startup reconciliation (spec §6.8.3): expired leases are reclaimed and threads stored
    /// `running` without a live run become `error`. `waymark serve` calls it before listening.
    pub async fn reconcile_runs(&self) -> Result<(), waymark_application::ApplicationError> {
        let report = self.runs.reconcile().await?;
        tracing::info!(
            reclaimed_runs = report.reclaimed_runs.len(),
            errored_threads = report.errored_threads.len(),
            "run reconciliation done"
        );
        Ok(())
    }

    /// Persists every chat-stream buffer this server filled; called once on graceful shutdown.
    pub async fn shutdown(&self) {
        let pending: Vec<(ThreadId, UserScope)> = self
            .streamed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for (thread_id, scope) in pending {
            match self.chat_streams.end_stream(&scope, &thread_id).await {
                Ok(outcome) => tracing::info!(thread = %thread_id, ?outcome, "chat stream flushed"),
                Err(e) => {
                    tracing::error!(thread = %thread_id, error = %e, "chat stream flush failed; frames lost")
                }
            }
        }
    }
}
