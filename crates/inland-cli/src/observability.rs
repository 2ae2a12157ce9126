//! Logs and metrics for the whole process, set up once before any service starts.

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, ObservabilityConfig};

pub fn init_logs(config: &ObservabilityConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Serves `/metrics` for Prometheus when configured. Must run inside the Tokio runtime.
pub fn init_metrics(config: &ObservabilityConfig) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics_listen {
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    Ok(())
}
