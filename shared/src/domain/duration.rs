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
}
