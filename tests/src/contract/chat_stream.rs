//! The chat-stream storage contract (spec `history-and-streams.md` §5.3-5.6, the parts a
//! store shows): atomic create-or-append, listing by last append, deletes, retention by age,
//! UTC timestamps, scoping and frame validation.

use chrono::{Duration, TimeZone, Utc};
use waymark_domain::UserScope;
use waymark_domain::clock::Clock;
use waymark_domain::paging::Limit;

use super::fixtures::*;
use crate::harness::TestBackend;

fn frames(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn limit(n: u32) -> Limit {
    Limit::new(n).expect("limit")
}

/// 2: two appends on one thread append, they do not overwrite.
pub async fn appends_accumulate_in_order(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let cs = &b.stores.chat_streams;
    cs.append(&scope, &thread, frames(&["This is a test message."]))
        .await
        .unwrap();
    let rec = cs
        .append(&scope, &thread, frames(&["Another message.", "third"]))
        .await
        .unwrap();
    let want = frames(&["This is a test message.", "Another message.", "third"]);
    assert_eq!(rec.frames, want);
    let read = cs.get(&scope, &thread).await.unwrap().expect("record");
    assert_eq!(read, rec);
    assert_eq!(read.thread_id, thread);
    assert_eq!(read.user_id.as_ref(), scope.owner());
}

/// Frames are opaque text: SSE framing, newlines and unicode come back unchanged.
pub async fn frames_are_kept_verbatim(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let f = frames(&[
        "event: message_chunk\ndata: {\"content\": \"héllo ✓\"}\n\n",
        "  leading and trailing spaces  ",
        "\u{2028}line separator\u{85}",
    ]);
    b.stores
        .chat_streams
        .append(&scope, &thread, f.clone())
        .await
        .unwrap();
    let rec = b
        .stores
        .chat_streams
        .get(&scope, &thread)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.frames, f);
}

/// 10: two concurrent first appends on a new thread make one record holding both segments.
pub async fn concurrent_first_appends_make_one_record(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let tasks: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|seg| {
            let (store, scope, thread) =
                (b.stores.chat_streams.clone(), scope.clone(), thread.clone());
            let f = frames(&[&format!("{seg}1"), &format!("{seg}2")]);
            tokio::spawn(async move { store.append(&scope, &thread, f).await })
        })
        .collect();
    for t in tasks {
        t.await
            .unwrap()
            .expect("no error on a concurrent first append");
    }
    let rec = b
        .stores
        .chat_streams
        .get(&scope, &thread)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.frames.len(), 4);
    let a = frames(&["a1", "a2", "b1", "b2"]);
    let c = frames(&["b1", "b2", "a1", "a2"]);
    assert!(
        rec.frames == a || rec.frames == c,
        "segments stay whole: {:?}",
        rec.frames
    );
    let recent = b
        .stores
        .chat_streams
        .list_recent(&scope, limit(10))
        .await
        .unwrap();
    assert_eq!(recent.len(), 1, "one record");
    assert_eq!(recent[0].frame_count, 4);
}

/// 11: threads last appended at 10:00, 11:00 and 12:00: `list_recent(2)` gives 12:00 then
/// 11:00; equal times order by thread id ascending.
pub async fn list_recent_orders_by_last_append(b: &TestBackend) {
    let scope = user_scope();
    let day = Utc.with_ymd_and_hms(2026, 3, 4, 0, 0, 0).unwrap();
    let mut threads = Vec::new();
    for hour in [10, 11, 12] {
        let t = create_thread(b, &scope).await;
        b.clock.set(day + Duration::hours(hour));
        b.stores
            .chat_streams
            .append(&scope, &t, frames(&["x"]))
            .await
            .unwrap();
        threads.push(t);
    }
    let cs = &b.stores.chat_streams;
    let got = cs.list_recent(&scope, limit(2)).await.unwrap();
    let ids: Vec<_> = got.iter().map(|s| s.thread_id.clone()).collect();
    assert_eq!(ids, vec![threads[2].clone(), threads[1].clone()]);
    assert_eq!(got[0].ts, day + Duration::hours(12));
    assert_eq!(got[0].frame_count, 1);

    // Appending again moves the 10:00 thread to the top.
    b.clock.set(day + Duration::hours(13));
    cs.append(&scope, &threads[0], frames(&["y", "z"]))
        .await
        .unwrap();
    let top = cs.list_recent(&scope, limit(1)).await.unwrap();
    assert_eq!(top[0].thread_id, threads[0]);
    assert_eq!(top[0].frame_count, 3);

    // Ties on ts order by thread id ascending.
    let (x, y) = (
        create_thread(b, &scope).await,
        create_thread(b, &scope).await,
    );
    b.clock.set(day + Duration::hours(14));
    for t in [&x, &y] {
        cs.append(&scope, t, frames(&["tie"])).await.unwrap();
    }
    let tied = cs.list_recent(&scope, limit(2)).await.unwrap();
    let mut want = vec![x.clone(), y.clone()];
    want.sort();
    let ids: Vec<_> = tied.into_iter().map(|s| s.thread_id).collect();
    assert_eq!(ids, want);
}

