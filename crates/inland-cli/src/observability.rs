//! Logs, metrics and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`) for the
//! whole process, set up once before any service starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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

/// Whether this process should receive work. Services mark it ready once they serve;
/// Kubernetes routes nothing to a pod whose `/readyz` says otherwise.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    fn status(&self) -> (StatusCode, &'static str) {
        if self.0.load(Ordering::Relaxed) {
            (StatusCode::OK, "ready\n")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
        }
    }
}

/// Installs the metrics recorder and serves the admin endpoints when configured. Must run
/// inside the Tokio runtime.
pub async fn init_admin(config: &ObservabilityConfig) -> anyhow::Result<Readiness> {
    let readiness = Readiness::default();
    let Some(addr) = config.admin_listen else {
        return Ok(readiness);
    };
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve the admin endpoints on {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(upkeep(metrics.clone()));
    let served = readiness.clone();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(metrics, served)).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    serving(bound);
    Ok(readiness)
}

fn router(metrics: PrometheusHandle, readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/healthz", get(|| std::future::ready("ok\n")))
        .route(
            "/readyz",
            get(move || std::future::ready(readiness.status())),
        )
}

/// Histograms keep raw samples until drained: drain them regularly so memory stays flat
/// even when nobody scrapes.
async fn upkeep(metrics: PrometheusHandle) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        metrics.run_upkeep();
    }
}

fn serving(addr: SocketAddr) {
    tracing::info!(%addr, "admin endpoints: /metrics /healthz /readyz");
}
