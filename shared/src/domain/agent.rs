//! Which agent answers a campaign's conversations (docs/api.md "Campaigns, leads, conversations",
//! `agent`): an OpenAI-compatible model with the campaign's prompt, Retell's own agent, or the
//! built-in scripted rules. A campaign without one records replies and waits for a person.
//!
//! Pure data, shared by campaigns (which store it) and the agent adapters (which act on it).

use super::Outcome;
use serde::{Deserialize, Serialize};

/// A campaign's `agent` object, tagged by `provider`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum AgentSpec {
    /// Any OpenAI-compatible Chat Completions server (`OPENAI_BASE_URL`).
    Openai {
        /// The system prompt.
        prompt: String,
        /// The model; `SMSRELAY_AGENT_MODEL` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// Retell's agent writes the replies itself; smsrelay records them.
    Retell {
        /// Retell's agent id (`create-sms-chat` `override_agent_id`).
        retell_agent_id: String,
    },
    /// Built-in rules, no network: first match wins, else the fallback.
    Scripted {
        /// The rules, in order.
        #[serde(default)]
        rules: Vec<ScriptedRule>,
        /// The reply when no rule matches (none: stay quiet).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback: Option<String>,
    },
}

/// One scripted rule: a regex over the lead's text, a reply, an optional outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedRule {
    /// A regular expression (`regex-lite` syntax), matched case-insensitively.
    #[serde(rename = "match")]
    pub pattern: String,
    /// The reply sent when it matches.
    pub reply: String,
    /// The outcome the conversation ends with when it matches.
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

/// Why an agent spec is unusable (a 400 at campaign creation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentSpecError {
    /// A required text is empty.
    #[error("agent.{0} must not be empty")]
    Empty(&'static str),
    /// A scripted rule's `match` is not a regular expression.
    #[error("agent.rules[{index}].match is not a regular expression: {reason}")]
    BadPattern {
        /// Which rule.
        index: usize,
        /// What the regex parser said.
        reason: String,
    },
}

