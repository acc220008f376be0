//! Writing records into a set of stores.

use std::sync::Arc;

use waymark_domain::branch::{Branch, Snapshot};
use waymark_domain::checkpoint::{
    ChannelVersions, CheckpointPut, TypedValue, WriteBatch, is_special_write_channel,
};
use waymark_domain::clock::Clock;
use waymark_domain::feedback::NewFeedback;
use waymark_domain::run_event::{NewRunEvent, RunEvent};
use waymark_domain::session::Session;
use waymark_domain::thread::{NewThread, ThreadStatus, ThreadUpdate};
use waymark_domain::{ChannelName, DomainError, DomainResult, Stores};

use super::records::{
    CheckpointRecord, FeedbackRecord, IndexedWrite, ItemRecord, SessionRecord, StreamRecord,
    ThreadRecord, TransferRecord, WritesRecord, owner_scope,
};
use crate::error::AppResult;

/// Writes records into a set of stores. Applying a record again is harmless (puts replace;
/// sessions, feedback, chat streams, branches and snapshots that exist are left as they are),
/// which makes interrupted copies resumable.
#[derive(Clone)]
pub struct Importer {
    stores: Stores,
    clock: Arc<dyn Clock>,
}

impl Importer {
    /// An importer over `stores`, reading "now" from `clock` (session times, item TTLs).
    pub fn new(stores: Stores, clock: Arc<dyn Clock>) -> Self {
        Self { stores, clock }
    }

    /// Applies one record.
    pub async fn apply(&self, record: &TransferRecord) -> AppResult<()> {
        match record {
            TransferRecord::Session(s) => self.session(s).await,
            TransferRecord::Thread(t) => self.thread(t).await,
            TransferRecord::Checkpoint(c) => self.checkpoint(c).await,
            TransferRecord::Writes(w) => self.writes(w).await,
            TransferRecord::Event(e) => self.event(e).await,
            TransferRecord::Feedback(f) => self.feedback(f).await,
            TransferRecord::ChatStream(c) => self.chat_stream(c).await,
            TransferRecord::Branch(b) => self.branch(b).await,
            TransferRecord::Snapshot(s) => self.snapshot(s).await,
            TransferRecord::Item(i) => self.item(i).await,
        }
    }

    /// Creates the session, stamped now; an existing one is kept.
    async fn session(&self, s: &SessionRecord) -> AppResult<()> {
        let now = self.clock.now();
        let session = Session {
            id: s.id.clone(),
            owner: s.owner.clone(),
            title: s.title.clone(),
            metadata: s.metadata.clone(),
            status: s.status,
            checkpoint_policy: s.checkpoint_policy.clone(),
            created_at: now,
            updated_at: now,
        };
        let created = self
            .stores
            .sessions
            .create(&owner_scope(&s.owner), session)
            .await;
        ignore_conflict(created.map(drop))
    }

    /// Creates the thread under its owner, then sets its status when it is not the initial
    /// `idle` (without touching `updated_at`).
    async fn thread(&self, t: &ThreadRecord) -> AppResult<()> {
        let scope = owner_scope(&t.owner);
        let new = NewThread {
            id: t.id.clone(),
            session_id: t.session_id.clone(),
            assistant_id: t.assistant_id.clone(),
            display_name: t.display_name.clone(),
            metadata: t.metadata.clone(),
        };
        self.stores.threads.create(&scope, new).await?;
        if t.status != ThreadStatus::Idle {
            let update = ThreadUpdate {
                status: Some(t.status),
                touch: false,
                ..ThreadUpdate::default()
            };
            self.stores.threads.update(&scope, &t.id, update).await?;
        }
        Ok(())
    }

