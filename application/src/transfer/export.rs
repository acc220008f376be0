//! Reading every record out of a set of stores (unscoped: an export is administrative).

use std::collections::BTreeSet;

use waymark_domain::checkpoint::CheckpointQuery;
use waymark_domain::kv::ItemSearch;
use waymark_domain::paging::{Limit, OffsetPage, SeqPage};
use waymark_domain::run_event::{EventQuery, RunEvent};
use waymark_domain::session::SessionQuery;
use waymark_domain::thread::{ThreadFilter, ThreadQuery};
use waymark_domain::{DomainError, JsonObject, RunId, SessionId, Stores, ThreadId, UserScope};

use super::records::{
    FeedbackRecord, ItemRecord, SessionRecord, StreamRecord, ThreadRecord, TransferRecord,
    checkpoint_records,
};
use crate::error::{AppResult, ApplicationError};

/// Rows read per page from every listing port.
const PAGE: u32 = 500;

/// Which threads an export or copy covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadSelection {
    /// Every thread, and every session and item.
    All,
    /// These threads, and the sessions their records name; no items.
    Only(Vec<ThreadId>),
}

/// Reads records out of a set of stores.
#[derive(Clone)]
pub struct Exporter {
    stores: Stores,
}

impl Exporter {
    /// An exporter over `stores`.
    pub fn new(stores: Stores) -> Self {
        Self { stores }
    }

    /// The threads `selection` names: for [`ThreadSelection::All`], every thread id known to
    /// the thread records or to the checkpoint store (see [`Exporter::thread_ids`]).
    pub async fn selected_threads(&self, selection: &ThreadSelection) -> AppResult<Vec<ThreadId>> {
        match selection {
            ThreadSelection::All => self.thread_ids().await,
            ThreadSelection::Only(ids) => Ok(ids.clone()),
        }
    }

    /// Every thread id: thread records, and threads that only have checkpoints (a LangGraph
    /// database has no thread records). Reads every checkpoint once to find the latter.
    pub async fn thread_ids(&self) -> AppResult<Vec<ThreadId>> {
        let mut ids = BTreeSet::new();
        let mut offset = 0;
        loop {
            let query = ThreadQuery {
                filter: ThreadFilter::default(),
                status: None,
                session_id: None,
                page: OffsetPage::new(PAGE, offset)?,
            };
            let page = self
                .stores
                .threads
                .search(&UserScope::Unscoped, &query)
                .await?;
            offset += page.items.len() as u64;
            ids.extend(page.items.into_iter().map(|t| t.id));
            if !page.has_more {
                break;
            }
        }
        let tuples = self
            .stores
            .checkpoints
            .list(&CheckpointQuery::default())
            .await?;
        ids.extend(tuples.into_iter().map(|t| t.thread_id));
        Ok(ids.into_iter().collect())
    }

    /// Records that belong to no thread: sessions, then key-value items.
    pub async fn global_records(&self) -> AppResult<Vec<TransferRecord>> {
        let mut out: Vec<TransferRecord> = self
            .sessions()
            .await?
            .into_iter()
            .map(TransferRecord::Session)
            .collect();
        out.extend(self.items().await?.into_iter().map(TransferRecord::Item));
        Ok(out)
    }

    /// The global records `selection` keeps: all of them for [`ThreadSelection::All`], else
    /// only the sessions named by the thread records in `thread_records`.
    pub async fn global_records_for(
        &self,
        selection: &ThreadSelection,
        thread_records: &[TransferRecord],
    ) -> AppResult<Vec<TransferRecord>> {
        let globals = self.global_records().await?;
        Ok(match selection {
            ThreadSelection::All => globals,
            ThreadSelection::Only(_) => {
                let wanted = referenced_sessions(thread_records);
                globals
                    .into_iter()
                    .filter(|r| matches!(r, TransferRecord::Session(s) if wanted.contains(&s.id)))
                    .collect()
            }
        })
    }

