//! Acceptance behaviours of spec §5.6 and the buffer's failure paths.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::Duration as ChronoDuration;
use tokio::sync::Semaphore;
use waymark_domain::DomainResult;
use waymark_domain::clock::ManualClock;
use waymark_domain::mocks::MockChatStreamRepository;

use super::*;
use crate::test_support::{clock, tid};

/// A record store with an atomic append, failure injection and an optional gate.
#[derive(Default)]
struct FakeRecords {
    records: StdMutex<HashMap<ThreadId, ChatStreamRecord>>,
    fail: AtomicUsize,
    appends: AtomicUsize,
    gate: Option<Arc<Semaphore>>,
}

impl FakeRecords {
    fn frames(&self, t: &str) -> Option<Vec<String>> {
        self.records
            .lock()
            .unwrap()
            .get(&tid(t))
            .map(|r| r.frames.clone())
    }
}

#[async_trait]
impl ChatStreamRepository for FakeRecords {
    async fn append(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        frames: Vec<String>,
    ) -> DomainResult<ChatStreamRecord> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        if let Some(g) = &self.gate {
            g.acquire().await.unwrap().forget();
        }
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(DomainError::storage("chat_streams.append", "down"));
        }
        let now = Utc::now();
        let mut map = self.records.lock().unwrap();
        let rec = map.entry(thread_id.clone()).or_insert(ChatStreamRecord {
            thread_id: thread_id.clone(),
            user_id: scope.owner().cloned(),
            frames: Vec::new(),
            ts: now,
            created_at: now,
        });
        rec.frames.extend(frames);
        rec.ts = now;
        Ok(rec.clone())
    }
    async fn get(
        &self,
        _scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<Option<ChatStreamRecord>> {
        Ok(self.records.lock().unwrap().get(thread_id).cloned())
    }
    async fn list_recent(
        &self,
        _scope: &UserScope,
        _limit: Limit,
    ) -> DomainResult<Vec<ChatStreamSummary>> {
        Ok(Vec::new())
    }
    async fn delete(&self, _scope: &UserScope, thread_id: &ThreadId) -> DomainResult<bool> {
        Ok(self.records.lock().unwrap().remove(thread_id).is_some())
    }
    async fn purge_older_than(&self, _cutoff: DateTime<Utc>, _batch: Limit) -> DomainResult<u64> {
        Ok(0)
    }
}

fn svc_with(repo: Arc<dyn ChatStreamRepository>, config: ChatStreamConfig) -> ChatStreamService {
    ChatStreamService::new(repo, clock(), config).unwrap()
}

fn svc(repo: Arc<FakeRecords>) -> ChatStreamService {
    svc_with(repo, ChatStreamConfig::default())
}

const U: UserScope = UserScope::Unscoped;

// §5.6.1
#[tokio::test]
async fn a_stop_frame_persists_the_buffer_and_resets_the_cursor() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc(repo.clone());
    let t = tid("t1");
    assert_eq!(
        s.record(&U, &t, "Hello".into(), "partial").await.unwrap(),
        RecordOutcome::Buffered { index: 0 }
    );
    let out = s.record(&U, &t, " World".into(), "stop").await.unwrap();
    assert_eq!(
        out,
        RecordOutcome::Persisted {
            index: 1,
            frames: 2,
            record_frames: 2
        }
    );
    assert_eq!(repo.frames("t1").unwrap(), vec!["Hello", " World"]);
    assert!(s.buffered(&t).await.is_empty());
    assert_eq!(s.next_index(&t).await, 0);
}

// §5.6.2 and §5.6.3
#[tokio::test]
async fn persists_append_instead_of_overwriting() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc(repo.clone());
    let t = tid("t1");
    s.record(&U, &t, "This is a test message.".into(), "stop")
        .await
        .unwrap();
    s.record(&U, &t, "Another message.".into(), "stop")
        .await
        .unwrap();
    assert_eq!(
        repo.frames("t1").unwrap(),
        vec!["This is a test message.", "Another message."]
    );
    let t2 = tid("t2");
    for (f, r) in [("Hello", "partial"), (" World", "partial"), ("!", "stop")] {
        s.record(&U, &t2, f.into(), r).await.unwrap();
    }
    assert_eq!(repo.frames("t2").unwrap(), vec!["Hello", " World", "!"]);
    assert!(s.buffered(&t2).await.is_empty());
}

