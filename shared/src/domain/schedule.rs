//! Quiet hours: the local-time window in which a scheduled or campaign message must not be
//! sent. A message due inside the window is moved to the window's end, never dropped.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A daily window `[start, end)` in `timezone`; `start > end` means it spans midnight
/// (e.g. 21:00–08:00).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "QuietHoursWire", into = "QuietHoursWire")]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
    timezone: Tz,
}

/// The JSON shape: `{"start": "21:00", "end": "08:00", "timezone": "America/New_York"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuietHoursWire {
    /// `HH:MM`, local.
    pub start: String,
    /// `HH:MM`, local.
    pub end: String,
    /// IANA zone name.
    pub timezone: String,
}

/// Why quiet hours were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuietHoursError {
    /// `start`/`end` not `HH:MM`.
    #[error("quiet hours need start and end as HH:MM")]
    BadTime,
    /// Unknown IANA zone.
    #[error("unknown time zone (use an IANA name such as America/New_York)")]
    BadZone,
    /// `start == end` (an empty or all-day window).
    #[error("quiet hours start and end must differ")]
    Empty,
}

impl QuietHours {
    /// Build from `HH:MM` strings and an IANA zone name.
    ///
    /// # Errors
    /// [`QuietHoursError`] for a malformed time, an unknown zone, or an empty window.
    pub fn parse(start: &str, end: &str, timezone: &str) -> Result<Self, QuietHoursError> {
        let t = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| QuietHoursError::BadTime);
        let (start, end) = (t(start)?, t(end)?);
        if start == end {
            return Err(QuietHoursError::Empty);
        }
        let timezone: Tz = timezone.trim().parse().map_err(|_| QuietHoursError::BadZone)?;
        Ok(Self { start, end, timezone })
    }

    /// The zone.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    fn contains_local(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.contains_local(at.with_timezone(&self.timezone).time())
    }

    /// `at` if it is outside the window, else the first instant after the window ends.
    pub fn next_allowed(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        if !self.contains(at) {
            return at;
        }
        let local = at.with_timezone(&self.timezone);
        // The window ends today if `end` is still ahead of the local time, else tomorrow.
        let mut day: NaiveDate = local.date_naive();
        if local.time() >= self.end {
            day = day.succ_opt().unwrap_or(day);
        }
        self.resolve(day, self.end).unwrap_or(at + Duration::hours(1))
    }

    /// A local date and time as UTC, stepping over a DST gap (the first valid instant after it).
    fn resolve(&self, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let naive = day.and_time(time);
        for minutes in 0..=120 {
            match self.timezone.from_local_datetime(&(naive + Duration::minutes(minutes))) {
                LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
                LocalResult::None => continue,
            }
        }
        None
    }
}

impl TryFrom<QuietHoursWire> for QuietHours {
    type Error = QuietHoursError;
    fn try_from(w: QuietHoursWire) -> Result<Self, Self::Error> {
        Self::parse(&w.start, &w.end, &w.timezone)
    }
}

impl From<QuietHours> for QuietHoursWire {
    fn from(q: QuietHours) -> Self {
        Self {
            start: q.start.format("%H:%M").to_string(),
            end: q.end.format("%H:%M").to_string(),
            timezone: q.timezone.name().to_owned(),
        }
    }
}

/// The recipient's local calendar day of `at` (for the per-day limit).
pub fn local_day(at: DateTime<Utc>, timezone: Tz) -> NaiveDate {
    at.with_timezone(&timezone).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn ny() -> QuietHours {
        QuietHours::parse("21:00", "08:00", "America/New_York").expect("valid")
    }

    #[test]
    fn a_time_outside_the_window_is_kept() {
        let at = utc("2026-11-21T17:00:00Z"); // 12:00 in New York
        assert_eq!(ny().next_allowed(at), at);
    }

    #[test]
    fn late_evening_moves_to_eight_the_next_morning() {
        let at = utc("2026-11-22T03:30:00Z"); // 22:30 on the 21st in New York (EST, UTC-5)
        assert_eq!(ny().next_allowed(at), utc("2026-11-22T13:00:00Z"));
    }

    #[test]
    fn early_morning_moves_to_eight_the_same_morning() {
        let at = utc("2026-11-22T10:00:00Z"); // 05:00 in New York
        assert_eq!(ny().next_allowed(at), utc("2026-11-22T13:00:00Z"));
    }

    #[test]
    fn the_window_end_itself_is_allowed_and_the_start_is_not() {
        assert!(!ny().contains(utc("2026-11-22T13:00:00Z")));
        assert!(ny().contains(utc("2026-11-22T02:00:00Z")));
    }

    #[test]
    fn a_daytime_window_that_does_not_span_midnight_works() {
        let q = QuietHours::parse("12:00", "13:00", "Europe/Berlin").expect("valid");
        assert_eq!(q.next_allowed(utc("2026-11-21T11:30:00Z")), utc("2026-11-21T12:00:00Z"));
    }

    #[test]
    fn an_end_inside_a_dst_gap_moves_past_the_gap() {
        // 2027-03-14: New York clocks jump from 02:00 to 03:00.
        let q = QuietHours::parse("21:00", "02:30", "America/New_York").expect("valid");
        let at = utc("2027-03-14T06:00:00Z"); // 01:00 EST
        assert_eq!(q.next_allowed(at), utc("2027-03-14T07:00:00Z")); // 03:00 EDT
    }

    #[test]
    fn bad_windows_are_rejected() {
        assert_eq!(QuietHours::parse("9pm", "08:00", "UTC"), Err(QuietHoursError::BadTime));
        assert_eq!(
            QuietHours::parse("21:00", "08:00", "Mars/Olympus"),
            Err(QuietHoursError::BadZone)
        );
        assert_eq!(QuietHours::parse("08:00", "08:00", "UTC"), Err(QuietHoursError::Empty));
    }

    #[test]
    fn the_wire_form_round_trips() {
        let json = serde_json::to_string(&ny()).expect("json");
        assert_eq!(json, r#"{"start":"21:00","end":"08:00","timezone":"America/New_York"}"#);
        assert_eq!(serde_json::from_str::<QuietHours>(&json).expect("parse"), ny());
    }
}
