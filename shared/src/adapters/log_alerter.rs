//! `LogAlerter` (the embedded [`Alerter`]: one structured `WARN` line per alert) and
//! `FanoutAlerter` (delivers one alert to several channels, e.g. Slack + EventBridge + the log).
//!
//! Neither adds anything to an alert: alerts carry counts, never phone numbers or bodies, and a
//! channel's failure is logged with its error chain, which adapters keep free of secrets.

use crate::ports::{Alert, AlertError, Alerter};
use anyhow::anyhow;
use async_trait::async_trait;
use chrono::SecondsFormat;
use std::sync::Arc;

/// [`Alerter`] that writes each alert to the log at `WARN`; it never fails. The only place an
/// alert is logged (`app::alerts::raise_once` does not log it again).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAlerter;

#[async_trait]
impl Alerter for LogAlerter {
    async fn raise(&self, alert: &Alert) -> Result<(), AlertError> {
        tracing::warn!(
            alert.kind = alert.kind.as_str(),
            alert.subject = %alert.subject,
            alert.summary = %alert.summary,
            alert.counts = %serde_json::Value::Object(alert.counts.clone()),
            alert.raised_at = %alert.raised_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "alert raised"
        );
        Ok(())
    }
}

/// [`Alerter`] that delivers each alert to every channel concurrently.
pub struct FanoutAlerter {
    channels: Vec<Arc<dyn Alerter>>,
}

impl FanoutAlerter {
    /// Deliver to all of `channels`; failures are identified in the log by their index here.
    pub fn new(channels: Vec<Arc<dyn Alerter>>) -> Self {
        Self { channels }
    }
}

impl std::fmt::Debug for FanoutAlerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanoutAlerter")
            .field("channels", &self.channels.len())
            .finish()
    }
}

#[async_trait]
impl Alerter for FanoutAlerter {
    /// Every channel is tried (one failing does not stop the others) and each failure is logged.
    ///
    /// # Errors
    /// [`AlertError`] when no channel accepted the alert (including when there is none); its
    /// source is the last channel's failure.
    async fn raise(&self, alert: &Alert) -> Result<(), AlertError> {
        let results = futures_util::future::join_all(self.channels.iter().map(|c| c.raise(alert))).await;
        let mut delivered = 0usize;
        let mut last_error = None;
        for (channel, result) in results.into_iter().enumerate() {
            match result {
                Ok(()) => delivered += 1,
                Err(e) => {
                    tracing::warn!(
                        channel,
                        alert.kind = alert.kind.as_str(),
                        alert.subject = %alert.subject,
                        error.message = %e,
                        error.cause_chain = %format!("{:#}", e.0),
                        "alert channel failed"
                    );
                    last_error = Some(e);
                }
            }
        }
        if delivered > 0 {
            return Ok(());
        }
        Err(match last_error {
            Some(AlertError(cause)) => {
                AlertError(cause.context(format!("all {} alert channels failed", self.channels.len())))
            }
            None => AlertError(anyhow!("no alert channel is configured")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::AlertKind;
    use chrono::{TimeZone, Utc};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn alert() -> Alert {
        Alert {
            kind: AlertKind::MessagesFailed,
            subject: "failed_messages".to_owned(),
            summary: "messages ended failed and wait in the failed list".to_owned(),
            counts: [("attempts".to_owned(), serde_json::json!(5))].into_iter().collect(),
            raised_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).single().expect("valid time"),
        }
    }

    /// Counts calls; fails when told to.
    struct Probe {
        calls: AtomicUsize,
        fail: bool,
    }

    impl Probe {
        fn new(fail: bool) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicUsize::new(0),
                fail,
            })
        }
    }

    #[async_trait]
    impl Alerter for Probe {
        async fn raise(&self, _: &Alert) -> Result<(), AlertError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                Err(AlertError(anyhow!("probe refused")))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn log_alerter_never_fails() {
        assert!(LogAlerter.raise(&alert()).await.is_ok());
    }

    #[tokio::test]
    async fn fanout_succeeds_when_one_channel_succeeds_and_tries_them_all() {
        let (bad, good) = (Probe::new(true), Probe::new(false));
        let fanout = FanoutAlerter::new(vec![bad.clone(), good.clone()]);
        assert!(fanout.raise(&alert()).await.is_ok());
        assert_eq!(bad.calls.load(Ordering::SeqCst), 1);
        assert_eq!(good.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn fanout_fails_when_every_channel_fails() {
        let fanout = FanoutAlerter::new(vec![Probe::new(true), Probe::new(true)]);
        let err = fanout.raise(&alert()).await.expect_err("all failed");
        let chain = format!("{:#}", err.0);
        assert!(chain.contains("all 2 alert channels failed"), "{chain}");
        assert!(chain.contains("probe refused"), "{chain}");
    }

    #[tokio::test]
    async fn fanout_without_channels_fails() {
        assert!(FanoutAlerter::new(Vec::new()).raise(&alert()).await.is_err());
    }
}
