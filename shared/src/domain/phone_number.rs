//! E.164 phone numbers: reading what people type (national or international, with the usual
//! separators), validating country calling codes and North American numbers, and masking for logs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Region used to read national-format numbers (e.g. `(415) 555-0177` in `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// ISO 3166 alpha-2 code, upper case ASCII.
    code: [u8; 2],
    /// Country calling code national numbers get.
    calling_code: u16,
}

/// The regions [`Region::parse`] knows, with their country calling codes.
const REGIONS: [Region; 14] = [
    Region::US,
    Region {
        code: *b"CA",
        calling_code: 1,
    },
    Region {
        code: *b"GB",
        calling_code: 44,
    },
    Region {
        code: *b"IE",
        calling_code: 353,
    },
    Region {
        code: *b"DE",
        calling_code: 49,
    },
    Region {
        code: *b"FR",
        calling_code: 33,
    },
    Region {
        code: *b"ES",
        calling_code: 34,
    },
    Region {
        code: *b"IT",
        calling_code: 39,
    },
    Region {
        code: *b"NL",
        calling_code: 31,
    },
    Region {
        code: *b"AU",
        calling_code: 61,
    },
    Region {
        code: *b"NZ",
        calling_code: 64,
    },
    Region {
        code: *b"MX",
        calling_code: 52,
    },
    Region {
        code: *b"BR",
        calling_code: 55,
    },
    Region {
        code: *b"IN",
        calling_code: 91,
    },
];

impl Region {
    /// United States (NANP, +1).
    pub const US: Region = Region {
        code: *b"US",
        calling_code: 1,
    };

    /// Parse an ISO 3166 alpha-2 region code this crate knows (case-insensitive).
    ///
    /// # Errors
    /// `PhoneNumberError::UnknownRegion` for a region it does not know.
    pub fn parse(code: &str) -> Result<Region, PhoneNumberError> {
        let code = code.trim().as_bytes();
        REGIONS
            .iter()
            .find(|r| r.code.eq_ignore_ascii_case(code))
            .copied()
            .ok_or(PhoneNumberError::UnknownRegion)
    }

    /// The country calling code (1 for NANP).
    pub fn calling_code(&self) -> u16 {
        self.calling_code
    }

    /// The two-letter code.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("US")
    }

    /// Whether national numbers here follow the North American Numbering Plan.
    fn is_nanp(self) -> bool {
        self.calling_code == 1
    }

    /// Turn the digits of a national number into international digits (no `+`).
    fn internationalise(self, national: &str) -> Result<String, PhoneNumberError> {
        if self.is_nanp() {
            return match national.len() {
                10 => Ok(format!("1{national}")),
                11 if national.starts_with('1') => Ok(national.to_owned()),
                n if n < 10 => Err(PhoneNumberError::TooShort),
                _ => Err(PhoneNumberError::TooLong),
            };
        }
        let significant = match &self.code {
            // No trunk prefix: the leading 0 of Italian landlines is part of the number, and
            // Spanish numbers never start with 0.
            b"IT" | b"ES" => national,
            // No trunk prefix since 2019, but people still type the old `01` (landline) and
            // `044`/`045` (mobile) long-distance prefixes in front of the 10-digit number.
            b"MX" => match national.len() {
                12 => national.strip_prefix("01").unwrap_or(national),
                13 => national
                    .strip_prefix("044")
                    .or_else(|| national.strip_prefix("045"))
                    .unwrap_or(national),
                _ => national,
            },
            // Everyone else dials a single trunk `0` in front of national numbers.
            _ => national.strip_prefix('0').unwrap_or(national),
        };
        Ok(format!("{}{significant}", self.calling_code))
    }
}

/// Why a phone number was rejected. Never carries the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    /// Nothing given.
    #[error("phone number is empty")]
    Empty,
    /// Letters or symbols other than spaces, dashes, dots, parentheses and a leading `+`.
    #[error("phone number contains characters that are not digits")]
    InvalidCharacters,
    /// Starts (after an optional `+`) with `-` or `.`: a sign or stray separator, not part of a number.
    #[error("phone number must start with a digit, `+` or `(`")]
    LeadingSeparator,
    /// Too few digits.
    #[error("phone number is too short")]
    TooShort,
    /// More than 15 digits.
    #[error("phone number is too long")]
    TooLong,
    /// Country calling code starts with 0 or is unknown.
    #[error("phone number has no valid country code")]
    InvalidCountryCode,
    /// A NANP number whose area code or exchange starts with 0 or 1.
    #[error("not a valid North American number")]
    InvalidNanp,
    /// The default region is not one this crate knows.
    #[error("unknown region")]
    UnknownRegion,
}

