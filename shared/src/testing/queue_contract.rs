//! The job queue contract: behaviours every [`JobQueue`] adapter must show, run against
//! `SqliteJobQueue` and against `SqsJobQueue` on a moto server (`tests/queue_contract.rs`).
//!
//! Each behaviour is an async function taking a fresh, empty queue whose max-receive count is
//! [`MAX_RECEIVES`]; [`queue_contract!`](crate::queue_contract) expands one `#[tokio::test]` per
//! behaviour. The behaviours use the real clock and short real delays (SQS timers are whole
//! seconds), and wait by polling against a deadline, never by sleeping for a guessed time. A
//! failed expectation panics: this is test code.

use crate::domain::MessageId;
use crate::ports::{JobPayload, JobQueue, QueueStats, ReceivedJob};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;

/// The max-receive count (SQS `maxReceiveCount`) the queue under test must be made with.
pub const MAX_RECEIVES: u32 = 2;

/// Visibility timeout for receives that expect the job back soon.
const SHORT_VISIBILITY: Duration = Duration::from_secs(1);
/// Visibility timeout for receives that must keep the job hidden for the rest of the test.
const LONG_VISIBILITY: Duration = Duration::from_secs(30);
/// Delay for the delayed-delivery behaviour (SQS's smallest non-zero timer).
const DELAY: Duration = Duration::from_secs(1);
/// How long to wait for something that should happen (covers moto's and SQLite's latency).
const DEADLINE: Duration = Duration::from_secs(10);
/// Pause between polls.
const POLL: Duration = Duration::from_millis(100);
/// Slack for timer granularity between the queue's clock and the test's `Instant`.
const SLACK: Duration = Duration::from_millis(100);

/// A job for a fresh message id.
pub fn job() -> JobPayload {
    let at = DateTime::<Utc>::from_timestamp(1_772_366_400, 0).unwrap_or_default();
    JobPayload::send_attempt(MessageId::generate(at), at)
}

