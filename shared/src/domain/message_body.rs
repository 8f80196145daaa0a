//! Message bodies, their encoding and the segments they cost, counted the way Twilio's
//! message-segment-calculator does: GSM-7 (GSM 03.38 basic set plus extension table) when every
//! character allows it, otherwise UCS-2 for the whole message.

use serde::{Deserialize, Serialize};

/// Longest body Twilio accepts, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// Septets a single GSM-7 segment holds.
const GSM7_SINGLE: u32 = 160;
/// Septets each part of a concatenated GSM-7 message holds (the rest is the UDH).
const GSM7_PART: u32 = 153;
/// UTF-16 code units a single UCS-2 segment holds.
const UCS2_SINGLE: u32 = 70;
/// UTF-16 code units each part of a concatenated UCS-2 message holds.
const UCS2_PART: u32 = 67;

/// How the body goes over the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// GSM 03.38 7-bit default alphabet (with its extension table).
    #[serde(rename = "GSM-7")]
    Gsm7,
    /// UCS-2 (UTF-16 code units).
    #[serde(rename = "UCS-2")]
    Ucs2,
}

/// Why a body was rejected. Never carries the body. The messages name the field (`` `body` ``)
/// so the API can show them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageBodyError {
    /// Empty or only white space.
    #[error("`body` is empty")]
    Empty,
    /// Over 1,600 characters.
    #[error("`body` is {chars} characters; the limit is 1600")]
    TooLong {
        /// How many characters it had.
        chars: usize,
    },
    /// A control character other than line feed, carriage return and tab (NUL, ESC, DEL, …).
    #[error("`body` contains the control character U+{code_point:04X}; only line breaks and tabs are allowed")]
    ControlCharacter {
        /// The first such character's code point (a control character reveals nothing of the text).
        code_point: u32,
    },
    /// Only white space and invisible characters (zero-width spaces and joiners, BOM, …).
    #[error("`body` has no visible character (only white space or zero-width characters)")]
    NoVisibleCharacter,
}

/// Whether `c` is a control character a body may not carry: the C0 and C1 controls and DEL,
/// except `\n`, `\r` and `\t`.
fn is_forbidden_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

/// Whether `c` shows nothing on a handset: white space, and the format characters that have no
/// glyph (zero-width space/non-joiner/joiner, direction marks and embeddings, word joiner and
/// invisible operators, BOM / zero-width no-break space, soft hyphen, combining grapheme joiner,
/// Mongolian vowel separator, variation selectors, Hangul fillers, tag characters).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// A valid SMS body: 1 to 1,600 characters, at least one of them visible, no control
/// characters other than line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageBody(String);

impl MessageBody {
    /// Validate a body.
    ///
    /// # Errors
    /// In this order: [`MessageBodyError::Empty`] when empty or only white space,
    /// [`MessageBodyError::TooLong`] when over [`MAX_BODY_CHARS`] characters (Unicode scalar
    /// values), [`MessageBodyError::ControlCharacter`] for a control character other than `\n`,
    /// `\r` and `\t` (a NUL would be cut or refused downstream), and
    /// [`MessageBodyError::NoVisibleCharacter`] when nothing but white space and zero-width
    /// characters remains (the recipient would get a blank message).
    pub fn parse(raw: impl Into<String>) -> Result<Self, MessageBodyError> {
        let raw = raw.into();
        if raw.trim().is_empty() {
            return Err(MessageBodyError::Empty);
        }
        let chars = raw.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(MessageBodyError::TooLong { chars });
        }
        if let Some(c) = raw.chars().find(|&c| is_forbidden_control(c)) {
            return Err(MessageBodyError::ControlCharacter {
                code_point: u32::from(c),
            });
        }
        if raw.chars().all(is_invisible) {
            return Err(MessageBodyError::NoVisibleCharacter);
        }
        Ok(Self(raw))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Encoding the body needs.
    pub fn encoding(&self) -> Encoding {
        analyse(&self.0).0
    }

    /// Segments the body costs.
    pub fn segments(&self) -> u32 {
        analyse(&self.0).1
    }
}

