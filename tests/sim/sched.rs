//! Exact replay: the seeded scheduler every port call waits on, and the run's trace digest.
//!
//! Inside an operation, every port call (store, queue, provider, event bus, alert channel,
//! agent) first waits for its [`Turn`]. When the operation's future can go no further (every
//! branch of it waits on a turn, on the manual clock, or on the one call that is running), the
//! driver lets one waiting call run, picked by the seed, and waits for it to finish before it
//! lets the next one run. So the concurrency the simulation injects (a batch's items, the
//! processor's items, two overlapping processor runs) still interleaves at every port call, but
//! in an order that is a function of the seed, never of how the SQLite threads or the network
//! answered. The clock moves to the next sleeper only when no call waits.
//!
//! The [`Trace`] hashes what the run did: each call let run, each fault decision, each HTTP
//! answer, and at the end the stored state. Two runs of one seed give one digest.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// FNV-1a over everything the run did, and (with `SIM_TRACE=<file>`) the same events as lines,
/// to diff two runs that should have been one.
pub struct Trace {
    hash: u64,
    events: u64,
    lines: Option<Vec<String>>,
}

impl Trace {
    fn new() -> Self {
        Self {
            hash: 0xcbf2_9ce4_8422_2325,
            events: 0,
            lines: std::env::var_os("SIM_TRACE").map(|_| Vec::new()),
        }
    }

    fn add(&mut self, parts: &[&str]) {
        self.events += 1;
        for p in parts {
            for b in p.bytes().chain([0x1f]) {
                self.hash ^= u64::from(b);
                self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        if let Some(l) = &mut self.lines {
            l.push(parts.join(" "));
        }
    }
}

struct Waiting {
    label: &'static str,
    waker: Waker,
    granted: bool,
}

#[derive(Default)]
struct State {
    /// Inside an operation the driver polls; outside, turns pass at once (the driver's own
    /// reads are sequential).
    active: bool,
    next_ticket: u64,
    waiting: BTreeMap<u64, Waiting>,
    /// The call let run and not finished yet.
    running: Option<&'static str>,
    rng: Option<StdRng>,
}

/// The scheduler of one run (inside [`crate::faults::Faults`]).
pub struct Scheduler {
    state: Mutex<State>,
    trace: Mutex<Trace>,
}

impl Scheduler {
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                rng: Some(StdRng::seed_from_u64(seed ^ 0x5c4e_d01e)),
                ..State::default()
            }),
            trace: Mutex::new(Trace::new()),
        }
    }

    /// Wait until the driver lets this call run (at once outside an operation).
    pub fn turn(&self, label: &'static str) -> Turn<'_> {
        Turn {
            sched: self,
            label,
            ticket: None,
        }
    }

    /// Wait for this call's turn; it counts as running until the guard is dropped.
    pub async fn enter(&self, label: &'static str) -> Running<'_> {
        self.turn(label).await;
        Running(self)
    }

    /// The call let run has finished (answered, failed or hung: a hang is a crash, and the
    /// driver resets the scheduler when it drops the operation).
    pub fn finish(&self) {
        lock(&self.state).running = None;
    }

    /// An operation starts (`true`) or ended (`false`, also after a crash dropped it).
    pub fn set_active(&self, on: bool) {
        let mut s = lock(&self.state);
        s.active = on && std::env::var_os("SIM_UNORDERED").is_none();
        s.running = None;
        s.waiting.clear();
    }

    /// Whether the operation can go no further without the driver: nothing is running, and
    /// a call waits for its turn or something sleeps on the clock.
    pub fn stalled(&self, sleepers: usize) -> bool {
        let s = lock(&self.state);
        s.running.is_none() && (!s.waiting.is_empty() || sleepers > 0)
    }

    /// Let one waiting call run, picked by the seed; `false` when none waits.
    pub fn grant(&self) -> bool {
        let label = {
            let mut s = lock(&self.state);
            if s.waiting.is_empty() || s.running.is_some() {
                return false;
            }
            let n = s.waiting.len();
            let i = s.rng.as_mut().map_or(0, |r| r.gen_range(0..n));
            let Some((_, w)) = s.waiting.iter_mut().nth(i) else {
                return false;
            };
            w.granted = true;
            w.waker.wake_by_ref();
            let label = w.label;
            s.running = Some(label);
            label
        };
        self.record(&["run", label]);
        true
    }

    /// Add one event to the trace.
    pub fn record(&self, parts: &[&str]) {
        lock(&self.trace).add(parts);
    }

    /// The digest so far and how many events it covers; with `SIM_TRACE=<file>`, the events
    /// are written there too (to diff two runs).
    pub fn digest(&self) -> (u64, u64) {
        let t = lock(&self.trace);
        if let (Some(lines), Some(path)) = (&t.lines, std::env::var_os("SIM_TRACE")) {
            let mut text = lines.join("\n");
            text.push('\n');
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("SIM_TRACE: cannot write {}: {e}", std::path::Path::new(&path).display());
            }
        }
        (t.hash, t.events)
    }
}

/// A call that had its turn and runs until this is dropped.
pub struct Running<'a>(&'a Scheduler);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A call waiting for its turn. Dropped while waiting (the operation crashed or ended), it
/// leaves the queue.
pub struct Turn<'a> {
    sched: &'a Scheduler,
    label: &'static str,
    ticket: Option<u64>,
}

impl Future for Turn<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = lock(&self.sched.state);
        match self.ticket {
            None if !s.active => Poll::Ready(()),
            None => {
                let t = s.next_ticket;
                s.next_ticket += 1;
                s.waiting.insert(
                    t,
                    Waiting {
                        label: self.label,
                        waker: cx.waker().clone(),
                        granted: false,
                    },
                );
                drop(s);
                self.ticket = Some(t);
                Poll::Pending
            }
            Some(t) => match s.waiting.get_mut(&t) {
                Some(w) if !w.granted => {
                    w.waker.clone_from(cx.waker());
                    Poll::Pending
                }
                _ => {
                    s.waiting.remove(&t);
                    drop(s);
                    self.ticket = None;
                    Poll::Ready(())
                }
            },
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket {
            lock(&self.sched.state).waiting.remove(&t);
        }
    }
}
