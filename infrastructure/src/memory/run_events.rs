//! The run-event log in memory (spec `history-and-streams.md` §1).
//!
//! Seqs come from a per-thread counter kept beside the events. It only ever grows: deleting a
//! run, the thread's events or the thread itself leaves it in place, so a seq is never handed
//! out twice (§1.5). Allocation, the `put_if_absent` existence check and deletes all run under
//! the backend's one lock, which is the "same fence" the spec asks for.
//!
//! Rules shared with the SQL stores:
//! * rows are stamped with the scope's owner and read back only by a scope that can see them;
//! * `created_at` is the event's own instant truncated to microseconds, or the clock's now;
//! * trace content is truncated to `MemoryOptions::max_trace_content` before it is stored;
//! * `put_if_absent` looks for any row of `(thread, run, event_type)`: a visible one is
//!   returned with `false`; one the scope cannot see is a conflict (it would otherwise leak).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::SubsecRound;
use waymark_domain::paging::SeqPage;
use waymark_domain::run_event::{
    EventQuery, NewRunEvent, RunEvent, RunEventRepository, prepare_batch,
};
use waymark_domain::{DomainError, DomainResult, JsonValue, RunId, ThreadId, UserScope};

use super::Shared;

/// Events and seq counters of every thread.
#[derive(Default)]
pub(crate) struct RunEventTables {
    /// thread -> seq -> event.
    events: HashMap<ThreadId, BTreeMap<i64, RunEvent>>,
    /// thread -> the last seq handed out.
    counters: HashMap<ThreadId, i64>,
}

impl RunEventTables {
    /// Removes every event of the thread; the counter stays.
    pub(crate) fn remove_thread(&mut self, thread_id: &ThreadId) {
        self.events.remove(thread_id);
    }

    /// Reserves `n` seqs of the thread and returns the first.
    fn allocate(&mut self, thread_id: &ThreadId, n: usize) -> DomainResult<i64> {
        let last = self.counters.entry(thread_id.clone()).or_insert(0);
        let first = last
            .checked_add(1)
            .ok_or_else(|| DomainError::storage("run_events.put", "seq counter exhausted"))?;
        *last = last
            .checked_add(n as i64)
            .ok_or_else(|| DomainError::storage("run_events.put", "seq counter exhausted"))?;
        Ok(first)
    }
}

/// The in-memory [`RunEventRepository`].
pub struct MemoryRunEventRepository {
    shared: Arc<Shared>,
}

impl MemoryRunEventRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Validates and normalizes events (truncation, NUL checks) before the lock is taken.
    fn prepare(&self, events: &mut [NewRunEvent]) -> DomainResult<()> {
        prepare_batch(events, self.shared.options.max_trace_content)
    }

    /// Appends prepared events under the held lock, with contiguous seqs.
    fn append(
        &self,
        state: &mut super::State,
        scope: &UserScope,
        events: Vec<NewRunEvent>,
    ) -> DomainResult<Vec<RunEvent>> {
        let Some(first) = events.first() else {
            return Ok(Vec::new());
        };
        let thread_id = first.thread_id.clone();
        let now = self.shared.now();
        let tables = &mut state.run_events;
        let start = tables.allocate(&thread_id, events.len())?;
        let rows = tables.events.entry(thread_id).or_default();
        let mut stored = Vec::with_capacity(events.len());
        for (offset, e) in events.into_iter().enumerate() {
            let record = RunEvent {
                thread_id: e.thread_id,
                run_id: e.run_id,
                seq: start + offset as i64,
                event_type: e.event_type,
                category: e.category,
                content: e.content,
                metadata: e.metadata,
                created_at: e.created_at.map_or(now, |t| t.trunc_subsecs(6)),
                user_id: scope.owner().cloned(),
            };
            rows.insert(record.seq, record.clone());
            stored.push(record);
        }
        Ok(stored)
    }
}

