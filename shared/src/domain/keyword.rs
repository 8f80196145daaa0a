//! STOP / START / HELP: what an inbound text asks of us (docs/api.md "Keywords").
//!
//! Twilio's `OptOutType` (sent only when Advanced Opt-Out handled the message) wins; without it the
//! whole body is compared, trimmed and case-insensitively, with the keyword lists below. "Stop
//! please" is a reply, not an opt-out: carriers and Twilio match the whole message only.
//! Pure: no I/O, no clock.

/// Keywords that opt a phone out (Twilio's default list, protocol-facts §6).
pub const STOP_KEYWORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
];
/// Keywords that opt a phone in again.
pub const START_KEYWORDS: &[&str] = &["START", "UNSTOP", "YES"];
/// Keywords that ask for help.
pub const HELP_KEYWORDS: &[&str] = &["HELP", "INFO"];

/// What an inbound message is, keyword-wise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword {
    /// Opt out; carries the keyword as matched (upper case), e.g. `STOP`.
    Stop(String),
    /// Opt in again.
    Start(String),
    /// Asks for help. `answered_by_provider` is true when Twilio's Advanced Opt-Out already
    /// replied (it sent `OptOutType`), so we must not answer a second time.
    Help {
        /// The keyword as matched.
        keyword: String,
        /// Whether the provider has answered it already.
        answered_by_provider: bool,
    },
    /// Not a keyword: a reply to the conversation.
    Reply,
}

