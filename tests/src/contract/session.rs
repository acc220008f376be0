//! The session contract: creation and conflicts, atomic updates, ordered paging with
//! `has_more`, deletes that detach threads, scoping and bad input.

use chrono::Duration;
use serde_json::json;
use waymark_domain::clock::Clock;
use waymark_domain::paging::OffsetPage;
use waymark_domain::session::{
    CheckpointPolicy, Session, SessionQuery, SessionStatus, SessionUpdate,
};
use waymark_domain::thread::NewThread;
use waymark_domain::{SessionId, UserScope};

use super::fixtures::*;
use crate::harness::TestBackend;

async fn get(b: &TestBackend, scope: &UserScope, id: &SessionId) -> Option<Session> {
    b.stores.sessions.get(scope, id).await.expect("get session")
}

fn list_query(status: Option<SessionStatus>, limit: u32, offset: u64) -> SessionQuery {
    SessionQuery {
        status,
        page: OffsetPage::new(limit, offset).expect("page"),
    }
}

async fn list_ids(b: &TestBackend, scope: &UserScope, q: &SessionQuery) -> (Vec<SessionId>, bool) {
    let p = b
        .stores
        .sessions
        .list(scope, q)
        .await
        .expect("list sessions");
    (p.items.into_iter().map(|s| s.id).collect(), p.has_more)
}

/// A created session round-trips every field; the owner is the scope's user, whatever the
/// given value says.
pub async fn create_round_trips_every_field(b: &TestBackend) {
    let scope = user_scope();
    let mut s = session(b, session_id());
    s.owner = Some(user()); // ignored: the scope owns it
    s.title = Some("Research ✓".into());
    s.metadata = obj(json!({"project": "alpha", "n": 2}));
    s.status = SessionStatus::Archived;
    s.checkpoint_policy = CheckpointPolicy::new(Some(10), Some(3600), false).unwrap();
    let created = b.stores.sessions.create(&scope, s.clone()).await.unwrap();
    assert_eq!(created.owner.as_ref(), scope.owner());
    assert_eq!(created.title, s.title);
    assert_eq!(created.metadata, s.metadata);
    assert_eq!(created.status, SessionStatus::Archived);
    assert_eq!(created.checkpoint_policy, s.checkpoint_policy);
    assert_eq!(created.created_at, b.clock.now());
    assert_eq!(get(b, &scope, &s.id).await, Some(created));
}

/// An existing id is a conflict (for its owner and for anyone else); the row is unchanged.
pub async fn create_of_an_existing_id_conflicts(b: &TestBackend) {
    let scope = user_scope();
    let id = create_session(b, &scope).await;
    let before = get(b, &scope, &id).await.unwrap();
    let mut again = session(b, id.clone());
    again.title = Some("second".into());
    expect_conflict(b.stores.sessions.create(&scope, again.clone()).await);
    expect_conflict(b.stores.sessions.create(&user_scope(), again).await);
    assert_eq!(get(b, &scope, &id).await, Some(before));
}

/// A title over 512 characters or holding a NUL is refused on create and update; nothing is
/// written.
pub async fn bad_titles_are_refused(b: &TestBackend) {
    let scope = user_scope();
    for title in ["t".repeat(513), "a\0b".to_owned()] {
        let mut s = session(b, session_id());
        s.title = Some(title.clone());
        assert_eq!(
            expect_invalid(b.stores.sessions.create(&scope, s.clone()).await),
            "title"
        );
        assert_eq!(get(b, &UserScope::Unscoped, &s.id).await, None);
    }
    let id = create_session(b, &scope).await;
    let before = get(b, &scope, &id).await.unwrap();
    let r = b
        .stores
        .sessions
        .update(
            &scope,
            &id,
            SessionUpdate {
                title: Some(Some("a\0".into())),
                status: Some(SessionStatus::Closed),
                ..SessionUpdate::default()
            },
        )
        .await;
    assert_eq!(expect_invalid(r), "title");
    assert_eq!(get(b, &scope, &id).await, Some(before));
}

