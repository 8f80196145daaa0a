//! The one way the API writes a time: RFC 3339 in UTC, milliseconds, a `Z`
//! (`2026-11-22T15:00:00.000Z`). Message resources, batches and health all use it.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 UTC with millisecond precision and a `Z`.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_written_in_utc_with_milliseconds_and_a_z() {
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 15, 0, 0).single().expect("valid");
        assert_eq!(timestamp(&t), "2026-11-22T15:00:00.000Z");
        let t = t + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(timestamp(&t), "2026-11-22T15:00:00.123Z");
    }
}
