//! Every metric the `metrics` facade records, also sent to an OpenTelemetry collector over
//! OTLP (beside `/metrics` for Prometheus). The published bridges to OpenTelemetry lag
//! behind the OpenTelemetry version our traces use, so this small recorder forwards to
//! the same SDK instead: counters to counters, gauges to gauges, histograms to histograms
//! (with the Prometheus side's latency buckets for `*_seconds`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_otlp::{MetricExporter, WithExportConfig};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// A meter provider exporting every minute (`OTEL_METRIC_EXPORT_INTERVAL` overrides) over
/// OTLP/gRPC to `endpoint`. Call inside a Tokio runtime; shut it down on exit to send the
/// last values.
pub fn otlp_meter_provider(
    endpoint: &str,
    service_name: &str,
) -> Result<SdkMeterProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    Ok(SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(inland_stage::trace::otel_resource(service_name))
        .build())
}

/// Forwards the facade's records to OpenTelemetry instruments of `provider`'s meter.
/// Handles are cached per key: creating instruments is costly, and most call sites look
/// their handle up on every event.
pub struct OtelRecorder {
    meter: Meter,
    latency_buckets: Vec<f64>,
    counters: Mutex<HashMap<Key, Counter>>,
    gauges: Mutex<HashMap<Key, Gauge>>,
    histograms: Mutex<HashMap<Key, Histogram>>,
}

impl OtelRecorder {
    pub fn new(provider: &SdkMeterProvider, latency_buckets: &[f64]) -> Self {
        Self {
            meter: provider.meter("inland"),
            latency_buckets: latency_buckets.to_vec(),
            counters: Mutex::default(),
            gauges: Mutex::default(),
            histograms: Mutex::default(),
        }
    }
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

fn cached<H: Clone>(cache: &Mutex<HashMap<Key, H>>, key: &Key, make: impl FnOnce() -> H) -> H {
    cache
        .lock()
        .unwrap()
        .entry(key.clone())
        .or_insert_with(make)
        .clone()
}

struct OtelCounter {
    counter: opentelemetry::metrics::Counter<u64>,
    attributes: Vec<KeyValue>,
    /// For `absolute`: OpenTelemetry counters only take increments.
    total: AtomicU64,
}

impl CounterFn for OtelCounter {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
        self.counter.add(value, &self.attributes);
    }

    fn absolute(&self, value: u64) {
        let before = self.total.fetch_max(value, Ordering::Relaxed);
        if value > before {
            self.counter.add(value - before, &self.attributes);
        }
    }
}

struct OtelGauge {
    gauge: opentelemetry::metrics::Gauge<f64>,
    attributes: Vec<KeyValue>,
    /// f64 bits: the facade's gauges also move by increments.
    value: AtomicU64,
}

impl OtelGauge {
    fn update(&self, change: impl Fn(f64) -> f64) {
        let mut new = 0.0;
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                new = change(f64::from_bits(bits));
                Some(new.to_bits())
            });
        self.gauge.record(new, &self.attributes);
    }
}

impl GaugeFn for OtelGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

struct OtelHistogram {
    histogram: opentelemetry::metrics::Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.histogram.record(value, &self.attributes);
    }
}

impl Recorder for OtelRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        cached(&self.counters, key, || {
            Counter::from_arc(Arc::new(OtelCounter {
                counter: self.meter.u64_counter(key.name().to_owned()).build(),
                attributes: attributes(key),
                total: AtomicU64::new(0),
            }))
        })
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        cached(&self.gauges, key, || {
            Gauge::from_arc(Arc::new(OtelGauge {
                gauge: self.meter.f64_gauge(key.name().to_owned()).build(),
                attributes: attributes(key),
                value: AtomicU64::new(0f64.to_bits()),
            }))
        })
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        cached(&self.histograms, key, || {
            let mut builder = self.meter.f64_histogram(key.name().to_owned());
            if key.name().ends_with("_seconds") {
                builder = builder.with_boundaries(self.latency_buckets.clone());
            }
            Histogram::from_arc(Arc::new(OtelHistogram {
                histogram: builder.build(),
                attributes: attributes(key),
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fake_opentelemetry_collector::FakeCollectorServer;
    use serde_json::{Value, json};

    use super::*;

    /// The exported metric `name`'s data, as `{"Sum": …}`, `{"Gauge": …}`, ….
    fn find(metrics: &[Value], name: &str) -> Value {
        metrics
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["data"].clone())
            .unwrap_or_else(|| panic!("{name} was not exported: {metrics:#?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counters_gauges_and_histograms_reach_an_otlp_collector() {
        let mut collector = FakeCollectorServer::start().await.unwrap();
        let provider = otlp_meter_provider(&collector.endpoint(), "inland-test").unwrap();
        let recorder = OtelRecorder::new(&provider, &[0.01, 0.1, 1.0]);
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("inland_test_records_total", "outcome" => "kept").increment(2);
            metrics::counter!("inland_test_records_total", "outcome" => "kept").increment(3);
            metrics::counter!("inland_test_offsets_total").absolute(7);
            metrics::counter!("inland_test_offsets_total").absolute(5);
            metrics::gauge!("inland_test_buffered_bytes").set(10.0);
            metrics::gauge!("inland_test_buffered_bytes").increment(5.0);
            metrics::histogram!("inland_test_flush_seconds").record(0.05);
        });
        provider.force_flush().unwrap();
        let exported = collector.exported_metrics(1, Duration::from_secs(10)).await;
        let metrics: Vec<Value> = exported
            .iter()
            .flat_map(|e| {
                serde_json::to_value(&e.metrics)
                    .unwrap()
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .collect();

        let records = &find(&metrics, "inland_test_records_total")["Sum"];
        assert_eq!(records["is_monotonic"], true);
        assert_eq!(records["data_points"][0]["value"], json!({"AsInt": 5}));
        // The fake collector renders attribute values with Debug.
        let outcome = records["data_points"][0]["attributes"]["outcome"].to_string();
        assert!(outcome.contains(r#"StringValue(\"kept\")"#), "{outcome}");
        let offsets = &find(&metrics, "inland_test_offsets_total")["Sum"];
        assert_eq!(
            offsets["data_points"][0]["value"],
            json!({"AsInt": 7}),
            "a counter never goes back"
        );
        let buffered = &find(&metrics, "inland_test_buffered_bytes")["Gauge"];
        assert_eq!(
            buffered["data_points"][0]["value"],
            json!({"AsDouble": 15.0})
        );
        let flush = &find(&metrics, "inland_test_flush_seconds")["Histogram"];
        assert_eq!(
            flush["data_points"][0]["explicit_bounds"],
            json!([0.01, 0.1, 1.0])
        );
        assert_eq!(
            flush["data_points"][0]["bucket_counts"],
            json!([0, 1, 0, 0])
        );
        provider.shutdown().unwrap();
    }
}