// §5.6.4
#[tokio::test]
async fn interrupt_persists_like_stop_and_other_reasons_only_buffer() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc(repo.clone());
    let t = tid("t1");
    for reason in ["tool_calls", "length", "", "none", "partial"] {
        assert!(matches!(
            s.record(&U, &t, format!("f-{reason}"), reason)
                .await
                .unwrap(),
            RecordOutcome::Buffered { .. }
        ));
    }
    assert_eq!(repo.appends.load(Ordering::SeqCst), 0);
    assert!(matches!(
        s.record(&U, &t, "i".into(), "interrupt").await.unwrap(),
        RecordOutcome::Persisted { frames: 6, .. }
    ));
}

// §5.6.5 and §5.6.6
#[tokio::test]
async fn indices_start_at_zero_restart_after_a_persist_and_threads_stay_apart() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc(repo.clone());
    let (a, b) = (tid("thread1"), tid("thread2"));
    assert_eq!(
        s.record(&U, &a, "a0".into(), "none").await.unwrap(),
        RecordOutcome::Buffered { index: 0 }
    );
    assert_eq!(
        s.record(&U, &a, "a1".into(), "none").await.unwrap(),
        RecordOutcome::Buffered { index: 1 }
    );
    assert_eq!(
        s.record(&U, &b, "b0".into(), "stop").await.unwrap(),
        RecordOutcome::Persisted {
            index: 0,
            frames: 1,
            record_frames: 1
        }
    );
    s.record(&U, &a, "a2".into(), "stop").await.unwrap();
    assert_eq!(
        s.record(&U, &a, "next".into(), "none").await.unwrap(),
        RecordOutcome::Buffered { index: 0 }
    );
    assert_eq!(repo.frames("thread1").unwrap(), vec!["a0", "a1", "a2"]);
    assert_eq!(repo.frames("thread2").unwrap(), vec!["b0"]);
}

// §5.6.7
#[tokio::test]
async fn empty_or_nul_frames_are_invalid_and_nothing_is_buffered() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc(repo);
    let t = tid("t1");
    assert!(
        s.record(&U, &t, String::new(), "stop")
            .await
            .unwrap_err()
            .is_invalid_input()
    );
    assert!(
        s.record(&U, &t, "a\0".into(), "none")
            .await
            .unwrap_err()
            .is_invalid_input()
    );
    assert!(s.buffered(&t).await.is_empty());
    assert!(ThreadId::parse("").unwrap_err().is_invalid_input());
}

// §5.6.8
#[tokio::test]
async fn disabled_persistence_reports_disabled_and_touches_nothing() {
    let repo = MockChatStreamRepository::new(); // any call would panic
    let s = svc_with(
        Arc::new(repo),
        ChatStreamConfig {
            enabled: false,
            ..ChatStreamConfig::default()
        },
    );
    let t = tid("t1");
    let err = s.record(&U, &t, "x".into(), "stop").await.unwrap_err();
    assert!(err.is_disabled());
    assert!(s.end_stream(&U, &t).await.unwrap_err().is_disabled());
    assert!(s.get_history(&U, &t).await.unwrap_err().is_disabled());
    assert!(s.buffered(&t).await.is_empty());
    assert_eq!(s.purge_expired().await.unwrap(), 0);
}

// §5.6.9
#[tokio::test]
async fn a_failed_persist_keeps_the_frames_and_the_retry_writes_them_once() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc(repo.clone());
    let t = tid("t1");
    s.record(&U, &t, "1".into(), "partial").await.unwrap();
    s.record(&U, &t, "2".into(), "partial").await.unwrap();
    repo.fail.store(1, Ordering::SeqCst);
    let err = s.record(&U, &t, "3".into(), "stop").await.unwrap_err();
    assert!(err.is_storage());
    assert_eq!(s.buffered(&t).await, vec!["1", "2", "3"]);
    assert_eq!(repo.frames("t1"), None);
    s.record(&U, &t, "4".into(), "stop").await.unwrap();
    assert_eq!(repo.frames("t1").unwrap(), vec!["1", "2", "3", "4"]);
    assert!(s.buffered(&t).await.is_empty());
}

