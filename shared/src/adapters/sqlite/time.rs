//! The one SQLite time format: fixed-width RFC 3339 UTC text, so text order is time order and
//! every table compares times the same way. [`fixed`] keeps milliseconds (index columns, leases,
//! visibility); [`exact`] keeps every fractional digit for values that must read back to the
//! same instant (a stored event time, a creation time). Both read back with [`parse`].

use chrono::{DateTime, SecondsFormat, Utc};

/// `2026-11-21T19:50:32.123Z`: always 24 characters, so it sorts as time sorts.
pub(crate) fn fixed(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// RFC 3339 UTC with as many fractional digits as needed (reads back to the same instant).
pub(crate) fn exact(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Read either format back.
pub(crate) fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone as _};
    use proptest::prelude::*;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("a valid time")
    }

    #[test]
    fn fixed_times_are_fixed_width_and_sort_as_time() {
        assert_eq!(fixed(&start()), "2026-03-01T12:00:00.000Z");
        let a = fixed(&(start() + TimeDelta::milliseconds(999)));
        let b = fixed(&(start() + TimeDelta::seconds(10)));
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }

    #[test]
    fn exact_times_read_back_to_the_same_instant() {
        let t = start() + TimeDelta::nanoseconds(123_456_789);
        assert_eq!(parse(&exact(&t)), Some(t));
        assert_eq!(parse(&fixed(&start())), Some(start()));
    }

    /// Instants from year 1 to 9999 (four-digit years), to the nanosecond.
    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        (-62_135_596_800i64..253_402_300_799, 0u32..1_000_000_000)
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap_or_default())
    }

    proptest! {
        #[test]
        fn exact_reads_back_to_the_same_instant(t in any_instant()) {
            prop_assert_eq!(parse(&exact(&t)), Some(t));
        }

        #[test]
        fn fixed_is_24_characters_reads_back_to_the_millisecond_and_sorts_as_time(a in any_instant(), b in any_instant()) {
            let (fa, fb) = (fixed(&a), fixed(&b));
            prop_assert_eq!(fa.len(), 24);
            let ms = |t: DateTime<Utc>| t.timestamp_millis();
            prop_assert_eq!(parse(&fa).map(ms), Some(ms(a)));
            prop_assert_eq!(fa.cmp(&fb), ms(a).cmp(&ms(b)));
        }

        #[test]
        fn parse_never_panics(raw in prop_oneof![any::<String>(), "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,20}(Z|[+-][0-9]{2}:[0-9]{2})"]) {
            if let Some(t) = parse(&raw) {
                prop_assert_eq!(parse(&exact(&t)), Some(t));
            }
        }
    }
}
