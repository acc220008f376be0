//! Concurrent checkpoint writers on the SQL backends: several writers putting checkpoints
//! (each its own thread, and several on one thread) lose nothing, and the append-delta
//! payloads they write read back byte for byte.

use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointQuery, TypedValue,
};
use waymark_domain::{ChannelName, CheckpointNamespace, ThreadId};
use waymark_tests::backends::sql::Fixture;

/// A msgpack array of `n` short strings.
fn messages(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if n < 16 {
        out.push(0x90 | n as u8);
    } else {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
    for i in 0..n {
        let s = format!("message number {i} with some text");
        out.push(0xa0 | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    out
}

fn put(thread: &str, step: usize, parent: Option<&Checkpoint>) -> CheckpointPut {
    let ch = ChannelName::parse("messages").unwrap();
    let mut cp = Checkpoint::empty(step as i64);
    cp.channel_values
        .insert(ch.clone(), TypedValue::msgpack(messages(2 * step + 1)));
    let version = ChannelVersion::Int(step as i64 + 1);
    cp.channel_versions.insert(ch.clone(), version.clone());
    let mut new_versions = indexmap::IndexMap::new();
    new_versions.insert(ch, version);
    CheckpointPut {
        thread_id: ThreadId::parse(thread).unwrap(),
        namespace: CheckpointNamespace::root(),
        parent_id: parent.map(|p| p.id.clone()),
        checkpoint: cp,
        metadata: CheckpointMetadata::default(),
        new_versions,
    }
}

async fn several_writers_lose_nothing(f: &Fixture) {
    let stores = f.backend.stores();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let cps = stores.checkpoints.clone();
        tasks.push(tokio::spawn(async move {
            let thread = format!("cp-{w}");
            let mut parent: Option<Checkpoint> = None;
            for step in 0..20 {
                let p = put(&thread, step, parent.as_ref());
                cps.put(p.clone()).await.unwrap();
                parent = Some(p.checkpoint);
            }
        }));
    }
    // Four writers sharing one thread.
    for w in 0..4 {
        let cps = stores.checkpoints.clone();
        tasks.push(tokio::spawn(async move {
            for step in 0..10 {
                cps.put(put("cp-shared", w * 10 + step, None))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for w in 0..8 {
        let thread = ThreadId::parse(format!("cp-{w}")).unwrap();
        let list = stores
            .checkpoints
            .list(&CheckpointQuery::thread(thread))
            .await
            .unwrap();
        assert_eq!(list.len(), 20, "{}", f.name);
        for (i, t) in list.iter().enumerate() {
            let step = 19 - i;
            let v = &t.checkpoint.channel_values[&ChannelName::parse("messages").unwrap()];
            assert_eq!(
                v.bytes(),
                messages(2 * step + 1).as_slice(),
                "{}: step {step}",
                f.name
            );
        }
    }
    let shared = stores
        .checkpoints
        .list(&CheckpointQuery::thread(
            ThreadId::parse("cp-shared").unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(shared.len(), 40, "{}", f.name);
}

macro_rules! on_every_sql_backend {
    ($($test:ident),*) => {
        mod sqlite_memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let f = super::Fixture::new("sqlite-memory").await.unwrap();
                super::$test(&f).await;
                f.finish().await;
            })*
        }
        mod sqlite_file {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let f = super::Fixture::new("sqlite-file").await.unwrap();
                super::$test(&f).await;
                f.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let Some(f) = super::Fixture::new("postgres").await else {
                    eprintln!("SKIPPED postgres::{}: no PostgreSQL server", stringify!($test));
                    return;
                };
                super::$test(&f).await;
                f.finish().await;
            })*
        }
    };
}

on_every_sql_backend!(several_writers_lose_nothing);