// §5.6.10 (the service's half: concurrent persists of one thread write each frame once)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stops_on_one_thread_write_every_frame_exactly_once() {
    let repo = Arc::new(FakeRecords::default());
    let s = Arc::new(svc(repo.clone()));
    let t = tid("t1");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (s, t) = (s.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            s.record(&U, &t, format!("f{i}"), "stop").await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut frames = repo.frames("t1").unwrap();
    frames.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    expected.sort();
    assert_eq!(frames, expected);
    assert!(s.buffered(&t).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_recorded_during_a_persist_stay_buffered_and_are_renumbered() {
    let gate = Arc::new(Semaphore::new(0));
    let repo = Arc::new(FakeRecords {
        gate: Some(gate.clone()),
        ..FakeRecords::default()
    });
    let s = Arc::new(svc(repo.clone()));
    let t = tid("t1");
    s.record(&U, &t, "a".into(), "none").await.unwrap();
    let persisting = {
        let (s, t) = (s.clone(), t.clone());
        tokio::spawn(async move { s.record(&U, &t, "b".into(), "stop").await })
    };
    while repo.appends.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        s.record(&U, &t, "late".into(), "none").await.unwrap(),
        RecordOutcome::Buffered { index: 2 }
    );
    gate.add_permits(1);
    persisting.await.unwrap().unwrap();
    assert_eq!(repo.frames("t1").unwrap(), vec!["a", "b"]);
    assert_eq!(s.buffered(&t).await, vec!["late"]);
    assert_eq!(s.next_index(&t).await, 1, "the kept frame is index 0 now");
}

// §5.6.11 (validation; ordering is the store's contract)
#[tokio::test]
async fn list_recent_bounds_its_limit_and_passes_it_on() {
    let mut repo = MockChatStreamRepository::new();
    repo.expect_list_recent()
        .withf(|_, l| l.get() == 2)
        .times(1)
        .returning(|_, _| Ok(Vec::new()));
    let s = svc_with(Arc::new(repo), ChatStreamConfig::default());
    assert!(s.list_recent(&U, 2).await.unwrap().is_empty());
    assert!(s.list_recent(&U, 0).await.unwrap_err().is_invalid_input());
    assert!(s.list_recent(&U, 101).await.unwrap_err().is_invalid_input());
}

// §5.6.12
#[tokio::test]
async fn delete_removes_record_and_buffer() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc(repo.clone());
    let t = tid("t1");
    s.record(&U, &t, "a".into(), "stop").await.unwrap();
    s.record(&U, &t, "trailing".into(), "none").await.unwrap();
    assert!(s.delete(&U, &t).await.unwrap());
    assert!(s.get_history(&U, &t).await.unwrap().is_none());
    assert!(s.buffered(&t).await.is_empty());
    assert!(!s.delete(&U, &t).await.unwrap());
}

// §5.6.13
#[tokio::test]
async fn retention_purges_in_batches_from_thirty_days_back_and_zero_disables() {
    let c = clock();
    let now = c.now();
    let mut repo = MockChatStreamRepository::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    repo.expect_purge_older_than()
        .withf(move |cutoff, batch| *cutoff == now - ChronoDuration::days(30) && batch.get() == 500)
        .times(2)
        .returning(move |_, _| {
            Ok(if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                500
            } else {
                3
            })
        });
    let s = ChatStreamService::new(Arc::new(repo), c.clone(), ChatStreamConfig::default()).unwrap();
    assert_eq!(s.purge_expired().await.unwrap(), 503);

    let off = ChatStreamService::new(
        Arc::new(MockChatStreamRepository::new()),
        c,
        ChatStreamConfig {
            retention_days: 0,
            ..ChatStreamConfig::default()
        },
    )
    .unwrap();
    assert_eq!(off.purge_expired().await.unwrap(), 0);
}

// §5.6.15
#[tokio::test]
async fn trailing_frames_are_persisted_by_end_stream_or_by_the_idle_ttl() {
    let repo = Arc::new(FakeRecords::default());
    let c: Arc<ManualClock> = clock();
    let s = ChatStreamService::new(repo.clone(), c.clone(), ChatStreamConfig::default()).unwrap();
    let (a, b) = (tid("a"), tid("b"));
    s.record(&U, &a, "answer".into(), "stop").await.unwrap();
    s.record(&U, &a, "tool result".into(), "tool_calls")
        .await
        .unwrap();
    assert_eq!(
        s.end_stream(&U, &a).await.unwrap(),
        PersistOutcome::Persisted {
            frames: 1,
            record_frames: 2
        }
    );
    assert!(s.buffered(&a).await.is_empty());
    assert_eq!(
        s.end_stream(&U, &a).await.unwrap(),
        PersistOutcome::NothingToPersist
    );

    s.record(&U, &b, "dangling".into(), "partial")
        .await
        .unwrap();
    c.advance(ChronoDuration::minutes(9));
    assert_eq!(s.expire_idle().await, IdleSweep::default(), "not idle yet");
    c.advance(ChronoDuration::minutes(2));
    let sweep = s.expire_idle().await;
    assert_eq!(sweep.persisted_threads, 1);
    assert_eq!(sweep.persisted_frames, 1);
    assert_eq!(repo.frames("b").unwrap(), vec!["dangling"]);
    assert!(s.buffered(&b).await.is_empty());
}

