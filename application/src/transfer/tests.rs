//! Export, import and verification decisions, over mockall mocks of the ports.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use waymark_domain::branch::{Branch, Snapshot, SnapshotKind};
use waymark_domain::chat_stream::ChatStreamRecord;
use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointMetadata, CheckpointRef, CheckpointTuple, PendingWrite,
    TypedValue, WriteBatch,
};
use waymark_domain::clock::Clock;
use waymark_domain::feedback::{Feedback, Rating};
use waymark_domain::kv::ItemNamespace;
use waymark_domain::mocks::{
    MockBranchRepository, MockChatStreamRepository, MockCheckpointRepository,
    MockFeedbackRepository, MockKeyValueRepository, MockRunEventRepository, MockRunRepository,
    MockSessionRepository, MockSnapshotRepository, MockThreadRepository, MockTokenUsageRepository,
};
use waymark_domain::paging::{Page, SeqPage};
use waymark_domain::run_event::RunEvent;
use waymark_domain::session::{CheckpointPolicy, Session, SessionStatus};
use waymark_domain::thread::{Thread, ThreadStatus};
use waymark_domain::{
    BranchId, ChannelName, CheckpointId, CheckpointNamespace, DomainError, EventCategory,
    EventType, FeedbackId, ItemKey, JsonObject, Name, SessionId, SnapshotId, Stores, TaskId,
    ThreadId, UserId, UserScope,
};

use super::*;
use crate::ApplicationError;
use crate::test_support::{clock, rid, tid};

/// Every port as a mock; a test sets expectations on the ones it uses.
#[derive(Default)]
struct Ports {
    sessions: MockSessionRepository,
    threads: MockThreadRepository,
    branches: MockBranchRepository,
    snapshots: MockSnapshotRepository,
    checkpoints: MockCheckpointRepository,
    run_events: MockRunEventRepository,
    feedback: MockFeedbackRepository,
    chat_streams: MockChatStreamRepository,
    items: MockKeyValueRepository,
}

impl Ports {
    fn stores(self) -> Stores {
        Stores {
            sessions: Arc::new(self.sessions),
            threads: Arc::new(self.threads),
            branches: Arc::new(self.branches),
            snapshots: Arc::new(self.snapshots),
            checkpoints: Arc::new(self.checkpoints),
            run_events: Arc::new(self.run_events),
            token_usage: Arc::new(MockTokenUsageRepository::new()),
            feedback: Arc::new(self.feedback),
            chat_streams: Arc::new(self.chat_streams),
            items: Arc::new(self.items),
            runs: Arc::new(MockRunRepository::new()),
        }
    }

    fn exporter(self) -> Exporter {
        Exporter::new(self.stores())
    }

    fn importer(self) -> Importer {
        Importer::new(self.stores(), clock())
    }
}

fn ch(s: &str) -> ChannelName {
    ChannelName::parse(s).unwrap()
}