/// 12: delete removes the record; reading gives none; a second delete is false.
pub async fn delete_removes_the_record(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let cs = &b.stores.chat_streams;
    cs.append(&scope, &thread, frames(&["a"])).await.unwrap();
    assert!(cs.delete(&scope, &thread).await.unwrap());
    assert_eq!(cs.get(&scope, &thread).await.unwrap(), None);
    assert!(!cs.delete(&scope, &thread).await.unwrap());
    assert!(cs.list_recent(&scope, limit(5)).await.unwrap().is_empty());
    // A later append starts a fresh record.
    let rec = cs.append(&scope, &thread, frames(&["b"])).await.unwrap();
    assert_eq!(rec.frames, frames(&["b"]));
}

/// 13: with a 30-day retention, a record last appended 31 days ago is purged and one appended
/// 29 days ago is kept (all users).
pub async fn purge_removes_records_older_than_the_cutoff(b: &TestBackend) {
    let now = Utc.with_ymd_and_hms(2001, 6, 1, 12, 0, 0).unwrap();
    let (ua, ub) = (user_scope(), user_scope());
    let old = create_thread(b, &ua).await;
    let old_b = create_thread(b, &ub).await;
    let young = create_thread(b, &ua).await;
    let cs = &b.stores.chat_streams;
    b.clock.set(now - Duration::days(31));
    cs.append(&ua, &old, frames(&["old"])).await.unwrap();
    cs.append(&ub, &old_b, frames(&["old"])).await.unwrap();
    b.clock.set(now - Duration::days(29));
    cs.append(&ua, &young, frames(&["young"])).await.unwrap();
    b.clock.set(now);
    let cutoff = now - Duration::days(30);
    assert_eq!(cs.purge_older_than(cutoff, limit(100)).await.unwrap(), 2);
    assert_eq!(cs.get(&ua, &old).await.unwrap(), None);
    assert_eq!(cs.get(&ub, &old_b).await.unwrap(), None);
    assert!(cs.get(&ua, &young).await.unwrap().is_some());
    assert_eq!(cs.purge_older_than(cutoff, limit(100)).await.unwrap(), 0);
}

/// Purging works in bounded batches.
pub async fn purge_is_bounded_by_the_batch(b: &TestBackend) {
    let scope = user_scope();
    let cs = &b.stores.chat_streams;
    b.clock
        .set(Utc.with_ymd_and_hms(2002, 1, 1, 0, 0, 0).unwrap());
    let mut threads = Vec::new();
    for _ in 0..3 {
        let t = create_thread(b, &scope).await;
        cs.append(&scope, &t, frames(&["x"])).await.unwrap();
        threads.push(t);
    }
    let cutoff = b.clock.now() + Duration::seconds(1);
    assert_eq!(cs.purge_older_than(cutoff, limit(2)).await.unwrap(), 2);
    assert_eq!(cs.purge_older_than(cutoff, limit(2)).await.unwrap(), 1);
    for t in &threads {
        assert_eq!(cs.get(&scope, t).await.unwrap(), None);
    }
}