#[tokio::test]
async fn idle_buffers_can_be_dropped_and_failed_idle_persists_are_kept_and_counted() {
    let repo = Arc::new(FakeRecords::default());
    let c = clock();
    let dropper = ChatStreamService::new(
        repo.clone(),
        c.clone(),
        ChatStreamConfig {
            idle_policy: IdlePolicy::Drop,
            ..ChatStreamConfig::default()
        },
    )
    .unwrap();
    let t = tid("t");
    dropper.record(&U, &t, "x".into(), "none").await.unwrap();
    dropper.record(&U, &t, "y".into(), "none").await.unwrap();
    c.advance(ChronoDuration::minutes(11));
    let sweep = dropper.expire_idle().await;
    assert_eq!((sweep.dropped_threads, sweep.dropped_frames), (1, 2));
    assert_eq!(repo.frames("t"), None);

    let keeper =
        ChatStreamService::new(repo.clone(), c.clone(), ChatStreamConfig::default()).unwrap();
    keeper.record(&U, &t, "z".into(), "none").await.unwrap();
    c.advance(ChronoDuration::minutes(11));
    repo.fail.store(1, Ordering::SeqCst);
    assert_eq!(keeper.expire_idle().await.failed_threads, 1);
    assert_eq!(keeper.buffered(&t).await, vec!["z"]);
}

#[tokio::test]
async fn a_full_buffer_forces_a_persist_and_refuses_frames_when_that_fails() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc_with(
        repo.clone(),
        ChatStreamConfig {
            max_frames: 3,
            max_bytes: 10,
            ..ChatStreamConfig::default()
        },
    );
    let t = tid("t");
    for f in ["a", "b", "c"] {
        s.record(&U, &t, f.into(), "none").await.unwrap();
    }
    // The fourth frame does not fit: the buffer is persisted first, then it is buffered.
    assert_eq!(
        s.record(&U, &t, "d".into(), "none").await.unwrap(),
        RecordOutcome::Buffered { index: 0 }
    );
    assert_eq!(repo.frames("t").unwrap(), vec!["a", "b", "c"]);
    // Byte cap: "d" (1) + 9 bytes fits exactly; one more byte does not.
    s.record(&U, &t, "123456789".into(), "none").await.unwrap();
    repo.fail.store(1, Ordering::SeqCst);
    let err = s.record(&U, &t, "e".into(), "none").await.unwrap_err();
    match err {
        ApplicationError::BufferFull {
            frames,
            bytes,
            source,
            ..
        } => {
            assert_eq!((frames, bytes), (2, 10));
            assert!(source.is_storage());
        }
        other => panic!("expected BufferFull, got {other}"),
    }
    assert_eq!(
        s.buffered(&t).await,
        vec!["d", "123456789"],
        "the frame was refused"
    );
    // Recovery: the next frame forces the persist again and is then accepted.
    s.record(&U, &t, "e".into(), "stop").await.unwrap();
    assert_eq!(
        repo.frames("t").unwrap(),
        vec!["a", "b", "c", "d", "123456789", "e"]
    );
    assert!(
        s.record(&U, &t, "x".repeat(11), "none")
            .await
            .unwrap_err()
            .is_invalid_input(),
        "a frame larger than the byte cap can never fit"
    );
}

#[tokio::test]
async fn another_scope_cannot_write_into_or_flush_a_users_buffer() {
    let repo = Arc::new(FakeRecords::default());
    let s = svc(repo);
    let t = tid("t");
    let a = UserScope::User(waymark_domain::UserId::parse("a").unwrap());
    let b = UserScope::User(waymark_domain::UserId::parse("b").unwrap());
    s.record(&a, &t, "mine".into(), "none").await.unwrap();
    assert!(
        s.record(&b, &t, "theirs".into(), "none")
            .await
            .unwrap_err()
            .is_access_denied()
    );
    assert!(s.end_stream(&b, &t).await.unwrap_err().is_access_denied());
    assert_eq!(s.buffered(&t).await, vec!["mine"]);
}

#[tokio::test]
async fn drop_buffer_reports_the_frames_it_discarded() {
    let s = svc(Arc::new(FakeRecords::default()));
    let t = tid("t");
    s.record(&U, &t, "1".into(), "none").await.unwrap();
    s.record(&U, &t, "2".into(), "none").await.unwrap();
    assert_eq!(s.drop_buffer(&t).await, 2);
    assert_eq!(s.drop_buffer(&t).await, 0);
    assert_eq!(
        s.record(&U, &t, "3".into(), "none").await.unwrap(),
        RecordOutcome::Buffered { index: 0 }
    );
}

