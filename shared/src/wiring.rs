//! Building the dependencies once per cold start (Lambda) or process (local).
//!
//! Lambda: DynamoDB store (`SMSRELAY_TABLE`), Twilio when credentials are set (else the simulator).
//! Local: `functions/local` builds a SQLite store and passes it to [`Deps::new`].

#[cfg(feature = "aws")]
use crate::adapters::dynamodb::DynamoMessageStore;
#[cfg(feature = "aws")]
use crate::adapters::sqs_queue::SqsJobQueue;
#[cfg(feature = "aws")]
use crate::adapters::system_clock::SystemClock;
use crate::adapters::twilio::ledger::Ledger;
use crate::adapters::twilio::{TwilioCredentials, TwilioSimulator, TwilioSmsProvider};
use crate::app::Ctx;
use crate::config::{Config, ConfigError};
use crate::ports::{
    Agent, Alerter, BatchStore, CampaignAgents, CampaignStore, Clock, ConsentStore, ConversationStore, CounterStore,
    EnrolmentHook, EventPublisher, IdempotencyStore, JobQueue, MessageQueries, MessageStore, Retention, SmsProvider,
};
use std::sync::Arc;

/// Everything a handler needs, shared by reference across invocations.
#[derive(Clone)]
pub struct Deps {
    /// Configuration.
    pub config: Arc<Config>,
    /// Messages, provider-sid pointers, webhook receipts.
    pub messages: Arc<dyn MessageStore>,
    /// The due index, the failed list, messages of a ref.
    pub queries: Arc<dyn MessageQueries>,
    /// Opt-outs and send slots.
    pub consent: Arc<dyn ConsentStore>,
    /// `Idempotency-Key` records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Counters, claims, small documents.
    pub counters: Arc<dyn CounterStore>,
    /// Batch records and tallies.
    pub batches: Arc<dyn BatchStore>,
    /// Purging what expired (a no-op where the store has TTL).
    pub retention: Arc<dyn Retention>,
    /// Retry queue.
    pub queue: Arc<dyn JobQueue>,
    /// SMS provider.
    pub provider: Arc<dyn SmsProvider>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Operator alerts (Slack and EventBridge in AWS; the log locally).
    pub alerter: Arc<dyn Alerter>,
    /// Domain events (EventBridge in AWS; a table and the log locally).
    pub events: Arc<dyn EventPublisher>,
    /// Conversations (the same store adapter as the other stores).
    pub conversations: Arc<dyn ConversationStore>,
    /// Campaign enrolments that inbound texts stop or pause.
    pub enrolments: Arc<dyn EnrolmentHook>,
    /// The agent of a conversation's campaign (read from the campaign store).
    pub campaign_agents: Arc<dyn CampaignAgents>,
    /// The agents that answer (`openai`, `scripted`; `retell` answers itself).
    pub agent: Arc<dyn Agent>,
    /// Campaigns, enrolments and their due index.
    pub campaigns: Arc<dyn CampaignStore>,
    /// Retell's outbound SMS chats (the steps of Retell campaigns), when `RETELL_API_KEY` is set.
    pub retell_chats: Option<Arc<dyn crate::ports::retell_chats::RetellChats>>,
    /// Metric increments gathered for one write per flush (smsrelay-local); `None` writes each
    /// at once (Lambda, tests).
    pub metric_buffer: Option<Arc<crate::app::metrics::MetricBuffer>>,
}

/// Why the dependencies could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// Configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An HTTP client could not be built.
    #[error("could not build the HTTP client")]
    Http(#[source] reqwest::Error),
    /// A secret could not be read.
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Secret(#[from] crate::adapters::secrets::SecretError),
}

/// The whole-request deadline of [`http_client`] (Slack, the simulator's callbacks; Twilio's own
/// per-request deadline is [`crate::adapters::twilio::DEFAULT_TIMEOUT`]). Every function's timeout
/// in template.yaml is above both, so a slow peer ends in the designed answer, not a Lambda
/// timeout (tests/e2e/template.rs checks it).
pub const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The HTTP client for webhooks and provider calls: one per process, cloned (a clone shares its
/// connection pool and TLS configuration, which are costly to build: the root store is parsed
/// once, not at every rebuild of the dependencies).
///
/// # Errors
/// The TLS stack cannot be initialised.
pub fn http_client() -> Result<reqwest::Client, WiringError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let built = http_client_builder().build().map_err(WiringError::Http)?;
    Ok(CLIENT.get_or_init(|| built).clone())
}

/// What [`http_client`] is built from: its deadlines, on the process's TLS provider
/// ([`install_tls`]) and the system's root certificates. A test adds its own root to it.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_tls();
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(HTTP_TIMEOUT)
}

/// A reqwest client with reqwest's defaults (no deadlines) on the process's TLS provider: for
/// tests and tools that drive a server. A reqwest client cannot be built before [`install_tls`].
#[must_use]
pub fn plain_http_client() -> reqwest::Client {
    install_tls();
    reqwest::Client::new()
}