impl Keyword {
    /// Classify an inbound message from its body and Twilio's `OptOutType`, if present.
    ///
    /// `OptOutType` values are `STOP`, `START`, `HELP` (case-insensitive here); an unknown value
    /// falls back to the body, so a new Twilio value can never turn a STOP into a reply.
    pub fn classify(body: &str, opt_out_type: Option<&str>) -> Self {
        let word = body.trim().to_uppercase();
        if let Some(kind) = opt_out_type.map(|t| t.trim().to_uppercase()) {
            let keyword = if word.is_empty() { kind.clone() } else { word.clone() };
            match kind.as_str() {
                "STOP" => return Self::Stop(keyword),
                "START" => return Self::Start(keyword),
                "HELP" => {
                    return Self::Help {
                        keyword,
                        answered_by_provider: true,
                    }
                }
                _ => {}
            }
        }
        if STOP_KEYWORDS.contains(&word.as_str()) {
            Self::Stop(word)
        } else if START_KEYWORDS.contains(&word.as_str()) {
            Self::Start(word)
        } else if HELP_KEYWORDS.contains(&word.as_str()) {
            Self::Help {
                keyword: word,
                answered_by_provider: false,
            }
        } else {
            Self::Reply
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_stop_keyword_opts_out_whatever_its_case_and_padding() {
        for k in STOP_KEYWORDS {
            assert_eq!(
                Keyword::classify(&format!("  {}\n", k.to_lowercase()), None),
                Keyword::Stop((*k).to_owned())
            );
        }
    }

    #[test]
    fn start_and_help_keywords_are_recognised() {
        assert_eq!(Keyword::classify("Unstop", None), Keyword::Start("UNSTOP".to_owned()));
        assert_eq!(Keyword::classify("yes", None), Keyword::Start("YES".to_owned()));
        assert_eq!(
            Keyword::classify("info", None),
            Keyword::Help {
                keyword: "INFO".to_owned(),
                answered_by_provider: false
            }
        );
    }

    #[test]
    fn a_keyword_inside_a_sentence_is_a_reply() {
        assert_eq!(Keyword::classify("Stop please", None), Keyword::Reply);
        assert_eq!(Keyword::classify("yes thursday works", None), Keyword::Reply);
        assert_eq!(Keyword::classify("", None), Keyword::Reply);
    }

    #[test]
    fn opt_out_type_wins_over_the_body() {
        assert_eq!(
            Keyword::classify("Arrêt", Some("STOP")),
            Keyword::Stop("ARRÊT".to_owned())
        );
        assert_eq!(Keyword::classify("", Some("stop")), Keyword::Stop("STOP".to_owned()));
        assert_eq!(
            Keyword::classify("help", Some("HELP")),
            Keyword::Help {
                keyword: "HELP".to_owned(),
                answered_by_provider: true
            }
        );
        assert_eq!(
            Keyword::classify("go on", Some("START")),
            Keyword::Start("GO ON".to_owned())
        );
    }

    #[test]
    fn an_unknown_opt_out_type_falls_back_to_the_body() {
        assert_eq!(
            Keyword::classify("STOP", Some("SOMETHING")),
            Keyword::Stop("STOP".to_owned())
        );
        assert_eq!(Keyword::classify("hello", Some("SOMETHING")), Keyword::Reply);
    }

    fn any_keyword() -> impl Strategy<Value = &'static str> {
        prop::sample::select(
            STOP_KEYWORDS
                .iter()
                .chain(START_KEYWORDS)
                .chain(HELP_KEYWORDS)
                .copied()
                .collect::<Vec<_>>(),
        )
    }

    /// `word` with each ASCII letter's case chosen by `flips`.
    fn recase(word: &str, flips: &[bool]) -> String {
        word.chars()
            .zip(flips.iter().cycle())
            .map(|(c, &up)| {
                if up {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    fn padding() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![' ', '\t', '\n', '\r', '\u{a0}', '\u{2003}', '\u{3000}']),
            0..4,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn opt_out_kinds() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["STOP", "START", "HELP"])
    }

    proptest! {
        #[test]
        fn text_with_an_inner_space_is_never_a_keyword(a in "[a-zA-Z]{1,8}", b in "[a-zA-Z]{1,8}") {
            prop_assert_eq!(Keyword::classify(&format!("{a} {b}"), None), Keyword::Reply);
        }

        #[test]
        fn every_keyword_is_recognised_in_any_case_with_any_padding(
            k in any_keyword(),
            flips in prop::collection::vec(any::<bool>(), 1..12),
            before in padding(),
            after in padding(),
        ) {
            let got = Keyword::classify(&format!("{before}{}{after}", recase(k, &flips)), None);
            let want = if STOP_KEYWORDS.contains(&k) {
                Keyword::Stop(k.to_owned())
            } else if START_KEYWORDS.contains(&k) {
                Keyword::Start(k.to_owned())
            } else {
                Keyword::Help { keyword: k.to_owned(), answered_by_provider: false }
            };
            prop_assert_eq!(got, want);
        }

        #[test]
        fn ascii_case_and_outer_white_space_never_change_the_answer(
            body in prop_oneof![any::<String>(), any_keyword().prop_map(str::to_owned)],
            flips in prop::collection::vec(any::<bool>(), 1..12),
            before in padding(),
            after in padding(),
            kind in proptest::option::of(prop_oneof![opt_out_kinds().prop_map(str::to_owned), any::<String>()]),
        ) {
            let variant = format!("{before}{}{after}", recase(&body, &flips));
            let kind_variant = kind.as_deref().map(|k| format!("{before}{}", recase(k, &flips)));
            prop_assert_eq!(
                Keyword::classify(&variant, kind_variant.as_deref()),
                Keyword::classify(&body, kind.as_deref())
            );
        }

        #[test]
        fn without_opt_out_type_only_the_whole_listed_word_is_a_keyword(body in any::<String>()) {
            let word = body.trim().to_uppercase();
            match Keyword::classify(&body, None) {
                Keyword::Stop(k) => prop_assert!(STOP_KEYWORDS.contains(&k.as_str()) && k == word),
                Keyword::Start(k) => prop_assert!(START_KEYWORDS.contains(&k.as_str()) && k == word),
                Keyword::Help { keyword, answered_by_provider } => {
                    prop_assert!(HELP_KEYWORDS.contains(&keyword.as_str()) && keyword == word);
                    prop_assert!(!answered_by_provider);
                }
                Keyword::Reply => prop_assert!(
                    !STOP_KEYWORDS.iter().chain(START_KEYWORDS).chain(HELP_KEYWORDS).any(|k| *k == word)
                ),
            }
        }

        #[test]
        fn opt_out_type_wins_over_any_body(
            body in prop_oneof![any::<String>(), any_keyword().prop_map(str::to_owned)],
            kind in opt_out_kinds(),
            flips in prop::collection::vec(any::<bool>(), 1..6),
            pad in padding(),
        ) {
            let given = format!("{pad}{}{pad}", recase(kind, &flips));
            let word = body.trim().to_uppercase();
            let keyword = if word.is_empty() { kind.to_owned() } else { word };
            let want = match kind {
                "STOP" => Keyword::Stop(keyword),
                "START" => Keyword::Start(keyword),
                _ => Keyword::Help { keyword, answered_by_provider: true },
            };
            prop_assert_eq!(Keyword::classify(&body, Some(&given)), want);
        }

        #[test]
        fn an_unknown_opt_out_type_is_as_if_there_were_none(body in any::<String>(), kind in any::<String>()) {
            let known = ["STOP", "START", "HELP"].contains(&kind.trim().to_uppercase().as_str());
            prop_assume!(!known);
            prop_assert_eq!(Keyword::classify(&body, Some(&kind)), Keyword::classify(&body, None));
        }
    }
}
