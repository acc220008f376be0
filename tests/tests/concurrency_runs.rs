//! Several workers sharing one database through separate connection pools (as separate
//! processes do): of concurrent admissions on a thread exactly one run is created, of
//! concurrent starts of a run exactly one worker gets the lease, and concurrent lease sweeps
//! reclaim each expired run once (spec `history-and-streams.md` §6.2, §6.9: the partial unique
//! index and the single-statement compare-and-sets, not process-local locks, decide).

use std::collections::HashMap;

use chrono::Duration;
use waymark_domain::Stores;
use waymark_domain::run::{LeaseTtl, NewRun, RunStatus, WorkerId};
use waymark_domain::thread::NewThread;
use waymark_domain::{RunId, ThreadId, UserScope};
use waymark_infrastructure::connect::{ConnectOptions, connect_sql};
use waymark_tests::backends::sql::Fixture;

const WORKERS: usize = 4;
const THREADS: usize = 12;

async fn workers_share_one_database(f: &Fixture) {
    let scope = UserScope::Unscoped;
    let primary = f.backend.stores();
    let threads: Vec<ThreadId> = (0..THREADS)
        .map(|i| ThreadId::parse(format!("t-{i}")).unwrap())
        .collect();
    for t in &threads {
        primary
            .threads
            .create(&scope, NewThread::with_id(t.clone()))
            .await
            .unwrap();
    }
    // One pool per worker, all reading the fixture's clock so leases can be expired.
    let mut pools = Vec::new();
    for _ in 0..WORKERS {
        let options = ConnectOptions {
            migrate: false,
            pool_size: 2,
            clock: f.clock.clone(),
            postgres_schema: f.schema.clone(),
            ..ConnectOptions::default()
        };
        pools.push(connect_sql(&f.url, &options).await.unwrap());
    }
    let stores: Vec<Stores> = pools.iter().map(|p| p.stores()).collect();

    // Every worker tries to admit its own run on every thread at once.
    let mut tasks = Vec::new();
    for (w, s) in stores.iter().enumerate() {
        let runs = s.runs.clone();
        let threads = threads.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for t in threads {
                let id = RunId::parse(format!("{t}-w{w}")).unwrap();
                match runs.create(&UserScope::Unscoped, NewRun::new(t, id)).await {
                    Ok(r) => won.push(r.run_id),
                    Err(e) => assert!(e.is_conflict(), "{e:?}"),
                }
            }
            won
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.extend(t.await.unwrap());
    }
    assert_eq!(created.len(), THREADS, "one run per thread: {created:?}");

    // Every worker tries to start every thread's run at once; one lease per run.
    let ttl = LeaseTtl::seconds(10).unwrap();
    let mut tasks = Vec::new();
    for (w, s) in stores.iter().enumerate() {
        let runs = s.runs.clone();
        let threads = threads.clone();
        tasks.push(tokio::spawn(async move {
            let worker = WorkerId::parse(format!("w{w}")).unwrap();
            let mut started = Vec::new();
            for t in threads {
                let active = runs
                    .active(&UserScope::Unscoped, &t)
                    .await
                    .unwrap()
                    .unwrap();
                match runs
                    .start(&UserScope::Unscoped, &t, &active.run_id, &worker, ttl)
                    .await
                {
                    Ok(r) => started.push((r.run_id, worker.clone())),
                    Err(e) => assert!(e.is_conflict(), "{e:?}"),
                }
            }
            started
        }));
    }
    let mut holders: HashMap<RunId, WorkerId> = HashMap::new();
    for t in tasks {
        for (run, worker) in t.await.unwrap() {
            assert!(holders.insert(run, worker).is_none(), "a run started twice");
        }
    }
    assert_eq!(holders.len(), THREADS);
    for t in &threads {
        let r = primary.runs.active(&scope, t).await.unwrap().unwrap();
        assert_eq!(r.status, RunStatus::Running);
        assert_eq!(Some(&r.lease.unwrap().worker_id), holders.get(&r.run_id));
    }

    // Every lease lapses; all workers sweep at once; each run is reclaimed exactly once.
    f.clock.advance(Duration::seconds(11));
    let sweeps = stores.iter().map(|s| {
        let runs = s.runs.clone();
        tokio::spawn(async move { runs.reclaim_expired(&UserScope::Unscoped, 3).await.unwrap() })
    });
    let mut reclaimed = Vec::new();
    for sweep in sweeps.collect::<Vec<_>>() {
        reclaimed.extend(sweep.await.unwrap().into_iter().map(|r| r.run_id));
    }
    reclaimed.sort();
    let mut want: Vec<RunId> = holders.keys().cloned().collect();
    want.sort();
    assert_eq!(reclaimed, want);

    for p in pools {
        p.close().await.unwrap();
    }
}

async fn on(name: &'static str) {
    let Some(f) = Fixture::new(name).await else {
        eprintln!("SKIPPED concurrency_runs on {name}: no server");
        return;
    };
    workers_share_one_database(&f).await;
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_workers_share_runs() {
    on("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_workers_share_runs() {
    on("sqlite-file").await;
}
