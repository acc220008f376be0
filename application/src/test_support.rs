//! Test doubles shared by the unit tests: a scripted run-event store whose writes can be made
//! to fail or to block, with the store's paging semantics so readers can be tested too. The
//! mockall mocks of the domain cover the other ports.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use waymark_domain::clock::ManualClock;
use waymark_domain::paging::SeqPage;
use waymark_domain::run_event::{EventQuery, NewRunEvent, RunEvent, RunEventRepository};
use waymark_domain::{DomainError, DomainResult, RunId, ThreadId, UserScope};

pub fn tid(s: &str) -> ThreadId {
    ThreadId::parse(s).unwrap()
}

pub fn rid(s: &str) -> RunId {
    RunId::parse(s).unwrap()
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
    ))
}

#[derive(Default)]
pub struct FakeState {
    pub rows: Vec<RunEvent>,
    pub batches: Vec<Vec<NewRunEvent>>,
    pub pages: Vec<SeqPage>,
    next_seq: HashMap<ThreadId, i64>,
}

/// A run-event store in memory with failure and blocking hooks.
#[derive(Default)]
pub struct FakeEvents {
    pub state: Mutex<FakeState>,
    /// `put_batch` calls started (including failed and blocked ones).
    pub batch_calls: AtomicUsize,
    /// How many upcoming `put_batch` / `put_if_absent` calls fail.
    pub fail_writes: AtomicUsize,
    /// When set, every `put_batch` waits for one permit before writing.
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Signalled after every stored batch.
    pub stored: tokio::sync::Notify,
    /// When set, `list_messages` always answers with this page (a broken store).
    pub stuck_page: Option<Vec<RunEvent>>,
}

impl FakeEvents {
    pub fn gated(gate: Arc<tokio::sync::Semaphore>) -> Self {
        Self {
            gate: Some(gate),
            ..Self::default()
        }
    }

    pub fn fail_next(&self, n: usize) {
        self.fail_writes.store(n, Ordering::SeqCst);
    }

    pub fn calls(&self) -> usize {
        self.batch_calls.load(Ordering::SeqCst)
    }

    pub fn batch_sizes(&self) -> Vec<usize> {
        self.state
            .lock()
            .unwrap()
            .batches
            .iter()
            .map(Vec::len)
            .collect()
    }

    pub fn rows(&self) -> Vec<RunEvent> {
        self.state.lock().unwrap().rows.clone()
    }