/// Fewest digits after the `+` this crate accepts.
const MIN_DIGITS: usize = 8;
/// Most digits after the `+` E.164 allows.
const MAX_DIGITS: usize = 15;

/// Assigned two-digit country calling codes, as inclusive ranges (ITU-T E.164 list).
const TWO_DIGIT_CODES: &[(u16, u16)] = &[
    (20, 20),
    (27, 27),
    (30, 34),
    (36, 36),
    (39, 41),
    (43, 49),
    (51, 58),
    (60, 66),
    (81, 82),
    (84, 84),
    (86, 86),
    (90, 95),
    (98, 98),
];

/// Assigned three-digit country calling codes, as inclusive ranges (ITU-T E.164 list).
///
/// Includes the non-geographic codes that reach phones able to take SMS (870 Inmarsat,
/// 881 satellite, 882/883 international networks); leaves out 800/808 (freephone and shared
/// cost), 979 (premium rate) and withdrawn codes (259, 384, 388, 671, 684, 878, 888, 969, 991).
const THREE_DIGIT_CODES: &[(u16, u16)] = &[
    (211, 213),
    (216, 216),
    (218, 218),
    (220, 258),
    (260, 269),
    (290, 291),
    (297, 299),
    (350, 359),
    (370, 383),
    (385, 387),
    (389, 389),
    (420, 421),
    (423, 423),
    (500, 509),
    (590, 599),
    (670, 670),
    (672, 683),
    (685, 692),
    (850, 850),
    (852, 853),
    (855, 856),
    (870, 870),
    (880, 883),
    (886, 886),
    (960, 968),
    (970, 977),
    (992, 998),
];

/// Whether `code` falls in one of the inclusive `ranges`.
fn in_ranges(ranges: &[(u16, u16)], code: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
}

/// Value of a run of ASCII digits (at most 3, so it always fits).
fn digits_value(digits: &[u8]) -> u16 {
    digits.iter().fold(0, |acc, d| acc * 10 + u16::from(d - b'0'))
}

/// Length of the assigned country calling code `digits` starts with, if any.
fn country_code_len(digits: &[u8]) -> Option<usize> {
    match digits.first()? {
        b'1' | b'7' => return Some(1),
        b'0' => return None,
        _ => {}
    }
    if in_ranges(TWO_DIGIT_CODES, digits_value(digits.get(..2)?)) {
        return Some(2);
    }
    if in_ranges(THREE_DIGIT_CODES, digits_value(digits.get(..3)?)) {
        return Some(3);
    }
    None
}

/// Check the digits of an international number (everything after the `+`, ASCII digits only).
fn validate_international(digits: &str) -> Result<(), PhoneNumberError> {
    let bytes = digits.as_bytes();
    if bytes.first() == Some(&b'0') {
        return Err(PhoneNumberError::InvalidCountryCode);
    }
    if bytes.len() < MIN_DIGITS {
        return Err(PhoneNumberError::TooShort);
    }
    if bytes.len() > MAX_DIGITS {
        return Err(PhoneNumberError::TooLong);
    }
    country_code_len(bytes).ok_or(PhoneNumberError::InvalidCountryCode)?;
    if let Some((b'1', national)) = bytes.split_first() {
        // NANP: 1 + NPA (3) + NXX (3) + line (4), NPA and NXX starting with 2-9.
        match national {
            [npa, _, _, nxx, _, _, _, _, _, _] => {
                if !(matches!(npa, b'2'..=b'9') && matches!(nxx, b'2'..=b'9')) {
                    return Err(PhoneNumberError::InvalidNanp);
                }
            }
            short if short.len() < 10 => return Err(PhoneNumberError::TooShort),
            _ => return Err(PhoneNumberError::TooLong),
        }
    }
    Ok(())
}

