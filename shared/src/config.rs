//! Configuration, read once from the environment (docs/api.md "smsrelay-local" table; the same names in Lambda).
//!
//! Every variable is read in one pass and *all* problems are reported together. Secret values are
//! held as `SecretString` and never logged. A value that is not there is an error at start, never
//! a placeholder: a `*_SECRET` variable (a Secrets Manager reference, [`SECRET_REFERENCES`]) is
//! resolved by the Lambda wiring *before* configuration is read (`wiring::Deps::from_env`), so
//! reaching this reader unresolved (smsrelay-local has no Secrets Manager) is a problem reported
//! like any other.

use crate::domain::{parse_duration, PhoneNumberError, Region};
use crate::ports::Sender;
use secrecy::SecretString;
use std::time::Duration;

/// Auth token used by the simulator (and to check its callbacks) when no Twilio token is set.
pub const SIMULATOR_AUTH_TOKEN: &str = "sim-auth-token";
/// Default sender with the simulator: Twilio's magic "valid From" test number.
pub const SIMULATOR_FROM: &str = "+15005550006";
/// The variables that carry a Secrets Manager reference (`<secret id or ARN>[#<json key>]`), each
/// with the variable whose value it stands for.
pub const SECRET_REFERENCES: [(&str, &str); 6] = [
    ("SMSRELAY_API_KEY_SECRET", "SMSRELAY_API_KEY"),
    ("SMSRELAY_API_KEYS_SECRET", "SMSRELAY_API_KEYS"),
    ("TWILIO_AUTH_TOKEN_SECRET", "TWILIO_AUTH_TOKEN"),
    ("SLACK_WEBHOOK_URL_SECRET", "SLACK_WEBHOOK_URL"),
    ("RETELL_API_KEY_SECRET", "RETELL_API_KEY"),
    ("OPENAI_API_KEY_SECRET", "OPENAI_API_KEY"),
];
/// Longest an agent turn may work (model calls, retries and backoff) when
/// `SMSRELAY_AGENT_DEADLINE` is not set: it fits the retry consumer's 30 s Lambda timeout with
/// room for the send that follows.
pub const DEFAULT_AGENT_DEADLINE: Duration = Duration::from_secs(20);
/// Largest request body any route accepts (docs/api.md: 256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Real Twilio credentials.
#[derive(Clone)]
pub struct TwilioSettings {
    /// `AC…` account sid.
    pub account_sid: String,
    /// Primary auth token (signs webhooks, authenticates REST calls).
    pub auth_token: SecretString,
}

/// What an API key may do (docs/api.md "Authentication").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Messages, batches and leads: what a web form or a back end that only sends needs.
    Send,
    /// Everything, the console included.
    Admin,
}

impl Scope {
    /// The name used in `SMSRELAY_API_KEYS`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Admin => "admin",
        }
    }

    /// Whether a key of this scope may use a route that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self == Self::Admin || needed == Self::Send
    }
}

/// One configured API key and its scope.
#[derive(Clone)]
pub struct ApiKey {
    /// What it may do.
    pub scope: Scope,
    /// The key itself.
    pub key: SecretString,
}

impl std::fmt::Debug for ApiKey {
    /// The scope, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({})", self.scope.name())
    }
}

/// The keys of `SMSRELAY_API_KEYS` (`admin:key1,send:key2`; whitespace around items ignored).
fn parse_api_keys(raw: &str, problems: &mut Vec<String>) -> Vec<ApiKey> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = item.split_once(':').and_then(|(scope, key)| {
            let scope = match scope.trim() {
                "admin" => Scope::Admin,
                "send" => Scope::Send,
                _ => return None,
            };
            let key = key.trim();
            (!key.is_empty()).then(|| ApiKey {
                scope,
                key: SecretString::from(key.to_owned()),
            })
        });
        match parsed {
            Some(k) => out.push(k),
            None => {
                // (the item is never quoted: it holds a key)
                problems.push(
                    "SMSRELAY_API_KEYS must be a comma-separated list of scope:key with scope admin or send".to_owned(),
                );
                return Vec::new();
            }
        }
    }
    out
}