fn cid(s: &str) -> CheckpointId {
    CheckpointId::parse(s).unwrap()
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn write(channel: &str, idx: i64) -> IndexedWrite {
    IndexedWrite {
        channel: ch(channel),
        idx,
        value: TypedValue::msgpack(vec![idx as u8]),
    }
}

fn pending(task: &str, path: &str, channel: &str, idx: i64) -> PendingWrite {
    PendingWrite {
        task_id: TaskId::parse(task).unwrap(),
        task_path: path.into(),
        channel: ch(channel),
        value: TypedValue::msgpack(vec![idx as u8]),
        idx,
    }
}

fn tuple(thread: &str, id: &str, writes: Vec<PendingWrite>) -> CheckpointTuple {
    let mut checkpoint = Checkpoint::empty(0);
    checkpoint.id = cid(id);
    checkpoint.ts = "2026-01-01T00:00:00+00:00".into();
    checkpoint
        .channel_values
        .insert(ch("a"), TypedValue::msgpack(vec![1]));
    checkpoint
        .channel_versions
        .insert(ch("a"), ChannelVersion::Int(1));
    CheckpointTuple {
        thread_id: tid(thread),
        namespace: CheckpointNamespace::root(),
        parent_id: None,
        checkpoint,
        metadata: CheckpointMetadata(json!({"source": "loop"}).as_object().unwrap().clone()),
        pending_writes: writes,
    }
}

fn event(run: &str, seq: i64, event_type: &str) -> RunEvent {
    RunEvent {
        thread_id: tid("t1"),
        run_id: rid(run),
        seq,
        event_type: EventType::parse(event_type).unwrap(),
        category: EventCategory::parse("message").unwrap(),
        content: json!({"seq": seq}),
        metadata: JsonObject::new(),
        created_at: at("2026-01-01T00:00:00Z"),
        user_id: Some(user("alice")),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn thread_row(id: &str, session: Option<&str>, status: ThreadStatus) -> Thread {
    Thread {
        id: tid(id),
        session_id: session.map(|s| SessionId::parse(s).unwrap()),
        owner: Some(user("alice")),
        assistant_id: Some("agent".into()),
        display_name: None,
        status,
        metadata: JsonObject::new(),
        created_at: at("2025-01-01T00:00:00Z"),
        updated_at: at("2025-01-01T00:00:00Z"),
    }
}

fn kinds(records: &[TransferRecord]) -> Vec<&'static str> {
    records
        .iter()
        .map(|r| match r {
            TransferRecord::Session(_) => "session",
            TransferRecord::Thread(_) => "thread",
            TransferRecord::Checkpoint(_) => "checkpoint",
            TransferRecord::Writes(_) => "writes",
            TransferRecord::Event(_) => "event",
            TransferRecord::Feedback(_) => "feedback",
            TransferRecord::ChatStream(_) => "chat_stream",
            TransferRecord::Branch(_) => "branch",
            TransferRecord::Snapshot(_) => "snapshot",
            TransferRecord::Item(_) => "item",
        })
        .collect()
}

// ---- write_calls ----

#[test]
fn write_calls_reproduce_indices_with_specials_in_the_gaps() {
    let calls = write_calls(&[write("a", 0), write("__interrupt__", -3), write("b", 2)]).unwrap();
    assert_eq!(calls.len(), 1);
    let batch = WriteBatch {
        target: CheckpointRef {
            thread_id: tid("t"),
            namespace: CheckpointNamespace::root(),
            checkpoint_id: cid("c"),
        },
        task_id: TaskId::parse("x").unwrap(),
        task_path: String::new(),
        writes: calls[0].clone(),
    };
    let idx: Vec<i64> = batch.to_pending_writes().iter().map(|w| w.idx).collect();
    assert_eq!(idx, [0, -3, 2]);
}

#[test]
fn write_calls_of_special_channels_only_are_one_upsert() {
    let only_special = write_calls(&[write("__error__", -1)]).unwrap();
    assert_eq!(only_special.len(), 1);
    assert_eq!(only_special[0].len(), 1);
    assert!(write_calls(&[]).unwrap().is_empty());
}

#[test]
fn write_calls_refuse_indices_no_call_can_store() {
    let gap = write_calls(&[write("a", 1)]).unwrap_err();
    assert!(gap.contains("nothing can fill position 0"), "{gap}");
    let dup = write_calls(&[write("a", 0), write("b", 0)]).unwrap_err();
    assert!(dup.contains("duplicate index 0"), "{dup}");
    let negative = write_calls(&[write("a", -2)]).unwrap_err();
    assert!(negative.contains("negative index"), "{negative}");
}

// ---- records ----

#[test]
fn a_tuple_becomes_its_checkpoint_then_one_writes_record_per_task() {
    let t = tuple(
        "t1",
        "c1",
        vec![
            pending("task-b", "", "x", 1),
            pending("task-a", "p", "y", 1),
            pending("task-b", "", "z", 0),
        ],
    );
    let records = checkpoint_records(&t);
    assert_eq!(kinds(&records), ["checkpoint", "writes", "writes"]);
    let TransferRecord::Checkpoint(c) = &records[0] else {
        unreachable!()
    };
    assert_eq!(c.checkpoint, t.checkpoint);
    assert_eq!(c.metadata, t.metadata);
    let TransferRecord::Writes(a) = &records[1] else {
        unreachable!()
    };
    assert_eq!(a.task_id.as_str(), "task-a");
    assert_eq!(a.task_path, "p");
    assert_eq!(a.target, t.reference());
    let TransferRecord::Writes(b) = &records[2] else {
        unreachable!()
    };
    let order: Vec<(&str, i64)> = b
        .writes
        .iter()
        .map(|w| (w.channel.as_str(), w.idx))
        .collect();
    assert_eq!(order, [("z", 0), ("x", 1)], "ascending by index");
}

// ---- export ----

#[tokio::test]
async fn a_thread_exports_in_the_order_an_importer_applies() {
    let mut p = Ports::default();
    p.threads
        .expect_get()
        .returning(|_, _| Ok(Some(thread_row("t1", Some("s1"), ThreadStatus::Idle))));
    p.checkpoints.expect_list().returning(|q| {
        assert_eq!(q.thread_id.as_ref().map(ThreadId::as_str), Some("t1"));
        // Newest first, as the port lists.
        Ok(vec![
            tuple("t1", "c2", vec![pending("k", "", "x", 0)]),
            tuple("t1", "c1", vec![]),
        ])
    });
    p.run_events.expect_list_messages().returning(|_, _, page| {
        Ok(match page {
            SeqPage::After(0, _) => {
                vec![event("r2", 2, "ai_message"), event("r1", 4, "ai_message")]
            }
            _ => vec![],
        })
    });
    p.run_events.expect_list_events().returning(|_, q| {
        Ok(match q.run_id.as_str() {
            "r1" => vec![event("r1", 1, "run_start"), event("r1", 4, "ai_message")],
            "r2" => vec![event("r2", 2, "ai_message"), event("r2", 3, "run_end")],
            _ => vec![],
        })
    });
    p.feedback.expect_list_by_thread().returning(|_, _, _| {
        Ok(Page {
            items: vec![Feedback {
                id: FeedbackId::new_random(),
                thread_id: tid("t1"),
                run_id: rid("r1"),
                user_id: Some(user("bob")),
                message_id: None,
                rating: Rating::new(1).unwrap(),
                comment: Some("good".into()),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }],
            has_more: false,
        })
    });
    p.chat_streams.expect_get().returning(|_, t| {
        Ok(Some(ChatStreamRecord {
            thread_id: t.clone(),
            user_id: None,
            frames: vec!["f1".into()],
            ts: Utc::now(),
            created_at: Utc::now(),
        }))
    });
    p.branches
        .expect_list_for_thread()
        .returning(|_| Ok(vec![]));
    p.snapshots
        .expect_list_for_thread()
        .returning(|_| Ok(vec![]));

    let records = p.exporter().thread_records(&tid("t1")).await.unwrap();
    assert_eq!(
        kinds(&records),
        [
            "thread",
            "checkpoint",
            "checkpoint",
            "writes",
            "event",
            "event",
            "event",
            "event",
            "feedback",
            "chat_stream"
        ]
    );
    let TransferRecord::Checkpoint(first) = &records[1] else {
        unreachable!()
    };
    assert_eq!(first.checkpoint.id, cid("c1"), "oldest checkpoint first");
    let seqs: Vec<i64> = records
        .iter()
        .filter_map(|r| match r {
            TransferRecord::Event(e) => Some(e.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4], "events of every run, ascending by seq");
    let TransferRecord::Feedback(f) = &records[8] else {
        unreachable!()
    };
    assert_eq!(f.user_id, Some(user("bob")));
}

#[tokio::test]
async fn a_message_scan_that_does_not_advance_is_a_stalled_scan() {
    let mut p = Ports::default();
    p.run_events
        .expect_list_messages()
        .returning(|_, _, _| Ok(vec![event("r1", 0, "ai_message")]));
    let err = p.exporter().events(&tid("t1")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApplicationError::StalledScan {
                cursor: 0,
                last_seq: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn feedback_the_port_cannot_page_is_refused_not_cut() {
    let mut p = Ports::default();
    p.feedback.expect_list_by_thread().returning(|_, _, _| {
        Ok(Page {
            items: vec![],
            has_more: true,
        })
    });
    let err = p.exporter().feedback(&tid("t1")).await.unwrap_err();
    assert!(err.is_invalid_input(), "{err:?}");
}

#[tokio::test]
async fn a_selection_of_threads_keeps_only_the_sessions_they_name() {
    let mut p = Ports::default();
    p.sessions.expect_list().returning(|_, _| {
        let session = |id: &str| Session {
            id: SessionId::parse(id).unwrap(),
            owner: None,
            title: None,
            metadata: JsonObject::new(),
            status: SessionStatus::Active,
            checkpoint_policy: CheckpointPolicy::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        Ok(Page {
            items: vec![session("s1"), session("s2")],
            has_more: false,
        })
    });
    p.items.expect_search().returning(|_| Ok(vec![]));
    let exporter = p.exporter();
    let thread_records = vec![TransferRecord::Thread(ThreadRecord::from(thread_row(
        "t1",
        Some("s2"),
        ThreadStatus::Idle,
    )))];
    let only = ThreadSelection::Only(vec![tid("t1")]);
    let kept = exporter
        .global_records_for(&only, &thread_records)
        .await
        .unwrap();
    assert!(
        matches!(&kept[..], [TransferRecord::Session(s)] if s.id.as_str() == "s2"),
        "{kept:?}"
    );
    let all = exporter
        .global_records_for(&ThreadSelection::All, &thread_records)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        exporter.selected_threads(&only).await.unwrap(),
        vec![tid("t1")]
    );
}

// ---- import ----

#[tokio::test]
async fn an_imported_session_is_stamped_by_the_clock_and_an_existing_one_kept() {
    let mut p = Ports::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    p.sessions.expect_create().returning(move |scope, s| {
        log.lock()
            .unwrap()
            .push((scope.clone(), s.created_at, s.updated_at));
        Err(DomainError::conflict("session", "exists"))
    });
    let record = TransferRecord::Session(SessionRecord {
        id: SessionId::parse("s1").unwrap(),
        owner: Some(user("alice")),
        title: None,
        metadata: JsonObject::new(),
        status: SessionStatus::Active,
        checkpoint_policy: CheckpointPolicy::default(),
    });
    p.importer().apply(&record).await.unwrap();
    let now = clock().now();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(UserScope::User(user("alice")), now, now)]
    );
}

#[tokio::test]
async fn a_thread_that_is_not_idle_gets_its_status_without_a_touch() {
    let mut p = Ports::default();
    p.threads
        .expect_create()
        .withf(|scope, new| *scope == UserScope::User(user("alice")) && new.id.as_str() == "t1")
        .returning(|_, _| Ok(thread_row("t1", None, ThreadStatus::Idle)));
    p.threads
        .expect_update()
        .withf(|_, id, u| id.as_str() == "t1" && u.status == Some(ThreadStatus::Error) && !u.touch)
        .times(1)
        .returning(|_, _, _| Ok(thread_row("t1", None, ThreadStatus::Error)));
    let record = TransferRecord::Thread(ThreadRecord::from(thread_row(
        "t1",
        None,
        ThreadStatus::Error,
    )));
    p.importer().apply(&record).await.unwrap();
}

#[tokio::test]
async fn an_idle_thread_is_only_created() {
    let mut p = Ports::default();
    p.threads
        .expect_create()
        .returning(|_, _| Ok(thread_row("t1", None, ThreadStatus::Idle)));
    p.threads.expect_update().never();
    let record = TransferRecord::Thread(ThreadRecord::from(thread_row(
        "t1",
        None,
        ThreadStatus::Idle,
    )));
    p.importer().apply(&record).await.unwrap();
}

#[tokio::test]
async fn an_imported_checkpoint_writes_every_valued_channel_as_new() {
    let mut p = Ports::default();
    let mut t = tuple("t1", "c1", vec![]);
    t.checkpoint
        .channel_versions
        .insert(ch("no_value"), ChannelVersion::Int(3));
    p.checkpoints
        .expect_put()
        .withf(|put| {
            put.new_versions
                .keys()
                .map(ChannelName::as_str)
                .collect::<Vec<_>>()
                == ["a"]
                && put.checkpoint.channel_versions.len() == 2
        })
        .times(1)
        .returning(|put| {
            Ok(CheckpointRef {
                thread_id: put.thread_id,
                namespace: put.namespace,
                checkpoint_id: put.checkpoint.id,
            })
        });
    let records = checkpoint_records(&t);
    p.importer().apply(&records[0]).await.unwrap();
}

#[tokio::test]
async fn imported_writes_keep_their_indices() {
    let mut p = Ports::default();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let log = batches.clone();
    p.checkpoints.expect_put_writes().returning(move |b| {
        log.lock().unwrap().push(b);
        Ok(())
    });
    let record = TransferRecord::Writes(WritesRecord {
        target: CheckpointRef {
            thread_id: tid("t1"),
            namespace: CheckpointNamespace::root(),
            checkpoint_id: cid("c1"),
        },
        task_id: TaskId::parse("k").unwrap(),
        task_path: "path".into(),
        writes: vec![write("__interrupt__", -3), write("a", 0), write("b", 2)],
    });
    p.importer().apply(&record).await.unwrap();
    let batches = batches.lock().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].task_path, "path");
    let idx: Vec<i64> = batches[0]
        .to_pending_writes()
        .iter()
        .map(|w| w.idx)
        .collect();
    assert_eq!(idx, [0, -3, 2]);
}

#[tokio::test]
async fn writes_with_a_gap_are_an_invalid_record() {
    let p = Ports::default();
    let record = TransferRecord::Writes(WritesRecord {
        target: CheckpointRef {
            thread_id: tid("t1"),
            namespace: CheckpointNamespace::root(),
            checkpoint_id: cid("c1"),
        },
        task_id: TaskId::parse("k").unwrap(),
        task_path: String::new(),
        writes: vec![write("a", 1)],
    });
    let err = p.importer().apply(&record).await.unwrap_err();
    assert!(err.is_invalid_input(), "{err:?}");
}

#[tokio::test]
async fn an_item_keeps_the_time_it_had_left_by_the_clock() {
    let mut p = Ports::default();
    let ttls = Arc::new(Mutex::new(Vec::new()));
    let log = ttls.clone();
    p.items.expect_put().returning(move |ns, key, value, ttl| {
        log.lock().unwrap().push(ttl);
        Ok(waymark_domain::kv::Item {
            namespace: ns.clone(),
            key: key.clone(),
            value,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            expires_at: None,
        })
    });
    let importer = p.importer();
    let item = |expires_at| {
        TransferRecord::Item(ItemRecord {
            namespace: ItemNamespace::parse(vec!["a".into()]).unwrap(),
            key: ItemKey::parse("k").unwrap(),
            value: JsonObject::new(),
            expires_at,
        })
    };
    let now = clock().now();
    importer.apply(&item(None)).await.unwrap();
    importer
        .apply(&item(Some(now + Duration::seconds(90))))
        .await
        .unwrap();
    importer.apply(&item(Some(now))).await.unwrap();
    assert_eq!(
        *ttls.lock().unwrap(),
        vec![None, Some(90)],
        "no TTL, the 90 s left, and an expired item not carried over"
    );
}

#[tokio::test]
async fn existing_branches_snapshots_and_streams_are_left_alone() {
    let mut p = Ports::default();
    p.branches.expect_get().returning(|id| Ok(Some(branch(id))));
    p.branches.expect_create().never();
    p.snapshots.expect_get().returning(|_| Ok(None));
    p.snapshots.expect_create().times(1).returning(Ok);
    p.chat_streams.expect_get().returning(|_, t| {
        Ok(Some(ChatStreamRecord {
            thread_id: t.clone(),
            user_id: None,
            frames: vec!["old".into()],
            ts: Utc::now(),
            created_at: Utc::now(),
        }))
    });
    p.chat_streams.expect_append().never();
    let importer = p.importer();
    let id = BranchId::new_random();
    importer
        .apply(&TransferRecord::Branch(branch(id)))
        .await
        .unwrap();
    importer
        .apply(&TransferRecord::Snapshot(Snapshot {
            id: SnapshotId::new_random(),
            thread_id: tid("t1"),
            namespace: CheckpointNamespace::root(),
            checkpoint_id: cid("c1"),
            name: Name::parse("m").unwrap(),
            description: None,
            kind: SnapshotKind::Milestone,
            metadata: JsonObject::new(),
            created_at: Utc::now(),
        }))
        .await
        .unwrap();
    importer
        .apply(&TransferRecord::ChatStream(StreamRecord {
            thread_id: tid("t1"),
            user_id: None,
            frames: vec!["new".into()],
        }))
        .await
        .unwrap();
}

fn branch(id: BranchId) -> Branch {
    Branch {
        id,
        name: Name::parse("b").unwrap(),
        source_thread_id: tid("t1"),
        source_namespace: CheckpointNamespace::root(),
        source_checkpoint_id: cid("c1"),
        thread_id: tid("t2"),
        metadata: JsonObject::new(),
        created_at: Utc::now(),
    }
}

// ---- verify ----

fn lister(tuples: Vec<CheckpointTuple>) -> MockCheckpointRepository {
    let mut m = MockCheckpointRepository::new();
    m.expect_list().returning(move |_| Ok(tuples.clone()));
    m
}

#[tokio::test]
async fn a_faithful_copy_verifies_whatever_the_order() {
    let a = tuple(
        "t1",
        "c1",
        vec![pending("k", "", "x", 0), pending("k", "", "y", 1)],
    );
    let b = tuple("t1", "c2", vec![]);
    let mut a2 = a.clone();
    a2.pending_writes.reverse();
    // Key order and a "writes" metadata key (dropped by LangGraph's PostgreSQL layout) do not
    // count.
    a2.metadata.0 = json!({"writes": null, "source": "loop"})
        .as_object()
        .unwrap()
        .clone();
    let check = verify_thread(
        &lister(vec![a, b.clone()]),
        &lister(vec![b, a2]),
        &tid("t1"),
    )
    .await
    .unwrap();
    assert_eq!(check, CopyCheck::Identical { checkpoints: 2 });
}

#[tokio::test]
async fn a_copy_missing_a_checkpoint_or_a_byte_fails_verification() {
    let a = tuple("t1", "c1", vec![pending("k", "", "x", 0)]);
    let check = verify_thread(&lister(vec![a.clone()]), &lister(vec![]), &tid("t1"))
        .await
        .unwrap();
    assert_eq!(
        check,
        CopyCheck::CountDiffers {
            source: 1,
            target: 0
        }
    );

    let mut changed = a.clone();
    changed.pending_writes[0].value = TypedValue::msgpack(vec![9]);
    let check = verify_thread(&lister(vec![a.clone()]), &lister(vec![changed]), &tid("t1"))
        .await
        .unwrap();
    assert_eq!(
        check,
        CopyCheck::Differs {
            namespace: CheckpointNamespace::root(),
            checkpoint_id: cid("c1")
        }
    );

    let mut versions = a.clone();
    versions
        .checkpoint
        .channel_versions
        .insert(ch("a"), ChannelVersion::Str("1".into()));
    let check = verify_thread(&lister(vec![a]), &lister(vec![versions]), &tid("t1"))
        .await
        .unwrap();
    assert!(
        matches!(check, CopyCheck::Differs { .. }),
        "a version's type counts"
    );
}

#[tokio::test]
async fn a_store_failure_during_verification_is_an_error() {
    let mut broken = MockCheckpointRepository::new();
    broken
        .expect_list()
        .returning(|_| Err(DomainError::storage("list", "down")));
    let err = verify_thread(&broken, &lister(vec![]), &tid("t1"))
        .await
        .unwrap_err();
    assert!(err.is_storage(), "{err:?}");
}