/// Visible events of a thread in ascending seq order.
fn visible<'a>(
    state: &'a super::State,
    scope: &'a UserScope,
    thread_id: &ThreadId,
) -> impl DoubleEndedIterator<Item = &'a RunEvent> + 'a {
    state
        .run_events
        .events
        .get(thread_id)
        .into_iter()
        .flat_map(|rows| rows.values())
        .filter(move |e| scope.can_see(e.user_id.as_ref()))
}

/// Selects a page of message rows (already filtered) per spec §1.4, ascending.
fn page_rows(
    state: &super::State,
    scope: &UserScope,
    thread_id: &ThreadId,
    page: SeqPage,
    keep: impl Fn(&RunEvent) -> bool,
) -> Vec<RunEvent> {
    let Some(rows) = state.run_events.events.get(thread_id) else {
        return Vec::new();
    };
    let ok = |e: &&RunEvent| scope.can_see(e.user_id.as_ref()) && keep(e);
    let n = page.limit().as_usize();
    let mut out: Vec<RunEvent> = match page {
        SeqPage::Latest(_) => rows.values().rev().filter(ok).take(n).cloned().collect(),
        SeqPage::Before(seq, _) => rows
            .range(..seq)
            .rev()
            .map(|(_, e)| e)
            .filter(ok)
            .take(n)
            .cloned()
            .collect(),
        SeqPage::After(seq, _) => {
            return rows
                .range((Bound::Excluded(seq), Bound::Unbounded))
                .map(|(_, e)| e)
                .filter(ok)
                .take(n)
                .cloned()
                .collect();
        }
    };
    out.reverse();
    out
}

#[async_trait]
impl RunEventRepository for MemoryRunEventRepository {
    async fn put(&self, scope: &UserScope, event: NewRunEvent) -> DomainResult<RunEvent> {
        let mut batch = vec![event];
        self.prepare(&mut batch)?;
        let mut state = self.shared.lock();
        Ok(self.append(&mut state, scope, batch)?.remove(0))
    }

