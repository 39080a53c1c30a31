//! Metrics for dashboards, served in Prometheus' text format by [`http`] when
//! `sprat.metrics.listener=HOST:PORT` is set.
//!
//! The names are those the common Kafka dashboards query, as the JMX exporter's Kafka rules and
//! kafka_exporter spell them: `kafka_server_brokertopicmetrics_*` (per topic and for all topics),
//! `kafka_network_requestmetrics_*` per API (Kafka's API names), `kafka_log_log_*` per partition,
//! and `kafka_consumergroup_*` per group and partition; sprat's own are `sprat_*`.
//!
//! Counters are atomics bumped on the request path: one hash lookup under a read lock for a
//! topic's counters (a write lock only the first time a topic is seen), no allocation. Gauges
//! (log sizes and offsets, consumer lag, connections, the writer's queue) are read from the
//! shared state when scraped.

pub mod http;

use crate::broker::BrokerContext;
use crate::protocol;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Request latency buckets, in milliseconds (the upper bounds; +Inf is implied).
const LATENCY_BUCKETS_MS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// fsync latency buckets, in milliseconds.
const FSYNC_BUCKETS_MS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0,
];

/// Group-commit size buckets: commands handled by the writer in one group.
const GROUP_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// API keys are below this (Kafka 3.9's highest is 75).
const MAX_API_KEY: usize = 128;

/// A histogram with fixed buckets; observations in the buckets' unit, the sum in thousandths of
/// it so that it stays an integer.
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts, one per bound plus +Inf.
    counts: Box<[AtomicU64]>,
    sum_milli: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_milli: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_milli
            .fetch_add((value * 1000.0) as u64, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes `NAME_bucket`, `NAME_sum` and `NAME_count` lines with `labels` (`k="v",` pairs or
    /// empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        let braces = labels_braces(labels);
        let sum = self.sum_milli.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// `{k="v"}` from `k="v",` pairs, or nothing.
fn labels_braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", labels.trim_end_matches(','))
    }
}