/// Make rustls' `ring` provider the process default, once (later calls do nothing). reqwest is
/// built without a provider of its own (`rustls-no-provider`) and takes this one; the AWS SDK's
/// client ([`aws_http_client`]) names it itself. One TLS stack, not two.
pub fn install_tls() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err means another provider was installed first (by an embedding program): keep it.
        let _kept = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The HTTP client of every AWS SDK client: hyper and rustls on `ring`, the system's roots.
#[cfg(feature = "aws")]
#[must_use]
pub fn aws_http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_http_client_with(aws_smithy_http_client::tls::TlsContext::default())
}

/// [`aws_http_client`] with a TLS context of the caller's (a test's own root certificate).
#[cfg(feature = "aws")]
#[must_use]
pub fn aws_http_client_with(
    tls: aws_smithy_http_client::tls::TlsContext,
) -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https()
}

impl Deps {
    /// Assemble from parts (tests and the local runner). `store` is one adapter value that serves
    /// every store port (SQLite, DynamoDB, `testing::CountingStore`); each port is held as its own
    /// `Arc<dyn Port>`, so a test may replace one afterwards (`deps.counters = …`). A new port is
    /// a new field here and a new bound below, nothing else.
    pub fn new<S>(
        config: Config,
        store: Arc<S>,
        queue: Arc<dyn JobQueue>,
        provider: Arc<dyn SmsProvider>,
        clock: Arc<dyn Clock>,
    ) -> Self
    where
        S: MessageStore
            + MessageQueries
            + ConsentStore
            + IdempotencyStore
            + CounterStore
            + BatchStore
            + Retention
            + ConversationStore
            + CampaignStore
            + 'static,
    {
        let agent = Arc::new(agent_for(&config, clock.clone()));
        let retell_chats = retell_chats_for(&config);
        let campaigns: Arc<dyn CampaignStore> = store.clone();
        let counters: Arc<dyn CounterStore> = store.clone();
        Self {
            agent,
            config: Arc::new(config),
            messages: store.clone(),
            queries: store.clone(),
            consent: store.clone(),
            idempotency: store.clone(),
            counters: store.clone(),
            batches: store.clone(),
            // Outcome counters of the campaign report are kept on every conversation write.
            conversations: Arc::new(crate::app::campaigns::CountedConversations::new(
                store.clone(),
                counters.clone(),
            )),
            retention: store,
            enrolments: Arc::new(crate::app::campaigns::EnrolmentsHook::new(campaigns.clone(), counters)),
            campaign_agents: Arc::new(crate::app::campaigns::StoredCampaignAgents(campaigns.clone())),
            retell_chats,
            campaigns,
            queue,
            provider,
            clock,
            alerter: Arc::new(crate::adapters::log_alerter::LogAlerter),
            events: Arc::new(crate::adapters::log_only::LogOnlyPublisher),
            metric_buffer: None,
        }
    }

    /// The send pipeline's context for one request or job (`callback_base`: the public base URL
    /// the provider calls back, no trailing slash).
    pub fn ctx<'a>(&'a self, callback_base: &'a str) -> Ctx<'a> {
        Ctx {
            messages: self.messages.as_ref(),
            consent: self.consent.as_ref(),
            counters: self.counters.as_ref(),
            batches: self.batches.as_ref(),
            queue: self.queue.as_ref(),
            provider: self.provider.as_ref(),
            clock: self.clock.as_ref(),
            alerter: self.alerter.as_ref(),
            events: self.events.as_ref(),
            config: &self.config,
            callback_base,
            metrics: self.metric_buffer.as_deref(),
        }
    }

    /// Gather metric increments in memory; the owner flushes them
    /// ([`MetricBuffer::flush`](crate::app::metrics::MetricBuffer::flush)) on a timer and at
    /// shutdown.
    #[must_use]
    pub fn with_metric_buffer(mut self) -> Self {
        self.metric_buffer = Some(Arc::new(crate::app::metrics::MetricBuffer::default()));
        self
    }

    /// Replace the alerter.
    #[must_use]
    pub fn with_alerter(mut self, alerter: Arc<dyn Alerter>) -> Self {
        self.alerter = alerter;
        self
    }