/// An update applies every given field, merges metadata shallowly, clears with `Some(None)`
/// and advances `updated_at` to now.
pub async fn update_applies_fields_and_advances_updated_at(b: &TestBackend) {
    let scope = user_scope();
    let mut s = session(b, session_id());
    s.title = Some("old".into());
    s.metadata = obj(json!({"a": 1, "b": {"deep": true}}));
    b.stores.sessions.create(&scope, s.clone()).await.unwrap();
    b.clock.advance(Duration::seconds(90));
    let policy = CheckpointPolicy::new(Some(3), None, true).unwrap();
    let u = b
        .stores
        .sessions
        .update(
            &scope,
            &s.id,
            SessionUpdate {
                title: Some(None),
                metadata_patch: Some(obj(json!({"b": null, "c": 3}))),
                status: Some(SessionStatus::Closed),
                checkpoint_policy: Some(policy.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(u.title, None);
    assert_eq!(u.metadata, obj(json!({"a": 1, "b": null, "c": 3})));
    assert_eq!(u.status, SessionStatus::Closed);
    assert_eq!(u.checkpoint_policy, policy);
    assert_eq!(u.created_at, s.created_at);
    assert_eq!(u.updated_at, b.clock.now());
    assert_eq!(get(b, &scope, &s.id).await, Some(u));
}

/// Updating a missing session, or another user's, is not found and changes nothing.
pub async fn update_of_missing_or_foreign_is_not_found(b: &TestBackend) {
    let owner = user_scope();
    let id = create_session(b, &owner).await;
    let before = get(b, &owner, &id).await.unwrap();
    let u = SessionUpdate {
        status: Some(SessionStatus::Closed),
        ..SessionUpdate::default()
    };
    expect_not_found(
        b.stores
            .sessions
            .update(&owner, &session_id(), u.clone())
            .await,
    );
    expect_not_found(b.stores.sessions.update(&user_scope(), &id, u).await);
    assert_eq!(get(b, &owner, &id).await, Some(before));
}

/// Lists order by `updated_at` descending then id descending, page exactly, say `has_more`
/// and filter by status.
pub async fn list_orders_pages_and_filters(b: &TestBackend) {
    let scope = user_scope();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_session(b, &scope).await);
        b.clock.advance(Duration::seconds(1));
    }
    // Two sessions at the same instant order by id descending.
    let (x, y) = (
        create_session(b, &scope).await,
        create_session(b, &scope).await,
    );
    let mut tied = [x, y];
    tied.sort();
    tied.reverse();
    b.clock.advance(Duration::seconds(1));
    b.stores
        .sessions
        .update(
            &scope,
            &ids[0],
            SessionUpdate {
                status: Some(SessionStatus::Archived),
                ..SessionUpdate::default()
            },
        )
        .await
        .unwrap();
    let want = vec![
        ids[0].clone(),
        tied[0].clone(),
        tied[1].clone(),
        ids[2].clone(),
        ids[1].clone(),
    ];
    assert_eq!(
        list_ids(b, &scope, &list_query(None, 10, 0)).await,
        (want.clone(), false)
    );
    assert_eq!(
        list_ids(b, &scope, &list_query(None, 2, 0)).await,
        (want[..2].to_vec(), true)
    );
    assert_eq!(
        list_ids(b, &scope, &list_query(None, 2, 2)).await,
        (want[2..4].to_vec(), true)
    );
    assert_eq!(
        list_ids(b, &scope, &list_query(None, 2, 4)).await,
        (want[4..].to_vec(), false)
    );
    assert_eq!(
        list_ids(b, &scope, &list_query(Some(SessionStatus::Archived), 10, 0)).await,
        (vec![ids[0].clone()], false)
    );
}

/// Another user's session is invisible: get is none, it is absent from lists, deletes are
/// false; `Unscoped` sees it.
pub async fn other_users_sessions_are_invisible(b: &TestBackend) {
    let owner = user_scope();
    let id = create_session(b, &owner).await;
    let other = user_scope();
    assert_eq!(get(b, &other, &id).await, None);
    assert!(
        list_ids(b, &other, &list_query(None, 10, 0))
            .await
            .0
            .is_empty()
    );
    assert!(!b.stores.sessions.delete(&other, &id).await.unwrap());
    assert!(get(b, &owner, &id).await.is_some());
    assert!(get(b, &UserScope::Unscoped, &id).await.is_some());
}

/// Deleting a session detaches its threads (they stay, with no session) and is false the
/// second time.
pub async fn delete_detaches_threads(b: &TestBackend) {
    let scope = user_scope();
    let id = create_session(b, &scope).await;
    let thread = thread_id();
    b.stores
        .threads
        .create(
            &scope,
            NewThread {
                session_id: Some(id.clone()),
                ..NewThread::with_id(thread.clone())
            },
        )
        .await
        .unwrap();
    assert!(b.stores.sessions.delete(&scope, &id).await.unwrap());
    assert_eq!(get(b, &scope, &id).await, None);
    let t = b
        .stores
        .threads
        .get(&scope, &thread)
        .await
        .unwrap()
        .expect("thread kept");
    assert_eq!(t.session_id, None);
    assert!(!b.stores.sessions.delete(&scope, &id).await.unwrap());
}

/// Mutating a returned session never changes the stored one.
pub async fn returned_sessions_are_copies(b: &TestBackend) {
    let scope = user_scope();
    let id = create_session(b, &scope).await;
    let mut s = get(b, &scope, &id).await.unwrap();
    let pristine = s.clone();
    s.metadata.insert("x".into(), json!(1));
    s.title = Some("mutated".into());
    assert_eq!(get(b, &scope, &id).await, Some(pristine));
}

/// An offset past every row (even `u64::MAX`) gives an empty page, or is refused as input;
/// it never fails in storage.
pub async fn list_with_a_huge_offset_is_empty(b: &TestBackend) {
    let scope = user_scope();
    create_session(b, &scope).await;
    for offset in [1_000, i64::MAX as u64, u64::MAX] {
        match b
            .stores
            .sessions
            .list(&scope, &list_query(None, 10, offset))
            .await
        {
            Ok(p) => assert!(p.items.is_empty() && !p.has_more, "offset {offset}"),
            Err(e) => assert!(e.is_invalid_input(), "offset {offset}: {e:?}"),
        }
    }
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every session case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `session`.
#[macro_export]
macro_rules! session_contract {
    ($factory:path) => {
        mod session {
            $crate::__contract_cases!(
                $factory,
                session,
                [
                    create_round_trips_every_field,
                    create_of_an_existing_id_conflicts,
                    bad_titles_are_refused,
                    update_applies_fields_and_advances_updated_at,
                    update_of_missing_or_foreign_is_not_found,
                    list_orders_pages_and_filters,
                    other_users_sessions_are_invisible,
                    delete_detaches_threads,
                    returned_sessions_are_copies,
                    list_with_a_huge_offset_is_empty,
                ]
            );
        }
    };
}
