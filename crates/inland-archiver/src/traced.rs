//! The end of an upload's trace: a batch writes many records into few objects, so once
//! it is committed each record that carried a `traceparent` gets its own `archiver.store`
//! span, a child of the hop that sent it, naming the objects its data is in.

use std::collections::HashSet;

use inland_stage::Record;
use inland_stage::trace::parent_from_headers;
use opentelemetry::trace::TraceContextExt;

use crate::kinds::Object;
use crate::metrics;

/// The objects a batch wrote, collected only while spans can be recorded.
pub(crate) struct StoreSpans {
    written: Option<Vec<Written>>,
}

struct Written {
    dataset: &'static str,
    key: String,
    /// The records it holds, by index in the batch.
    sources: Vec<u32>,
}

impl StoreSpans {
    pub(crate) fn new() -> Self {
        Self {
            written: metrics::store_spans_enabled().then(Vec::new),
        }
    }

    pub(crate) fn written(&mut self, objects: &[Object]) {
        if let Some(written) = &mut self.written {
            written.extend(objects.iter().map(|o| Written {
                dataset: o.dataset,
                key: o.key.clone(),
                sources: o.sources.clone(),
            }));
        }
    }

    /// One span per record of `records` with a valid `traceparent` whose data is in the
    /// store; `refused` records were dead-lettered instead. Call once the batch is
    /// committed.
    pub(crate) fn emit(self, records: &[(i64, Record)], refused: &HashSet<u32>) {
        let Some(written) = self.written else {
            return;
        };
        // (record, object) pairs, grouped by record, objects in the order written.
        let mut held: Vec<(u32, usize)> = written
            .iter()
            .enumerate()
            .flat_map(|(object, w)| w.sources.iter().map(move |&s| (s, object)))
            .filter(|(source, _)| !refused.contains(source))
            .collect();
        held.sort_unstable();
        for objects in held.chunk_by(|a, b| a.0 == b.0) {
            let (_, record) = &records[objects[0].0 as usize];
            let parent = parent_from_headers(record);
            if !parent.has_active_span() {
                continue;
            }
            let of = || objects.iter().map(|&(_, o)| &written[o]);
            let datasets: Vec<&str> = of().map(|w| w.dataset).collect();
            let keys: Vec<&str> = of().map(|w| w.key.as_str()).collect();
            if !metrics::stored(parent, &datasets.join(" "), &keys.join(" ")) {
                // No OpenTelemetry layer: no other span of the batch would be exported.
                return;
            }
        }
    }
}
