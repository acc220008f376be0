//! The token-usage contract: records, and statistics aggregated in the store by total, model,
//! session and thread over a filter with a half-open time window.

use chrono::{DateTime, Duration, Utc};
use waymark_domain::clock::Clock;
use waymark_domain::token_usage::{TokenGrouping, TokenStats, TokenUsage, TokenUsageFilter};
use waymark_domain::{ModelName, RunId, SessionId, ThreadId, UserId};

use super::fixtures::*;
use crate::harness::TestBackend;

fn model(s: &str) -> ModelName {
    ModelName::parse(s).expect("model")
}

/// A record of `user` with the given keys and counts at `at`.
#[allow(clippy::too_many_arguments)]
fn usage(
    user: &UserId,
    session: Option<&SessionId>,
    thread: Option<&ThreadId>,
    run: Option<&RunId>,
    m: &str,
    prompt: u64,
    completion: u64,
    at: DateTime<Utc>,
) -> TokenUsage {
    TokenUsage::new(
        session.cloned(),
        thread.cloned(),
        run.cloned(),
        Some(user.clone()),
        model(m),
        prompt,
        completion,
        0,
        at,
    )
    .expect("usage")
}

fn of_user(user: &UserId) -> TokenUsageFilter {
    TokenUsageFilter {
        user_id: Some(user.clone()),
        ..TokenUsageFilter::default()
    }
}

async fn stats(b: &TestBackend, f: &TokenUsageFilter, g: TokenGrouping) -> Vec<TokenStats> {
    b.stores.token_usage.stats(f, g).await.expect("stats")
}

fn row(key: Option<&str>, records: u64, prompt: u64, completion: u64) -> TokenStats {
    TokenStats {
        key: key.map(str::to_owned),
        records,
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
    }
}

/// `record` stores the record as given and returns it.
pub async fn record_returns_what_was_stored(b: &TestBackend) {
    let u = user();
    let (s, t, r) = (session_id(), thread_id(), run_id());
    let rec = TokenUsage::new(
        Some(s),
        Some(t),
        Some(r),
        Some(u.clone()),
        model("gpt-4o-mini"),
        100,
        50,
        170,
        b.clock.now(),
    )
    .unwrap();
    let stored = b.stores.token_usage.record(rec.clone()).await.unwrap();
    assert_eq!(stored, rec);
    let total = stats(b, &of_user(&u), TokenGrouping::Total).await;
    assert_eq!(
        total,
        vec![TokenStats {
            key: None,
            records: 1,
            prompt_tokens: 100,
            completion_tokens: 50,
            total_tokens: 170,
        }]
    );
}

/// `Total` sums every matching record into one row.
pub async fn total_sums_matching_records(b: &TestBackend) {
    let (u, other) = (user(), user());
    let now = b.clock.now();
    for (p, c) in [(10, 5), (20, 7), (1, 0)] {
        b.stores
            .token_usage
            .record(usage(&u, None, None, None, "m", p, c, now))
            .await
            .unwrap();
    }
    b.stores
        .token_usage
        .record(usage(&other, None, None, None, "m", 999, 999, now))
        .await
        .unwrap();
    assert_eq!(
        stats(b, &of_user(&u), TokenGrouping::Total).await,
        vec![row(None, 3, 31, 12)]
    );
}

/// `Total` over no records is exactly one zero row; other groupings return no rows.
pub async fn no_records_give_one_zero_total_row(b: &TestBackend) {
    let f = of_user(&user());
    assert_eq!(
        stats(b, &f, TokenGrouping::Total).await,
        vec![row(None, 0, 0, 0)]
    );
    for g in [
        TokenGrouping::Model,
        TokenGrouping::Session,
        TokenGrouping::Thread,
    ] {
        assert!(stats(b, &f, g).await.is_empty(), "{g:?}");
    }
}

/// Grouping by model gives one row per model, ordered by key.
pub async fn grouping_by_model_orders_by_key(b: &TestBackend) {
    let u = user();
    let now = b.clock.now();
    for (m, p) in [("zeta", 1), ("alpha", 2), ("zeta", 3), ("mid", 4)] {
        b.stores
            .token_usage
            .record(usage(&u, None, None, None, m, p, 1, now))
            .await
            .unwrap();
    }
    assert_eq!(
        stats(b, &of_user(&u), TokenGrouping::Model).await,
        vec![
            row(Some("alpha"), 1, 2, 1),
            row(Some("mid"), 1, 4, 1),
            row(Some("zeta"), 2, 4, 2)
        ]
    );
}

/// Grouping by session puts records without a session in the `None` group, first.
pub async fn grouping_by_session_puts_none_first(b: &TestBackend) {
    let u = user();
    let now = b.clock.now();
    let (s1, s2) = {
        let mut v = [session_id(), session_id()];
        v.sort();
        let [a, c] = v;
        (a, c)
    };
    for (s, p) in [(Some(&s2), 1), (None, 2), (Some(&s1), 3), (Some(&s2), 4)] {
        b.stores
            .token_usage
            .record(usage(&u, s, None, None, "m", p, 0, now))
            .await
            .unwrap();
    }
    assert_eq!(
        stats(b, &of_user(&u), TokenGrouping::Session).await,
        vec![
            row(None, 1, 2, 0),
            row(Some(s1.as_str()), 1, 3, 0),
            row(Some(s2.as_str()), 2, 5, 0),
        ]
    );
}