/// 14: `ts` is the clock's UTC instant of the last append; `created_at` stays at the first.
pub async fn timestamps_follow_the_clock_in_utc(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let cs = &b.stores.chat_streams;
    let first = b.clock.now();
    let rec = cs.append(&scope, &thread, frames(&["a"])).await.unwrap();
    assert_eq!((rec.ts, rec.created_at), (first, first));
    b.clock
        .advance(Duration::minutes(5) + Duration::microseconds(7));
    let rec = cs.append(&scope, &thread, frames(&["b"])).await.unwrap();
    assert_eq!(rec.ts, b.clock.now());
    assert_eq!(rec.created_at, first);
    let read = cs.get(&scope, &thread).await.unwrap().unwrap();
    assert_eq!(read.ts, b.clock.now());
    assert!(read.ts.to_rfc3339().ends_with("+00:00"));
}

/// Another user's record reads as missing, is absent from their listing and cannot be
/// deleted by them; `Unscoped` sees it.
pub async fn other_users_records_are_invisible(b: &TestBackend) {
    let owner = user_scope();
    let thread = create_thread(b, &owner).await;
    let cs = &b.stores.chat_streams;
    cs.append(&owner, &thread, frames(&["mine"])).await.unwrap();
    let other = user_scope();
    assert_eq!(cs.get(&other, &thread).await.unwrap(), None);
    assert!(cs.list_recent(&other, limit(10)).await.unwrap().is_empty());
    assert!(!cs.delete(&other, &thread).await.unwrap());
    assert!(cs.get(&owner, &thread).await.unwrap().is_some());
    assert!(
        cs.get(&UserScope::Unscoped, &thread)
            .await
            .unwrap()
            .is_some()
    );
}

/// Frames of one thread never appear under another.
pub async fn threads_keep_their_own_frames(b: &TestBackend) {
    let scope = user_scope();
    let (t1, t2) = (
        create_thread(b, &scope).await,
        create_thread(b, &scope).await,
    );
    let cs = &b.stores.chat_streams;
    cs.append(&scope, &t1, frames(&["one"])).await.unwrap();
    cs.append(&scope, &t2, frames(&["two"])).await.unwrap();
    assert_eq!(
        cs.get(&scope, &t1).await.unwrap().unwrap().frames,
        frames(&["one"])
    );
    assert_eq!(
        cs.get(&scope, &t2).await.unwrap().unwrap().frames,
        frames(&["two"])
    );
}

/// An empty frame or one holding a NUL is refused with `InvalidInput`; nothing of the call is
/// written, neither on a new record nor on an existing one.
pub async fn bad_frames_are_refused_and_nothing_written(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let cs = &b.stores.chat_streams;
    for bad in [frames(&["ok", ""]), frames(&["ok", "nul\0byte"])] {
        assert_eq!(
            expect_invalid(cs.append(&scope, &thread, bad).await),
            "frame"
        );
    }
    assert_eq!(cs.get(&scope, &thread).await.unwrap(), None);
    cs.append(&scope, &thread, frames(&["first"]))
        .await
        .unwrap();
    expect_invalid(cs.append(&scope, &thread, frames(&["x", ""])).await);
    assert_eq!(
        cs.get(&scope, &thread).await.unwrap().unwrap().frames,
        frames(&["first"])
    );
}

/// Mutating a returned record never changes the stored one.
pub async fn returned_records_are_copies(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let cs = &b.stores.chat_streams;
    let mut rec = cs.append(&scope, &thread, frames(&["a"])).await.unwrap();
    rec.frames.push("injected".into());
    let mut read = cs.get(&scope, &thread).await.unwrap().unwrap();
    assert_eq!(read.frames, frames(&["a"]));
    read.frames.clear();
    assert_eq!(
        cs.get(&scope, &thread).await.unwrap().unwrap().frames,
        frames(&["a"])
    );
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every chat_stream case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `chat_stream`.
#[macro_export]
macro_rules! chat_stream_contract {
    ($factory:path) => {
        mod chat_stream {
            $crate::__contract_cases!(
                $factory,
                chat_stream,
                [
                    appends_accumulate_in_order,
                    frames_are_kept_verbatim,
                    concurrent_first_appends_make_one_record,
                    list_recent_orders_by_last_append,
                    delete_removes_the_record,
                    purge_removes_records_older_than_the_cutoff,
                    purge_is_bounded_by_the_batch,
                    timestamps_follow_the_clock_in_utc,
                    other_users_records_are_invisible,
                    threads_keep_their_own_frames,
                    bad_frames_are_refused_and_nothing_written,
                    returned_records_are_copies,
                ]
            );
        }
    };
}
