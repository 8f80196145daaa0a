//! One send rate per sender across every process: the batch pacer's slots on the sender's
//! schedule in the store, shared by batches, the retry consumer and the processor (issue #12).
//! Single sends (`POST /v1/messages`, campaign steps, agent replies) are not paced: they answer a
//! caller now, one message at a time, and Twilio queues what exceeds a sender's rate.

use super::Ctx;
use crate::ports::{Moment, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How far ahead an attempt outside a batch (retry consumer, processor) takes a slot on its
/// sender's schedule. A schedule booked further out (a large batch is running) defers the attempt
/// instead of holding the worker: the retry queue chains it this long, the processor leaves it due.
pub(crate) const ATTEMPT_HORIZON: Duration = Duration::from_secs(10);

/// Share of the sender's messages-per-second limit the pacer uses. Slots are reserved first and
/// the provider call waits for its slot after the claim is written (store latency stays out of
/// the spacing); 1 % headroom absorbs the remaining network jitter (measured at 100 MPS: pacing at
/// the limit before the store write let 93 of 10,000 requests into a full one-second window).
const PACE_SHARE: f64 = 0.99;

/// A send slot on the sender's schedule, with when it was asked for (the time from then to the
/// claim being written is what [`Pacer`] learns its lead from).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// When the provider call may leave (the clock's monotonic time).
    pub(crate) at: Moment,
    asked: Moment,
}

/// The longest lead the pacer reserves ahead by, whatever the store's latency.
const MAX_LEAD: Duration = Duration::from_secs(1);

/// Spaces sends of one sender `1/(mps × PACE_SHARE)` apart on the sender's schedule in the store
/// ([`CounterStore::reserve_slot`](crate::ports::CounterStore::reserve_slot)), which every batch
/// and every single attempt of the retry consumer and the processor, in every process, shares:
/// two batch Lambdas at once still send at the sender's MPS, not twice it. Slots are wall-clock
/// times; the wait for one runs on the clock's monotonic time.
///
/// **Lead.** A slot is only useful if the claim is written before it passes. When the schedule
/// has no backlog the next slot is "now", and the reserve and claim writes (milliseconds on
/// DynamoDB) make it late; a late slot is given up for a fresh one, and that capacity is lost (two
/// batch workers on DynamoDB Local reached 77 of 100 MPS so). So the pacer reserves no earlier
/// than `now + lead`, where `lead` follows the time it has seen between asking for a slot and the
/// claim being written (a moving average, at most [`MAX_LEAD`]). On the manual clock store calls
/// take no time, the lead stays zero and the slots are exactly as without it.
pub(crate) struct Pacer {
    gap: Duration,
    lead_nanos: AtomicU64,
}

impl Pacer {
    pub(crate) fn new(mps: u32) -> Self {
        Self {
            gap: Duration::from_secs_f64(1.0 / (f64::from(mps.max(1)) * PACE_SHARE)),
            lead_nanos: AtomicU64::new(0),
        }
    }

    fn lead(&self) -> Duration {
        Duration::from_nanos(self.lead_nanos.load(Ordering::Relaxed))
    }

    /// Fold one observed ask-to-ready time into the lead: the first one is taken as it is, later
    /// ones move it a quarter of the way.
    fn learn(&self, observed: Duration) {
        let observed = u64::try_from(observed.min(MAX_LEAD).as_nanos()).unwrap_or(u64::MAX);
        let _updated = self
            .lead_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |lead| {
                Some(if lead == 0 {
                    observed
                } else if observed >= lead {
                    lead + (observed - lead) / 4
                } else {
                    lead - (lead - observed) / 4
                })
            });
    }

    /// Reserve `sender`'s next send slot no earlier than the lead from now, or `None` if it lies
    /// at or beyond `deadline`.
    pub(crate) async fn reserve(
        &self,
        ctx: Ctx<'_>,
        sender: &str,
        deadline: Moment,
    ) -> Result<Option<Slot>, StoreError> {
        let (wall, asked) = (ctx.clock.now(), ctx.clock.monotonic());
        let lead = self.lead();
        let left = deadline.saturating_since(asked);
        // A batch budget is seconds; an hour caps anything longer.
        let wall_deadline = wall + chrono::Duration::from_std(left.min(Duration::from_secs(3600))).unwrap_or_default();
        let earliest = wall + chrono::Duration::from_std(lead).unwrap_or_default();
        let slot = ctx
            .counters
            .reserve_slot(&format!("send-rate:{sender}"), earliest, self.gap, wall_deadline)
            .await?;
        Ok(slot.map(|at| Slot {
            at: asked + (at - wall).to_std().unwrap_or(Duration::ZERO),
            asked,
        }))
    }

    /// `slot`'s time, or, when it passed more than half a gap ago (the claim write was slow), a
    /// fresh one's: a late send would land in the next second's share of the sender's rate,
    /// beside the sends other processes make on time there. The late slot goes unused; the
    /// time it took to get here feeds the lead. Past `deadline` the claimed send leaves late
    /// rather than be stranded.
    pub(crate) async fn on_time(
        &self,
        ctx: Ctx<'_>,
        sender: &str,
        slot: Slot,
        deadline: Moment,
    ) -> Result<Moment, StoreError> {
        let mut slot = slot;
        loop {
            let ready = ctx.clock.monotonic();
            self.learn(ready.saturating_since(slot.asked));
            if ready.saturating_since(slot.at) <= self.gap / 2 {
                break;
            }
            match self.reserve(ctx, sender, deadline).await? {
                Some(fresh) => slot = fresh,
                None => break,
            }
        }
        Ok(slot.at)
    }
}