/// Grouping by thread gives one row per thread.
pub async fn grouping_by_thread(b: &TestBackend) {
    let u = user();
    let now = b.clock.now();
    let (t1, t2) = {
        let mut v = [thread_id(), thread_id()];
        v.sort();
        let [a, c] = v;
        (a, c)
    };
    for (t, p) in [(&t2, 5), (&t1, 1), (&t2, 5)] {
        b.stores
            .token_usage
            .record(usage(&u, None, Some(t), None, "m", p, 2, now))
            .await
            .unwrap();
    }
    assert_eq!(
        stats(b, &of_user(&u), TokenGrouping::Thread).await,
        vec![
            row(Some(t1.as_str()), 1, 1, 2),
            row(Some(t2.as_str()), 2, 10, 4)
        ]
    );
}

/// The time window includes `from` and excludes `to`.
pub async fn time_window_is_half_open(b: &TestBackend) {
    let u = user();
    let t0 = b.clock.now();
    for h in 0..3 {
        let at = t0 + Duration::hours(h);
        b.stores
            .token_usage
            .record(usage(&u, None, None, None, "m", 1 << h, 0, at))
            .await
            .unwrap();
    }
    let window = |from: Option<i64>, to: Option<i64>| TokenUsageFilter {
        from: from.map(|h| t0 + Duration::hours(h)),
        to: to.map(|h| t0 + Duration::hours(h)),
        ..of_user(&u)
    };
    let prompt = |f: TokenUsageFilter| async move {
        stats(b, &f, TokenGrouping::Total).await[0].prompt_tokens
    };
    assert_eq!(prompt(window(Some(1), Some(2))).await, 2);
    assert_eq!(prompt(window(Some(0), None)).await, 7);
    assert_eq!(prompt(window(None, Some(0))).await, 0);
    assert_eq!(prompt(window(None, Some(2))).await, 3);
    assert_eq!(prompt(window(Some(2), Some(2))).await, 0);
    let just_after = TokenUsageFilter {
        from: Some(t0 + Duration::microseconds(1)),
        ..of_user(&u)
    };
    assert_eq!(prompt(just_after).await, 6);
}

/// Filters on session, thread, run and model are ANDed.
pub async fn filters_are_anded(b: &TestBackend) {
    let u = user();
    let now = b.clock.now();
    let (s, t, r) = (session_id(), thread_id(), run_id());
    let recs = [
        usage(&u, Some(&s), Some(&t), Some(&r), "a", 1, 0, now),
        usage(&u, Some(&s), Some(&t), Some(&r), "b", 2, 0, now),
        usage(&u, Some(&s), Some(&t), None, "a", 4, 0, now),
        usage(&u, Some(&s), None, None, "a", 8, 0, now),
    ];
    for rec in recs {
        b.stores.token_usage.record(rec).await.unwrap();
    }
    let p = |f: TokenUsageFilter| async move {
        stats(b, &f, TokenGrouping::Total).await[0].prompt_tokens
    };
    let base = TokenUsageFilter {
        session_id: Some(s.clone()),
        ..TokenUsageFilter::default()
    };
    assert_eq!(p(base.clone()).await, 15);
    assert_eq!(
        p(TokenUsageFilter {
            thread_id: Some(t.clone()),
            ..base.clone()
        })
        .await,
        7
    );
    assert_eq!(
        p(TokenUsageFilter {
            run_id: Some(r.clone()),
            ..base.clone()
        })
        .await,
        3
    );
    assert_eq!(
        p(TokenUsageFilter {
            run_id: Some(r),
            model: Some(model("a")),
            ..base.clone()
        })
        .await,
        1
    );
    assert_eq!(
        p(TokenUsageFilter {
            user_id: Some(user()),
            ..base
        })
        .await,
        0
    );
}

/// A reported total of zero is stored as prompt + completion; a reported total is kept.
pub async fn totals_follow_the_reported_value(b: &TestBackend) {
    let u = user();
    let now = b.clock.now();
    let zero = TokenUsage::new(
        None,
        None,
        None,
        Some(u.clone()),
        model("m"),
        100,
        50,
        0,
        now,
    )
    .unwrap();
    let given = TokenUsage::new(
        None,
        None,
        None,
        Some(u.clone()),
        model("m"),
        10,
        5,
        20,
        now,
    )
    .unwrap();
    for r in [zero, given] {
        b.stores.token_usage.record(r).await.unwrap();
    }
    let t = stats(b, &of_user(&u), TokenGrouping::Total).await.remove(0);
    assert_eq!(
        (
            t.records,
            t.prompt_tokens,
            t.completion_tokens,
            t.total_tokens
        ),
        (2, 110, 55, 170)
    );
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every token_usage case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `token_usage`.
#[macro_export]
macro_rules! token_usage_contract {
    ($factory:path) => {
        mod token_usage {
            $crate::__contract_cases!(
                $factory,
                token_usage,
                [
                    record_returns_what_was_stored,
                    total_sums_matching_records,
                    no_records_give_one_zero_total_row,
                    grouping_by_model_orders_by_key,
                    grouping_by_session_puts_none_first,
                    grouping_by_thread,
                    time_window_is_half_open,
                    filters_are_anded,
                    totals_follow_the_reported_value,
                ]
            );
        }
    };
}