    /// Waits (bounded) until at least `n` batches are stored.
    pub async fn wait_batches(&self, n: usize) {
        let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            loop {
                let notified = self.stored.notified();
                if self.batch_sizes().len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting for {n} batches");
    }

    fn take_failure(&self) -> bool {
        self.fail_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn insert(&self, scope: &UserScope, events: Vec<NewRunEvent>) -> Vec<RunEvent> {
        let mut st = self.state.lock().unwrap();
        st.batches.push(events.clone());
        let mut out = Vec::new();
        for e in events {
            let seq = st.next_seq.entry(e.thread_id.clone()).or_insert(0);
            *seq += 1;
            let row = RunEvent {
                thread_id: e.thread_id,
                run_id: e.run_id,
                seq: *seq,
                event_type: e.event_type,
                category: e.category,
                content: e.content,
                metadata: e.metadata,
                created_at: e.created_at.unwrap_or_else(Utc::now),
                user_id: scope.owner().cloned(),
            };
            st.rows.push(row.clone());
            out.push(row);
        }
        drop(st);
        self.stored.notify_waiters();
        out
    }

    fn page(rows: Vec<RunEvent>, page: SeqPage) -> Vec<RunEvent> {
        let mut rows = rows;
        rows.sort_by_key(|r| r.seq);
        match page {
            SeqPage::Latest(l) => {
                let skip = rows.len().saturating_sub(l.as_usize());
                rows.split_off(skip)
            }
            SeqPage::Before(c, l) => {
                let mut v: Vec<RunEvent> = rows.into_iter().filter(|r| r.seq < c).collect();
                let skip = v.len().saturating_sub(l.as_usize());
                v.split_off(skip)
            }
            SeqPage::After(c, l) => rows
                .into_iter()
                .filter(|r| r.seq > c)
                .take(l.as_usize())
                .collect(),
        }
    }
}

fn down(op: &str) -> DomainError {
    DomainError::storage(op, "injected failure")
}

#[async_trait]
impl RunEventRepository for FakeEvents {
    async fn put(&self, scope: &UserScope, event: NewRunEvent) -> DomainResult<RunEvent> {
        Ok(self.insert(scope, vec![event]).remove(0))
    }

    async fn put_batch(
        &self,
        scope: &UserScope,
        events: Vec<NewRunEvent>,
    ) -> DomainResult<Vec<RunEvent>> {
        self.batch_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        if self.take_failure() {
            return Err(down("run_events.put_batch"));
        }
        Ok(self.insert(scope, events))
    }

    async fn put_if_absent(
        &self,
        scope: &UserScope,
        event: NewRunEvent,
    ) -> DomainResult<(RunEvent, bool)> {
        if self.take_failure() {
            return Err(down("run_events.put_if_absent"));
        }
        let existing = self
            .state
            .lock()
            .unwrap()
            .rows
            .iter()
            .find(|r| {
                r.thread_id == event.thread_id
                    && r.run_id == event.run_id
                    && r.event_type == event.event_type
            })
            .cloned();
        match existing {
            Some(r) => Ok((r, false)),
            None => Ok((self.insert(scope, vec![event]).remove(0), true)),
        }
    }

    async fn list_messages(
        &self,
        _scope: &UserScope,
        thread_id: &ThreadId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>> {
        let mut st = self.state.lock().unwrap();
        st.pages.push(page);
        if let Some(stuck) = &self.stuck_page {
            return Ok(stuck.clone());
        }
        let rows: Vec<RunEvent> = st
            .rows
            .iter()
            .filter(|r| &r.thread_id == thread_id && r.category.is_message())
            .cloned()
            .collect();
        Ok(Self::page(rows, page))
    }

    async fn list_messages_by_run(
        &self,
        _scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>> {
        let rows: Vec<RunEvent> = self
            .rows()
            .into_iter()
            .filter(|r| &r.thread_id == thread_id && &r.run_id == run_id && r.category.is_message())
            .collect();
        Ok(Self::page(rows, page))
    }

    async fn list_events(
        &self,
        _scope: &UserScope,
        query: &EventQuery,
    ) -> DomainResult<Vec<RunEvent>> {
        Ok(self
            .rows()
            .into_iter()
            .filter(|r| r.thread_id == query.thread_id && r.run_id == query.run_id)
            .filter(|r| query.after_seq.is_none_or(|a| r.seq > a))
            .take(query.limit.as_usize())
            .collect())
    }

    async fn count_messages(&self, _scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64> {
        Ok(self
            .rows()
            .iter()
            .filter(|r| &r.thread_id == thread_id && r.category.is_message())
            .count() as u64)
    }

    async fn last_visible_ai_seq_by_run(
        &self,
        _scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, i64>> {
        let mut out = HashMap::new();
        for r in self.rows() {
            if &r.thread_id == thread_id && run_ids.contains(&r.run_id) && r.is_visible_ai_message()
            {
                let e = out.entry(r.run_id.clone()).or_insert(r.seq);
                *e = (*e).max(r.seq);
            }
        }
        Ok(out)
    }

    async fn delete_by_thread(
        &self,
        _scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<u64> {
        let mut st = self.state.lock().unwrap();
        let before = st.rows.len();
        st.rows.retain(|r| &r.thread_id != thread_id);
        Ok((before - st.rows.len()) as u64)
    }

    async fn delete_by_run(
        &self,
        _scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<u64> {
        let mut st = self.state.lock().unwrap();
        let before = st.rows.len();
        st.rows
            .retain(|r| !(&r.thread_id == thread_id && &r.run_id == run_id));
        Ok((before - st.rows.len()) as u64)
    }
}