/// Everything configurable.
#[derive(Clone)]
pub struct Config {
    /// The first admin key (`SMSRELAY_API_KEY`, else the first `admin:` key of
    /// `SMSRELAY_API_KEYS`): what smsrelay-local prints. Every key is in [`Config::api_keys`].
    pub api_key: SecretString,
    /// Every key that opens `/v1` and the console, with its scope: `SMSRELAY_API_KEY` (an admin
    /// key, kept for compatibility) and the list `SMSRELAY_API_KEYS`; two keys of one scope can be
    /// live at once while one is rotated. `dev-key` (admin) when neither is set.
    pub api_keys: Vec<ApiKey>,
    /// Base URL the provider calls back (no trailing slash). `None` in Lambda means: derive it from the request.
    pub public_url: Option<String>,
    /// Twilio credentials; `None` means the built-in simulator.
    pub twilio: Option<TwilioSettings>,
    /// Twilio REST base URL.
    pub twilio_api_base: String,
    /// Default sender (number or Messaging Service).
    pub default_sender: Sender,
    /// Region used to read national-format numbers.
    pub default_region: Region,
    /// Sends per recipient per rolling hour.
    pub rate_limit_per_hour: u32,
    /// Sends per recipient per local day (campaign / scheduled traffic).
    pub daily_limit: u32,
    /// Provider attempts per message.
    pub max_attempts: u32,
    /// Backoff base delay.
    pub retry_base: Duration,
    /// Backoff cap.
    pub retry_cap: Duration,
    /// An attempt still `sending` after this is reconciled with the provider.
    pub reconcile_after: Duration,
    /// A `sent` message without a final status after this is polled.
    pub status_poll_after: Duration,
    /// Messages per second per sender.
    pub sender_mps: u32,
    /// DynamoDB table (Lambda).
    pub table_name: Option<String>,
    /// The default quiet hours of campaign traffic, placed in the recipient's zone by
    /// `app::quiet::campaign_quiet_hours` (`SMSRELAY_QUIET_HOURS`, `HH:MM-HH:MM`); API messages
    /// never get them. `None` when set to `off`.
    pub default_quiet_hours: Option<crate::domain::QuietHours>,
    /// Zone used for the daily limit and default quiet hours when a message names none.
    pub default_timezone: chrono_tz::Tz,
    /// How often the processor is expected to run (EventBridge rate, or `--tick` locally).
    pub processor_interval: Duration,
    /// Slack incoming-webhook URL for alerts (`SLACK_WEBHOOK_URL`, or a secret in AWS).
    pub slack_webhook_url: Option<SecretString>,
    /// EventBridge bus for domain events and alerts (Lambda).
    pub event_bus: Option<String>,
    /// SQS retry queue URL (Lambda).
    pub queue_url: Option<String>,
    /// SQS dead-letter queue URL (Lambda; for health metrics).
    pub dead_letter_queue_url: Option<String>,
    /// A request whose headers or body stall longer gets 408 or a close (`SMSRELAY_REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// Run each request's handler as a task of its own, so a client that hangs up does not
    /// cancel it (`entrypoints::layers::run_to_completion`). Always on but in the seeded
    /// simulation, whose crashes drop an operation's future whole and whose scheduler polls the
    /// handler itself (not settable from the environment).
    pub detach_requests: bool,
    /// The reply to HELP / INFO when Twilio is not answering it (`SMSRELAY_HELP_TEXT`).
    pub help_text: String,
    /// The key Retell signs its webhooks with (`RETELL_API_KEY`; AWS: `retell_api_key` in the
    /// secret). `None`: the Retell route answers 403.
    pub retell_api_key: Option<SecretString>,
    /// Retell's REST API (`RETELL_API_BASE`, no trailing slash): `create-sms-chat` for the steps
    /// of Retell campaigns, with `RETELL_API_KEY`.
    pub retell_api_base: String,
    /// Chat Completions base URL for `openai` agents (`OPENAI_BASE_URL`, no trailing slash).
    pub openai_base_url: String,
    /// `OPENAI_API_KEY` (AWS: `openai_api_key` in the secret); `None` sends no Authorization
    /// header (local compatible servers).
    pub openai_api_key: Option<SecretString>,
    /// The model when a campaign's agent names none (`SMSRELAY_AGENT_MODEL`).
    pub agent_model: Option<String>,
    /// Agent replies per conversation per UTC day (`SMSRELAY_AGENT_MAX_REPLIES_PER_DAY`), so two
    /// bots can never loop.
    pub agent_max_replies_per_day: u32,
    /// How long one agent turn may work, retries included (`SMSRELAY_AGENT_DEADLINE`).
    pub agent_deadline: Duration,
}

