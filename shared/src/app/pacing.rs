//! One send rate per sender across every process: the batch pacer's slots on the sender's
//! schedule in the store, shared by batches, the retry consumer and the processor (issue #12).
//! Single sends (`POST /v1/messages`, campaign steps, agent replies) are not paced: they answer a
//! caller now, one message at a time, and Twilio queues what exceeds a sender's rate.

use super::Ctx;
use crate::ports::{Moment, StoreError};
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

/// Spaces sends of one sender `1/(mps × PACE_SHARE)` apart on the sender's schedule in the store
/// ([`CounterStore::reserve_slot`](crate::ports::CounterStore::reserve_slot)), which every batch
/// and every single attempt of the retry consumer and the processor, in every process, shares:
/// two batch Lambdas at once still send at the sender's MPS, not twice it. Slots are wall-clock times; the wait for one runs on the clock's monotonic time.
pub(crate) struct Pacer {
    gap: Duration,
}

impl Pacer {
    pub(crate) fn new(mps: u32) -> Self {
        Self {
            gap: Duration::from_secs_f64(1.0 / (f64::from(mps.max(1)) * PACE_SHARE)),
        }
    }

    /// Reserve `sender`'s next send slot, or `None` if it lies at or beyond `deadline`.
    pub(crate) async fn reserve(
        &self,
        ctx: Ctx<'_>,
        sender: &str,
        deadline: Moment,
    ) -> Result<Option<Moment>, StoreError> {
        let (wall, mono) = (ctx.clock.now(), ctx.clock.monotonic());
        let left = deadline.saturating_since(mono);
        // A batch budget is seconds; an hour caps anything longer.
        let wall_deadline = wall + chrono::Duration::from_std(left.min(Duration::from_secs(3600))).unwrap_or_default();
        let slot = ctx
            .counters
            .reserve_slot(&format!("send-rate:{sender}"), wall, self.gap, wall_deadline)
            .await?;
        Ok(slot.map(|at| mono + (at - wall).to_std().unwrap_or(Duration::ZERO)))
    }

    /// `slot`, or, when it passed more than half a gap ago (the claim write was slow), a fresh
    /// one: a late send would land in the next second's share of the sender's rate, beside the
    /// sends other processes make on time there. The late slot goes unused. Past `deadline` the
    /// claimed send leaves late rather than be stranded.
    pub(crate) async fn on_time(
        &self,
        ctx: Ctx<'_>,
        sender: &str,
        slot: Moment,
        deadline: Moment,
    ) -> Result<Moment, StoreError> {
        let mut slot = slot;
        while ctx.clock.monotonic().saturating_since(slot) > self.gap / 2 {
            match self.reserve(ctx, sender, deadline).await? {
                Some(fresh) => slot = fresh,
                None => break,
            }
        }
        Ok(slot)
    }
}