    async fn put_batch(
        &self,
        scope: &UserScope,
        mut events: Vec<NewRunEvent>,
    ) -> DomainResult<Vec<RunEvent>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.prepare(&mut events)?;
        let mut state = self.shared.lock();
        self.append(&mut state, scope, events)
    }

    async fn put_if_absent(
        &self,
        scope: &UserScope,
        event: NewRunEvent,
    ) -> DomainResult<(RunEvent, bool)> {
        let mut batch = vec![event];
        self.prepare(&mut batch)?;
        let mut state = self.shared.lock();
        let e = &batch[0];
        let existing = state.run_events.events.get(&e.thread_id).and_then(|rows| {
            rows.values()
                .find(|r| r.run_id == e.run_id && r.event_type == e.event_type)
        });
        if let Some(found) = existing {
            if scope.can_see(found.user_id.as_ref()) {
                return Ok((found.clone(), false));
            }
            return Err(DomainError::conflict(
                "run_event",
                format!(
                    "run {} already has a {} event of another owner",
                    e.run_id, e.event_type
                ),
            ));
        }
        Ok((self.append(&mut state, scope, batch)?.remove(0), true))
    }

    async fn list_messages(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>> {
        let state = self.shared.lock();
        Ok(page_rows(&state, scope, thread_id, page, |e| {
            e.category.is_message()
        }))
    }

    async fn list_messages_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>> {
        let state = self.shared.lock();
        Ok(page_rows(&state, scope, thread_id, page, |e| {
            e.category.is_message() && &e.run_id == run_id
        }))
    }

    async fn list_events(
        &self,
        scope: &UserScope,
        query: &EventQuery,
    ) -> DomainResult<Vec<RunEvent>> {
        let state = self.shared.lock();
        let Some(rows) = state.run_events.events.get(&query.thread_id) else {
            return Ok(Vec::new());
        };
        let start = query.after_seq.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(rows
            .range((start, Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| scope.can_see(e.user_id.as_ref()) && e.run_id == query.run_id)
            .filter(|e| {
                query
                    .event_types
                    .as_ref()
                    .is_none_or(|types| types.contains(&e.event_type))
            })
            .filter(|e| {
                query.task_id.as_ref().is_none_or(|task| {
                    e.metadata.get("task_id").and_then(JsonValue::as_str) == Some(task.as_str())
                })
            })
            .take(query.limit.as_usize())
            .cloned()
            .collect())
    }

    async fn count_messages(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64> {
        let state = self.shared.lock();
        Ok(visible(&state, scope, thread_id)
            .filter(|e| e.category.is_message())
            .count() as u64)
    }

    async fn last_visible_ai_seq_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, i64>> {
        if run_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: HashSet<RunId> = run_ids.into_iter().collect();
        let state = self.shared.lock();
        let mut out = HashMap::new();
        for e in visible(&state, scope, thread_id) {
            if wanted.contains(&e.run_id) && e.is_visible_ai_message() {
                // Ascending iteration: the last one seen is the greatest seq.
                out.insert(e.run_id.clone(), e.seq);
            }
        }
        Ok(out)
    }

    async fn delete_by_thread(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64> {
        let mut state = self.shared.lock();
        let Some(rows) = state.run_events.events.get_mut(thread_id) else {
            return Ok(0);
        };
        let before = rows.len();
        rows.retain(|_, e| !scope.can_see(e.user_id.as_ref()));
        let removed = (before - rows.len()) as u64;
        if rows.is_empty() {
            state.run_events.events.remove(thread_id);
        }
        Ok(removed)
    }

    async fn delete_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<u64> {
        let mut state = self.shared.lock();
        let Some(rows) = state.run_events.events.get_mut(thread_id) else {
            return Ok(0);
        };
        let before = rows.len();
        rows.retain(|_, e| !(&e.run_id == run_id && scope.can_see(e.user_id.as_ref())));
        let removed = (before - rows.len()) as u64;
        if rows.is_empty() {
            state.run_events.events.remove(thread_id);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryBackend, MemoryOptions};
    use serde_json::json;
    use waymark_domain::clock::SystemClock;
    use waymark_domain::paging::Limit;
    use waymark_domain::{EventCategory, EventType, UserId};

    fn ev(thread: &str, run: &str, category: &str) -> NewRunEvent {
        NewRunEvent::new(
            ThreadId::parse(thread).unwrap(),
            RunId::parse(run).unwrap(),
            EventType::parse("llm.ai.response").unwrap(),
            EventCategory::parse(category).unwrap(),
        )
    }

    fn repo() -> Arc<dyn RunEventRepository> {
        MemoryBackend::new().stores().run_events
    }

    fn seqs(rows: &[RunEvent]) -> Vec<i64> {
        rows.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn seqs_are_never_reused_after_run_thread_or_cascade_deletes() {
        let backend = MemoryBackend::new();
        let stores = backend.stores();
        let repo = stores.run_events.clone();
        let s = UserScope::Unscoped;
        let t = ThreadId::parse("t").unwrap();
        for run in ["r1", "r1", "r2", "r2"] {
            repo.put(&s, ev("t", run, "message")).await.unwrap();
        }
        assert_eq!(
            repo.delete_by_run(&s, &t, &RunId::parse("r2").unwrap())
                .await
                .unwrap(),
            2
        );
        assert_eq!(repo.put(&s, ev("t", "r3", "message")).await.unwrap().seq, 5);
        assert_eq!(repo.delete_by_thread(&s, &t).await.unwrap(), 3);
        assert_eq!(repo.put(&s, ev("t", "r4", "message")).await.unwrap().seq, 6);
        assert!(!stores.threads.delete(&s, &t).await.unwrap());
        assert_eq!(repo.count_messages(&s, &t).await.unwrap(), 0);
        let batch = repo
            .put_batch(&s, vec![ev("t", "a", "trace"), ev("t", "b", "message")])
            .await
            .unwrap();
        assert_eq!(seqs(&batch), [7, 8]);
        assert_eq!(batch[1].run_id.as_str(), "b");
        assert_eq!(
            repo.put(&s, ev("other", "r", "message")).await.unwrap().seq,
            1
        );
    }

    #[tokio::test]
    async fn pages_select_by_exclusive_cursors_and_return_ascending() {
        let repo = repo();
        let s = UserScope::Unscoped;
        let t = ThreadId::parse("t").unwrap();
        for i in 1..=10 {
            let cat = if i % 2 == 1 { "message" } else { "trace" };
            repo.put(&s, ev("t", "r", cat)).await.unwrap();
        }
        let l = |n| Limit::new(n).unwrap();
        let page = |p| {
            let repo = repo.clone();
            let t = t.clone();
            async move {
                seqs(
                    &repo
                        .list_messages(&UserScope::Unscoped, &t, p)
                        .await
                        .unwrap(),
                )
            }
        };
        assert_eq!(page(SeqPage::Before(6, l(2))).await, [3, 5]);
        assert_eq!(page(SeqPage::Before(5, l(2))).await, [1, 3]);
        assert_eq!(page(SeqPage::After(4, l(2))).await, [5, 7]);
        assert_eq!(
            page(SeqPage::After(i64::MAX, l(2))).await,
            Vec::<i64>::new()
        );
        assert_eq!(page(SeqPage::Latest(l(3))).await, [5, 7, 9]);
        assert_eq!(page(SeqPage::Latest(l(50))).await, [1, 3, 5, 7, 9]);
    }

    #[tokio::test]
    async fn scoping_hides_other_owners_and_put_if_absent_does_not_leak() {
        let repo = repo();
        let a = UserScope::User(UserId::parse("a").unwrap());
        let b = UserScope::User(UserId::parse("b").unwrap());
        let t = ThreadId::parse("t").unwrap();
        let mut delivery = ev("t", "r", "outputs");
        delivery.event_type = EventType::parse("run.delivery").unwrap();
        let (first, created) = repo.put_if_absent(&a, delivery.clone()).await.unwrap();
        assert!(created);
        assert_eq!(first.user_id.as_ref().map(UserId::as_str), Some("a"));
        let (again, created) = repo.put_if_absent(&a, delivery.clone()).await.unwrap();
        assert!(!created);
        assert_eq!(again, first);
        assert!(
            repo.put_if_absent(&b, delivery)
                .await
                .unwrap_err()
                .is_conflict()
        );
        repo.put(&a, ev("t", "r", "message")).await.unwrap();
        assert_eq!(repo.count_messages(&b, &t).await.unwrap(), 0);
        assert_eq!(repo.delete_by_thread(&b, &t).await.unwrap(), 0);
        assert_eq!(repo.count_messages(&a, &t).await.unwrap(), 1);
        assert_eq!(
            repo.count_messages(&UserScope::Unscoped, &t).await.unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn trace_content_is_truncated_with_the_configured_limit() {
        let b = MemoryBackend::with_options(
            Arc::new(SystemClock),
            MemoryOptions {
                max_trace_content: 100,
            },
        );
        let repo = b.stores().run_events;
        let s = UserScope::Unscoped;
        let trace = repo
            .put(
                &s,
                ev("t", "r", "trace").with_content(json!("é".repeat(60))),
            )
            .await
            .unwrap();
        assert_eq!(trace.content, json!("é".repeat(50)));
        assert_eq!(trace.metadata["original_byte_length"], json!(120));
        let msg = repo
            .put(
                &s,
                ev("t", "r", "message").with_content(json!("a".repeat(150))),
            )
            .await
            .unwrap();
        assert_eq!(msg.content.as_str().unwrap().len(), 150);
        let bad = ev("t", "r", "message").with_content(json!({"x": "\u{0}"}));
        assert!(repo.put(&s, bad).await.unwrap_err().is_invalid_input());
        let mut mixed = vec![ev("t", "r", "message"), ev("u", "r", "message")];
        assert!(
            repo.put_batch(&s, std::mem::take(&mut mixed))
                .await
                .is_err()
        );
        assert_eq!(
            repo.count_messages(&s, &ThreadId::parse("u").unwrap())
                .await
                .unwrap(),
            0
        );
    }
}
