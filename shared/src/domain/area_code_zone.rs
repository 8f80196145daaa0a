//! The recipient's time zone from the area code of a North American (NANP, `+1`) number, for
//! quiet hours when nothing better is known (the lead's own `timezone` wins; see issue 9, item 6).
//!
//! The data is libphonenumber's timezone map reduced to one zone per area code (NPA); the table
//! in `area_code_zone/table.rs` names its source commit and lists the few area codes that span
//! two zones and which one was taken (the one most of the area code's exchanges are in, e.g.
//! 907 → America/Anchorage rather than America/Adak). `area_code_zone/derive.py` rebuilds it.

mod table;

use super::PhoneNumber;
use chrono_tz::Tz;
use table::AREA_CODE_ZONES;

/// The IANA zone of a `+1` number's area code, or `None` for a number outside the NANP or an
/// area code the data does not place (non-geographic codes such as 800 or 500, unassigned ones).
///
/// One zone per area code: where an area code spans two zones the table holds the one most of
/// its exchanges are in (not the first libphonenumber lists, which is alphabetical), and the
/// exchange-level exceptions libphonenumber knows for a few area codes are not used.
pub fn zone_for_area_code(number: &PhoneNumber) -> Option<Tz> {
    let digits = number.as_str().strip_prefix("+1")?;
    let npa: u16 = digits.get(..3)?.parse().ok()?;
    AREA_CODE_ZONES
        .binary_search_by_key(&npa, |&(code, _)| code)
        .ok()
        .and_then(|i| AREA_CODE_ZONES.get(i))
        .map(|&(_, zone)| zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zone(e164: &str) -> Option<Tz> {
        PhoneNumber::parse_e164(e164).ok().and_then(|n| zone_for_area_code(&n))
    }

    #[test]
    fn new_york_212_is_new_york() {
        assert_eq!(zone("+12125550100"), Some(Tz::America__New_York));
    }

    #[test]
    fn san_francisco_415_is_los_angeles() {
        assert_eq!(zone("+14155550100"), Some(Tz::America__Los_Angeles));
    }

    #[test]
    fn hawaii_808_is_honolulu() {
        assert_eq!(zone("+18085550100"), Some(Tz::Pacific__Honolulu));
    }

    #[test]
    fn alaska_907_is_anchorage_not_the_first_listed_adak() {
        assert_eq!(zone("+19075550100"), Some(Tz::America__Anchorage));
    }

    #[test]
    fn other_area_codes_across_the_nanp() {
        let cases = [
            ("+13125550100", Tz::America__Chicago),
            ("+13035550100", Tz::America__Denver),
            ("+16025550100", Tz::America__Phoenix),
            ("+14165550100", Tz::America__Toronto),
            ("+16045550100", Tz::America__Vancouver),
            ("+17875550100", Tz::America__Puerto_Rico),
            ("+16715550100", Tz::Pacific__Guam),
            ("+13105550100", Tz::America__Los_Angeles),
            ("+12085550100", Tz::America__Denver),
            ("+17015550100", Tz::America__North_Dakota__Center),
            ("+17095550100", Tz::America__St_Johns),
        ];
        for (number, want) in cases {
            assert_eq!(zone(number), Some(want), "{number}");
        }
    }

    #[test]
    fn non_nanp_numbers_have_no_area_code_zone() {
        for number in ["+442079460958", "+4930901820", "+919876543210", "+74951234567"] {
            assert_eq!(zone(number), None, "{number}");
        }
    }

    #[test]
    fn non_geographic_and_unassigned_area_codes_have_no_zone() {
        for number in [
            "+18005550100",
            "+18885550100",
            "+15005550006",
            "+19005550100",
            "+12115550100",
        ] {
            assert_eq!(zone(number), None, "{number}");
        }
    }

    #[test]
    fn the_table_is_sorted_unique_and_holds_valid_area_codes() {
        assert!(AREA_CODE_ZONES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(AREA_CODE_ZONES.iter().all(|&(npa, _)| (200..=999).contains(&npa)));
        assert!(AREA_CODE_ZONES.len() > 400, "{}", AREA_CODE_ZONES.len());
    }

    proptest! {
        #[test]
        fn every_number_of_an_area_code_gets_its_tables_zone(index in 0..AREA_CODE_ZONES.len(), nxx in 200u16..=999, line in 0u16..=9999) {
            let (npa, want) = AREA_CODE_ZONES[index];
            prop_assert_eq!(zone(&format!("+1{npa}{nxx}{line:04}")), Some(want));
        }

        #[test]
        fn a_number_outside_the_nanp_never_gets_a_zone(digits in "[2-9][0-9]{7,13}") {
            prop_assert_eq!(zone(&format!("+{digits}")), None);
        }
    }
}