    /// Puts the checkpoint. Every channel with a value is written as new, so layouts that
    /// store values per version (PostgreSQL) get a blob for each.
    async fn checkpoint(&self, c: &CheckpointRecord) -> AppResult<()> {
        let new_versions: ChannelVersions = c
            .checkpoint
            .channel_versions
            .iter()
            .filter(|(k, _)| c.checkpoint.channel_values.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let put = CheckpointPut {
            thread_id: c.thread_id.clone(),
            namespace: c.namespace.clone(),
            parent_id: c.parent_id.clone(),
            checkpoint: c.checkpoint.clone(),
            metadata: c.metadata.clone(),
            new_versions,
        };
        self.stores.checkpoints.put(put).await?;
        Ok(())
    }

    /// Stores the task's writes under exactly their recorded indices (see [`write_calls`]).
    async fn writes(&self, w: &WritesRecord) -> AppResult<()> {
        let calls = write_calls(&w.writes)
            .map_err(|e| DomainError::invalid("record", format!("writes: {e}")))?;
        for writes in calls {
            let batch = WriteBatch {
                target: w.target.clone(),
                task_id: w.task_id.clone(),
                task_path: w.task_path.clone(),
                writes,
            };
            self.stores.checkpoints.put_writes(batch).await?;
        }
        Ok(())
    }

    /// Appends the event with its capture time; the target assigns the seq.
    async fn event(&self, e: &RunEvent) -> AppResult<()> {
        let mut event = NewRunEvent::new(
            e.thread_id.clone(),
            e.run_id.clone(),
            e.event_type.clone(),
            e.category.clone(),
        )
        .with_content(e.content.clone())
        .with_metadata(e.metadata.clone());
        event.created_at = Some(e.created_at);
        self.stores
            .run_events
            .put(&owner_scope(&e.user_id), event)
            .await?;
        Ok(())
    }

    /// Creates the feedback row as its author; an existing one is kept.
    async fn feedback(&self, f: &FeedbackRecord) -> AppResult<()> {
        let new = NewFeedback {
            thread_id: f.thread_id.clone(),
            run_id: f.run_id.clone(),
            rating: f.rating,
            comment: f.comment.clone(),
            message_id: f.message_id.clone(),
        };
        let created = self
            .stores
            .feedback
            .create(&owner_scope(&f.user_id), new)
            .await;
        ignore_conflict(created.map(drop))
    }

    /// Appends the frames unless the thread already has a stream (or there are none).
    async fn chat_stream(&self, c: &StreamRecord) -> AppResult<()> {
        let scope = owner_scope(&c.user_id);
        let streams = &self.stores.chat_streams;
        if c.frames.is_empty() || streams.get(&scope, &c.thread_id).await?.is_some() {
            return Ok(());
        }
        streams
            .append(&scope, &c.thread_id, c.frames.clone())
            .await?;
        Ok(())
    }

    /// Creates the branch record unless its id exists.
    async fn branch(&self, b: &Branch) -> AppResult<()> {
        if self.stores.branches.get(b.id).await?.is_none() {
            self.stores.branches.create(b.clone()).await?;
        }
        Ok(())
    }

    /// Creates the snapshot record unless its id exists.
    async fn snapshot(&self, s: &Snapshot) -> AppResult<()> {
        if self.stores.snapshots.get(s.id).await?.is_none() {
            self.stores.snapshots.create(s.clone()).await?;
        }
        Ok(())
    }

    /// Puts the item with the time it has left; an item already expired is not carried over.
    async fn item(&self, i: &ItemRecord) -> AppResult<()> {
        let ttl = match i.expires_at {
            None => None,
            Some(at) => {
                let left = (at - self.clock.now()).num_seconds();
                if left <= 0 {
                    return Ok(());
                }
                Some(left as u64)
            }
        };
        self.stores
            .items
            .put(&i.namespace, &i.key, i.value.clone(), ttl)
            .await?;
        Ok(())
    }
}

/// A create that found the row already there counts as done.
fn ignore_conflict(result: DomainResult<()>) -> AppResult<()> {
    match result {
        Err(e) if e.is_conflict() => Ok(()),
        other => Ok(other?),
    }
}

/// Arranges a task's writes into `put_writes` calls that store exactly their indices: regular
/// writes at their index position, special writes (whose index comes from their channel)
/// filling the gaps. Returns the calls; a call of special channels only is an upsert. Fails
/// on a negative or duplicate regular index, or a gap nothing can fill.
pub fn write_calls(writes: &[IndexedWrite]) -> Result<Vec<Vec<(ChannelName, TypedValue)>>, String> {
    let pair = |w: &IndexedWrite| (w.channel.clone(), w.value.clone());
    let is_special = |w: &&IndexedWrite| is_special_write_channel(w.channel.as_str());
    let mut regular: Vec<&IndexedWrite> = writes.iter().filter(|w| !is_special(w)).collect();
    regular.sort_by_key(|w| w.idx);
    let mut special: Vec<&IndexedWrite> = writes.iter().filter(is_special).collect();
    if regular.is_empty() {
        return Ok(if special.is_empty() {
            Vec::new()
        } else {
            vec![special.into_iter().map(pair).collect()]
        });
    }
    let mut call: Vec<(ChannelName, TypedValue)> = Vec::new();
    for w in regular {
        if w.idx < 0 {
            return Err(format!(
                "write on {} has negative index {}",
                w.channel, w.idx
            ));
        }
        while (call.len() as i64) < w.idx {
            let Some(filler) = special.pop() else {
                return Err(format!(
                    "write on {} has index {}, but nothing can fill position {}",
                    w.channel,
                    w.idx,
                    call.len()
                ));
            };
            call.push(pair(filler));
        }
        if call.len() as i64 != w.idx {
            return Err(format!("duplicate index {}", w.idx));
        }
        call.push(pair(w));
    }
    call.extend(special.into_iter().map(pair));
    Ok(vec![call])
}