    /// Replace the domain-event publisher.
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn EventPublisher>) -> Self {
        self.events = events;
        self
    }

    #[cfg(feature = "aws")]
    /// Lambda: resolve the secret references, read the configuration with their values, build SDK
    /// clients and adapters once.
    ///
    /// # Errors
    /// A secret reference that cannot be read, invalid configuration (all problems listed), or a
    /// client that cannot be built.
    pub async fn from_env() -> Result<Self, WiringError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(aws_http_client())
            .load()
            .await;
        // Secrets first: the configuration reads their values, never a placeholder for them.
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let resolved = crate::adapters::secrets::resolve_secrets(&secrets, env).await?;
        let config = Config::from_lookup(resolved.lookup(env))?;
        let mut problems = Vec::new();
        if config.table_name.is_none() {
            problems.push("SMSRELAY_TABLE must name the DynamoDB table".to_owned());
        }
        if config.queue_url.is_none() {
            problems.push("SMSRELAY_QUEUE_URL must name the SQS retry queue".to_owned());
        }
        if env("SMSRELAY_API_KEY").is_none() && env("SMSRELAY_API_KEY_SECRET").is_none() {
            problems
                .push("set SMSRELAY_API_KEY_SECRET (a Secrets Manager reference): no default key in AWS".to_owned());
        }
        let (Some(table), Some(queue_url), true) =
            (config.table_name.clone(), config.queue_url.clone(), problems.is_empty())
        else {
            return Err(ConfigError { problems }.into());
        };
        let store = Arc::new(DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
        let queue = Arc::new(SqsJobQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            queue_url,
            config.dead_letter_queue_url.clone(),
        ));
        let provider = provider_for(&config)?;
        let mut alerters: Vec<Arc<dyn Alerter>> = vec![Arc::new(crate::adapters::log_alerter::LogAlerter)];
        if let Some(url) = &config.slack_webhook_url {
            alerters.push(Arc::new(crate::adapters::slack::SlackAlerter::new(
                url.clone(),
                http_client()?,
            )));
        }
        let events: Arc<dyn EventPublisher> = match &config.event_bus {
            Some(bus) => {
                let publisher = crate::adapters::eventbridge::EventBridgePublisher::new(
                    aws_sdk_eventbridge::Client::new(&sdk),
                    bus.clone(),
                );
                alerters.push(Arc::new(crate::adapters::eventbridge::EventBridgeAlerter::new(
                    publisher.clone(),
                )));
                Arc::new(publisher)
            }
            None => Arc::new(crate::adapters::log_only::LogOnlyPublisher),
        };
        Ok(Self::new(config, store, queue, provider, Arc::new(SystemClock))
            .with_alerter(Arc::new(crate::adapters::log_alerter::FanoutAlerter::new(alerters)))
            .with_events(events))
    }
}

/// The agent router of a deployment: the Chat Completions client on `OPENAI_BASE_URL` (with
/// `OPENAI_API_KEY` when set) sleeping on `clock` between retries, and the scripted rules. The
/// same in Lambda (the retry consumer) and smsrelay-local (its queue worker).
/// The `create-sms-chat` client when a Retell key is configured.
pub fn retell_chats_for(config: &Config) -> Option<Arc<dyn crate::ports::retell_chats::RetellChats>> {
    let key = config.retell_api_key.clone()?;
    match http_client() {
        Ok(http) => Some(Arc::new(crate::adapters::retell::client::RetellClient::new(
            config.retell_api_base.clone(),
            key,
            http,
        ))),
        Err(e) => {
            tracing::error!(error.message = %e, "no HTTP client: Retell campaign steps are unavailable");
            None
        }
    }
}

pub fn agent_for(config: &Config, clock: Arc<dyn Clock>) -> crate::adapters::agents::AgentRouter {
    use crate::adapters::openai::{OpenAiAgent, OpenAiSettings};
    let openai = match http_client() {
        Ok(http) => Some(OpenAiAgent::new(
            OpenAiSettings {
                base_url: config.openai_base_url.clone(),
                api_key: config.openai_api_key.clone(),
                default_model: config.agent_model.clone(),
            },
            http,
            clock,
        )),
        Err(e) => {
            tracing::error!(error.message = %e, "no HTTP client: openai agents are unavailable");
            None
        }
    };
    crate::adapters::agents::AgentRouter::new(openai)
}

/// Real Twilio when credentials are configured, otherwise the simulator, keeping its messages in
/// memory (a Lambda has no file to keep them in; smsrelay-local passes its SQLite file's ledger
/// through [`simulator_on`]).
///
/// # Errors
/// The HTTP client cannot be built.
pub fn provider_for(config: &Config) -> Result<Arc<dyn SmsProvider>, WiringError> {
    Ok(match &config.twilio {
        Some(t) => Arc::new(TwilioSmsProvider::new(
            TwilioCredentials {
                account_sid: t.account_sid.clone(),
                auth_token: t.auth_token.clone(),
            },
            config.twilio_api_base.clone(),
            http_client()?,
        )),
        None => Arc::new(simulator_on(config, Ledger::in_memory())?),
    })
}

/// The simulator, signing with the configured webhook token and keeping its messages in `ledger`.
///
/// # Errors
/// The HTTP client cannot be built.
pub fn simulator_on(config: &Config, ledger: impl Into<Ledger>) -> Result<TwilioSimulator, WiringError> {
    Ok(TwilioSimulator::new(
        config.webhook_auth_token(),
        http_client()?,
        ledger,
    ))
}
