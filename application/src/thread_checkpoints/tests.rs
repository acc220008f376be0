//! Decisions of the thread layer, over mockall mocks of the ports.

use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use serde_json::json;
use waymark_domain::branch::{Snapshot, SnapshotKind};
use waymark_domain::checkpoint::{ChannelVersion, CheckpointMetadata, PendingWrite};
use waymark_domain::mocks::{
    MockBranchRepository, MockCheckpointRepository, MockSnapshotRepository, MockThreadRepository,
};
use waymark_domain::session::CheckpointPolicy;
use waymark_domain::thread::ThreadStatus;
use waymark_domain::{DomainError, SessionId, TaskId};

use super::*;
use crate::codec::test_codec::{JsonCodec, messages_value};
use crate::test_support::{clock, tid};

fn ch(s: &str) -> ChannelName {
    ChannelName::parse(s).unwrap()
}

fn cid(s: &str) -> CheckpointId {
    CheckpointId::parse(s).unwrap()
}

fn tv(s: &str) -> TypedValue {
    TypedValue::msgpack(s.as_bytes().to_vec())
}

fn root() -> CheckpointNamespace {
    CheckpointNamespace::root()
}

fn tuple(
    id: &str,
    parent: Option<&str>,
    step: i64,
    values: &[(&str, TypedValue, i64)],
) -> CheckpointTuple {
    let mut cp = Checkpoint::empty(step);
    cp.id = cid(id);
    cp.ts = "2026-01-01T00:00:00+00:00".into();
    for (c, v, ver) in values {
        cp.channel_values.insert(ch(c), v.clone());
        cp.channel_versions.insert(ch(c), ChannelVersion::Int(*ver));
    }
    CheckpointTuple {
        thread_id: tid("t1"),
        namespace: root(),
        checkpoint: cp,
        metadata: CheckpointMetadata(
            json!({"source": "loop", "step": step})
                .as_object()
                .unwrap()
                .clone(),
        ),
        parent_id: parent.map(cid),
        pending_writes: Vec::new(),
    }
}