/// One topic's traffic counters.
#[derive(Default)]
pub struct TopicCounters {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Every counter and histogram of the broker.
pub struct Metrics {
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    all_topics: TopicCounters,
    requests: Box<[AtomicU64]>,
    latency: Box<[Histogram]>,
    group_commit_sizes: Histogram,
    fsync_latency: Histogram,
    connections_accepted: AtomicU64,
    connections_open: AtomicI64,
}

/// Counts a connection as open while it lives.
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            topics: RwLock::new(HashMap::new()),
            all_topics: TopicCounters::default(),
            requests: (0..MAX_API_KEY).map(|_| AtomicU64::new(0)).collect(),
            latency: (0..MAX_API_KEY)
                .map(|_| Histogram::new(LATENCY_BUCKETS_MS))
                .collect(),
            group_commit_sizes: Histogram::new(GROUP_BUCKETS),
            fsync_latency: Histogram::new(FSYNC_BUCKETS_MS),
            connections_accepted: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        if let Some(c) = self.topics.read().get(topic) {
            return c.clone();
        }
        self.topics
            .write()
            .entry(topic.to_string())
            .or_default()
            .clone()
    }

    /// An append of `messages` records in `bytes` batch bytes to a partition of `topic`.
    pub fn record_append(&self, topic: &str, messages: u64, bytes: u64) {
        let t = self.topic(topic);
        for c in [&*t, &self.all_topics] {
            c.messages_in.fetch_add(messages, Ordering::Relaxed);
            c.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Drops a deleted topic's counters, as Kafka removes its metrics with the topic.
    pub fn forget_topic(&self, topic: &str) {
        self.topics.write().remove(topic);
    }

    /// Record bytes sent by a fetch from `topic`.
    pub fn record_fetch(&self, topic: &str, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let t = self.topic(topic);
        t.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.all_topics
            .bytes_out
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// A request of API `api_key` answered after `elapsed` (from its frame being read to its
    /// response being written).
    pub fn record_request(&self, api_key: i16, elapsed: Duration) {
        let Ok(i) = usize::try_from(api_key) else {
            return;
        };
        if i >= MAX_API_KEY {
            return;
        }
        self.requests[i].fetch_add(1, Ordering::Relaxed);
        self.latency[i].observe(elapsed.as_secs_f64() * 1000.0);
    }

    /// The writer handled `commands` commands as one group.
    pub fn record_group_commit(&self, commands: usize) {
        self.group_commit_sizes.observe(commands as f64);
    }

    /// One fsync of a partition log took `elapsed`.
    pub fn record_fsync(&self, elapsed: Duration) {
        self.fsync_latency.observe(elapsed.as_secs_f64() * 1000.0);
    }

    /// A connection is being served; it counts as open until the guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }
}

/// Escapes a label value for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole exposition, as `GET /metrics` answers it.
pub fn render(ctx: &BrokerContext) -> String {
    let m = &ctx.metrics;
    let mut out = String::with_capacity(16 << 10);
    let topics: BTreeMap<String, Arc<TopicCounters>> = m
        .topics
        .read()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, help, get) in [
        (
            "kafka_server_brokertopicmetrics_messagesin_total",
            "Records appended.",
            (|c: &TopicCounters| c.messages_in.load(Ordering::Relaxed))
                as fn(&TopicCounters) -> u64,
        ),
        (
            "kafka_server_brokertopicmetrics_bytesin_total",
            "Record batch bytes appended.",
            |c| c.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_bytesout_total",
            "Record bytes sent to fetchers.",
            |c| c.bytes_out.load(Ordering::Relaxed),
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", get(&m.all_topics));
        for (topic, c) in &topics {
            let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", escape(topic), get(c));
        }
    }

    let name = "kafka_network_requestmetrics_requests_total";
    header(&mut out, name, "counter", "Requests answered, by API.");
    for api in protocol::SUPPORTED_APIS {
        let count = m.requests[api.key as usize].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{request=\"{}\"}} {count}", api.name);
    }
    let name = "kafka_network_requestmetrics_totaltimems";
    header(
        &mut out,
        name,
        "histogram",
        "Time from a request's arrival to its response being written, in milliseconds, by API.",
    );
    for api in protocol::SUPPORTED_APIS {
        let h = &m.latency[api.key as usize];
        if h.count() > 0 {
            h.render(&mut out, name, &format!("request=\"{}\",", api.name));
        }
    }

    let mut partitions: Vec<_> = ctx
        .partitions
        .read()
        .iter()
        .map(|(tp, p)| (tp.clone(), p.clone()))
        .collect();
    partitions.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, help, get) in [
        (
            "kafka_log_log_size",
            "Bytes of the partition's segments.",
            (|p: &crate::storage::log::Partition| p.size_in_bytes() as i64)
                as fn(&crate::storage::log::Partition) -> i64,
        ),
        (
            "kafka_log_log_logendoffset",
            "The offset of the next record appended.",
            |p| p.log_end_offset(),
        ),
        (
            "kafka_log_log_logstartoffset",
            "The first offset still in the log.",
            |p| p.log_start_offset(),
        ),
    ] {
        header(&mut out, name, "gauge", help);
        for (tp, p) in &partitions {
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\",partition=\"{}\"}} {}",
                escape(&tp.topic),
                tp.partition,
                get(p)
            );
        }
    }

    let coordinator = &ctx.group_coordinator;
    let mut current = String::new();
    let mut lag = String::new();
    for group in coordinator.list_groups() {
        for (topic, offsets) in coordinator.fetch_offsets(&group.group_id, None) {
            for (partition, committed) in offsets {
                let Some(committed) = committed else {
                    continue;
                };
                // Offsets of a partition that no longer exists (a deleted topic's) are left out.
                let tp = crate::storage::log::TopicPartition::new(topic.clone(), partition);
                let Some(p) = ctx.partition(&tp) else {
                    continue;
                };
                let labels = format!(
                    "consumergroup=\"{}\",topic=\"{}\",partition=\"{partition}\"",
                    escape(&group.group_id),
                    escape(&topic)
                );
                let _ = writeln!(
                    current,
                    "kafka_consumergroup_current_offset{{{labels}}} {}",
                    committed.offset
                );
                let behind = (p.high_watermark() - committed.offset).max(0);
                let _ = writeln!(lag, "kafka_consumergroup_lag{{{labels}}} {behind}");
            }
        }
    }
    header(
        &mut out,
        "kafka_consumergroup_current_offset",
        "gauge",
        "A group's committed offset.",
    );
    out.push_str(&current);
    header(
        &mut out,
        "kafka_consumergroup_lag",
        "gauge",
        "How far a group's committed offset is behind the high watermark.",
    );
    out.push_str(&lag);

    header(
        &mut out,
        "sprat_connections",
        "gauge",
        "Client connections open now.",
    );
    let _ = writeln!(
        out,
        "sprat_connections {}",
        m.connections_open.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "sprat_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    let _ = writeln!(
        out,
        "sprat_connections_accepted_total {}",
        m.connections_accepted.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "sprat_writer_queue_depth",
        "gauge",
        "Commands waiting for the log-writer thread.",
    );
    let _ = writeln!(out, "sprat_writer_queue_depth {}", ctx.writer.len());
    header(
        &mut out,
        "sprat_writer_group_commands",
        "histogram",
        "Commands the log-writer handled as one group commit.",
    );
    m.group_commit_sizes
        .render(&mut out, "sprat_writer_group_commands", "");
    header(
        &mut out,
        "sprat_log_fsync_ms",
        "histogram",
        "Duration of partition log fsyncs, in milliseconds.",
    );
    m.fsync_latency.render(&mut out, "sprat_log_fsync_ms", "");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 2.0, 3.0, 50.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\",");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"1\"} 1\nx_bucket{a=\"b\",le=\"10\"} 3\nx_bucket{a=\"b\",le=\"+Inf\"} 4\nx_sum{a=\"b\"} 55.5\nx_count{a=\"b\"} 4\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
