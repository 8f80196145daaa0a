//! Human durations used in configuration and campaigns: `30s`, `15m`, `2h`, `1d` (and `500ms`).

use std::time::Duration;

/// A duration that is not a whole number followed by `ms`, `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("duration must look like 30s, 15m, 2h or 1d")]
pub struct InvalidDuration;

/// Parse `<n><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
///
/// # Errors
/// [`InvalidDuration`] for anything else, or a value that overflows.
pub fn parse_duration(raw: &str) -> Result<Duration, InvalidDuration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).ok_or(InvalidDuration)?;
    let (num, unit) = raw.split_at(split);
    let n: u64 = num.parse().map_err(|_| InvalidDuration)?;
    let secs_per = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(InvalidDuration),
    };
    n.checked_mul(secs_per).map(Duration::from_secs).ok_or(InvalidDuration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_unit_is_understood() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn junk_is_rejected() {
        for bad in ["", "s", "10", "10x", "-5s", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), Err(InvalidDuration), "{bad}");
        }
    }

    const UNITS: [(&str, u128); 5] = [
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ];

    /// What `raw` should mean, in milliseconds, by a separate reading of the contract: optional
    /// white space, ASCII digits, a unit, optional white space; the seconds must fit in a `u64`.
    fn expected_ms(raw: &str) -> Option<u128> {
        let t = raw.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let (num, unit) = t.split_at(digits);
        if num.is_empty() || num.len() > 30 {
            return None;
        }
        let n: u128 = num.parse().ok()?;
        let (_, per) = UNITS.iter().find(|(u, _)| *u == unit)?;
        let limit = if unit == "ms" {
            u128::from(u64::MAX)
        } else {
            u128::from(u64::MAX) * 1_000
        };
        Some(n * per).filter(|&ms| ms <= limit)
    }

    /// A duration as the shortest `<n><unit>` text that means exactly it (the test's formatter).
    fn format(d: Duration) -> String {
        let ms = d.as_millis();
        let (unit, per) = UNITS
            .iter()
            .rev()
            .find(|(_, per)| ms % per == 0 && ms > 0)
            .copied()
            .unwrap_or(("ms", 1));
        format!("{}{unit}", ms / per)
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics_and_matches_the_contract(raw in any::<String>()) {
            prop_assert_eq!(parse_duration(&raw).ok().map(|d| d.as_millis()), expected_ms(&raw));
        }

        #[test]
        fn duration_like_text_matches_the_contract(raw in "\\s{0,2}[+-]?[0-9]{0,22}(ms|s|m|h|d|x|S|M| s|)\\s{0,2}") {
            prop_assert_eq!(parse_duration(&raw).ok().map(|d| d.as_millis()), expected_ms(&raw));
        }

        #[test]
        fn a_number_and_a_unit_round_trip(n in 0u64..=u64::MAX / 86_400, unit in 0usize..UNITS.len(), pad in "\\s{0,2}") {
            let (name, per) = UNITS[unit];
            let parsed = parse_duration(&format!("{pad}{n}{name}{pad}"));
            prop_assert_eq!(parsed.map(|d| d.as_millis()), Ok(u128::from(n) * per));
        }

        #[test]
        fn a_whole_millisecond_duration_formats_and_parses_back(ms in prop_oneof![
            0u64..10_000_000,
            (0u64..1_000_000).prop_map(|n| n * 60_000),
            (0u64..1_000_000).prop_map(|n| n * 86_400_000),
            any::<u64>(),
        ]) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format(d)), Ok(d), "{}", format(d));
        }
    }
}
