//! Logging setup: JSON lines in Lambda (CloudWatch), readable text locally. Level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = if in_lambda {
        builder.json().without_time().try_init()
    } else {
        builder.try_init()
    };
    if result.is_err() {
        tracing::debug!("telemetry already initialised");
    }
}
