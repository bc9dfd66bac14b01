//! `GET /metrics`: Prometheus text format (prometheus-client).
//!
//! Two kinds of metrics: process counters that only grow (bulk requests,
//! latency, 429s, retries, alias changes) live in metric families owned by
//! `copy` and `migration`; per-index values that the cluster's state holds
//! (phase, document counts, progress, ETA) are read fresh at each scrape
//! and exported by a collector. This module only reads.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::copy::Jobs;
use crate::migration::{ClusterLook, IndexState, Migrator, PhaseKind};

/// One logical index's values at scrape time.
#[derive(Debug, Clone, PartialEq)]
struct IndexSample {
    index: String,
    phase: PhaseKind,
    source_documents: u64,
    copied: u64,
    superseded: u64,
    resent: u64,
    failed: u64,
    /// Old-generation operations not accepted (they block the flip).
    old_generation_writes: u64,
    /// The aliases disagree with the phase.
    drift: bool,
    ratio: f64,
    eta_seconds: Option<u64>,
    docs_per_second: f64,
    paused: bool,
    /// Unix time of the last state change.
    updated_at: f64,
    flipped_at: Option<f64>,
}

#[derive(Debug, Default)]
struct Snapshot {
    cluster_up: bool,
    indexes: Vec<IndexSample>,
}

pub struct Metrics {
    registry: Registry,
    snapshot: Arc<Mutex<Snapshot>>,
    /// One scrape at a time: the snapshot is filled then encoded.
    scrape: tokio::sync::Mutex<()>,
}

