//! Process-lifetime counters of bulk traffic per logical index, kept in
//! Prometheus metric families so the metrics endpoint can export them as
//! they are. Copy runs come and go; these only grow.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IndexLabel {
    pub index: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BulkLabels {
    pub index: String,
    /// `ok` (every item settled first time), `retried` (settled after
    /// retrying some items), `error` (the request failed as a whole).
    pub outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Families shared by every copy of this process.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub bulk_requests: Family<BulkLabels, Counter>,
    pub bulk_duration: Family<IndexLabel, Histogram, fn() -> Histogram>,
    pub rejections: Family<IndexLabel, Counter>,
    pub retries: Family<IndexLabel, Counter>,
    pub concurrency: Family<IndexLabel, Gauge>,
    /// Documents per second a background copy allows itself while live
    /// search suffers (0: not yielding).
    pub search_yield: Family<IndexLabel, Gauge<f64, AtomicU64>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            bulk_requests: Family::default(),
            bulk_duration: Family::new_with_constructor(latency_histogram),
            rejections: Family::default(),
            retries: Family::default(),
            concurrency: Family::default(),
            search_yield: Family::default(),
        }
    }
}

/// The metrics of one logical index, cheap to clone into writer tasks.
#[derive(Debug, Clone)]
pub struct IndexTelemetry {
    pub bulk_ok: Counter,
    pub bulk_retried: Counter,
    pub bulk_errors: Counter,
    pub bulk_duration: Histogram,
    pub rejections: Counter,
    pub retries: Counter,
    pub concurrency: Gauge,
    pub search_yield: Gauge<f64, AtomicU64>,
}

impl Telemetry {
    pub fn for_index(&self, index: &str) -> IndexTelemetry {
        let label = IndexLabel {
            index: index.to_owned(),
        };
        let bulk = |outcome| {
            self.bulk_requests
                .get_or_create(&BulkLabels {
                    index: index.to_owned(),
                    outcome,
                })
                .clone()
        };
        IndexTelemetry {
            bulk_ok: bulk("ok"),
            bulk_retried: bulk("retried"),
            bulk_errors: bulk("error"),
            bulk_duration: self.bulk_duration.get_or_create(&label).clone(),
            rejections: self.rejections.get_or_create(&label).clone(),
            retries: self.retries.get_or_create(&label).clone(),
            concurrency: self.concurrency.get_or_create(&label).clone(),
            search_yield: self.search_yield.get_or_create(&label).clone(),
        }
    }
}