fn thread_row(id: &str) -> Thread {
    Thread {
        id: tid(id),
        session_id: Some(SessionId::parse("s1").unwrap()),
        owner: None,
        assistant_id: Some("agent".into()),
        display_name: None,
        status: ThreadStatus::Idle,
        metadata: JsonObject::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn open_threads() -> MockThreadRepository {
    let mut t = MockThreadRepository::new();
    t.expect_check_access().returning(|_, _, _| Ok(true));
    t
}

struct Ports {
    checkpoints: MockCheckpointRepository,
    threads: MockThreadRepository,
    branches: MockBranchRepository,
    snapshots: MockSnapshotRepository,
}

impl Ports {
    fn new() -> Self {
        Self {
            checkpoints: MockCheckpointRepository::new(),
            threads: open_threads(),
            branches: MockBranchRepository::new(),
            snapshots: MockSnapshotRepository::new(),
        }
    }

    fn manager(self) -> ThreadCheckpointManager {
        ThreadCheckpointManager::new(
            Arc::new(self.checkpoints),
            Arc::new(self.threads),
            Arc::new(self.branches),
            Arc::new(self.snapshots),
            clock(),
        )
    }
}

const U: UserScope = UserScope::Unscoped;

fn record_puts(m: &mut MockCheckpointRepository) -> Arc<Mutex<Vec<CheckpointPut>>> {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let sink = puts.clone();
    m.expect_put().returning(move |p| {
        let r = CheckpointRef {
            thread_id: p.thread_id.clone(),
            namespace: p.namespace.clone(),
            checkpoint_id: p.checkpoint.id.clone(),
        };
        sink.lock().unwrap().push(p);
        Ok(r)
    });
    puts
}

#[tokio::test]
async fn a_new_checkpoint_sits_on_the_head_and_advances_only_changed_versions() {
    let mut p = Ports::new();
    let head = tuple(
        "c2",
        Some("c1"),
        3,
        &[
            ("a", tv("same"), 4),
            ("b", tv("old"), 7),
            ("gone", tv("x"), 1),
        ],
    );
    p.checkpoints
        .expect_get_tuple()
        .withf(|t, ns, id| t.as_str() == "t1" && ns.is_root() && id.is_none())
        .returning(move |_, _, _| Ok(Some(head.clone())));
    let puts = record_puts(&mut p.checkpoints);
    let m = p.manager();
    let mut values = IndexMap::new();
    values.insert(ch("a"), tv("same"));
    values.insert(ch("b"), tv("new"));
    values.insert(ch("c"), tv("fresh"));
    let mut meta = JsonObject::new();
    meta.insert("writer".into(), json!("test"));
    let t = m
        .create_checkpoint(
            &U,
            &tid("t1"),
            NewCheckpoint {
                namespace: root(),
                channel_values: values,
                metadata: meta,
            },
        )
        .await
        .unwrap();
    let put = puts.lock().unwrap().remove(0);
    assert_eq!(put.parent_id, Some(cid("c2")));
    assert_eq!(t.parent_id, Some(cid("c2")));
    let v = &put.checkpoint.channel_versions;
    assert_eq!(
        v[&ch("a")],
        ChannelVersion::Int(4),
        "unchanged keeps its version"
    );
    assert_eq!(
        v[&ch("b")],
        ChannelVersion::Int(8),
        "integer versions count up"
    );
    assert!(
        matches!(&v[&ch("c")], ChannelVersion::Str(s) if s.starts_with("00000000000000000000000000000001."))
    );
    assert!(!v.contains_key(&ch("gone")));
    let nv: Vec<&str> = put.new_versions.keys().map(|k| k.as_str()).collect();
    assert_eq!(nv, vec!["b", "c"]);
    assert_eq!(
        put.checkpoint.updated_channels,
        Some(vec![ch("b"), ch("c")])
    );
    assert_eq!(put.metadata.source(), Some("update"));
    assert_eq!(put.metadata.step(), Some(4));
    assert_eq!(put.metadata.0["writer"], json!("test"));
    assert_eq!(
        put.checkpoint.ts, "2026-01-02T03:04:05+00:00",
        "ts from the injected clock"
    );
    assert!(put.checkpoint.id.uuid6_time().is_some(), "a fresh uuid6 id");
}

#[tokio::test]
async fn the_first_checkpoint_of_a_thread_has_no_parent_and_step_minus_one() {
    let mut p = Ports::new();
    p.checkpoints
        .expect_get_tuple()
        .returning(|_, _, _| Ok(None));
    let puts = record_puts(&mut p.checkpoints);
    let m = p.manager();
    m.create_checkpoint(&U, &tid("t1"), NewCheckpoint::default())
        .await
        .unwrap();
    let put = puts.lock().unwrap().remove(0);
    assert_eq!(put.parent_id, None);
    assert_eq!(put.metadata.step(), Some(-1));
    assert!(put.new_versions.is_empty());
}

#[tokio::test]
async fn a_denied_thread_touches_no_checkpoint() {
    let mut p = Ports::new();
    p.threads = MockThreadRepository::new();
    p.threads
        .expect_check_access()
        .returning(|_, _, _| Ok(false));
    p.checkpoints.expect_get_tuple().never();
    p.checkpoints.expect_put().never();
    let m = p.manager();
    let err = m
        .create_checkpoint(&U, &tid("t1"), NewCheckpoint::default())
        .await
        .unwrap_err();
    assert!(err.is_access_denied());
    assert!(
        m.restore(&U, &tid("t1"), &root(), None)
            .await
            .unwrap_err()
            .is_access_denied()
    );
}

#[tokio::test]
async fn restoring_a_missing_checkpoint_is_not_found() {
    let mut p = Ports::new();
    p.checkpoints
        .expect_get_tuple()
        .returning(|_, _, _| Ok(None));
    let err = p
        .manager()
        .restore(&U, &tid("t1"), &root(), Some(cid("nope")))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn history_fetches_one_extra_row_to_know_whether_more_exist() {
    let mut p = Ports::new();
    p.checkpoints
        .expect_list()
        .withf(|q| {
            q.limit == Some(3)
                && q.before == Some(cid("c9"))
                && q.namespace == Some(CheckpointNamespace::root())
        })
        .returning(|_| {
            Ok(vec![
                tuple("c8", None, 0, &[]),
                tuple("c7", None, 0, &[]),
                tuple("c6", None, 0, &[]),
            ])
        });
    let page = p
        .manager()
        .history(
            &U,
            &tid("t1"),
            &root(),
            Some(cid("c9")),
            Limit::new(2).unwrap(),
        )
        .await
        .unwrap();
    assert!(page.has_more);
    let ids: Vec<&str> = page
        .items
        .iter()
        .map(|t| t.checkpoint.id.as_str())
        .collect();
    assert_eq!(ids, vec!["c8", "c7"]);
}

fn snapshot(id_checkpoint: &str, name: &str) -> Snapshot {
    Snapshot {
        id: SnapshotId::new_random(),
        thread_id: tid("t1"),
        namespace: root(),
        checkpoint_id: cid(id_checkpoint),
        name: Name::parse(name).unwrap(),
        description: None,
        kind: SnapshotKind::Milestone,
        metadata: JsonObject::new(),
        created_at: Utc::now(),
    }
}

#[tokio::test]
async fn deleting_a_pinned_checkpoint_is_a_conflict_and_deletes_nothing() {
    let mut p = Ports::new();
    p.snapshots
        .expect_list_for_thread()
        .returning(|_| Ok(vec![snapshot("c2", "keep me")]));
    p.checkpoints.expect_delete_checkpoints().never();
    let err = p
        .manager()
        .delete_checkpoints(&U, &tid("t1"), &root(), vec![cid("c1"), cid("c2")])
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert!(err.to_string().contains("keep me"));
}

#[tokio::test]
async fn deleting_unpinned_checkpoints_reports_the_count() {
    let mut p = Ports::new();
    p.snapshots
        .expect_list_for_thread()
        .returning(|_| Ok(vec![snapshot("c9", "other")]));
    p.checkpoints
        .expect_delete_checkpoints()
        .withf(|_, _, ids| ids == &vec![cid("c1")])
        .returning(|_, _, _| Ok(1));
    assert_eq!(
        p.manager()
            .delete_checkpoints(&U, &tid("t1"), &root(), vec![cid("c1")])
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn diff_reports_channels_and_messages_by_id() {
    let older = tuple(
        "c1",
        None,
        0,
        &[
            ("kept", tv("k"), 1),
            ("removed", tv("r"), 1),
            ("changed", tv("1"), 1),
            (
                "messages",
                messages_value(json!([
                    {"type": "human", "id": "h1", "content": "Q"},
                    {"type": "ai", "id": "a1", "content": "draft"},
                    {"type": "ai", "id": "gone", "content": "x"}
                ])),
                1,
            ),
        ],
    );
    let newer = tuple(
        "c2",
        Some("c1"),
        1,
        &[
            ("kept", tv("k"), 1),
            ("changed", tv("22"), 2),
            ("added", tv("a"), 1),
            (
                "messages",
                messages_value(json!([
                    {"type": "human", "id": "h1", "content": "Q"},
                    {"type": "ai", "id": "a1", "content": "final"},
                    {"type": "tool", "id": "t1", "content": "r"}
                ])),
                2,
            ),
        ],
    );
    let mut p = Ports::new();
    p.checkpoints.expect_get_tuple().returning(move |_, _, id| {
        Ok(match id.unwrap().as_str() {
            "c1" => Some(older.clone()),
            "c2" => Some(newer.clone()),
            _ => None,
        })
    });
    let m = p.manager().with_codec(Arc::new(JsonCodec));
    let d = m
        .diff(&U, &tid("t1"), &root(), cid("c1"), cid("c2"))
        .await
        .unwrap();
    assert_eq!(d.added, vec![ch("added")]);
    assert_eq!(d.removed, vec![ch("removed")]);
    assert_eq!(d.unchanged, vec![ch("kept")]);
    assert_eq!(d.changed.len(), 2);
    let changed = &d.changed[0];
    assert_eq!((changed.from_bytes, changed.to_bytes), (1, 2));
    assert_eq!(changed.to_version, Some(ChannelVersion::Int(2)));
    assert!(changed.messages.is_none(), "not a message channel");
    let md = d.changed[1].messages.as_ref().unwrap();
    assert_eq!(md.unchanged, 1);
    assert_eq!(md.added.len(), 1);
    assert_eq!(md.added[0]["id"], json!("t1"));
    assert_eq!(md.removed[0]["id"], json!("gone"));
    assert_eq!(md.changed[0].key, "a1");
    assert_eq!(md.changed[0].after["content"], json!("final"));

    let err = m
        .diff(&U, &tid("t1"), &root(), cid("c1"), cid("missing"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn without_a_codec_or_with_undecodable_values_the_diff_stays_byte_level() {
    let a = tuple("c1", None, 0, &[("messages", tv("one"), 1)]);
    let b = tuple("c2", None, 0, &[("messages", tv("two"), 2)]);
    let mk = |a: CheckpointTuple, b: CheckpointTuple| {
        let mut p = Ports::new();
        p.checkpoints.expect_get_tuple().returning(move |_, _, id| {
            Ok(Some(if id.unwrap().as_str() == "c1" {
                a.clone()
            } else {
                b.clone()
            }))
        });
        p.manager()
    };
    let plain = mk(a.clone(), b.clone());
    let d = plain
        .diff(&U, &tid("t1"), &root(), cid("c1"), cid("c2"))
        .await
        .unwrap();
    assert!(d.changed[0].messages.is_none() && d.changed[0].decode_error.is_none());
    let coded = mk(a, b).with_codec(Arc::new(JsonCodec));
    let d = coded
        .diff(&U, &tid("t1"), &root(), cid("c1"), cid("c2"))
        .await
        .unwrap();
    assert!(d.changed[0].messages.is_none());
    assert!(
        d.changed[0]
            .decode_error
            .as_deref()
            .unwrap()
            .contains("unsupported tag")
    );
}

#[test]
fn id_less_messages_are_matched_by_position() {
    let m = |v: serde_json::Value| ChannelMessage::new(v.as_object().unwrap().clone());
    let before = vec![
        m(json!({"type": "human", "content": "a"})),
        m(json!({"type": "human", "content": "b"})),
    ];
    let after = vec![
        m(json!({"type": "human", "content": "a"})),
        m(json!({"type": "human", "content": "B"})),
    ];
    let d = diff_messages(&before, &after);
    assert_eq!(d.unchanged, 1);
    assert_eq!(d.changed[0].key, "#1");
    assert!(d.added.is_empty() && d.removed.is_empty());
}

fn fork_request() -> ForkRequest {
    ForkRequest {
        source_thread_id: tid("t1"),
        namespace: root(),
        checkpoint_id: cid("c2"),
        new_thread_id: Some(tid("t2")),
        name: Name::parse("try-b").unwrap(),
        display_name: Some("Alternative".into()),
        metadata: JsonObject::new(),
    }
}

fn write(task: &str, channel: &str, idx: i64) -> PendingWrite {
    PendingWrite {
        task_id: TaskId::parse(task).unwrap(),
        task_path: String::new(),
        channel: ch(channel),
        value: tv("w"),
        idx,
    }
}

type Recorded<T> = Arc<Mutex<Vec<T>>>;

fn fork_ports() -> (Ports, Recorded<CheckpointPut>, Recorded<WriteBatch>) {
    let mut p = Ports::new();
    p.threads.expect_get().returning(|_, id| {
        Ok(if id.as_str() == "t1" {
            Some(thread_row("t1"))
        } else {
            None
        })
    });
    p.threads
        .expect_create()
        .withf(|_, n| {
            n.id.as_str() == "t2" && n.session_id.as_ref().map(|s| s.as_str()) == Some("s1")
        })
        .returning(|_, n| {
            let mut t = thread_row(n.id.as_str());
            t.display_name = n.display_name;
            Ok(t)
        });
    let mut c2 = tuple("c2", Some("c1"), 1, &[("messages", tv("m2"), 2)]);
    c2.pending_writes = vec![
        write("task", "__interrupt__", -3),
        write("task", "x", 1),
        write("task", "y", 0),
    ];
    let all = vec![
        tuple("c3", Some("c2"), 2, &[("messages", tv("m3"), 3)]),
        c2,
        tuple("c1", Some("c0"), 0, &[("messages", tv("m1"), 1)]),
        tuple("other", None, 0, &[]),
    ];
    p.checkpoints
        .expect_list()
        .withf(|q| q.thread_id.as_ref().map(|t| t.as_str()) == Some("t1") && q.namespace.is_some())
        .returning(move |_| Ok(all.clone()));
    let puts = record_puts(&mut p.checkpoints);
    let writes = Arc::new(Mutex::new(Vec::new()));
    let sink = writes.clone();
    p.checkpoints.expect_put_writes().returning(move |b| {
        sink.lock().unwrap().push(b);
        Ok(())
    });
    (p, puts, writes)
}

#[tokio::test]
async fn a_fork_copies_the_ancestry_with_same_ids_and_records_the_branch() {
    let (mut p, puts, writes) = fork_ports();
    p.branches
        .expect_create()
        .withf(|b| b.thread_id.as_str() == "t2" && b.source_checkpoint_id.as_str() == "c2")
        .returning(Ok);
    let out = p.manager().fork(&U, fork_request()).await.unwrap();
    assert_eq!(
        out.copied_checkpoints, 2,
        "c1 and c2; c0 is gone and c3 is newer"
    );
    assert_eq!(out.copied_writes, 3);
    assert_eq!(out.thread.display_name.as_deref(), Some("Alternative"));
    let puts = puts.lock().unwrap();
    let copied: Vec<(&str, Option<&str>)> = puts
        .iter()
        .map(|p| {
            (
                p.checkpoint.id.as_str(),
                p.parent_id.as_ref().map(|c| c.as_str()),
            )
        })
        .collect();
    assert_eq!(
        copied,
        vec![("c1", Some("c0")), ("c2", Some("c1"))],
        "oldest first, parents kept"
    );
    assert!(puts.iter().all(|p| p.thread_id.as_str() == "t2"));
    assert_eq!(puts[1].new_versions, puts[1].checkpoint.channel_versions);
    let writes = writes.lock().unwrap();
    assert_eq!(writes.len(), 1);
    let rebuilt: Vec<(String, i64)> = writes[0]
        .to_pending_writes()
        .into_iter()
        .map(|w| (w.channel.as_str().to_owned(), w.idx))
        .collect();
    assert_eq!(
        rebuilt,
        vec![
            ("y".into(), 0),
            ("x".into(), 1),
            ("__interrupt__".into(), -3)
        ],
        "indices are reproduced"
    );
}

#[tokio::test]
async fn a_failed_fork_removes_the_half_made_thread_and_reports_the_cause() {
    let (mut p, _puts, _writes) = fork_ports();
    p.branches
        .expect_create()
        .returning(|_| Err(DomainError::conflict("branch", "name taken")));
    p.checkpoints
        .expect_delete_thread()
        .withf(|t| t.as_str() == "t2")
        .times(1)
        .returning(|_| Ok(()));
    p.threads
        .expect_delete()
        .withf(|_, t| t.as_str() == "t2")
        .times(1)
        .returning(|_, _| Ok(true));
    let err = p.manager().fork(&U, fork_request()).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
}

#[tokio::test]
async fn forking_into_an_existing_thread_or_from_a_missing_checkpoint_creates_nothing() {
    let mut p = Ports::new();
    p.threads
        .expect_get()
        .returning(|_, id| Ok(Some(thread_row(id.as_str()))));
    p.threads.expect_create().never();
    let err = p.manager().fork(&U, fork_request()).await.unwrap_err();
    assert!(err.is_conflict());

    let (mut p, puts, _) = fork_ports();
    p.threads.checkpoint();
    p.threads
        .expect_check_access()
        .returning(|_, _, _| Ok(true));
    p.threads.expect_get().returning(|_, id| {
        Ok(if id.as_str() == "t1" {
            Some(thread_row("t1"))
        } else {
            None
        })
    });
    p.threads.expect_create().never();
    let mut req = fork_request();
    req.checkpoint_id = cid("nope");
    let err = p.manager().fork(&U, req).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(puts.lock().unwrap().is_empty());

    let mut p = Ports::new();
    p.threads
        .expect_get()
        .returning(|_, id| Ok(Some(thread_row(id.as_str()))));
    let mut req = fork_request();
    req.new_thread_id = Some(tid("t1"));
    assert!(
        p.manager()
            .fork(&U, req)
            .await
            .unwrap_err()
            .is_invalid_input()
    );
}

#[tokio::test]
async fn a_snapshot_needs_an_existing_checkpoint_and_a_bounded_description() {
    let mut p = Ports::new();
    p.checkpoints.expect_get_tuple().returning(|_, _, id| {
        Ok((id.as_ref().map(|c| c.as_str()) == Some("c1")).then(|| tuple("c1", None, 0, &[])))
    });
    p.snapshots.expect_create().times(1).returning(Ok);
    let m = p.manager();
    let req = |c: &str| SnapshotRequest {
        thread_id: tid("t1"),
        namespace: root(),
        checkpoint_id: cid(c),
        name: Name::parse("v1").unwrap(),
        kind: SnapshotKind::Backup,
        description: Some("before refactor".into()),
        metadata: JsonObject::new(),
    };
    let s = m.create_snapshot(&U, req("c1")).await.unwrap();
    assert_eq!(s.kind, SnapshotKind::Backup);
    assert_eq!(s.created_at, clock().now());
    assert!(
        m.create_snapshot(&U, req("missing"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let mut long = req("c1");
    long.description = Some("x".repeat(MAX_DESCRIPTION_CHARS + 1));
    assert!(
        m.create_snapshot(&U, long)
            .await
            .unwrap_err()
            .is_invalid_input()
    );
}

#[tokio::test]
async fn a_snapshot_of_another_thread_is_neither_deleted_nor_restored() {
    let mut p = Ports::new();
    let foreign = Snapshot {
        thread_id: tid("other"),
        ..snapshot("c1", "x")
    };
    let id = foreign.id;
    p.snapshots
        .expect_get()
        .returning(move |_| Ok(Some(foreign.clone())));
    p.snapshots.expect_delete().never();
    let m = p.manager();
    assert!(!m.delete_snapshot(&U, &tid("t1"), id).await.unwrap());
    assert!(
        m.restore_snapshot(&U, &tid("t1"), id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn rollback_writes_a_new_head_with_the_targets_state_and_destroys_nothing() {
    let mut p = Ports::new();
    let head = tuple("c3", Some("c2"), 5, &[("messages", tv("latest"), 3)]);
    let mut target = tuple(
        "c1",
        None,
        1,
        &[("messages", tv("early"), 1), ("extra", tv("e"), 1)],
    );
    target
        .checkpoint
        .versions_seen
        .insert("agent".into(), target.checkpoint.channel_versions.clone());
    let target_copy = target.clone();
    p.checkpoints.expect_get_tuple().returning(move |_, _, id| {
        Ok(match id {
            None => Some(head.clone()),
            Some(c) if c.as_str() == "c1" => Some(target_copy.clone()),
            _ => None,
        })
    });
    p.checkpoints.expect_delete_checkpoints().never();
    p.checkpoints.expect_delete_thread().never();
    let puts = record_puts(&mut p.checkpoints);
    let m = p.manager();
    let new_head = m
        .rollback(&U, &tid("t1"), &root(), cid("c1"))
        .await
        .unwrap();
    let put = puts.lock().unwrap().remove(0);
    assert_eq!(put.parent_id, Some(cid("c3")));
    assert_ne!(put.checkpoint.id, cid("c1"));
    assert_eq!(
        put.checkpoint.channel_values,
        target.checkpoint.channel_values
    );
    assert_eq!(
        put.checkpoint.channel_versions,
        target.checkpoint.channel_versions
    );
    assert_eq!(
        put.checkpoint.versions_seen,
        target.checkpoint.versions_seen
    );
    assert_eq!(put.metadata.source(), Some("fork"));
    assert_eq!(put.metadata.step(), Some(6));
    assert_eq!(put.metadata.0["rolled_back_to"], json!("c1"));
    assert_eq!(new_head.checkpoint.id, put.checkpoint.id);
    assert!(
        m.rollback(&U, &tid("t1"), &root(), cid("zz"))
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn rolling_back_to_the_head_writes_nothing() {
    let mut p = Ports::new();
    p.checkpoints
        .expect_get_tuple()
        .returning(|_, _, _| Ok(Some(tuple("c3", None, 0, &[]))));
    p.checkpoints.expect_put().never();
    let t = p
        .manager()
        .rollback(&U, &tid("t1"), &root(), cid("c3"))
        .await
        .unwrap();
    assert_eq!(t.checkpoint.id, cid("c3"));
}

fn aged(id: &str, days_old: i64, ns: &str) -> CheckpointTuple {
    let mut t = tuple(id, None, 0, &[]);
    t.checkpoint.ts = python_isoformat(clock().now() - Duration::days(days_old));
    t.namespace = CheckpointNamespace::parse(ns).unwrap();
    t
}

#[tokio::test]
async fn retention_keeps_the_head_the_newest_n_and_pinned_checkpoints() {
    let mut p = Ports::new();
    p.checkpoints.expect_list().returning(|_| {
        Ok(vec![
            aged("c5", 0, ""),
            aged("c4", 1, ""),
            aged("c3", 2, ""),
            aged("c2", 3, ""),
            aged("c1", 4, ""),
            aged("s2", 9, "sub:1"),
            aged("s1", 9, "sub:1"),
        ])
    });
    p.snapshots
        .expect_list_for_thread()
        .returning(|_| Ok(vec![snapshot("c2", "pin")]));
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let sink = deleted.clone();
    p.checkpoints
        .expect_delete_checkpoints()
        .returning(move |_, ns, ids| {
            sink.lock()
                .unwrap()
                .push((ns.as_str().to_owned(), ids.clone()));
            Ok(ids.len() as u64)
        });
    p.snapshots.expect_delete().never();
    let policy = CheckpointPolicy::new(Some(2), None, true).unwrap();
    let out = p.manager().apply_retention(&U, &tid("t1"), &policy).await;
    assert!(out.error.is_none());
    assert_eq!(out.kept_pinned, 1);
    assert_eq!(
        *deleted.lock().unwrap(),
        vec![("".to_owned(), vec![cid("c3"), cid("c1")])],
        "c5 and c4 are the newest two, c2 is pinned; the subgraph has only two"
    );
    assert_eq!(out.removed_count(), 2);
}

#[tokio::test]
async fn retention_by_age_never_removes_a_head_and_without_exemption_takes_the_snapshot_along() {
    let mut p = Ports::new();
    p.checkpoints.expect_list().returning(|_| {
        let mut undated = aged("c0", 0, "");
        undated.checkpoint.ts = "garbage".into();
        Ok(vec![
            aged("c3", 40, ""),
            aged("c2", 31, ""),
            aged("c1", 29, ""),
            undated,
            aged("x1", 90, "sub:1"),
        ])
    });
    let pin = snapshot("c2", "pin");
    let pin_id = pin.id;
    p.snapshots
        .expect_list_for_thread()
        .returning(move |_| Ok(vec![pin.clone()]));
    p.checkpoints
        .expect_delete_checkpoints()
        .withf(|_, ns, ids| ns.is_root() && ids == &vec![cid("c2")])
        .times(1)
        .returning(|_, _, _| Ok(1));
    p.snapshots
        .expect_delete()
        .withf(move |id| *id == pin_id)
        .times(1)
        .returning(|_| Ok(true));
    let policy = CheckpointPolicy::new(None, Some(30 * 86_400), false).unwrap();
    let out = p.manager().apply_retention(&U, &tid("t1"), &policy).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.snapshots_removed, vec![pin_id]);
    assert_eq!(out.kept_undated, 1, "c0 has neither a ts nor a uuid6 id");
    assert_eq!(
        out.removed_count(),
        1,
        "the 40-day-old head c3 and the subgraph head stay"
    );
}

#[tokio::test]
async fn a_store_error_mid_cleanup_is_reported_with_what_was_done() {
    let mut p = Ports::new();
    p.checkpoints.expect_list().returning(|_| {
        Ok(vec![
            aged("a2", 0, "a:1"),
            aged("a1", 0, "a:1"),
            aged("b2", 0, "b:1"),
            aged("b1", 0, "b:1"),
        ])
    });
    p.snapshots
        .expect_list_for_thread()
        .returning(|_| Ok(Vec::new()));
    p.checkpoints
        .expect_delete_checkpoints()
        .returning(|_, ns, _| {
            if ns.as_str() == "a:1" {
                Ok(1)
            } else {
                Err(DomainError::storage("checkpoints.delete", "disk gone"))
            }
        });
    let policy = CheckpointPolicy::new(Some(1), None, true).unwrap();
    let out = p.manager().apply_retention(&U, &tid("t1"), &policy).await;
    assert_eq!(out.removed_count(), 1);
    assert_eq!(out.removed[0].namespace.as_str(), "a:1");
    assert!(out.error.as_ref().unwrap().is_storage());
    assert!(out.into_result().is_err());
}

#[tokio::test]
async fn an_unbounded_policy_reads_nothing() {
    let mut p = Ports::new();
    p.checkpoints.expect_list().never();
    let out = p
        .manager()
        .apply_retention(&U, &tid("t1"), &CheckpointPolicy::default())
        .await;
    assert!(out.error.is_none() && out.removed.is_empty());
}
