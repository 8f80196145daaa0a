//! Logging setup: JSON lines in Lambda (CloudWatch), readable text locally. Levels from `RUST_LOG`
//! as comma-separated `level` and `target=level` directives (`info`, `warn,smsrelay=debug`): a
//! `Targets` filter, which needs no regex engine in every Lambda binary (an `EnvFilter` brings
//! one, about 0.4 MB); an unreadable `RUST_LOG` logs at `info` and says so.
//! Each JSON line carries `timestamp` (RFC 3339, UTC) and `level` (`INFO`, `WARN`…): with the
//! function's `LoggingConfig: {LogFormat: JSON}`, Lambda filters by level only when both are there.
//! Text logs are coloured only when stdout is a terminal (and `NO_COLOR` is unset), so a log
//! redirected to a file or a pipe carries no ANSI escape codes.

use std::io::IsTerminal;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// The filter `RUST_LOG` names (`None` when unset or empty), or `info`; `Err` carries the
/// directives that could not be read, to be reported once logging is up.
fn filter_from(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let info = || Targets::new().with_default(tracing::Level::INFO);
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => (info(), None),
        Some(directives) => match directives.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(_) => (info(), Some(directives.to_owned())),
        },
    }
}

/// Install the global subscriber once; later calls are no-ops.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, unreadable) = filter_from(rust_log.as_deref());
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let result = if in_lambda {
        tracing::subscriber::set_global_default(json_subscriber(filter, std::io::stdout))
    } else {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let colour = use_colour(std::io::stdout().is_terminal(), no_color);
        tracing::subscriber::set_global_default(text_subscriber(filter, std::io::stdout, colour))
    };
    if result.is_err() {
        tracing::debug!("telemetry already initialised");
    } else if let Some(directives) = unreadable {
        tracing::warn!(rust_log = %directives, "RUST_LOG is not a list of level and target=level directives; logging at info");
    }
}

/// Whether text logs get ANSI colours: only on a terminal, and never when `NO_COLOR` is set.
fn use_colour(stdout_is_terminal: bool, no_color: bool) -> bool {
    stdout_is_terminal && !no_color
}

/// The Lambda subscriber: one JSON object per line, with an RFC 3339 `timestamp`.
fn json_subscriber<W>(filter: Targets, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer)
        .json()
        .finish()
        .with(filter)
}

/// The local text subscriber writing to `writer`, with ANSI colours only if `colour`.
fn text_subscriber<W>(filter: Targets, writer: W, colour: bool) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_target(false)
        .with_ansi(colour)
        .with_writer(writer)
        .finish()
        .with(filter)
}

/// A log writer into a shared buffer (not a terminal), for tests that read what was logged.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Buffer {
    /// Everything written so far, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(colour: bool) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = text_subscriber(filter_from(None).0, move || writer.clone(), colour);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(message_id = "msg_1", "something happened");
        });
        buffer.text()
    }

    #[test]
    fn lambda_log_lines_are_json_with_a_level_and_an_rfc3339_timestamp() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let before = chrono::Utc::now();
        tracing::subscriber::with_default(json_subscriber(filter_from(None).0, move || writer.clone()), || {
            tracing::warn!(message_id = "msg_1", "something happened");
            tracing::debug!("below the filter");
        });
        let text = buffer.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["fields"]["message"], "something happened", "{line}");
        let stamp = line["timestamp"].as_str().expect("a timestamp");
        let at = chrono::DateTime::parse_from_rfc3339(stamp).expect("RFC 3339");
        // Not a fixed string: the time the line was written.
        assert!(
            (at.with_timezone(&chrono::Utc) - before).num_seconds().abs() < 60,
            "{stamp}"
        );
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    /// What `RUST_LOG` lets through, read back through a subscriber (not the filter's own view).
    fn passes(rust_log: Option<&str>, target_debug: bool) -> (bool, bool, Option<String>) {
        let (filter, unreadable) = filter_from(rust_log);
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing::subscriber::with_default(text_subscriber(filter, move || writer.clone(), false), || {
            if target_debug {
                tracing::debug!(target: "smsrelay::app", "debug line");
            } else {
                tracing::debug!(target: "other", "debug line");
            }
            tracing::info!(target: "other", "info line");
        });
        let text = buffer.text();
        (text.contains("debug line"), text.contains("info line"), unreadable)
    }

    #[test]
    fn rust_log_sets_levels_per_target_and_an_unreadable_one_falls_back_to_info() {
        assert_eq!(passes(None, true), (false, true, None));
        assert_eq!(passes(Some("  "), true), (false, true, None));
        assert_eq!(passes(Some("warn"), true), (false, false, None));
        assert_eq!(passes(Some("info,smsrelay=debug"), true), (true, true, None));
        assert_eq!(passes(Some("info,smsrelay=debug"), false), (false, true, None));
        assert_eq!(passes(Some("debug"), false), (true, true, None));
        assert_eq!(
            passes(Some("smsrelay=loud"), true),
            (false, true, Some("smsrelay=loud".to_owned()))
        );
    }

    #[test]
    fn logs_to_something_that_is_not_a_terminal_carry_no_escape_codes() {
        let text = logged(use_colour(false, false));
        assert!(
            text.contains("something happened") && text.contains("msg_1"),
            "{text:?}"
        );
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn logs_to_a_terminal_are_coloured_unless_no_color_is_set() {
        assert!(use_colour(true, false));
        assert!(!use_colour(true, true));
        assert!(!use_colour(false, true));
        assert!(logged(true).contains('\u{1b}'));
    }
}
