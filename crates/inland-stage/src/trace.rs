//! OpenTelemetry trace context across hops: every record carries a W3C `traceparent`
//! header, each hop continues the trace it names and replaces it with its own span, so
//! one upload is one trace from the vehicle to the last stage.

use bytes::Bytes;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::Record;

/// The record header carrying the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The context the record's `traceparent` names (empty when absent or malformed), to
/// parent the span that processes it.
pub fn parent_from_headers(record: &Record) -> Context {
    TraceContextPropagator::new().extract(&HeaderReader(&record.headers))
}

/// The context a bare `traceparent` value names, e.g. from a vehicle's call metadata.
pub fn parent_from_traceparent(value: &str) -> Context {
    let headers = [(
        TRACEPARENT.to_owned(),
        Bytes::copy_from_slice(value.as_bytes()),
    )];
    TraceContextPropagator::new().extract(&HeaderReader(&headers))
}

/// Replaces the `traceparent` header with the current span's context, when that span is
/// recorded by OpenTelemetry. Without an OTel layer the span context is invalid and the
/// headers stay as they are, so the incoming trace id still passes through.
pub fn inject_current(headers: &mut Vec<(String, Bytes)>) {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderWriter(headers));
}

/// A tracer provider exporting spans in batches over OTLP/gRPC to `endpoint`, sampling
/// `sample_ratio` of new traces and following the parent's decision otherwise (so a
/// trace is never half exported). Call inside a Tokio runtime: the gRPC channel runs on
/// it. Shut it down on exit to flush the last batch.
pub fn otlp_tracer_provider(
    endpoint: &str,
    service_name: &str,
    sample_ratio: f64,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            sample_ratio,
        ))))
        .with_resource(otel_resource(service_name))
        .build())
}

/// What every exported span and metric says about its sender: the service, in the
/// `inland` namespace.
pub fn otel_resource(service_name: &str) -> Resource {
    Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attribute(KeyValue::new("service.namespace", "inland"))
        .build()
}

struct HeaderReader<'a>(&'a [(String, Bytes)]);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

struct HeaderWriter<'a>(&'a mut Vec<(String, Bytes)>);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_owned(), value.into()));
    }
}
