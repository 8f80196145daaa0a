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

    /// `at` if it is outside the window, else the first instant after it at which the window has
    /// ended.
    ///
    /// Around a clock change that is not always the next `end` on the wall clock: when the clocks
    /// go back, `end` happens twice (the first occurrence may be before `at`) and the clocks can
    /// fall back out of the window before reaching it; when they go forward over `end`, the first
    /// instant after the gap may already be inside the window again (then that day has no allowed
    /// time, and the next day's `end` is the answer).
    pub fn next_allowed(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let mut t = at;
        // Each step leaves the window or crosses a clock change; a few always suffice (a change
        // lasts at least weeks, and after one the next `end` on the wall clock leaves the window).
        for _ in 0..8 {
            if !self.contains(t) {
                return t;
            }
            let end = self.next_end_after(t);
            t = first_offset_change(self.timezone, t, end).unwrap_or(end);
        }
        t
    }

    /// The first instant after `t` whose wall-clock time is `end` (or, when `end` falls in a DST gap,
    /// the first instant after the gap).
    fn next_end_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let mut day = t
            .with_timezone(&self.timezone)
            .date_naive()
            .pred_opt()
            .unwrap_or(NaiveDate::MIN);
        // Yesterday to three days on: a zone can skip a whole local day (Samoa, 30 December 2011).
        for _ in 0..5 {
            if let Some(found) = self.resolve_all(day, self.end).into_iter().find(|&c| c > t) {
                return found;
            }
            day = day.succ_opt().unwrap_or(day);
        }
        t + Duration::hours(1)
    }

    /// Every instant a local date and time names, in order: two when the clocks go back over it,
    /// none when they jump over it (then the first valid instant after the gap), none for a day the
    /// zone skipped.
    fn resolve_all(&self, day: NaiveDate, time: NaiveTime) -> Vec<DateTime<Utc>> {
        let naive = day.and_time(time);
        for minutes in 0..=120 {
            match self.timezone.from_local_datetime(&(naive + Duration::minutes(minutes))) {
                LocalResult::Single(t) => return vec![t.with_timezone(&Utc)],
                LocalResult::Ambiguous(first, second) => {
                    return vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
                }
                LocalResult::None => continue,
            }
        }
        Vec::new()
    }
}