/// Receive (up to 10 jobs) until one arrives or [`DEADLINE`] passes; panics at the deadline.
/// Also returns when the successful call started: its jobs were hidden after that instant.
async fn receive_soon(queue: &dyn JobQueue, visibility: Duration) -> (Vec<ReceivedJob>, Instant) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let called = Instant::now();
        let jobs = queue.receive(10, visibility).await.expect("receive");
        if !jobs.is_empty() {
            return (jobs, called);
        }
        assert!(Instant::now() < deadline, "no job became visible within {DEADLINE:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Poll `stats` until `want` holds or [`DEADLINE`] passes; panics at the deadline.
async fn stats_soon(queue: &dyn JobQueue, want: impl Fn(QueueStats) -> bool, what: &str) -> QueueStats {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stats = queue.stats().await.expect("stats");
        if want(stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: stats still {stats:?} after {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// An enqueued job comes back with its payload, a first receive count, an id and a receipt.
pub async fn enqueued_job_is_received_with_its_payload(queue: &dyn JobQueue) {
    assert!(
        queue.receive(10, LONG_VISIBILITY).await.expect("receive").is_empty(),
        "a new queue is empty"
    );
    let sent = job();
    queue.enqueue(&sent, Duration::ZERO).await.expect("enqueue");

    let (got, _) = receive_soon(queue, LONG_VISIBILITY).await;

    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, sent);
    assert_eq!(got[0].receive_count, 1);
    assert!(!got[0].message_id.is_empty(), "message id");
    assert!(!got[0].receipt.is_empty(), "receipt");
}

/// A delayed job is not received before its delay and is after it.
///
/// The timing checks fail only on a real violation: a slow machine weakens them but never trips
/// them (the job is enqueued after `started`, so it cannot be visible before `started + DELAY`).
pub async fn delayed_job_is_hidden_until_its_delay(queue: &dyn JobQueue) {
    let started = Instant::now();
    let sent = job();
    queue.enqueue(&sent, DELAY).await.expect("enqueue");

    let early = queue.receive(10, LONG_VISIBILITY).await.expect("receive");
    assert!(
        early.is_empty() || started.elapsed() + SLACK >= DELAY,
        "received {:?} after enqueue, before its delay",
        started.elapsed()
    );
    let got = if early.is_empty() {
        receive_soon(queue, LONG_VISIBILITY).await.0
    } else {
        early
    };

    assert!(
        started.elapsed() + SLACK >= DELAY,
        "received {:?} after enqueue",
        started.elapsed()
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, sent);
    assert_eq!(got[0].receive_count, 1);
}

/// A received job stays hidden for its visibility timeout, then comes back with receive count 2
/// and the same message id.
pub async fn received_job_is_hidden_until_its_visibility_timeout(queue: &dyn JobQueue) {
    let sent = job();
    queue.enqueue(&sent, Duration::ZERO).await.expect("enqueue");
    // The job is hidden after `hidden_from`, so it cannot come back before that + visibility.
    let (first, hidden_from) = receive_soon(queue, SHORT_VISIBILITY).await;
    assert_eq!(first.len(), 1);

    let early = queue.receive(10, LONG_VISIBILITY).await.expect("receive");
    assert!(
        early.is_empty() || hidden_from.elapsed() + SLACK >= SHORT_VISIBILITY,
        "visible again {:?} after being received",
        hidden_from.elapsed()
    );
    let again = if early.is_empty() {
        receive_soon(queue, LONG_VISIBILITY).await.0
    } else {
        early
    };

    assert!(
        hidden_from.elapsed() + SLACK >= SHORT_VISIBILITY,
        "back after {:?}",
        hidden_from.elapsed()
    );
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, sent);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
}

/// An acked job never comes back, even after its visibility timeout, and no longer counts.
pub async fn acked_job_is_gone_for_good(queue: &dyn JobQueue) {
    queue.enqueue(&job(), Duration::ZERO).await.expect("enqueue");
    let (got, _) = receive_soon(queue, SHORT_VISIBILITY).await;
    assert_eq!(got.len(), 1);

    queue.ack(&got[0].receipt).await.expect("ack");

    let past_visibility = Instant::now() + SHORT_VISIBILITY + SLACK * 3;
    while Instant::now() < past_visibility {
        assert!(
            queue.receive(10, LONG_VISIBILITY).await.expect("receive").is_empty(),
            "acked job came back"
        );
        tokio::time::sleep(POLL).await;
    }
    let stats = stats_soon(queue, |s| s.pending == 0, "acked job still pending").await;
    assert_eq!(stats, QueueStats { pending: 0, dead: 0 });
}

/// A job received more than [`MAX_RECEIVES`] times lands in the dead-letter queue instead of
/// being returned again.
pub async fn job_received_too_often_is_dead_lettered(queue: &dyn JobQueue) {
    queue.enqueue(&job(), Duration::ZERO).await.expect("enqueue");
    for n in 1..=MAX_RECEIVES {
        let (got, _) = receive_soon(queue, SHORT_VISIBILITY).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, n);
    }

    // Once its last visibility timeout has passed, a receive must move it, not return it.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = queue.receive(10, SHORT_VISIBILITY).await.expect("receive");
        assert!(got.is_empty(), "returned after {MAX_RECEIVES} receives: {got:?}");
        let stats = queue.stats().await.expect("stats");
        if stats.dead == 1 {
            assert_eq!(stats.pending, 0, "dead job still counted as pending");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not dead-lettered within {DEADLINE:?}: {stats:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Two concurrent receives of one job: exactly one gets it.
pub async fn concurrent_receivers_never_share_a_job(queue: &dyn JobQueue) {
    queue.enqueue(&job(), Duration::ZERO).await.expect("enqueue");
    // Let the enqueue land before racing the receivers (SQS counts are approximate; moto's and
    // SQLite's are exact).
    stats_soon(queue, |s| s.pending == 1, "enqueued job not counted").await;

    let (a, b) = tokio::join!(queue.receive(10, LONG_VISIBILITY), queue.receive(10, LONG_VISIBILITY));

    let (a, b) = (a.expect("receive a"), b.expect("receive b"));
    assert_eq!(a.len() + b.len(), 1, "a got {a:?}, b got {b:?}");
}

/// `receive` returns no more than `max`, and different jobs to successive calls.
pub async fn receive_returns_at_most_max_jobs(queue: &dyn JobQueue) {
    let sent = [job(), job(), job()];
    for payload in &sent {
        queue.enqueue(payload, Duration::ZERO).await.expect("enqueue");
    }
    assert!(queue.receive(0, LONG_VISIBILITY).await.expect("receive 0").is_empty());

    let mut seen = HashSet::new();
    let deadline = Instant::now() + DEADLINE;
    while seen.len() < sent.len() {
        let got = queue.receive(2, LONG_VISIBILITY).await.expect("receive");
        assert!(got.len() <= 2, "asked for 2, got {}", got.len());
        for j in got {
            assert!(seen.insert(j.message_id.clone()), "job {} received twice", j.message_id);
            assert!(sent.contains(&j.payload));
        }
        assert!(Instant::now() < deadline, "only {} of 3 jobs received", seen.len());
    }
}

/// `stats().pending` counts enqueued jobs, delayed and in-flight ones included.
pub async fn stats_count_pending_jobs(queue: &dyn JobQueue) {
    assert_eq!(queue.stats().await.expect("stats"), QueueStats::default());
    queue.enqueue(&job(), Duration::ZERO).await.expect("enqueue");
    queue.enqueue(&job(), Duration::ZERO).await.expect("enqueue");
    queue
        .enqueue(&job(), Duration::from_secs(60))
        .await
        .expect("enqueue delayed");

    let stats = stats_soon(queue, |s| s.pending == 3, "3 enqueued jobs").await;
    assert_eq!(stats.dead, 0);

    let (got, _) = receive_soon(queue, LONG_VISIBILITY).await;
    let in_flight = stats_soon(queue, |s| s.pending == 3, "in-flight jobs are pending").await;
    assert_eq!(in_flight.dead, 0);
    for j in &got {
        queue.ack(&j.receipt).await.expect("ack");
    }
    let left = u64::try_from(3 - got.len()).expect("count");
    stats_soon(queue, |s| s.pending == left, "acked jobs no longer pending").await;
}

/// Expand one `#[tokio::test]` per queue behaviour. `$make` is an expression evaluating to a
/// future (an `async` block or an async fn call) that yields a fresh, empty queue implementing
/// [`JobQueue`](crate::ports::JobQueue) whose max-receive count is [`MAX_RECEIVES`].
///
/// ```text
/// mod sqlite {
///     smsrelay::queue_contract!(async { make_sqlite_queue() });
/// }
/// ```
#[macro_export]
macro_rules! queue_contract {
    ($make:expr) => {
        $crate::queue_contract!(@tests $make;
            enqueued_job_is_received_with_its_payload,
            delayed_job_is_hidden_until_its_delay,
            received_job_is_hidden_until_its_visibility_timeout,
            acked_job_is_gone_for_good,
            job_received_too_often_is_dead_lettered,
            concurrent_receivers_never_share_a_job,
            receive_returns_at_most_max_jobs,
            stats_count_pending_jobs,
        );
    };
    (@tests $make:expr; $($behaviour:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                let queue = $make.await;
                $crate::testing::queue_contract::$behaviour(&queue).await;
            }
        )+
    };
}