/// Whether `c` is in the GSM 03.38 basic character set (one septet).
fn is_gsm7_basic(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | ' '..='Z' // space, !"#$%&'()*+,-./0-9:;<=>?@A-Z
            | '_'
            | 'a'..='z'
            | '¡' | '£' | '¤' | '¥' | '§' | '¿'
            | 'Ä' | 'Å' | 'Æ' | 'Ç' | 'É' | 'Ñ' | 'Ö' | 'Ø' | 'Ü' | 'ß'
            | 'à' | 'ä' | 'å' | 'æ' | 'è' | 'é' | 'ì' | 'ñ' | 'ò' | 'ö' | 'ø' | 'ù' | 'ü'
            // Greek capitals Γ Δ Θ Λ Ξ Π Σ Φ Ψ Ω (written as code points: look-alikes exist).
            | '\u{0393}' | '\u{0394}' | '\u{0398}' | '\u{039B}' | '\u{039E}'
            | '\u{03A0}' | '\u{03A3}' | '\u{03A6}' | '\u{03A8}' | '\u{03A9}'
    )
}

/// Whether `c` is in the GSM 03.38 extension table (ESC + character: two septets).
fn is_gsm7_extension(c: char) -> bool {
    matches!(c, '\u{0C}' | '[' | '\\' | ']' | '^' | '{' | '|' | '}' | '~' | '€')
}

/// Septets `c` costs in GSM-7, or `None` when GSM-7 cannot carry it.
fn gsm7_septets(c: char) -> Option<u32> {
    if is_gsm7_basic(c) {
        Some(1)
    } else if is_gsm7_extension(c) {
        Some(2)
    } else {
        None
    }
}

/// Segments for characters costing `costs` units each: one segment when the total fits in
/// `single`, otherwise packed greedily into parts of `part` units, never splitting a character.
fn count_segments(costs: impl Iterator<Item = u32> + Clone, single: u32, part: u32) -> u32 {
    let total = costs.clone().fold(0u32, u32::saturating_add);
    if total <= single {
        return 1;
    }
    let mut segments = 1u32;
    let mut used = 0u32;
    for cost in costs {
        if used.saturating_add(cost) > part {
            segments = segments.saturating_add(1);
            used = 0;
        }
        used = used.saturating_add(cost);
    }
    segments
}

/// Encoding and segment count of a text (at least one segment, even for an empty text).
pub fn analyse(text: &str) -> (Encoding, u32) {
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        let septets = text.chars().map(|c| gsm7_septets(c).unwrap_or(1));
        (Encoding::Gsm7, count_segments(septets, GSM7_SINGLE, GSM7_PART))
    } else {
        // `len_utf16` is 1 or 2: an emoji (surrogate pair) stays whole within one segment.
        let units = text.chars().map(|c| if c.len_utf16() == 2 { 2 } else { 1 });
        (Encoding::Ucs2, count_segments(units, UCS2_SINGLE, UCS2_PART))
    }
}

impl TryFrom<String> for MessageBody {
    type Error = MessageBodyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}
impl From<MessageBody> for String {
    fn from(value: MessageBody) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(text: &str) -> Result<(Encoding, u32), MessageBodyError> {
        MessageBody::parse(text).map(|b| (b.encoding(), b.segments()))
    }

    fn repeat(c: char, n: usize) -> String {
        std::iter::repeat_n(c, n).collect()
    }

    /// A UCS-2-only character that is one UTF-16 unit (Cyrillic zhe).
    const ZHE: char = 'ж';
    /// An emoji: two UTF-16 units (a surrogate pair).
    const EMOJI: char = '😀';

    // ---- parse ----

    #[test]
    fn ordinary_text_is_accepted_unchanged() {
        let b = MessageBody::parse("Your code is 123456");
        assert_eq!(b.as_ref().map(MessageBody::as_str), Ok("Your code is 123456"));
    }

    #[test]
    fn empty_body_is_empty() {
        assert_eq!(MessageBody::parse(""), Err(MessageBodyError::Empty));
    }

    #[test]
    fn whitespace_only_body_is_empty() {
        for raw in [" ", "\n\r\t", "   \n  ", "\u{a0}\u{2003}"] {
            assert_eq!(MessageBody::parse(raw), Err(MessageBodyError::Empty), "{raw:?}");
        }
    }