impl Metrics {
    pub fn new(migrator: &Migrator, jobs: &Jobs) -> Self {
        let mut registry = Registry::with_prefix("reindexd");
        let t = jobs.telemetry();
        registry.register(
            "bulk_requests",
            "Bulk requests sent by copies, by outcome",
            t.bulk_requests.clone(),
        );
        registry.register(
            "bulk_request_duration_seconds",
            "Latency of bulk requests, seconds",
            t.bulk_duration.clone(),
        );
        registry.register(
            "bulk_rejections",
            "429 answers from the cluster (whole requests and items)",
            t.rejections.clone(),
        );
        registry.register(
            "bulk_retries",
            "Bulk (partial) resends after 429 or 5xx",
            t.retries.clone(),
        );
        registry.register(
            "concurrency_limit",
            "Bulk requests allowed in flight",
            t.concurrency.clone(),
        );
        registry.register(
            "copy_yield_documents_per_second",
            "Documents per second a background copy allows itself while live search suffers (0: not yielding)",
            t.search_yield.clone(),
        );
        registry.register(
            "alias_changes",
            "Alias changes made, by kind (write, read, rollback)",
            migrator.alias_changes().clone(),
        );
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        registry.register_collector(Box::new(StateCollector(snapshot.clone())));
        Metrics {
            registry,
            snapshot,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads the state of every logical index and encodes all metrics.
    pub async fn render(&self, migrator: &Migrator, jobs: &Jobs) -> String {
        let _one = self.scrape.lock().await;
        let fresh = sample(migrator, jobs).await;
        *self.snapshot.lock().expect("metrics lock") = fresh;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

async fn sample(migrator: &Migrator, jobs: &Jobs) -> Snapshot {
    let mut snapshot = Snapshot {
        cluster_up: true,
        indexes: Vec::new(),
    };
    for index in &migrator.config().indexes {
        // Drift and old-generation writes as the cluster has them now; a
        // failed look leaves the stored numbers.
        let live = |state: &IndexState| jobs.live(state);
        let Ok(view) = migrator
            .view_with(&index.name, live, ClusterLook::BestEffort)
            .await
        else {
            snapshot.cluster_up = false;
            continue;
        };
        let p = view.progress.as_ref();
        snapshot.indexes.push(IndexSample {
            index: index.name.clone(),
            phase: view.phase,
            source_documents: p.map_or(0, |p| p.total),
            copied: p.map_or(0, |p| p.copied),
            superseded: p.map_or(0, |p| p.superseded),
            resent: p.map_or(0, |p| p.resent),
            drift: view.drift.is_some(),
            old_generation_writes: p.map_or(0, |p| {
                p.old_generation_writes
                    .saturating_sub(p.accepted_old_generation_writes)
            }),
            failed: p.map_or(0, |p| p.failed),
            ratio: p.map_or(0.0, |p| p.ratio),
            eta_seconds: p.and_then(|p| p.eta_seconds),
            docs_per_second: p.map_or(0.0, |p| p.docs_per_second),
            paused: p.is_some_and(|p| p.paused),
            updated_at: view
                .updated_at
                .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0),
            flipped_at: view
                .flipped_at
                .map(|t| t.timestamp_millis() as f64 / 1000.0),
        });
    }
    snapshot
}

/// Exports the per-index values of the last snapshot.
#[derive(Debug)]
struct StateCollector(Arc<Mutex<Snapshot>>);

type Labels<'a> = [(&'static str, &'a str)];

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(&Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut metric =
        encoder.encode_descriptor(name, help, None, ConstGauge::new(0.0).metric_type())?;
    for (labels, value) in series {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(&Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric =
        encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (labels, value) in series {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.lock().expect("metrics lock");
        let up = if snapshot.cluster_up { 1.0 } else { 0.0 };
        let metric = encoder.encode_descriptor(
            "cluster_up",
            "1 when the last scrape could read the state from the cluster",
            None,
            ConstGauge::new(up).metric_type(),
        )?;
        ConstGauge::new(up).encode(metric)?;
        let labels: Vec<[(&'static str, &str); 1]> = snapshot
            .indexes
            .iter()
            .map(|s| [("index", s.index.as_str())])
            .collect();
        let each = |f: fn(&IndexSample) -> f64| -> Vec<(&Labels, f64)> {
            snapshot
                .indexes
                .iter()
                .zip(&labels)
                .map(|(s, l)| (&l[..], f(s)))
                .collect()
        };
        let each_u = |f: fn(&IndexSample) -> u64| -> Vec<(&Labels, u64)> {
            snapshot
                .indexes
                .iter()
                .zip(&labels)
                .map(|(s, l)| (&l[..], f(s)))
                .collect()
        };
        let phases: Vec<[(&'static str, &str); 2]> = snapshot
            .indexes
            .iter()
            .flat_map(|s| {
                PhaseKind::ALL
                    .iter()
                    .map(move |p| [("index", s.index.as_str()), ("phase", p.name())])
            })
            .collect();
        let phase_series: Vec<(&Labels, f64)> = phases
            .iter()
            .map(|l| {
                let current = snapshot
                    .indexes
                    .iter()
                    .any(|s| s.index == l[0].1 && s.phase.name() == l[1].1);
                (&l[..], if current { 1.0 } else { 0.0 })
            })
            .collect();
        gauge(
            &mut encoder,
            "phase",
            "1 for the phase each logical index is in",
            &phase_series,
        )?;
        gauge(
            &mut encoder,
            "source_documents",
            "Documents in the source of the current or last copy",
            &each(|s| s.source_documents as f64),
        )?;
        counter(
            &mut encoder,
            "documents_copied",
            "Documents written into the new generation by the current or last copy",
            &each_u(|s| s.copied),
        )?;
        counter(
            &mut encoder,
            "documents_superseded",
            "Copies that lost to an application write or delete of the same document (409)",
            &each_u(|s| s.superseded),
        )?;
        counter(
            &mut encoder,
            "documents_resent",
            "Copies already in the new generation from this copy's own earlier write (409 after a restart)",
            &each_u(|s| s.resent),
        )?;
        counter(
            &mut encoder,
            "documents_failed",
            "Documents the new generation refused",
            &each_u(|s| s.failed),
        )?;
        gauge(
            &mut encoder,
            "aliases_drift",
            "1 when the read or write alias is not where the phase says (status shows how; rollback or repair mends it)",
            &each(|s| if s.drift { 1.0 } else { 0.0 }),
        )?;
        gauge(
            &mut encoder,
            "old_generation_writes",
            "Operations on the old generation by its name since the copy's snapshot, not accepted: the new generation lacks them and the flip is refused",
            &each(|s| s.old_generation_writes as f64),
        )?;
        gauge(
            &mut encoder,
            "progress_ratio",
            "Share of the source accounted for, 0 to 1",
            &each(|s| s.ratio),
        )?;
        let eta: Vec<(&Labels, f64)> = snapshot
            .indexes
            .iter()
            .zip(&labels)
            .filter_map(|(s, l)| s.eta_seconds.map(|e| (&l[..], e as f64)))
            .collect();
        gauge(
            &mut encoder,
            "eta_seconds",
            "Estimated seconds until the copy is done",
            &eta,
        )?;
        gauge(
            &mut encoder,
            "copy_rate_documents_per_second",
            "Average copy rate since the copy started",
            &each(|s| s.docs_per_second),
        )?;
        gauge(
            &mut encoder,
            "copy_paused",
            "1 while the copy is paused",
            &each(|s| if s.paused { 1.0 } else { 0.0 }),
        )?;
        gauge(
            &mut encoder,
            "state_updated_timestamp_seconds",
            "Unix time of the last state change",
            &each(|s| s.updated_at),
        )?;
        let flipped: Vec<(&Labels, f64)> = snapshot
            .indexes
            .iter()
            .zip(&labels)
            .filter_map(|(s, l)| s.flipped_at.map(|t| (&l[..], t)))
            .collect();
        gauge(
            &mut encoder,
            "flipped_timestamp_seconds",
            "Unix time of the last flip, while the previous generation is kept",
            &flipped,
        )?;
        Ok(())
    }
}