#[test]
fn zero_caps_are_refused() {
    let r = ChatStreamService::new(
        Arc::new(MockChatStreamRepository::new()),
        clock(),
        ChatStreamConfig {
            max_frames: 0,
            ..ChatStreamConfig::default()
        },
    );
    assert!(r.unwrap_err().is_invalid_input());
}

fn budgeted(repo: Arc<FakeRecords>) -> ChatStreamService {
    svc_with(
        repo,
        ChatStreamConfig {
            max_bytes: 10,
            max_total_bytes: 10,
            ..ChatStreamConfig::default()
        },
    )
}

#[tokio::test]
async fn the_budget_of_all_buffers_refuses_a_new_threads_frame_and_writes_nothing_for_it() {
    let repo = Arc::new(FakeRecords::default());
    let s = budgeted(repo.clone());
    let (t1, t2) = (tid("t1"), tid("t2"));
    s.record(&U, &t1, "12345".into(), "none").await.unwrap();
    s.record(&U, &t1, "678".into(), "none").await.unwrap();
    assert_eq!(s.buffered_bytes(), 8);
    let err = s.record(&U, &t2, "abc".into(), "none").await.unwrap_err();
    match err {
        ApplicationError::BufferBudgetExhausted {
            thread_id,
            buffered,
            budget,
        } => assert_eq!((thread_id, buffered, budget), (t2.clone(), 8, 10)),
        other => panic!("expected BufferBudgetExhausted, got {other}"),
    }
    assert!(s.buffered(&t2).await.is_empty(), "nothing was buffered");
    assert!(repo.frames("t2").is_none(), "nothing was written");
    assert_eq!(repo.appends.load(Ordering::SeqCst), 0);
    assert_eq!(s.buffered_bytes(), 8);
    // Once the other stream persists, its bytes return to the budget.
    s.record(&U, &t1, "9".into(), "stop").await.unwrap();
    assert_eq!(s.buffered_bytes(), 0);
    s.record(&U, &t2, "abc".into(), "none").await.unwrap();
    assert_eq!(s.buffered_bytes(), 3);
}

#[tokio::test]
async fn a_frame_over_the_budget_first_persists_its_own_threads_buffer() {
    let repo = Arc::new(FakeRecords::default());
    let s = budgeted(repo.clone());
    let (t1, t2) = (tid("t1"), tid("t2"));
    s.record(&U, &t1, "1234".into(), "none").await.unwrap();
    s.record(&U, &t2, "abcde".into(), "none").await.unwrap();
    assert_eq!(
        s.record(&U, &t1, "xy".into(), "none").await.unwrap(),
        RecordOutcome::Buffered { index: 0 }
    );
    assert_eq!(repo.frames("t1").unwrap(), vec!["1234"]);
    assert_eq!(s.buffered(&t1).await, vec!["xy"]);
    assert_eq!(s.buffered_bytes(), 7);
    // When that persist fails the frame is refused and the buffer kept.
    s.record(&U, &t1, "z".into(), "none").await.unwrap();
    repo.fail.store(1, Ordering::SeqCst);
    let err = s.record(&U, &t1, "last".into(), "none").await.unwrap_err();
    assert!(matches!(err, ApplicationError::BufferFull { .. }), "{err}");
    assert_eq!(s.buffered(&t1).await, vec!["xy", "z"]);
    assert_eq!(s.buffered_bytes(), 8);
}

#[tokio::test]
async fn dropped_and_deleted_buffers_return_their_bytes_to_the_budget() {
    let repo = Arc::new(FakeRecords::default());
    let s = budgeted(repo.clone());
    let (t1, t2) = (tid("t1"), tid("t2"));
    s.record(&U, &t1, "1234".into(), "none").await.unwrap();
    s.record(&U, &t2, "abc".into(), "none").await.unwrap();
    assert_eq!(s.drop_buffer(&t1).await, 1);
    assert_eq!(s.buffered_bytes(), 3);
    s.delete(&U, &t2).await.unwrap();
    assert_eq!(s.buffered_bytes(), 0);
    s.record(&U, &t1, "0123456789".into(), "none")
        .await
        .unwrap();
    assert_eq!(s.buffered_bytes(), 10, "the whole budget is usable again");
}

#[test]
fn a_budget_smaller_than_one_buffer_is_refused() {
    let r = ChatStreamConfig {
        max_bytes: 10,
        max_total_bytes: 9,
        ..ChatStreamConfig::default()
    }
    .validate();
    assert!(r.unwrap_err().is_invalid_input());
}