    /// Every session.
    pub async fn sessions(&self) -> AppResult<Vec<SessionRecord>> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let query = SessionQuery {
                status: None,
                page: OffsetPage::new(PAGE, offset)?,
            };
            let page = self
                .stores
                .sessions
                .list(&UserScope::Unscoped, &query)
                .await?;
            offset += page.items.len() as u64;
            out.extend(page.items.into_iter().map(SessionRecord::from));
            if !page.has_more {
                return Ok(out);
            }
        }
    }

    /// Every key-value item (expired ones as the store still lists them).
    pub async fn items(&self) -> AppResult<Vec<ItemRecord>> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let search = ItemSearch {
                prefix: Vec::new(),
                filter: JsonObject::new(),
                limit: Limit::new(PAGE)?,
                offset,
            };
            let items = self.stores.items.search(&search).await?;
            let n = items.len();
            offset += n as u64;
            out.extend(items.into_iter().map(ItemRecord::from));
            if n < PAGE as usize {
                return Ok(out);
            }
        }
    }

    /// Everything held for one thread, in an order an importer can apply: the thread record,
    /// checkpoints oldest first with their writes, events, feedback, chat stream, branches,
    /// snapshots.
    pub async fn thread_records(&self, thread: &ThreadId) -> AppResult<Vec<TransferRecord>> {
        let scope = UserScope::Unscoped;
        let mut out = Vec::new();
        if let Some(t) = self.stores.threads.get(&scope, thread).await? {
            out.push(TransferRecord::Thread(ThreadRecord::from(t)));
        }
        let mut tuples = self
            .stores
            .checkpoints
            .list(&CheckpointQuery::thread(thread.clone()))
            .await?;
        tuples.reverse();
        out.extend(tuples.iter().flat_map(checkpoint_records));
        out.extend(
            self.events(thread)
                .await?
                .into_iter()
                .map(TransferRecord::Event),
        );
        out.extend(
            self.feedback(thread)
                .await?
                .into_iter()
                .map(TransferRecord::Feedback),
        );
        if let Some(c) = self.stores.chat_streams.get(&scope, thread).await? {
            out.push(TransferRecord::ChatStream(StreamRecord::from(c)));
        }
        let branches = self.stores.branches.list_for_thread(thread).await?;
        out.extend(branches.into_iter().map(TransferRecord::Branch));
        let snapshots = self.stores.snapshots.list_for_thread(thread).await?;
        out.extend(snapshots.into_iter().map(TransferRecord::Snapshot));
        Ok(out)
    }

    /// The thread's run events, ascending by seq, of every run that wrote a message row.
    pub async fn events(&self, thread: &ThreadId) -> AppResult<Vec<RunEvent>> {
        let mut events = Vec::new();
        for run in self.runs_with_messages(thread).await? {
            events.extend(self.run_events(thread, &run).await?);
        }
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// The runs of the thread's message rows (the event port lists events per run only).
    async fn runs_with_messages(&self, thread: &ThreadId) -> AppResult<BTreeSet<RunId>> {
        let mut runs = BTreeSet::new();
        let mut cursor = 0;
        loop {
            let page = self
                .stores
                .run_events
                .list_messages(
                    &UserScope::Unscoped,
                    thread,
                    SeqPage::After(cursor, Limit::new(PAGE)?),
                )
                .await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                return Ok(runs);
            };
            if last <= cursor {
                return Err(ApplicationError::StalledScan {
                    thread_id: thread.clone(),
                    cursor,
                    last_seq: last,
                });
            }
            runs.extend(page.iter().map(|e| e.run_id.clone()));
            cursor = last;
            if page.len() < PAGE as usize {
                return Ok(runs);
            }
        }
    }

    /// Every event of one run, ascending by seq.
    async fn run_events(&self, thread: &ThreadId, run: &RunId) -> AppResult<Vec<RunEvent>> {
        let mut events = Vec::new();
        let mut after = None;
        loop {
            let mut query = EventQuery::run(thread.clone(), run.clone());
            query.after_seq = after;
            query.limit = Limit::new(PAGE)?;
            let page = self
                .stores
                .run_events
                .list_events(&UserScope::Unscoped, &query)
                .await?;
            let n = page.len();
            after = page.last().map(|e| e.seq);
            events.extend(page);
            if n < PAGE as usize {
                return Ok(events);
            }
        }
    }

    /// The thread's feedback; more rows than one listing holds is an error, not a cut.
    pub async fn feedback(&self, thread: &ThreadId) -> AppResult<Vec<FeedbackRecord>> {
        let page = self
            .stores
            .feedback
            .list_by_thread(&UserScope::Unscoped, thread, Limit::new(Limit::MAX)?)
            .await?;
        if page.has_more {
            return Err(DomainError::invalid(
                "feedback",
                format!(
                    "thread {thread} has more than {} feedback rows; the feedback port cannot page further",
                    Limit::MAX
                ),
            )
            .into());
        }
        Ok(page.items.into_iter().map(FeedbackRecord::from).collect())
    }
}

/// The sessions named by the thread records among `records`.
pub fn referenced_sessions(records: &[TransferRecord]) -> BTreeSet<SessionId> {
    records
        .iter()
        .filter_map(|r| match r {
            TransferRecord::Thread(t) => t.session_id.clone(),
            _ => None,
        })
        .collect()
}