/// The HELP answer when `SMSRELAY_HELP_TEXT` is not set.
pub const DEFAULT_HELP_TEXT: &str =
    "Reply STOP to stop messages from us, START to receive them again. Msg&data rates may apply.";

/// One or more configuration problems, all listed.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    /// One line per variable at fault (names only, never values).
    pub problems: Vec<String>,
}

impl Config {
    /// Read the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Read configuration through `get` (tests pass a map).
    ///
    /// # Errors
    /// [`ConfigError`] listing every invalid variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut dur = |name: &str, default: &str| -> Duration {
            let raw = get(name).unwrap_or_else(|| default.to_owned());
            parse_duration(&raw).unwrap_or_else(|_| {
                problems.push(format!("{name} must be a duration like 30s, 15m, 2h"));
                Duration::ZERO
            })
        };
        let retry_base = dur("SMSRELAY_RETRY_BASE", "1s");
        let retry_cap = dur("SMSRELAY_RETRY_CAP", "15m");
        let reconcile_after = dur("SMSRELAY_RECONCILE_AFTER", "2m");
        let status_poll_after = dur("SMSRELAY_STATUS_POLL_AFTER", "5m");
        let request_timeout = match get("SMSRELAY_REQUEST_TIMEOUT").map(|raw| parse_duration(&raw)) {
            None => Duration::from_secs(30),
            Some(Ok(d)) if !d.is_zero() && d <= Duration::from_secs(600) => d,
            Some(_) => {
                problems.push("SMSRELAY_REQUEST_TIMEOUT must be a duration from 1ms to 10m, like 30s".to_owned());
                Duration::from_secs(30)
            }
        };
        let mut num = |name: &str, default: u32| -> u32 {
            match get(name) {
                None => default,
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        problems.push(format!("{name} must be a positive whole number"));
                        default
                    }
                },
            }
        };
        let rate_limit_per_hour = num("SMSRELAY_RATE_LIMIT_PER_HOUR", 5);
        let daily_limit = num("SMSRELAY_DAILY_LIMIT", 10);
        let max_attempts = num("SMSRELAY_MAX_ATTEMPTS", 3);
        let sender_mps = num("SMSRELAY_SENDER_MPS", 10);
        let agent_max_replies_per_day = num("SMSRELAY_AGENT_MAX_REPLIES_PER_DAY", 20);
        let agent_deadline = match get("SMSRELAY_AGENT_DEADLINE").map(|raw| parse_duration(&raw)) {
            None => DEFAULT_AGENT_DEADLINE,
            Some(Ok(d)) if !d.is_zero() && d <= Duration::from_secs(600) => d,
            Some(_) => {
                problems.push("SMSRELAY_AGENT_DEADLINE must be a duration from 1ms to 10m, like 20s".to_owned());
                DEFAULT_AGENT_DEADLINE
            }
        };
        let openai_base_url = get("OPENAI_BASE_URL")
            .unwrap_or_else(|| "https://api.openai.com/v1".to_owned())
            .trim_end_matches('/')
            .to_owned();
        if url::Url::parse(&openai_base_url).is_err() {
            problems.push("OPENAI_BASE_URL must be an absolute URL such as https://api.openai.com/v1".to_owned());
        }

        for (reference, var) in SECRET_REFERENCES {
            if get(reference).is_some() {
                problems.push(format!(
                    "{reference} names a Secrets Manager secret, which only the Lambda functions read: \
                     set {var} instead (smsrelay-local has no Secrets Manager)"
                ));
            }
        }
        let twilio = match (get("TWILIO_ACCOUNT_SID"), get("TWILIO_AUTH_TOKEN")) {
            (Some(account_sid), Some(token)) => {
                if !(account_sid.len() == 34 && account_sid.starts_with("AC")) {
                    problems.push("TWILIO_ACCOUNT_SID must be AC followed by 32 characters".to_owned());
                }
                Some(TwilioSettings {
                    account_sid,
                    auth_token: SecretString::from(token),
                })
            }
            (None, None) => None,
            _ => {
                problems.push("set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or neither (simulator)".to_owned());
                None
            }
        };
        let sender_raw = get("TWILIO_MESSAGING_SERVICE_SID")
            .or_else(|| get("TWILIO_FROM_NUMBER"))
            .unwrap_or_else(|| SIMULATOR_FROM.to_owned());
        let default_sender = Sender::parse(&sender_raw).unwrap_or_else(|_: PhoneNumberError| {
            problems.push("TWILIO_FROM_NUMBER must be E.164 (or TWILIO_MESSAGING_SERVICE_SID an MG… sid)".to_owned());
            Sender::MessagingService(String::new())
        });
        let default_region = Region::parse(&get("SMSRELAY_DEFAULT_REGION").unwrap_or_else(|| "US".to_owned()))
            .unwrap_or_else(|_| {
                problems.push("SMSRELAY_DEFAULT_REGION must be a supported two-letter region".to_owned());
                Region::US
            });
        let default_timezone: chrono_tz::Tz = get("SMSRELAY_DEFAULT_TIMEZONE")
            .unwrap_or_else(|| "America/New_York".to_owned())
            .parse()
            .unwrap_or_else(|_| {
                problems.push("SMSRELAY_DEFAULT_TIMEZONE must be an IANA zone such as America/New_York".to_owned());
                chrono_tz::UTC
            });
        let quiet_raw = get("SMSRELAY_QUIET_HOURS").unwrap_or_else(|| "21:00-08:00".to_owned());
        let default_quiet_hours = if quiet_raw.eq_ignore_ascii_case("off") {
            None
        } else {
            let parsed = quiet_raw
                .split_once('-')
                .and_then(|(a, b)| crate::domain::QuietHours::parse(a, b, default_timezone.name()).ok());
            if parsed.is_none() {
                problems.push("SMSRELAY_QUIET_HOURS must look like 21:00-08:00 (or off)".to_owned());
            }
            parsed
        };
        let processor_interval = match get("SMSRELAY_PROCESSOR_INTERVAL") {
            None => Duration::from_secs(300),
            Some(raw) => parse_duration(&raw).unwrap_or_else(|_| {
                problems.push("SMSRELAY_PROCESSOR_INTERVAL must be a duration like 5m".to_owned());
                Duration::from_secs(300)
            }),
        };
        let public_url = get("SMSRELAY_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned());
        if let Some(u) = &public_url {
            if url::Url::parse(u).is_err() {
                problems.push("SMSRELAY_PUBLIC_URL must be an absolute URL".to_owned());
            }
        }
        let mut api_keys = get("SMSRELAY_API_KEYS")
            .map(|raw| parse_api_keys(&raw, &mut problems))
            .unwrap_or_default();
        let single = get("SMSRELAY_API_KEY");
        if let Some(k) = &single {
            api_keys.insert(
                0,
                ApiKey {
                    scope: Scope::Admin,
                    key: SecretString::from(k.clone()),
                },
            );
        }
        if api_keys.is_empty() && get("SMSRELAY_API_KEYS").is_none() {
            api_keys.push(ApiKey {
                scope: Scope::Admin,
                key: SecretString::from("dev-key"),
            });
        }
        let api_key = api_keys.iter().find(|k| k.scope == Scope::Admin).map(|k| k.key.clone());
        let Some(api_key) = api_key else {
            problems.push("SMSRELAY_API_KEYS must hold at least one admin key (admin:...)".to_owned());
            return Err(ConfigError { problems });
        };
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Self {
            api_key,
            api_keys,
            public_url,
            twilio,
            twilio_api_base: get("TWILIO_API_BASE")
                .unwrap_or_else(|| "https://api.twilio.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            default_sender,
            default_region,
            rate_limit_per_hour,
            daily_limit,
            max_attempts,
            retry_base,
            retry_cap,
            reconcile_after,
            status_poll_after,
            sender_mps,
            table_name: get("SMSRELAY_TABLE"),
            default_quiet_hours,
            default_timezone,
            processor_interval,
            slack_webhook_url: get("SLACK_WEBHOOK_URL").map(SecretString::from),
            event_bus: get("SMSRELAY_EVENT_BUS"),
            queue_url: get("SMSRELAY_QUEUE_URL"),
            dead_letter_queue_url: get("SMSRELAY_DLQ_URL"),
            request_timeout,
            detach_requests: true,
            help_text: get("SMSRELAY_HELP_TEXT").unwrap_or_else(|| DEFAULT_HELP_TEXT.to_owned()),
            retell_api_key: get("RETELL_API_KEY").map(SecretString::from),
            retell_api_base: get("RETELL_API_BASE")
                .unwrap_or_else(|| "https://api.retellai.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            openai_base_url,
            openai_api_key: get("OPENAI_API_KEY").map(SecretString::from),
            agent_model: get("SMSRELAY_AGENT_MODEL"),
            agent_max_replies_per_day,
            agent_deadline,
        })
    }

    /// The token that signs provider webhooks: Twilio's auth token, or the simulator's.
    pub fn webhook_auth_token(&self) -> SecretString {
        match &self.twilio {
            Some(t) => t.auth_token.clone(),
            None => SecretString::from(SIMULATOR_AUTH_TOKEN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Config::from_lookup(lookup(&[])).expect("defaults are valid");
        assert_eq!(c.rate_limit_per_hour, 5);
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.retry_base, Duration::from_secs(1));
        assert_eq!(c.retry_cap, Duration::from_secs(900));
        assert_eq!(c.reconcile_after, Duration::from_secs(120));
        assert_eq!(c.daily_limit, 10);
        assert_eq!(c.sender_mps, 10);
        assert_eq!(c.default_sender.as_str(), SIMULATOR_FROM);
        assert!(c.twilio.is_none());
        assert_eq!(c.twilio_api_base, "https://api.twilio.com");
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.openai_base_url, "https://api.openai.com/v1");
        assert!(c.openai_api_key.is_none() && c.agent_model.is_none());
        assert_eq!(c.agent_max_replies_per_day, 20);
        assert_eq!(c.agent_deadline, Duration::from_secs(20));
    }

    #[test]
    fn the_request_timeout_is_a_positive_duration_of_at_most_ten_minutes() {
        let c = Config::from_lookup(lookup(&[("SMSRELAY_REQUEST_TIMEOUT", "500ms")])).expect("valid");
        assert_eq!(c.request_timeout, Duration::from_millis(500));
        for bad in ["0s", "soon", "11m", "-1s"] {
            let err = Config::from_lookup(lookup(&[("SMSRELAY_REQUEST_TIMEOUT", bad)]))
                .err()
                .expect("invalid");
            assert_eq!(err.problems.len(), 1, "{bad}: {err}");
            assert!(err.problems[0].contains("SMSRELAY_REQUEST_TIMEOUT"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_unresolved_secret_reference_is_a_configuration_error_not_a_placeholder() {
        let err = Config::from_lookup(lookup(&[
            ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
            ("TWILIO_AUTH_TOKEN_SECRET", "smsrelay#twilio_auth_token"),
        ]))
        .err()
        .expect("a reference nobody resolved is an error at start");
        let secret = err
            .problems
            .iter()
            .find(|p| p.contains("TWILIO_AUTH_TOKEN_SECRET"))
            .expect("the reference is named");
        assert!(secret.contains("set TWILIO_AUTH_TOKEN instead"), "{err}");
        assert!(
            !err.to_string().contains("smsrelay#"),
            "names the variable, not its value: {err}"
        );
        for (reference, _) in SECRET_REFERENCES {
            let err = Config::from_lookup(lookup(&[(reference, "x")])).err().expect(reference);
            assert!(err.problems[0].contains(reference), "{err}");
        }
    }

    #[test]
    fn a_resolved_token_is_used_as_given() {
        let c = Config::from_lookup(lookup(&[
            ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
            ("TWILIO_AUTH_TOKEN", "tok"),
        ]))
        .expect("valid");
        let t = c.twilio.expect("Twilio");
        assert_eq!(secrecy::ExposeSecret::expose_secret(&t.auth_token), "tok");
    }

    #[test]
    fn api_keys_are_a_scoped_list_and_the_single_key_stays_an_admin_key() {
        use secrecy::ExposeSecret;
        let scopes = |c: &Config| -> Vec<(Scope, String)> {
            c.api_keys
                .iter()
                .map(|k| (k.scope, k.key.expose_secret().to_owned()))
                .collect()
        };
        let c = Config::from_lookup(lookup(&[])).expect("defaults");
        assert_eq!(scopes(&c), vec![(Scope::Admin, "dev-key".to_owned())]);
        let c = Config::from_lookup(lookup(&[("SMSRELAY_API_KEYS", "admin:a1, admin:a2 ,send:s1")])).expect("valid");
        assert_eq!(
            scopes(&c),
            vec![
                (Scope::Admin, "a1".to_owned()),
                (Scope::Admin, "a2".to_owned()),
                (Scope::Send, "s1".to_owned())
            ]
        );
        assert_eq!(c.api_key.expose_secret(), "a1");
        let c = Config::from_lookup(lookup(&[("SMSRELAY_API_KEY", "old"), ("SMSRELAY_API_KEYS", "send:s1")]))
            .expect("valid");
        assert_eq!(
            scopes(&c),
            vec![(Scope::Admin, "old".to_owned()), (Scope::Send, "s1".to_owned())]
        );
        for bad in ["root:k", "admin:", "admin", "send:s1"] {
            let err = Config::from_lookup(lookup(&[("SMSRELAY_API_KEYS", bad)]))
                .err()
                .expect(bad);
            assert!(err.to_string().contains("SMSRELAY_API_KEYS"), "{bad}: {err}");
            assert!(!err.to_string().contains("s1"), "never quotes a key: {err}");
        }
        assert!(Scope::Admin.allows(Scope::Send) && Scope::Admin.allows(Scope::Admin));
        assert!(Scope::Send.allows(Scope::Send) && !Scope::Send.allows(Scope::Admin));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::from_lookup(lookup(&[
            ("SMSRELAY_RETRY_BASE", "soon"),
            ("SMSRELAY_MAX_ATTEMPTS", "zero"),
            ("TWILIO_ACCOUNT_SID", "AC123"),
        ]))
        .err()
        .expect("invalid");
        assert_eq!(err.problems.len(), 3, "{err}");
    }
}