impl AgentSpec {
    /// The `provider` value.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Openai { .. } => "openai",
            Self::Retell { .. } => "retell",
            Self::Scripted { .. } => "scripted",
        }
    }

    /// Check what serde cannot: non-empty prompt and id, rules that compile.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), AgentSpecError> {
        match self {
            Self::Openai { prompt, model } => {
                if prompt.trim().is_empty() {
                    return Err(AgentSpecError::Empty("prompt"));
                }
                if model.as_deref().is_some_and(|m| m.trim().is_empty()) {
                    return Err(AgentSpecError::Empty("model"));
                }
            }
            Self::Retell { retell_agent_id } => {
                if retell_agent_id.trim().is_empty() {
                    return Err(AgentSpecError::Empty("retell_agent_id"));
                }
            }
            Self::Scripted { rules, .. } => {
                for (index, rule) in rules.iter().enumerate() {
                    rule.regex().map_err(|e| AgentSpecError::BadPattern {
                        index,
                        reason: e.to_string(),
                    })?;
                    if rule.reply.trim().is_empty() {
                        return Err(AgentSpecError::Empty("rules[].reply"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a lead's text asks for a person ("human", "agent", "person", "representative" as
/// words, any case): the conversation is escalated before any agent answers (docs/api.md
/// outcomes: "asked for a person → escalated"), with or without a model.
pub fn asks_for_person(text: &str) -> bool {
    const WORDS: [&str; 4] = ["human", "agent", "person", "representative"];
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| WORDS.iter().any(|w| word.eq_ignore_ascii_case(w)))
}

impl ScriptedRule {
    /// The rule's pattern compiled, case-insensitive.
    ///
    /// # Errors
    /// The pattern does not parse.
    pub fn regex(&self) -> Result<regex_lite::Regex, regex_lite::Error> {
        regex_lite::RegexBuilder::new(&self.pattern)
            .case_insensitive(true)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_providers_read_as_api_md_writes_them() {
        let openai: AgentSpec = serde_json::from_str(
            r#"{"provider":"openai","prompt":"You book roof inspections","model":"gpt-4.1-mini"}"#,
        )
        .expect("openai");
        assert_eq!(openai.provider(), "openai");
        let retell: AgentSpec =
            serde_json::from_str(r#"{"provider":"retell","retell_agent_id":"agent_1"}"#).expect("retell");
        assert_eq!(
            retell,
            AgentSpec::Retell {
                retell_agent_id: "agent_1".into()
            }
        );
        let scripted: AgentSpec = serde_json::from_str(
            r#"{"provider":"scripted","rules":[{"match":"\\byes\\b","reply":"Great!","outcome":"qualified"}],"fallback":"Tell me more"}"#,
        )
        .expect("scripted");
        let AgentSpec::Scripted { rules, fallback } = &scripted else {
            panic!("scripted")
        };
        assert_eq!(rules[0].outcome, Some(Outcome::Qualified));
        assert_eq!(fallback.as_deref(), Some("Tell me more"));
        assert!(rules[0].regex().expect("compiles").is_match("YES please"));
        assert!(scripted.validate().is_ok());
    }

    #[test]
    fn asking_for_a_person_is_recognised_as_a_word_only() {
        for yes in [
            "Can I talk to a HUMAN?",
            "real person please",
            "agent!",
            "a representative, now",
        ] {
            assert!(asks_for_person(yes), "{yes}");
        }
        for no in ["personally I like Thursday", "humane society", "yes 2pm", "agents-of"] {
            assert!(!asks_for_person(no), "{no}");
        }
        assert!(!asks_for_person("agents"), "plural is not the keyword");
    }

    #[test]
    fn unusable_specs_are_refused_with_the_reason() {
        let bad = AgentSpec::Scripted {
            rules: vec![ScriptedRule {
                pattern: "(".into(),
                reply: "x".into(),
                outcome: None,
            }],
            fallback: None,
        };
        assert!(matches!(
            bad.validate(),
            Err(AgentSpecError::BadPattern { index: 0, .. })
        ));
        let empty = AgentSpec::Openai {
            prompt: "  ".into(),
            model: None,
        };
        assert_eq!(empty.validate(), Err(AgentSpecError::Empty("prompt")));
        assert!(serde_json::from_str::<AgentSpec>(r#"{"provider":"claude","prompt":"x"}"#).is_err());
    }

    // ---- properties ----

    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["\\PC{0,24}", Just(String::new()), Just("  ".to_owned()), "[a-z ]{1,12}"]
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,8}".prop_map(|w| format!("\\b{w}\\b")),
            "[a-z|]{1,12}",
            "\\PC{0,12}",
            prop::sample::select(vec!["(", "[a-", "a{2,1}", "\\", "*", "(?i)yes", "^(stop|no)$"])
                .prop_map(str::to_owned),
        ]
    }

    fn any_rule() -> impl Strategy<Value = ScriptedRule> {
        (
            pattern(),
            text(),
            prop::option::of(prop::sample::select(Outcome::ALL.to_vec())),
        )
            .prop_map(|(pattern, reply, outcome)| ScriptedRule {
                pattern,
                reply,
                outcome,
            })
    }

    fn any_spec() -> impl Strategy<Value = AgentSpec> {
        prop_oneof![
            (text(), prop::option::of(text())).prop_map(|(prompt, model)| AgentSpec::Openai { prompt, model }),
            text().prop_map(|retell_agent_id| AgentSpec::Retell { retell_agent_id }),
            (prop::collection::vec(any_rule(), 0..5), prop::option::of(text()))
                .prop_map(|(rules, fallback)| AgentSpec::Scripted { rules, fallback }),
        ]
    }

    /// The first problem in `spec`, by a separate reading of the contract.
    fn first_problem(spec: &AgentSpec) -> Option<AgentSpecError> {
        let blank = |s: &str| s.trim().is_empty();
        match spec {
            AgentSpec::Openai { prompt, .. } if blank(prompt) => Some(AgentSpecError::Empty("prompt")),
            AgentSpec::Openai { model: Some(m), .. } if blank(m) => Some(AgentSpecError::Empty("model")),
            AgentSpec::Openai { .. } => None,
            AgentSpec::Retell { retell_agent_id } if blank(retell_agent_id) => {
                Some(AgentSpecError::Empty("retell_agent_id"))
            }
            AgentSpec::Retell { .. } => None,
            AgentSpec::Scripted { rules, .. } => {
                rules
                    .iter()
                    .enumerate()
                    .find_map(|(index, rule)| match regex_lite::Regex::new(&rule.pattern) {
                        Err(e) => Some(AgentSpecError::BadPattern {
                            index,
                            reason: e.to_string(),
                        }),
                        Ok(_) if blank(&rule.reply) => Some(AgentSpecError::Empty("rules[].reply")),
                        Ok(_) => None,
                    })
            }
        }
    }

    proptest! {
        #[test]
        fn every_spec_round_trips_through_json_with_its_provider_tag(spec in any_spec()) {
            let value = serde_json::to_value(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(value.get("provider").and_then(serde_json::Value::as_str), Some(spec.provider()));
            prop_assert_eq!(serde_json::from_value::<AgentSpec>(value).ok(), Some(spec));
        }

        #[test]
        fn validate_reports_the_first_problem(spec in any_spec()) {
            match (spec.validate(), first_problem(&spec)) {
                (Ok(()), None) => {}
                (Err(AgentSpecError::BadPattern { index, .. }), Some(AgentSpecError::BadPattern { index: want, .. })) => {
                    prop_assert_eq!(index, want);
                }
                (got, want) => prop_assert_eq!(got.err(), want),
            }
        }

        #[test]
        fn a_valid_literal_rule_matches_its_word_in_any_ascii_case(
            word in "[a-z]{1,10}", flips in prop::collection::vec(any::<bool>(), 1..10), before in "[ ,.!]{0,3}", after in "[ ,.!?]{0,3}",
        ) {
            let rule = ScriptedRule { pattern: format!("\\b{}\\b", regex_lite::escape(&word)), reply: "ok".to_owned(), outcome: None };
            let spoken: String = word
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            let re = rule.regex().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let said = format!("{before}{spoken}{after}");
            let glued = format!("x{spoken}x");
            prop_assert!(re.is_match(&said));
            prop_assert!(!re.is_match(&glued), "a word boundary is a word boundary");
        }

        #[test]
        fn arbitrary_json_never_panics_and_is_tagged_by_provider(
            provider in prop_oneof![Just("openai".to_owned()), Just("retell".to_owned()), Just("scripted".to_owned()), "\\PC{0,8}"],
            prompt in prop::option::of(prop_oneof![text().prop_map(serde_json::Value::from), any::<i64>().prop_map(serde_json::Value::from)]),
            rules in prop::option::of(prop::collection::vec(any_rule(), 0..3)),
            extra in prop::option::of("\\PC{0,8}"),
        ) {
            let mut v = serde_json::json!({ "provider": provider });
            if let Some(p) = prompt {
                v["prompt"] = p.clone();
                v["retell_agent_id"] = p;
            }
            if let Some(r) = rules {
                v["rules"] = serde_json::to_value(r).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            if let Some(x) = extra {
                v["unknown_field"] = serde_json::Value::from(x);
            }
            if let Ok(spec) = serde_json::from_value::<AgentSpec>(v) {
                prop_assert_eq!(spec.provider(), provider.as_str());
                prop_assert_eq!(spec.validate().is_ok(), first_problem(&spec).is_none());
            }
        }
    }
}