/// The first instant in `(from, to]` at which `tz`'s UTC offset differs from its offset at `from`
/// (to the second: tzdb changes happen on whole seconds), if there is one. Two changes that cancel
/// out within `(from, to]` (at most a day and a few hours) are not seen; no zone has them.
fn first_offset_change(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Offset;
    let offset =
        |secs: i64| DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&tz).offset().fix().local_minus_utc());
    let (mut lo, mut hi) = (from.timestamp(), to.timestamp());
    let before = offset(lo)?;
    if offset(hi)? == before {
        return None;
    }
    // Invariant: offset(lo) == before, offset(hi) != before.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset(mid)? == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
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
    fn an_end_the_clocks_repeat_is_taken_from_the_pass_the_instant_is_in() {
        // Found by `next_allowed_is_never_earlier_than_the_input_nor_inside_the_window`: on
        // 2015-11-01 New York goes from 01:59:59 EDT back to 01:00 EST. At 01:00 EST (second pass)
        // the window 01:00-01:45 ends at 01:45 EST; the first 01:45 (EDT) was 15 minutes earlier
        // than the input, which would have sent at once, inside the quiet hours.
        let q = QuietHours::parse("01:00", "01:45", "America/New_York").expect("valid");
        let at = utc("2015-11-01T06:00:00Z"); // 01:00 EST
        assert!(q.contains(at));
        assert_eq!(q.next_allowed(at), utc("2015-11-01T06:45:00Z")); // 01:45 EST
                                                                     // In the first pass the first 01:45 is the answer.
        assert_eq!(q.next_allowed(utc("2015-11-01T05:10:00Z")), utc("2015-11-01T05:45:00Z"));
    }

    #[test]
    fn falling_back_out_of_the_window_ends_it_there() {
        // Found by `next_allowed_skips_no_allowed_instant`: Dublin 2012-10-28, 02:00 IST falls back
        // to 01:00 GMT. At 01:59:59 IST the window 01:01-01:00 holds it, and one second later the
        // clock reads 01:00 (allowed); it used to wait a whole day for the next 01:00.
        let q = QuietHours::parse("01:01", "01:00", "Europe/Dublin").expect("valid");
        let at = utc("2012-10-28T00:59:59Z");
        assert!(q.contains(at));
        assert_eq!(q.next_allowed(at), utc("2012-10-28T01:00:00Z"));
        // Clocks falling back out of a window ends it at the change, before `end`.
        let q = QuietHours::parse("01:30", "02:30", "America/New_York").expect("valid");
        let at = utc("2015-11-01T05:45:00Z"); // 01:45 EDT
        assert_eq!(q.next_allowed(at), utc("2015-11-01T06:00:00Z")); // 01:00 EST
    }

    #[test]
    fn a_day_whose_allowed_time_the_clocks_skip_moves_to_the_next_day() {
        // 2027-03-14 New York jumps from 02:00 to 03:00: the allowed 02:30-02:45 does not exist that
        // day, and the first instant after the gap (03:00) is inside 02:45-02:30 again.
        let q = QuietHours::parse("02:45", "02:30", "America/New_York").expect("valid");
        let at = utc("2027-03-14T06:00:00Z"); // 01:00 EST
        let next = q.next_allowed(at);
        assert!(!q.contains(next));
        assert_eq!(next, utc("2027-03-15T06:30:00Z")); // 02:30 EDT the next day
    }

    #[test]
    fn a_day_the_zone_skipped_is_stepped_over() {
        // Samoa skipped 2011-12-30 (23:59:59 on the 29th at -10 was followed by 00:00 on the 31st at +14).
        let q = QuietHours::parse("21:00", "08:00", "Pacific/Apia").expect("valid");
        let at = utc("2011-12-30T09:30:00Z"); // 23:30 on the 29th, local
        assert_eq!(q.next_allowed(at), utc("2011-12-30T18:00:00Z")); // 08:00 on the 31st
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

    // ---- quiet-hour properties, aimed at DST transitions ----

    /// Zones with every kind of clock change: US and UK (one hour), Lord Howe (half an hour),
    /// Dublin (negative DST in tzdb), Chatham (+12:45/+13:45), St John's (-3:30), Apia (skipped
    /// 30 December 2011), Kolkata and UTC (none).
    const ZONES: [Tz; 9] = [
        chrono_tz::America::New_York,
        chrono_tz::Europe::London,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Europe::Dublin,
        chrono_tz::Pacific::Chatham,
        chrono_tz::America::St_Johns,
        chrono_tz::Pacific::Apia,
        chrono_tz::Asia::Kolkata,
        chrono_tz::UTC,
    ];

    fn offset_secs(tz: Tz, t: DateTime<Utc>) -> i32 {
        use chrono::Offset;
        t.with_timezone(&tz).offset().fix().local_minus_utc()
    }

    /// Every UTC-offset change of `tz` from 2010 to 2030, to the second (hourly scan, then bisect).
    fn transitions(tz: Tz) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = utc("2010-01-01T00:00:00Z");
        let stop = utc("2030-01-01T00:00:00Z");
        while t < stop {
            let next = t + Duration::hours(1);
            if offset_secs(tz, t) != offset_secs(tz, next) {
                let (mut lo, mut hi) = (t, next);
                while hi - lo > Duration::seconds(1) {
                    let mid = lo + (hi - lo) / 2;
                    if offset_secs(tz, mid) == offset_secs(tz, lo) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                out.push(hi);
            }
            t = next;
        }
        out
    }

    /// (zone, transition) pairs, computed once.
    fn all_transitions() -> &'static [(Tz, DateTime<Utc>)] {
        static CELL: std::sync::OnceLock<Vec<(Tz, DateTime<Utc>)>> = std::sync::OnceLock::new();
        CELL.get_or_init(|| {
            ZONES
                .iter()
                .flat_map(|&tz| transitions(tz).into_iter().map(move |t| (tz, t)))
                .collect()
        })
    }

    fn hh_mm(minutes: u32) -> String {
        format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
    }

    /// A window and an instant: either anywhere (any zone, 2010-2030), or within three hours of a
    /// clock change with the window's start and end within three hours of the change's local time.
    fn window_and_instant() -> impl Strategy<Value = (QuietHours, DateTime<Utc>)> {
        let anywhere = (
            prop::sample::select(ZONES.to_vec()),
            0u32..1440,
            0u32..1440,
            1_262_304_000i64..1_893_456_000,
            0u32..1_000_000_000,
        )
            .prop_map(|(tz, start, end, secs, nanos)| {
                let at = DateTime::from_timestamp(secs, nanos).unwrap_or_default();
                (tz, start, end, at)
            });
        let near_a_change = (
            0..all_transitions().len(),
            -180i64..=180,
            -180i64..=180,
            -10_800i64..=10_800,
        )
            .prop_map(|(i, ds, de, dt)| {
                let (tz, change) = all_transitions()[i];
                let local = change.with_timezone(&tz).naive_local();
                let minute_of_day = |d: i64| {
                    let t = (local + Duration::minutes(d)).time();
                    u32::try_from(t.signed_duration_since(NaiveTime::MIN).num_minutes()).unwrap_or(0)
                };
                (tz, minute_of_day(ds), minute_of_day(de), change + Duration::seconds(dt))
            });
        prop_oneof![anywhere, near_a_change].prop_filter_map("start == end", |(tz, start, end, at)| {
            QuietHours::parse(&hh_mm(start), &hh_mm(end), tz.name())
                .ok()
                .map(|q| (q, at))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn next_allowed_is_never_earlier_than_the_input_nor_inside_the_window((q, at) in window_and_instant()) {
            let next = q.next_allowed(at);
            prop_assert!(next >= at, "{:?} at {} gave the earlier {}", q, at, next);
            prop_assert!(!q.contains(next), "{:?} at {} gave {} inside the window", q, at, next);
            if !q.contains(at) {
                prop_assert_eq!(next, at);
            }
        }

        #[test]
        fn next_allowed_skips_no_allowed_instant((q, at) in window_and_instant()) {
            // Offsets are whole minutes, so whether an instant is inside changes only on UTC minute
            // boundaries: checking `at` and each minute after it up to `next` checks them all.
            let next = q.next_allowed(at);
            prop_assert!(next - at <= Duration::hours(50), "{:?} at {} waited until {}", q, at, next);
            let first_minute = DateTime::from_timestamp(at.timestamp() - at.timestamp().rem_euclid(60) + 60, 0).unwrap_or_default();
            let mut t = first_minute;
            while t < next {
                prop_assert!(q.contains(t), "{:?} at {}: {} is allowed but next_allowed waited until {}", q, at, t, next);
                t += Duration::minutes(1);
            }
        }

        #[test]
        fn quiet_hours_parse_never_panics(
            start in prop_oneof!["\\PC{0,8}", "[0-2][0-9]:[0-6][0-9]"],
            end in prop_oneof!["[0-9: ]{0,6}", "[0-2][0-9]:[0-6][0-9]"],
            zone in prop_oneof![
                "\\PC{0,24}",
                prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec()).prop_map(|z| format!(" {} ", z.name())),
            ],
        ) {
            if let Ok(q) = QuietHours::parse(&start, &end, &zone) {
                prop_assert_eq!(q.timezone().name(), zone.trim());
                let wire = QuietHoursWire::from(q.clone());
                prop_assert_eq!(QuietHours::try_from(wire), Ok(q));
            }
        }

        #[test]
        fn every_valid_window_round_trips_through_json((q, _at) in window_and_instant()) {
            let json = serde_json::to_string(&q).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(serde_json::from_str::<QuietHours>(&json).ok(), Some(q));
        }

        #[test]
        fn parse_instant_never_panics_on_arbitrary_text(raw in any::<String>()) {
            if let Ok(at) = parse_instant(&raw) {
                prop_assert!(at.timestamp_subsec_nanos() < 1_000_000_000);
                prop_assert_eq!(parse_instant(&at.to_rfc3339()), Ok(at));
            }
        }
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
