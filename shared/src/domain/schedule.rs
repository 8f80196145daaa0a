//! Quiet hours: the local-time window in which a message must not be sent. Which window applies
//! is the caller's: the message's own `quiet_hours` (`app::send`, `app::fire_scheduled`), or for
//! campaign traffic the default window in the recipient's zone (`app::quiet`). A message due
//! inside the window is moved to the window's end, never dropped.

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
    /// `start`/`end` not `HH:MM` (exactly two digits each, 00:00 to 23:59).
    #[error("quiet hours need start and end as HH:MM (two digits each, e.g. 08:00)")]
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
    /// [`QuietHoursError`] for a malformed time (`8:00`, `08:0`, `24:00`), an unknown zone, or an
    /// empty window.
    pub fn parse(start: &str, end: &str, timezone: &str) -> Result<Self, QuietHoursError> {
        let (start, end) = (parse_hh_mm(start)?, parse_hh_mm(end)?);
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

    /// The same daily window in `timezone` (e.g. the default window placed in a recipient's zone).
    #[must_use]
    pub fn in_zone(&self, timezone: Tz) -> Self {
        Self {
            timezone,
            ..self.clone()
        }
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

/// A local time written exactly `HH:MM` (surrounding white space allowed): two ASCII digits,
/// a colon, two ASCII digits. chrono's `%H:%M` alone also takes `8:00`.
fn parse_hh_mm(raw: &str) -> Result<NaiveTime, QuietHoursError> {
    let text = raw.trim();
    match text.as_bytes() {
        [h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) => {
            NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| QuietHoursError::BadTime)
        }
        _ => Err(QuietHoursError::BadTime),
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

/// A time given by a caller (`send_at`) that is not an RFC 3339 instant with seconds 00 to 59.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 time such as 2026-11-22T15:00:00Z")]
pub struct InvalidInstant;

/// Read a caller's RFC 3339 time (any offset) as UTC.
///
/// chrono accepts a leap second (`…T23:59:60Z`) and keeps it as a nanosecond count of a
/// second or more, which later formats back as `:60` and compares oddly; callers never mean
/// one, so second 60 is refused here.
///
/// # Errors
/// [`InvalidInstant`] for anything chrono's RFC 3339 reader refuses, and for second 60.
pub fn parse_instant(raw: &str) -> Result<DateTime<Utc>, InvalidInstant> {
    let at = DateTime::parse_from_rfc3339(raw).map_err(|_| InvalidInstant)?;
    if at.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Err(InvalidInstant);
    }
    Ok(at.with_timezone(&Utc))
}

/// The recipient's local calendar day of `at` (for the per-day limit).
pub fn local_day(at: DateTime<Utc>, timezone: Tz) -> NaiveDate {
    at.with_timezone(&timezone).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn the_same_window_in_another_zone_keeps_its_local_times() {
        let hi = ny().in_zone(chrono_tz::Pacific::Honolulu);
        assert_eq!(hi.timezone(), chrono_tz::Pacific::Honolulu);
        // 04:00 in Honolulu (UTC-10) is 09:00 in New York: only Hawaii's night holds it.
        let at = utc("2026-11-22T14:00:00Z");
        assert!(hi.contains(at) && !ny().contains(at));
        assert_eq!(hi.next_allowed(at), utc("2026-11-22T18:00:00Z"));
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
    fn an_rfc3339_instant_in_any_offset_reads_as_utc() {
        assert_eq!(parse_instant("2026-11-22T15:00:00Z"), Ok(utc("2026-11-22T15:00:00Z")));
        assert_eq!(
            parse_instant("2026-11-22T10:00:00-05:00"),
            Ok(utc("2026-11-22T15:00:00Z"))
        );
        assert_eq!(
            parse_instant("2026-11-22T15:00:59.999Z"),
            Ok(utc("2026-11-22T15:00:59.999Z"))
        );
    }

    #[test]
    fn second_sixty_is_rejected() {
        // chrono itself reads it (as a leap second): the check is ours.
        assert!(DateTime::parse_from_rfc3339("2026-12-31T23:59:60Z").is_ok());
        for raw in [
            "2026-12-31T23:59:60Z",
            "2026-11-22T15:00:60Z",
            "2026-11-22T10:00:60.5-05:00",
        ] {
            assert_eq!(parse_instant(raw), Err(InvalidInstant), "{raw}");
        }
    }

    #[test]
    fn malformed_instants_are_rejected() {
        for raw in [
            "",
            "tomorrow",
            "2026-11-22",
            "2026-11-22T15:00Z",
            "2026-11-22T15:00:61Z",
            "2026-02-30T00:00:00Z",
        ] {
            assert_eq!(parse_instant(raw), Err(InvalidInstant), "{raw}");
        }
    }

    #[test]
    fn times_need_exactly_two_digits_for_hours_and_minutes() {
        for bad in [
            "8:00",
            "08:0",
            "008:00",
            "08:000",
            "8",
            "0800",
            "08-00",
            "24:00",
            "23:60",
            "+8:00",
            " 8:00",
            "０８:００",
        ] {
            assert_eq!(
                QuietHours::parse(bad, "21:00", "UTC"),
                Err(QuietHoursError::BadTime),
                "{bad:?}"
            );
            assert_eq!(
                QuietHours::parse("21:00", bad, "UTC"),
                Err(QuietHoursError::BadTime),
                "{bad:?}"
            );
        }
        assert!(QuietHours::parse("00:00", "23:59", "UTC").is_ok());
        assert!(QuietHours::parse(" 08:00 ", "21:00", "UTC").is_ok());
    }

    #[test]
    fn the_wire_form_round_trips() {
        let json = serde_json::to_string(&ny()).expect("json");
        assert_eq!(json, r#"{"start":"21:00","end":"08:00","timezone":"America/New_York"}"#);
        assert_eq!(serde_json::from_str::<QuietHours>(&json).expect("parse"), ny());
    }

    proptest! {
        #[test]
        fn an_accepted_instant_has_seconds_below_sixty_and_formats_back_to_itself(
            y in 2000i32..2100, mo in 1u32..=12, d in 1u32..=28, h in 0u32..24, mi in 0u32..60, s in 0u32..=60,
            frac in "(\\.[0-9]{1,9})?", offset in "Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]",
        ) {
            let raw = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{offset}");
            let parsed = parse_instant(&raw);
            prop_assert_eq!(parsed.is_ok(), s < 60, "{}", raw);
            if let Ok(at) = parsed {
                prop_assert!(at.timestamp_subsec_nanos() < 1_000_000_000);
                prop_assert_eq!(parse_instant(&at.to_rfc3339()), Ok(at));
            }
        }

        #[test]
        fn parse_instant_never_panics(raw in "\\PC{0,40}") {
            if let Ok(at) = parse_instant(&raw) {
                prop_assert!(at.timestamp_subsec_nanos() < 1_000_000_000);
            }
        }

        #[test]
        fn an_accepted_time_is_written_back_exactly_as_given(raw in "[0-9: ]{0,7}") {
            if let Ok(q) = QuietHours::parse(&raw, "12:34", "UTC") {
                prop_assert_eq!(QuietHoursWire::from(q).start, raw.trim());
            }
        }

        #[test]
        fn every_two_digit_time_of_day_is_accepted(h in 0u32..24, m in 0u32..60) {
            let text = format!("{h:02}:{m:02}");
            let q = QuietHours::parse(&text, if text == "12:00" { "13:00" } else { "12:00" }, "UTC");
            prop_assert_eq!(q.map(|q| QuietHoursWire::from(q).start), Ok(text));
        }

        #[test]
        fn a_one_digit_hour_or_minute_is_rejected(h in 0u32..24, m in 0u32..60) {
            let well_formed = |s: &str| QuietHours::parse(s, "12:00", "UTC") != Err(QuietHoursError::BadTime);
            prop_assert_eq!(well_formed(&format!("{h}:{m:02}")), h >= 10);
            prop_assert_eq!(well_formed(&format!("{h:02}:{m}")), m >= 10);
        }
    }
}