/// A phone number in E.164 (`+` and 8 to 15 digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parse what a person typed, reading national numbers in `default_region`.
    ///
    /// Accepts digits with spaces, `-`, `.`, `(` and `)` between them, and either a leading
    /// `+` or a leading `00` for international numbers. The first character after the optional
    /// `+` (and any white space) must be a digit or `(`: `-14155550100` is a negative number,
    /// not `+14155550100`.
    ///
    /// # Errors
    /// A [`PhoneNumberError`] saying what is wrong: `Empty` for nothing or only white space,
    /// `LeadingSeparator` for a leading `-` or `.`, `InvalidCharacters` for anything other than
    /// digits and those separators, then the same rules as [`PhoneNumber::parse_e164`].
    pub fn parse(raw: &str, default_region: Region) -> Result<Self, PhoneNumberError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(PhoneNumberError::Empty);
        }
        let (plus, rest) = match text.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if rest.trim_start().starts_with(['-', '.']) {
            return Err(PhoneNumberError::LeadingSeparator);
        }
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '-' | '.' | '(' | ')' => {}
                c if c.is_whitespace() => {}
                _ => return Err(PhoneNumberError::InvalidCharacters),
            }
        }
        let international = if plus {
            digits
        } else if let Some(after_prefix) = digits.strip_prefix("00") {
            after_prefix.to_owned()
        } else if digits.is_empty() {
            return Err(PhoneNumberError::TooShort);
        } else {
            default_region.internationalise(&digits)?
        };
        validate_international(&international)?;
        Ok(Self(format!("+{international}")))
    }

    /// Parse a number that must already be E.164 (stored values, provider payloads).
    ///
    /// # Errors
    /// A [`PhoneNumberError`] saying what is wrong: `Empty` for an empty string,
    /// `InvalidCharacters` for anything but digits after the leading `+` (separators included),
    /// `InvalidCountryCode` without the `+` or for an unassigned country calling code,
    /// `TooShort`/`TooLong` outside 8 to 15 digits (exactly 11 for `+1`), and `InvalidNanp`
    /// for a `+1` number whose area code or exchange starts with 0 or 1.
    pub fn parse_e164(raw: &str) -> Result<Self, PhoneNumberError> {
        if raw.is_empty() {
            return Err(PhoneNumberError::Empty);
        }
        let (plus, digits) = match raw.strip_prefix('+') {
            Some(digits) => (true, digits),
            None => (false, raw),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneNumberError::InvalidCharacters);
        }
        if !plus {
            return Err(PhoneNumberError::InvalidCountryCode);
        }
        validate_international(digits)?;
        Ok(Self(raw.to_owned()))
    }

    /// The E.164 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Masked for logs: `+`, the first four digits, `***`, the last four (`+1415***0100`).
    ///
    /// Numbers under 11 digits show only `+***` and the last four, so at least three digits
    /// always stay hidden.
    pub fn masked(&self) -> String {
        let digits = self.0.strip_prefix('+').unwrap_or(&self.0);
        let n = digits.len();
        match (digits.get(..4), digits.get(n.saturating_sub(4)..)) {
            (Some(head), Some(tail)) if n >= 11 => format!("+{head}***{tail}"),
            (_, Some(tail)) if n >= MIN_DIGITS => format!("+***{tail}"),
            _ => "+***".to_owned(),
        }
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneNumberError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_e164(&value)
    }
}
impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}
/// Debug is masked so a stray `?number` in a log never leaks it.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us(raw: &str) -> Result<String, PhoneNumberError> {
        PhoneNumber::parse(raw, Region::US).map(String::from)
    }

    fn in_region(raw: &str, region: &str) -> Result<String, PhoneNumberError> {
        let region = Region::parse(region)?;
        PhoneNumber::parse(raw, region).map(String::from)
    }

    fn e164(raw: &str) -> Result<String, PhoneNumberError> {
        PhoneNumber::parse_e164(raw).map(String::from)
    }

    // ---- Region ----

    #[test]
    fn every_supported_region_parses_case_insensitively_with_its_calling_code() {
        let expected = [
            ("US", 1),
            ("CA", 1),
            ("GB", 44),
            ("IE", 353),
            ("DE", 49),
            ("FR", 33),
            ("ES", 34),
            ("IT", 39),
            ("NL", 31),
            ("AU", 61),
            ("NZ", 64),
            ("MX", 52),
            ("BR", 55),
            ("IN", 91),
        ];
        for (code, calling) in expected {
            for spelled in [code.to_owned(), code.to_ascii_lowercase()] {
                let region = Region::parse(&spelled);
                assert_eq!(
                    region.map(|r| (r.as_str().to_owned(), r.calling_code())),
                    Ok((code.to_owned(), calling))
                );
            }
        }
    }

    #[test]
    fn mixed_case_region_is_accepted() {
        assert_eq!(Region::parse("Gb").map(|r| r.calling_code()), Ok(44));
    }

    #[test]
    fn us_constant_is_what_parse_returns_for_us() {
        assert_eq!(Region::parse("us"), Ok(Region::US));
        assert_eq!(Region::US.as_str(), "US");
        assert_eq!(Region::US.calling_code(), 1);
    }

    #[test]
    fn unknown_region_is_rejected() {
        for code in ["XX", "", "USA", "U", "zz"] {
            assert_eq!(Region::parse(code), Err(PhoneNumberError::UnknownRegion), "{code}");
        }
    }

    // ---- parse: formatting ----

    #[test]
    fn common_us_formats_all_normalise_to_the_same_number() {
        for raw in [
            "(415) 555-0177",
            "415-555-0177",
            "415.555.0177",
            "+1 415 555 0177",
            "1 415 555 0177",
            "+1-415-555-0177",
            "4155550177",
            "14155550177",
            "+14155550177",
            "  (415)555 0177  ",
            "001 415 555 0177",
        ] {
            assert_eq!(us(raw).as_deref(), Ok("+14155550177"), "{raw}");
        }
    }

    #[test]
    fn canadian_national_number_reads_as_nanp() {
        assert_eq!(in_region("(604) 555-0123", "CA").as_deref(), Ok("+16045550123"));
    }

    #[test]
    fn leading_double_zero_is_an_international_prefix() {
        assert_eq!(us("0044 20 7946 0958").as_deref(), Ok("+442079460958"));
        assert_eq!(in_region("0049 30 901820", "GB").as_deref(), Ok("+4930901820"));
    }

    #[test]
    fn international_number_is_read_the_same_in_any_region() {
        for region in ["US", "GB", "DE", "IN"] {
            assert_eq!(
                in_region("+44 20 7946 0958", region).as_deref(),
                Ok("+442079460958"),
                "{region}"
            );
        }
    }

    #[test]
    fn empty_or_whitespace_is_empty() {
        for raw in ["", " ", "\t\n", "\u{a0}"] {
            assert_eq!(us(raw), Err(PhoneNumberError::Empty), "{raw:?}");
        }
    }

    #[test]
    fn letters_and_symbols_are_invalid_characters() {
        for raw in [
            "415-555-CALL",
            "415 555 0177 ext 12",
            "415 555 0177 x12",
            "#415 555 0177",
            "*67 415 555 0177",
            "415+555+0177",
            "1+4155550177",
            "++14155550177",
            "415/555/0177",
            "415_555_0177",
            "４１５５５５０１７７",
        ] {
            assert_eq!(us(raw), Err(PhoneNumberError::InvalidCharacters), "{raw}");
        }
    }

    #[test]
    fn a_leading_minus_or_dot_is_rejected_not_read_as_a_plus() {
        for raw in [
            "-14155550100",
            " -14155550100",
            "-1 415 555 0100",
            "- 4155550100",
            "+-14155550100",
            "+ -14155550100",
            ".4155550100",
            "-(415) 555-0100",
        ] {
            assert_eq!(us(raw), Err(PhoneNumberError::LeadingSeparator), "{raw:?}");
        }
        assert_eq!(
            in_region("-020 7946 0958", "GB"),
            Err(PhoneNumberError::LeadingSeparator)
        );
    }

    #[test]
    fn a_leading_parenthesis_or_plus_with_space_is_still_fine() {
        assert_eq!(us("(415) 555-0100").as_deref(), Ok("+14155550100"));
        assert_eq!(us("+ 1 415 555 0100").as_deref(), Ok("+14155550100"));
    }

    #[test]
    fn separators_without_digits_are_too_short() {
        assert_eq!(us("+"), Err(PhoneNumberError::TooShort));
        assert_eq!(us("( ) - ."), Err(PhoneNumberError::TooShort));
    }

    // ---- parse: national numbers ----

    #[test]
    fn short_number_is_too_short() {
        assert_eq!(us("12345"), Err(PhoneNumberError::TooShort));
        assert_eq!(us("555-0177"), Err(PhoneNumberError::TooShort));
    }

    #[test]
    fn nanp_national_number_with_too_many_digits_is_too_long() {
        assert_eq!(us("415 555 0177 1"), Err(PhoneNumberError::TooLong));
        assert_eq!(us("1 415 555 0177 12"), Err(PhoneNumberError::TooLong));
    }

    #[test]
    fn nanp_national_number_with_bad_area_code_is_invalid_nanp() {
        assert_eq!(us("(015) 555-0177"), Err(PhoneNumberError::InvalidNanp));
        assert_eq!(us("(115) 555-0177"), Err(PhoneNumberError::InvalidNanp));
        assert_eq!(us("(415) 155-0177"), Err(PhoneNumberError::InvalidNanp));
    }

    #[test]
    fn trunk_zero_is_replaced_by_the_calling_code() {
        let cases = [
            ("GB", "020 7946 0958", "+442079460958"),
            ("GB", "07700 900123", "+447700900123"),
            ("IE", "01 234 5678", "+35312345678"),
            ("DE", "030 901820", "+4930901820"),
            ("FR", "01 23 45 67 89", "+33123456789"),
            ("NL", "020 123 4567", "+31201234567"),
            ("AU", "(02) 9876 5432", "+61298765432"),
            ("NZ", "021 123 4567", "+64211234567"),
            ("BR", "(011) 98765-4321", "+5511987654321"),
            ("IN", "098765 43210", "+919876543210"),
        ];
        for (region, raw, want) in cases {
            assert_eq!(in_region(raw, region).as_deref(), Ok(want), "{region} {raw}");
        }
    }

    #[test]
    fn national_number_without_trunk_zero_gets_the_calling_code() {
        assert_eq!(in_region("7700 900123", "GB").as_deref(), Ok("+447700900123"));
        assert_eq!(in_region("(11) 98765-4321", "BR").as_deref(), Ok("+5511987654321"));
        assert_eq!(in_region("612 34 56 78", "ES").as_deref(), Ok("+34612345678"));
        assert_eq!(in_region("55 1234 5678", "MX").as_deref(), Ok("+525512345678"));
    }

    #[test]
    fn italian_leading_zero_is_part_of_the_number() {
        assert_eq!(in_region("06 6988 4857", "IT").as_deref(), Ok("+390669884857"));
        assert_eq!(in_region("312 345 6789", "IT").as_deref(), Ok("+393123456789"));
    }

    #[test]
    fn old_mexican_long_distance_prefixes_are_dropped() {
        assert_eq!(in_region("01 55 1234 5678", "MX").as_deref(), Ok("+525512345678"));
        assert_eq!(in_region("044 55 1234 5678", "MX").as_deref(), Ok("+525512345678"));
        assert_eq!(in_region("045 55 1234 5678", "MX").as_deref(), Ok("+525512345678"));
    }

    // ---- validation (parse_e164) ----

    #[test]
    fn strict_e164_number_is_accepted_unchanged() {
        for raw in [
            "+14155550177",
            "+442079460958",
            "+4930901820",
            "+919876543210",
            "+8613812345678",
        ] {
            assert_eq!(e164(raw).as_deref(), Ok(raw), "{raw}");
        }
    }

    #[test]
    fn twilio_magic_test_numbers_are_accepted() {
        for last in 0..=9 {
            let raw = format!("+1500555000{last}");
            assert_eq!(e164(&raw).as_deref(), Ok(raw.as_str()));
        }
    }

    #[test]
    fn fictional_555_numbers_are_accepted() {
        for raw in ["+14155550100", "+15555550100", "+12025550199"] {
            assert_eq!(e164(raw).as_deref(), Ok(raw), "{raw}");
        }
    }

    #[test]
    fn number_without_plus_is_rejected() {
        assert_eq!(e164("14155550177"), Err(PhoneNumberError::InvalidCountryCode));
    }

    #[test]
    fn e164_with_separators_is_invalid_characters() {
        for raw in [
            "+1 415 555 0177",
            "+1-415-555-0177",
            " +14155550177",
            "+14155550177 ",
            "+1(415)5550177",
        ] {
            assert_eq!(e164(raw), Err(PhoneNumberError::InvalidCharacters), "{raw:?}");
        }
    }

    #[test]
    fn empty_e164_is_empty() {
        assert_eq!(e164(""), Err(PhoneNumberError::Empty));
    }

    #[test]
    fn fewer_than_eight_digits_is_too_short() {
        assert_eq!(e164("+4412345"), Err(PhoneNumberError::TooShort));
        assert_eq!(e164("+12345"), Err(PhoneNumberError::TooShort));
        assert_eq!(e164("+"), Err(PhoneNumberError::TooShort));
    }

    #[test]
    fn eight_and_fifteen_digits_are_the_limits() {
        assert!(e164("+4412345678").is_ok());
        assert!(e164("+44123456").is_ok());
        assert!(e164("+441234567890123").is_ok());
        assert_eq!(e164("+4412345678901234"), Err(PhoneNumberError::TooLong));
    }

    #[test]
    fn leading_zero_country_code_is_rejected() {
        assert_eq!(e164("+04155550177"), Err(PhoneNumberError::InvalidCountryCode));
        assert_eq!(us("+0 415 555 0177"), Err(PhoneNumberError::InvalidCountryCode));
        assert_eq!(us("000 415 555 0177"), Err(PhoneNumberError::InvalidCountryCode));
    }

    #[test]
    fn unassigned_country_codes_are_rejected() {
        for raw in [
            "+281234567890",
            "+801234567890",
            "+80012345678",
            "+2101234567",
            "+3841234567",
            "+6711234567",
            "+8351234567",
            "+9991234567",
            "+4221234567",
        ] {
            assert_eq!(e164(raw), Err(PhoneNumberError::InvalidCountryCode), "{raw}");
        }
    }

    #[test]
    fn assigned_three_digit_country_codes_are_accepted() {
        for raw in [
            "+35312345678",
            "+3801234567890",
            "+9715012345678",
            "+2348012345678",
            "+85212345678",
            "+5511987654321",
        ] {
            assert_eq!(e164(raw).as_deref(), Ok(raw), "{raw}");
        }
    }

    #[test]
    fn nanp_number_must_have_ten_digits_after_the_one() {
        assert_eq!(e164("+1415555017"), Err(PhoneNumberError::TooShort));
        assert_eq!(e164("+141555501777"), Err(PhoneNumberError::TooLong));
    }

    #[test]
    fn nanp_area_code_or_exchange_starting_with_zero_or_one_is_invalid() {
        for raw in ["+10155550177", "+11155550177", "+14150550177", "+14151550177"] {
            assert_eq!(e164(raw), Err(PhoneNumberError::InvalidNanp), "{raw}");
        }
    }

    #[test]
    fn country_code_table_is_prefix_free_and_ordered() {
        let twos: Vec<u16> = TWO_DIGIT_CODES.iter().flat_map(|&(lo, hi)| lo..=hi).collect();
        let threes: Vec<u16> = THREE_DIGIT_CODES.iter().flat_map(|&(lo, hi)| lo..=hi).collect();
        assert!(twos.windows(2).all(|w| w[0] < w[1]));
        assert!(threes.windows(2).all(|w| w[0] < w[1]));
        assert!(twos.iter().all(|c| (20..=99).contains(c) && c / 10 != 1 && c / 10 != 7));
        assert!(threes
            .iter()
            .all(|c| (200..=999).contains(c) && c / 100 != 1 && c / 100 != 7));
        assert!(threes.iter().all(|c| !twos.contains(&(c / 10))));
    }

    // ---- masking, Debug, serde ----

    #[test]
    fn masked_shows_first_four_and_last_four_digits() {
        let n = PhoneNumber::parse_e164("+14155550100");
        assert_eq!(n.map(|n| n.masked()).as_deref(), Ok("+1415***0100"));
    }

    #[test]
    fn masked_short_number_shows_only_the_last_four_digits() {
        let n = PhoneNumber::parse_e164("+4930901820");
        assert_eq!(n.map(|n| n.masked()).as_deref(), Ok("+***1820"));
        let n = PhoneNumber::parse_e164("+44123456");
        assert_eq!(n.map(|n| n.masked()).as_deref(), Ok("+***3456"));
    }

    #[test]
    fn debug_output_is_masked() {
        let n = PhoneNumber::parse_e164("+14155550100").map(|n| format!("{n:?}"));
        assert_eq!(n.as_deref(), Ok("PhoneNumber(+1415***0100)"));
    }

    #[test]
    fn errors_never_print_the_number() {
        for raw in ["415-555-CALL", "+04155550177", "+141555501777", "+10155550177", "12345"] {
            let Err(err) = us(raw) else { panic!("{raw} should fail") };
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("555") && !shown.contains("123"), "{shown}");
        }
    }

    #[test]
    fn serde_round_trips_as_a_plain_string() {
        let n = PhoneNumber::parse("(415) 555-0177", Region::US).map_err(|e| e.to_string());
        let json = n.and_then(|n| serde_json::to_string(&n).map_err(|e| e.to_string()));
        assert_eq!(json.as_deref(), Ok("\"+14155550177\""));
        let back: Result<PhoneNumber, _> = serde_json::from_str("\"+14155550177\"");
        assert_eq!(
            back.map(String::from).map_err(|e| e.to_string()).as_deref(),
            Ok("+14155550177")
        );
    }

    #[test]
    fn serde_rejects_a_non_e164_string() {
        assert!(serde_json::from_str::<PhoneNumber>("\"(415) 555-0177\"").is_err());
        assert!(serde_json::from_str::<PhoneNumber>("\"+04155550177\"").is_err());
    }

    #[test]
    fn try_from_string_is_strict_e164() {
        assert!(PhoneNumber::try_from("+14155550177".to_owned()).is_ok());
        assert_eq!(
            PhoneNumber::try_from("4155550177".to_owned()),
            Err(PhoneNumberError::InvalidCountryCode)
        );
    }

    // ---- properties ----

    fn any_region() -> impl Strategy<Value = Region> {
        proptest::sample::select(REGIONS.to_vec())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_strings(raw in any::<String>(), region in any_region()) {
            if let Ok(n) = PhoneNumber::parse(&raw, region) {
                prop_assert!(n.as_str().starts_with('+'));
            }
            if let Ok(n) = PhoneNumber::parse_e164(&raw) {
                prop_assert_eq!(n.as_str(), raw.as_str());
            }
        }

        #[test]
        fn parse_never_panics_on_phone_like_strings(raw in "[+0-9 ().\\-]{0,30}", region in any_region()) {
            if let Ok(n) = PhoneNumber::parse(&raw, region) {
                prop_assert!(n.as_str().starts_with('+'));
            }
            if let Ok(n) = PhoneNumber::parse_e164(&raw) {
                prop_assert_eq!(n.as_str(), raw.as_str());
            }
        }

        #[test]
        fn any_parsed_number_reparses_to_itself_as_e164(raw in "[+]?[0-9 ().\\-]{0,24}", region in any_region()) {
            if let Ok(n) = PhoneNumber::parse(&raw, region) {
                let text = n.as_str();
                prop_assert!(text.starts_with('+'));
                let digits = text.len() - 1;
                prop_assert!((MIN_DIGITS..=MAX_DIGITS).contains(&digits));
                prop_assert_eq!(PhoneNumber::parse_e164(text), Ok(n.clone()));
                prop_assert_eq!(PhoneNumber::parse(text, region), Ok(n));
            }
        }

        #[test]
        fn any_accepted_e164_reparses_to_itself(digits in "[1-9][0-9]{6,15}") {
            let raw = format!("+{digits}");
            if let Ok(n) = PhoneNumber::parse_e164(&raw) {
                prop_assert_eq!(n.as_str(), raw.as_str());
                prop_assert_eq!(PhoneNumber::parse_e164(n.as_str()), Ok(n.clone()));
                prop_assert_eq!(PhoneNumber::parse(n.as_str(), Region::US), Ok(n));
            }
        }

        #[test]
        fn a_number_behind_a_leading_minus_or_dot_is_never_accepted(
            sep in "[-.]",
            plus in "[+]?",
            rest in "[0-9 ().\\-]{0,24}",
            region in any_region(),
        ) {
            let raw = format!("{plus}{sep}{rest}");
            prop_assert_eq!(PhoneNumber::parse(&raw, region), Err(PhoneNumberError::LeadingSeparator));
            prop_assert!(PhoneNumber::parse_e164(&raw).is_err());
        }

        #[test]
        fn formatting_variants_of_one_nanp_number_normalise_to_the_same_value(
            npa in 200u16..=999,
            nxx in 200u16..=999,
            line in 0u16..=9999,
            canadian in any::<bool>(),
        ) {
            let region = if canadian { Region::parse("CA").unwrap_or(Region::US) } else { Region::US };
            let want = format!("+1{npa}{nxx}{line:04}");
            let variants = [
                format!("({npa}) {nxx}-{line:04}"),
                format!("{npa}-{nxx}-{line:04}"),
                format!("{npa}.{nxx}.{line:04}"),
                format!("{npa}{nxx}{line:04}"),
                format!("+1 {npa} {nxx} {line:04}"),
                format!("1 {npa} {nxx} {line:04}"),
                format!("+1-{npa}-{nxx}-{line:04}"),
                format!("1 ({npa}) {nxx}-{line:04}"),
                format!("001 {npa} {nxx} {line:04}"),
                format!("  +1 ({npa}) {nxx}.{line:04} "),
            ];
            for raw in &variants {
                prop_assert_eq!(PhoneNumber::parse(raw, region).map(String::from), Ok(want.clone()), "{}", raw);
            }
        }

        #[test]
        fn masked_never_reveals_more_than_eight_digits_or_the_middle(digits in "[1-9][0-9]{6,15}") {
            if let Ok(n) = PhoneNumber::parse_e164(&format!("+{digits}")) {
                let masked = n.masked();
                let shown = masked.bytes().filter(u8::is_ascii_digit).count();
                prop_assert!(shown <= 8);
                prop_assert!(shown + 3 <= digits.len());
                prop_assert!(masked.ends_with(&digits[digits.len() - 4..]));
                prop_assert!(masked.contains("***"));
            }
        }

        #[test]
        fn a_number_written_nationally_in_its_region_parses_to_its_e164_form(
            region in any_region(),
            npa in 200u16..=999,
            nxx in 200u16..=999,
            line in 0u16..=9999,
            rest in "[1-9][0-9]{5,11}",
            italian in "[03][1-9][0-9]{5,8}",
            mexican in "[1-9][0-9]{9}",
            sep in prop::sample::select(vec!["", " ", "-", ".", " - "]),
            trunk in any::<bool>(),
        ) {
            let cc = region.calling_code();
            let significant = match region.as_str() {
                _ if region.is_nanp() => format!("{npa}{nxx}{line:04}"),
                "IT" => italian,
                "MX" => mexican,
                "ES" => rest.clone(),
                _ => rest,
            };
            let want = format!("+{cc}{significant}");
            // Only numbers that are valid E.164 to begin with.
            prop_assume!(PhoneNumber::parse_e164(&want).is_ok());
            let national = match region.as_str() {
                _ if region.is_nanp() => if trunk { format!("1{significant}") } else { significant.clone() },
                "IT" | "ES" | "MX" => significant.clone(),
                _ => if trunk { format!("0{significant}") } else { significant.clone() },
            };
            // Separators between digit groups of three.
            let written: String = national
                .as_bytes()
                .chunks(3)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(sep);
            prop_assert_eq!(PhoneNumber::parse(&written, region).map(String::from), Ok(want.clone()), "{}", written);
            // The international forms read the same in any region.
            prop_assert_eq!(PhoneNumber::parse(&format!("00{cc}{sep}{significant}"), Region::US).map(String::from), Ok(want.clone()));
            prop_assert_eq!(PhoneNumber::parse(&format!("+{cc} {significant}"), region).map(String::from), Ok(want));
        }
    }
}
