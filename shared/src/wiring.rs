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
use crate::adapters::twilio::{TwilioCredentials, TwilioSimulator, TwilioSmsProvider};
use crate::config::{Config, ConfigError};
use crate::ports::{Clock, JobQueue, SmsProvider, Store};
use std::sync::Arc;

/// Everything a handler needs, shared by reference across invocations.
#[derive(Clone)]
pub struct Deps {
    /// Configuration.
    pub config: Arc<Config>,
    /// State.
    pub store: Arc<dyn Store>,
    /// Retry queue.
    pub queue: Arc<dyn JobQueue>,
    /// SMS provider.
    pub provider: Arc<dyn SmsProvider>,
    /// Time.
    pub clock: Arc<dyn Clock>,
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
}

impl Deps {
    /// Assemble from parts (tests and the local runner).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        queue: Arc<dyn JobQueue>,
        provider: Arc<dyn SmsProvider>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            store,
            queue,
            provider,
            clock,
        }
    }

    #[cfg(feature = "aws")]
    /// Lambda: read the environment, build SDK clients and adapters once.
    ///
    /// # Errors
    /// Invalid configuration (all problems listed) or a client that cannot be built.
    pub async fn from_env() -> Result<Self, WiringError> {
        let config = Config::from_env()?;
        let mut problems = Vec::new();
        if config.table_name.is_none() {
            problems.push("SMSRELAY_TABLE must name the DynamoDB table".to_owned());
        }
        if config.queue_url.is_none() {
            problems.push("SMSRELAY_QUEUE_URL must name the SQS retry queue".to_owned());
        }
        let (Some(table), Some(queue_url)) = (config.table_name.clone(), config.queue_url.clone()) else {
            return Err(ConfigError { problems }.into());
        };
        let sdk = aws_config::load_from_env().await;
        let store = Arc::new(DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
        let queue = Arc::new(SqsJobQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            queue_url,
            config.dead_letter_queue_url.clone(),
        ));
        let provider = provider_for(&config)?;
        Ok(Self::new(config, store, queue, provider, Arc::new(SystemClock)))
    }
}

/// Real Twilio when credentials are configured, otherwise the simulator.
///
/// # Errors
/// The HTTP client cannot be built.
pub fn provider_for(config: &Config) -> Result<Arc<dyn SmsProvider>, WiringError> {
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(WiringError::Http)?;
    Ok(match &config.twilio {
        Some(t) => Arc::new(TwilioSmsProvider::new(
            TwilioCredentials {
                account_sid: t.account_sid.clone(),
                auth_token: t.auth_token.clone(),
            },
            config.twilio_api_base.clone(),
            http,
        )),
        None => Arc::new(TwilioSimulator::new(config.webhook_auth_token(), http)),
    })
}