    #[test]
    fn control_characters_other_than_line_breaks_and_tabs_are_rejected() {
        for (raw, code_point) in [
            ("a\u{0}b", 0x00),
            ("\u{0}", 0x00),
            ("bell\u{7}", 0x07),
            ("esc \u{1b}[31m red", 0x1B),
            ("form\u{0C}feed", 0x0C),
            ("del\u{7f}", 0x7F),
            ("c1 \u{85} next line", 0x85),
            ("c1 \u{9f}", 0x9F),
        ] {
            assert_eq!(
                MessageBody::parse(raw),
                Err(MessageBodyError::ControlCharacter { code_point }),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn line_breaks_and_tabs_are_allowed() {
        assert!(MessageBody::parse("line one\nline two\r\n\tindented").is_ok());
    }

    #[test]
    fn a_body_of_only_invisible_characters_is_rejected() {
        for raw in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{2060}",
            "\u{FEFF}",
            " \u{200B} \n\u{FEFF}\t",
            "\u{00AD}\u{034F}\u{180E}\u{FE0F}",
            "\u{200E}\u{202E}\u{2066}",
        ] {
            assert_eq!(
                MessageBody::parse(raw),
                Err(MessageBodyError::NoVisibleCharacter),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn invisible_characters_next_to_visible_text_are_kept() {
        let raw = "\u{FEFF}hi\u{200B}there 👩\u{200D}💻";
        assert_eq!(MessageBody::parse(raw).map(String::from).as_deref(), Ok(raw));
    }

    #[test]
    fn error_messages_read_as_sentences_about_the_body_field() {
        assert_eq!(
            MessageBodyError::TooLong { chars: 1601 }.to_string(),
            "`body` is 1601 characters; the limit is 1600"
        );
        assert_eq!(MessageBodyError::Empty.to_string(), "`body` is empty");
        assert_eq!(
            MessageBodyError::ControlCharacter { code_point: 0 }.to_string(),
            "`body` contains the control character U+0000; only line breaks and tabs are allowed"
        );
        assert_eq!(
            MessageBodyError::NoVisibleCharacter.to_string(),
            "`body` has no visible character (only white space or zero-width characters)"
        );
    }

    #[test]
    fn body_of_1600_characters_is_accepted() {
        assert!(MessageBody::parse(repeat('a', 1600)).is_ok());
        assert!(MessageBody::parse(repeat(EMOJI, 1600)).is_ok());
    }

    #[test]
    fn body_of_1601_characters_is_too_long() {
        assert_eq!(
            MessageBody::parse(repeat('a', 1601)),
            Err(MessageBodyError::TooLong { chars: 1601 })
        );
    }

    #[test]
    fn length_limit_counts_characters_not_bytes_or_utf16_units() {
        assert!(MessageBody::parse(repeat('€', 1600)).is_ok());
        assert_eq!(
            MessageBody::parse(repeat(EMOJI, 1601)),
            Err(MessageBodyError::TooLong { chars: 1601 })
        );
    }

    #[test]
    fn errors_never_print_the_body() {
        let long = format!("secret {}", repeat('x', 1600));
        for err in [MessageBody::parse(long), MessageBody::parse("   ")]
            .into_iter()
            .filter_map(Result::err)
        {
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("secret") && !shown.contains("xxx"), "{shown}");
        }
    }

    #[test]
    fn serde_round_trips_as_a_plain_string_and_validates() {
        let b = MessageBody::parse("hi").map_err(|e| e.to_string());
        let json = b.and_then(|b| serde_json::to_string(&b).map_err(|e| e.to_string()));
        assert_eq!(json.as_deref(), Ok("\"hi\""));
        assert!(serde_json::from_str::<MessageBody>("\"hi\"").is_ok());
        assert!(serde_json::from_str::<MessageBody>("\"  \"").is_err());
    }

    #[test]
    fn encoding_serialises_with_its_standard_name() {
        assert_eq!(
            serde_json::to_string(&Encoding::Gsm7).ok().as_deref(),
            Some("\"GSM-7\"")
        );
        assert_eq!(
            serde_json::to_string(&Encoding::Ucs2).ok().as_deref(),
            Some("\"UCS-2\"")
        );
        assert_eq!(serde_json::from_str::<Encoding>("\"UCS-2\"").ok(), Some(Encoding::Ucs2));
    }

    // ---- encoding ----

    #[test]
    fn plain_ascii_text_is_gsm7() {
        assert_eq!(
            body("Hello, world! Your code is 4821.").map(|r| r.0),
            Ok(Encoding::Gsm7)
        );
    }

    #[test]
    fn gsm7_accented_and_greek_letters_stay_gsm7() {
        let text = "¡£¤¥§¿ÄÅÆÉÑÖØÜßàäåæÇèéìñòöøùü ΓΔΘΛΞΠΣΦΨΩ @$_";
        assert_eq!(analyse(text), (Encoding::Gsm7, 1));
    }

    #[test]
    fn extension_characters_stay_gsm7() {
        assert_eq!(analyse("[\\]^{|}~€\u{0C}").0, Encoding::Gsm7);
    }

    #[test]
    fn one_emoji_turns_the_message_to_ucs2() {
        assert_eq!(body(&format!("Thanks {EMOJI}")).map(|r| r.0), Ok(Encoding::Ucs2));
    }

    #[test]
    fn backtick_forces_ucs2() {
        assert_eq!(analyse("run `make`").0, Encoding::Ucs2);
    }

    #[test]
    fn non_gsm_accents_smart_quotes_and_tabs_force_ucs2() {
        for text in ["façade", "naïve", "“quoted”", "it’s", "a\tb", "Ελλάδα", "Ω\u{2126}"] {
            assert_eq!(analyse(text).0, Encoding::Ucs2, "{text}");
        }
    }

    #[test]
    fn gsm7_tables_have_127_basic_and_10_extension_characters() {
        let all = || (0..=u32::from(char::MAX)).filter_map(char::from_u32);
        assert_eq!(all().filter(|&c| is_gsm7_basic(c)).count(), 127);
        assert_eq!(all().filter(|&c| is_gsm7_extension(c)).count(), 10);
        assert_eq!(all().filter(|&c| is_gsm7_basic(c) && is_gsm7_extension(c)).count(), 0);
    }

    // ---- GSM-7 segments ----

    #[test]
    fn gsm7_160_characters_is_one_segment() {
        assert_eq!(body(&repeat('a', 160)), Ok((Encoding::Gsm7, 1)));
    }

    #[test]
    fn gsm7_161_characters_is_two_segments() {
        assert_eq!(body(&repeat('a', 161)), Ok((Encoding::Gsm7, 2)));
    }

    #[test]
    fn gsm7_306_characters_is_two_segments() {
        assert_eq!(body(&repeat('a', 306)), Ok((Encoding::Gsm7, 2)));
    }

    #[test]
    fn gsm7_307_characters_is_three_segments() {
        assert_eq!(body(&repeat('a', 307)), Ok((Encoding::Gsm7, 3)));
    }

    #[test]
    fn euro_sign_costs_two_septets() {
        assert_eq!(body(&format!("{}€", repeat('a', 158))), Ok((Encoding::Gsm7, 1)));
        assert_eq!(body(&format!("{}€", repeat('a', 159))), Ok((Encoding::Gsm7, 2)));
    }

    #[test]
    fn eighty_extension_characters_fill_one_segment() {
        assert_eq!(analyse(&repeat('{', 80)), (Encoding::Gsm7, 1));
        assert_eq!(analyse(&repeat('{', 81)), (Encoding::Gsm7, 2));
    }

    #[test]
    fn extension_character_is_never_split_across_segments() {
        // 152 + 2 does not fit in 153: the `€` starts segment two, which then overflows.
        let text = format!("{}€{}", repeat('a', 152), repeat('a', 152));
        assert_eq!(analyse(&text), (Encoding::Gsm7, 3));
        // Same septet count with the `€` where it fits: two segments.
        let text = format!("{}€{}", repeat('a', 151), repeat('a', 153));
        assert_eq!(analyse(&text), (Encoding::Gsm7, 2));
    }

    #[test]
    fn longest_gsm7_body_is_eleven_segments() {
        assert_eq!(body(&repeat('a', 1600)), Ok((Encoding::Gsm7, 11)));
    }

    // ---- UCS-2 segments ----

    #[test]
    fn ucs2_70_characters_is_one_segment() {
        assert_eq!(body(&repeat(ZHE, 70)), Ok((Encoding::Ucs2, 1)));
    }

    #[test]
    fn ucs2_71_characters_is_two_segments() {
        assert_eq!(body(&repeat(ZHE, 71)), Ok((Encoding::Ucs2, 2)));
    }

    #[test]
    fn ucs2_134_units_is_two_segments_and_135_is_three() {
        assert_eq!(analyse(&repeat(ZHE, 134)), (Encoding::Ucs2, 2));
        assert_eq!(analyse(&repeat(ZHE, 135)), (Encoding::Ucs2, 3));
    }

    #[test]
    fn emoji_counts_two_utf16_units() {
        assert_eq!(analyse(&repeat(EMOJI, 35)), (Encoding::Ucs2, 1));
        assert_eq!(analyse(&repeat(EMOJI, 36)), (Encoding::Ucs2, 2));
    }

    #[test]
    fn surrogate_pair_is_never_split_across_segments() {
        // 66 + 2 does not fit in 67: the emoji starts segment two, which then overflows.
        let text = format!("{}{EMOJI}{}", repeat(ZHE, 66), repeat(ZHE, 66));
        assert_eq!(analyse(&text), (Encoding::Ucs2, 3));
        let text = format!("{}{EMOJI}{}", repeat(ZHE, 65), repeat(ZHE, 67));
        assert_eq!(analyse(&text), (Encoding::Ucs2, 2));
    }

    #[test]
    fn empty_text_analyses_as_one_gsm7_segment() {
        assert_eq!(analyse(""), (Encoding::Gsm7, 1));
    }

    // ---- properties ----

    fn expected_plain_segments(n: u32, single: u32, part: u32) -> u32 {
        if n <= single {
            1
        } else {
            n.div_ceil(part)
        }
    }

    proptest! {
        #[test]
        fn every_text_costs_at_least_one_segment(text in any::<String>()) {
            prop_assert!(analyse(&text).1 >= 1);
        }

        #[test]
        fn segments_never_exceed_what_each_unit_alone_would_need(text in any::<String>()) {
            let (encoding, segments) = analyse(&text);
            let units = match encoding {
                Encoding::Gsm7 => text.chars().map(|c| gsm7_septets(c).unwrap_or(1)).sum::<u32>(),
                Encoding::Ucs2 => u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX),
            };
            prop_assert!(segments <= units.max(1));
        }

        #[test]
        fn n_plain_ascii_letters_follow_the_gsm7_rule(text in "[a-zA-Z]{1,1600}") {
            let n = u32::try_from(text.len()).unwrap_or(u32::MAX);
            prop_assert_eq!(analyse(&text), (Encoding::Gsm7, expected_plain_segments(n, 160, 153)));
            prop_assert_eq!(body(&text), Ok((Encoding::Gsm7, expected_plain_segments(n, 160, 153))));
        }

        #[test]
        fn n_single_unit_ucs2_letters_follow_the_ucs2_rule(text in "[а-я]{1,1600}") {
            let n = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
            prop_assert_eq!(analyse(&text), (Encoding::Ucs2, expected_plain_segments(n, 70, 67)));
        }

        #[test]
        fn gsm7_segments_are_at_least_the_plain_ceiling(text in "[a-z€{}]{1,400}") {
            let septets: u32 = text.chars().map(|c| gsm7_septets(c).unwrap_or(1)).sum();
            let (encoding, segments) = analyse(&text);
            prop_assert_eq!(encoding, Encoding::Gsm7);
            prop_assert!(segments >= expected_plain_segments(septets, 160, 153));
            prop_assert!(segments <= expected_plain_segments(septets, 160, 152).max(1));
        }

        #[test]
        fn parse_accepts_exactly_the_visible_control_free_texts_up_to_the_limit(text in any::<String>()) {
            let result = MessageBody::parse(text.clone());
            let chars = text.chars().count();
            if text.trim().is_empty() {
                prop_assert_eq!(result, Err(MessageBodyError::Empty));
            } else if chars > MAX_BODY_CHARS {
                prop_assert_eq!(result, Err(MessageBodyError::TooLong { chars }));
            } else if let Some(c) = text.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
                prop_assert_eq!(result, Err(MessageBodyError::ControlCharacter { code_point: u32::from(c) }));
            } else if text.chars().all(is_invisible) {
                prop_assert_eq!(result, Err(MessageBodyError::NoVisibleCharacter));
            } else {
                prop_assert_eq!(result.map(String::from), Ok(text));
            }
        }

        #[test]
        fn a_control_character_anywhere_in_a_valid_body_is_rejected(
            before in "[a-z ]{0,40}",
            after in "[a-z ]{0,40}",
            c in prop::sample::select((0u32..0x20).chain(0x7F..0xA0).filter(|c| ![0x09, 0x0A, 0x0D].contains(c)).collect::<Vec<_>>()),
        ) {
            let c = char::from_u32(c).unwrap_or('\0');
            let raw = format!("x{before}{c}{after}");
            prop_assert_eq!(MessageBody::parse(raw), Err(MessageBodyError::ControlCharacter { code_point: u32::from(c) }));
        }

        #[test]
        fn zero_width_padding_alone_is_never_a_body(
            raw in prop::collection::vec(prop::sample::select(vec!['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', ' ', '\n', '\t']), 1..50),
        ) {
            let raw: String = raw.into_iter().collect();
            prop_assert!(MessageBody::parse(raw).is_err());
        }

        #[test]
        fn segment_counts_follow_the_length_rules_for_mixed_text(
            text in prop::collection::vec(
                prop_oneof![
                    6 => prop::char::range('a', 'z'),
                    2 => prop::sample::select(vec!['€', '{', '}', '[', ']', '~', '^', '|', '\\', '\u{0C}']),
                    2 => prop::sample::select(vec!['é', 'Ä', 'ñ', '£', '\n', ' ', '\u{0394}']),
                    1 => prop::sample::select(vec!['ж', '😀', 'ç', 'Ş', '中', '\u{1F1FA}', '’']),
                ],
                0..800,
            )
            .prop_map(|cs| cs.into_iter().collect::<String>()),
        ) {
            let (encoding, segments) = analyse(&text);
            let gsm = text.chars().all(|c| gsm7_septets(c).is_some());
            // One character GSM-7 cannot carry makes the whole message UCS-2.
            prop_assert_eq!(encoding, if gsm { Encoding::Gsm7 } else { Encoding::Ucs2 });
            let (units, single, part, widest): (u32, u32, u32, u32) = if gsm {
                (text.chars().map(|c| gsm7_septets(c).unwrap_or(1)).sum(), 160, 153, 2)
            } else {
                (u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX), 70, 67, 2)
            };
            if units <= single {
                prop_assert_eq!(segments, 1);
            } else {
                // Each part holds at most `part` units and is only closed when the next character
                // (at most `widest` units) does not fit, so it holds more than `part - widest`.
                prop_assert!(units <= part * segments, "{} units in {} segments", units, segments);
                prop_assert!(units > (part - widest + 1) * (segments - 1) , "{} units in {} segments", units, segments);
                prop_assert!(segments >= units.div_ceil(part));
            }
            if let Ok(b) = MessageBody::parse(text.clone()) {
                prop_assert_eq!((b.encoding(), b.segments()), (encoding, segments));
            }
        }

        #[test]
        fn appending_a_character_never_lowers_the_cost_within_an_encoding(
            text in "[a-z€{ }]{0,400}|[а-я😀 ]{0,200}",
            c in prop_oneof![prop::char::range('a', 'z'), Just('€'), Just('😀'), Just('ж')],
        ) {
            let (enc, before) = analyse(&text);
            let longer = format!("{text}{c}");
            let (enc_after, after) = analyse(&longer);
            if enc == enc_after {
                prop_assert!(after >= before, "{} -> {}", before, after);
                prop_assert!(after <= before + 1);
            }
        }
    }
}
