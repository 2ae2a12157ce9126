//! Logs, metrics and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`) for the
//! whole process, set up once before any service starts.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use inland_stage::trace;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::FanoutBuilder;
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, ObservabilityConfig};
use crate::otlp_metrics;
use crate::readiness::Readiness;

/// What exports over OTLP, when an endpoint is configured; shut it down on exit to send
/// what is still batched.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer
            && let Err(e) = tracer.shutdown()
        {
            tracing::warn!(error = %e, "could not flush the last traces");
        }
        if let Some(meter) = self.meter
            && let Err(e) = meter.shutdown()
        {
            tracing::warn!(error = %e, "could not send the last metrics");
        }
    }
}

/// Installs the log subscriber and, when an OTLP endpoint is configured, the OpenTelemetry
/// layer exporting spans, and a meter provider for the metrics, as `OTEL_SERVICE_NAME` or
/// `inland-<service>`. Call inside a Tokio runtime: the exporters' gRPC channels run on it.
pub fn init_logs(config: &ObservabilityConfig, service: &str) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_filter));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match config.log_format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let endpoint = config
        .otlp_endpoint
        .clone()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok());
    // No exporter, no layer: spans then cost only what the fmt layer does with them.
    let telemetry = match endpoint {
        Some(endpoint) => {
            let name =
                std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| format!("inland-{service}"));
            let tracer = trace::otlp_tracer_provider(&endpoint, &name, config.trace_sample_ratio)
                .with_context(|| format!("cannot export traces to {endpoint}"))?;
            let meter = otlp_metrics::otlp_meter_provider(&endpoint, &name)
                .with_context(|| format!("cannot export metrics to {endpoint}"))?;
            Telemetry {
                tracer: Some(tracer),
                meter: Some(meter),
            }
        }
        None => Telemetry::default(),
    };
    // The exporter's own transport must not be traced into itself: with a debug filter,
    // every export would make spans to export (and can stall the export thread).
    let transport = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(
            [
                "h2",
                "hyper",
                "hyper_util",
                "tonic",
                "tower",
                "opentelemetry",
            ]
            .map(|t| (t, LevelFilter::OFF)),
        );
    let otel = telemetry.tracer.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("inland"))
            .with_filter(transport)
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(filter)
        .init();
    Ok(telemetry)
}

/// From 1 ms (an ack on loopback) to 30 s (a delivery timeout), roughly doubling.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the metrics recorder (Prometheus for `/metrics` when the admin server is
/// configured, OTLP when `telemetry` exports) and serves the admin endpoints. Must run
/// inside the Tokio runtime.
pub async fn init_admin(
    config: &ObservabilityConfig,
    telemetry: &Telemetry,
) -> anyhow::Result<Readiness> {
    let readiness = Readiness::default();
    let otlp = telemetry
        .meter
        .as_ref()
        .map(|meter| otlp_metrics::OtelRecorder::new(meter, LATENCY_BUCKETS));
    let Some(addr) = config.admin_listen else {
        if let Some(otlp) = otlp {
            anyhow::ensure!(
                metrics::set_global_recorder(otlp).is_ok(),
                "a metrics recorder was already installed"
            );
        }
        return Ok(readiness);
    };
    let prometheus = PrometheusBuilder::new()
        // Buckets, not summaries, for every duration: quantiles can then be aggregated
        // across pods (histogram_quantile), which per-process summaries cannot.
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("latency buckets")?
        .build_recorder();
    let metrics = prometheus.handle();
    let installed = match otlp {
        Some(otlp) => metrics::set_global_recorder(
            FanoutBuilder::default()
                .add_recorder(prometheus)
                .add_recorder(otlp)
                .build(),
        )
        .is_ok(),
        None => metrics::set_global_recorder(prometheus).is_ok(),
    };
    anyhow::ensure!(installed, "a metrics recorder was already installed");
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
