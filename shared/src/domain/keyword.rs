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

    proptest! {
        #[test]
        fn text_with_an_inner_space_is_never_a_keyword(a in "[a-zA-Z]{1,8}", b in "[a-zA-Z]{1,8}") {
            prop_assert_eq!(Keyword::classify(&format!("{a} {b}"), None), Keyword::Reply);
        }
    }
}
