//! `sprat-perf`: a load generator for any Kafka broker (sprat or Apache Kafka), built on sprat's own
//! codec so that both brokers see byte-identical load.
//!
//! `produce` sends pre-built v2 batches (one per request, `--batch-records` records each, the way a
//! client with a linger would) from `--connections` connections, round-robin over the partitions,
//! either as fast as responses come back or at a fixed `--rate`; it reports throughput and request
//! latency percentiles. At a fixed rate, latency is measured from each request's scheduled send
//! time, so a stalled broker cannot hide queueing delay (no coordinated omission).
//! `fetch` reads every partition from offset 0 to its end and reports read throughput.
//! `scale` creates many topics (`--topics` of `--partitions`), produces one record to each
//! partition, reads Metadata for all of them and fetches every record back, timing each step.
//! `connections` opens `--count` connections, has each answer an ApiVersions request, and holds
//! them open until its standard input closes.
//! With `--tls-ca CA.pem` every connection speaks TLS (rustls), trusting that CA and checking the
//! broker's certificate for `--tls-server-name`, to compare an SSL listener with a plaintext one.

use clap::{Parser, Subcommand};
use sprat::protocol::messages::{create_topics, fetch, list_offsets, metadata, produce};
use sprat::protocol::wire::{DecodeResult, Decoder, Encoder};
use sprat::protocol::{RequestHeader, is_flexible, response_header_is_flexible};
use sprat::storage::record_batch::{BatchHeader, Record, build_batch};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Produce/fetch load generator for Kafka-compatible brokers")]
struct Args {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// Connect with TLS, trusting the certificates of this PEM file.
    #[arg(long, global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// The name the broker's certificate must hold (with --tls-ca).
    #[arg(long, default_value = "localhost", global = true)]
    tls_server_name: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce records and report throughput and latency.
    Produce(ProduceLoad),
    /// Read every partition of a topic from the start and report throughput.
    Fetch {
        #[arg(long, default_value = "perf")]
        topic: String,
        /// Max bytes per fetch response.
        #[arg(long, default_value_t = 64 << 20)]
        max_bytes: i32,
    },
    /// Create many partitions, produce one record to each, read Metadata and fetch them back.
    Scale {
        /// Topics, named `<prefix>-<n>`.
        #[arg(long, default_value_t = 100)]
        topics: usize,
        /// Partitions per topic.
        #[arg(long, default_value_t = 100)]
        partitions: i32,
        #[arg(long, default_value = "scale")]
        prefix: String,
        /// Which steps to run, comma-separated: create, produce, metadata, fetch.
        #[arg(long, default_value = "create,produce,metadata,fetch")]
        steps: String,
    },
    /// Open many connections, each answering one ApiVersions request, and hold them until
    /// standard input closes.
    Connections {
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// The TLS settings of every connection, when `--tls-ca` is given.
static TLS: std::sync::OnceLock<(Arc<rustls::ClientConfig>, String)> = std::sync::OnceLock::new();

fn tls_config(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()))
    {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a CA certificate");
    }
    // ring, as the broker uses: it builds without cmake.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A blocking connection that sends one request and waits for its response.
struct Connection {
    stream: Box<dyn ReadWrite>,
    correlation_id: i32,
    buf: Vec<u8>,
}

impl Connection {
    fn open(addr: &str) -> Connection {
        let stream =
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        stream.set_nodelay(true).ok();
        let stream: Box<dyn ReadWrite> = match TLS.get() {
            None => Box::new(stream),
            Some((config, name)) => {
                let name = rustls::pki_types::ServerName::try_from(name.clone())
                    .expect("a valid --tls-server-name");
                let conn = rustls::ClientConnection::new(config.clone(), name).expect("TLS");
                // Buffered as the broker's are: rustls reads 4 KiB at a time.
                let socket = sprat::server::stream::BufferedSocket::new(stream);
                Box::new(rustls::StreamOwned::new(conn, socket))
            }
        };
        Connection {
            stream,
            correlation_id: 0,
            buf: Vec::new(),
        }
    }

    fn call<T>(
        &mut self,
        api_key: i16,
        version: i16,
        body: impl FnOnce(&mut Encoder),
        decode: impl FnOnce(&mut Decoder<'_>, i16) -> DecodeResult<T>,
    ) -> T {
        self.send(api_key, version, body);
        self.receive_decoded(api_key, version, decode)
    }

    /// Reads the next response and decodes it.
    fn receive_decoded<T>(
        &mut self,
        api_key: i16,
        version: i16,
        decode: impl FnOnce(&mut Decoder<'_>, i16) -> DecodeResult<T>,
    ) -> T {
        let frame = self.receive();
        let mut d = Decoder::new(frame);
        d.i32().expect("correlation id");
        if response_header_is_flexible(api_key, version) {
            d.skip_tagged_fields().expect("header tags");
        }
        decode(&mut d, version).expect("decodable response")
    }

    fn send(&mut self, api_key: i16, version: i16, body: impl FnOnce(&mut Encoder)) {
        self.correlation_id += 1;
        let mut e = Encoder::with_capacity(self.buf.capacity());
        e.i32(0);
        RequestHeader {
            api_key,
            api_version: version,
            correlation_id: self.correlation_id,
            client_id: Some("sprat-perf".into()),
        }
        .encode(&mut e, is_flexible(api_key, version));
        body(&mut e);
        let mut frame = e.into_inner();
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).expect("send");
        self.stream.flush().expect("send");
    }

    fn receive(&mut self) -> &[u8] {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("response size");
        self.buf.resize(i32::from_be_bytes(size) as usize, 0);
        self.stream
            .read_exact(&mut self.buf)
            .expect("response body");
        &self.buf
    }
}

/// Creates the topic unless it exists; returns its partition count.
fn ensure_topic(addr: &str, topic: &str, partitions: i32) -> i32 {
    let mut c = Connection::open(addr);
    let request = metadata::MetadataRequest {
        topics: Some(vec![metadata::MetadataRequestTopic {
            name: Some(topic.into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    let response = c.call(
        3,
        4,
        |e| request.encode(e, 4),
        metadata::MetadataResponse::decode,
    );
    if let Some(t) = response.topics.first().filter(|t| t.error_code == 0) {
        return t.partitions.len() as i32;
    }
    let request = create_topics::CreateTopicsRequest {
        topics: vec![create_topics::CreatableTopic {
            name: topic.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 30_000,
        ..Default::default()
    };
    let response = c.call(
        19,
        3,
        |e| request.encode(e, 3),
        create_topics::CreateTopicsResponse::decode,
    );
    let code = response.topics[0].error_code;
    assert!(
        code == 0 || code == 36,
        "CreateTopics failed with error {code}"
    );
    partitions
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The produce load's settings.
#[derive(clap::Args)]
struct ProduceLoad {
    #[arg(long, default_value = "perf")]
    topic: String,
    /// Partitions to create the topic with (if it does not exist) and to spread load over.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records in total.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Records per batch (one batch per request).
    #[arg(long, default_value_t = 1000)]
    batch_records: usize,
    #[arg(long, default_value_t = 1)]
    connections: usize,
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// Target records per second over all connections; 0 means as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Requests each connection sends before it waits for the oldest response (a client's
    /// `max.in.flight.requests.per.connection`).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
}

fn run_produce(addr: &str, load: ProduceLoad) {
    let ProduceLoad {
        topic,
        partitions,
        record_size,
        records,
        batch_records,
        connections,
        acks,
        rate,
        in_flight,
    } = load;
    let topic = topic.as_str();
    let partitions = ensure_topic(addr, topic, partitions);
    let value = vec![b'x'; record_size];
    let template: Vec<Record> = (0..batch_records)
        .map(|_| Record {
            value: Some(value.clone()),
            ..Record::default()
        })
        .collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let batch = Arc::new(build_batch(
        &BatchHeader {
            base_timestamp: now_ms,
            max_timestamp: now_ms,
            ..BatchHeader::default()
        },
        &template,
    ));
    let requests = records.div_ceil(batch_records as u64);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let interval_ns = (1_000_000_000 * batch_records as u64)
        .checked_div(rate)
        .unwrap_or(0);
    let handles: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, topic, batch, next) = (
                addr.to_string(),
                topic.to_string(),
                batch.clone(),
                next.clone(),
            );
            std::thread::spawn(move || {
                let mut c = Connection::open(&addr);
                let mut latencies_us = Vec::new();
                // When each request in flight was (or was scheduled to be) sent, oldest first.
                let mut pending: VecDeque<Instant> = VecDeque::new();
                loop {
                    let n = if pending.len() < in_flight.max(1) {
                        next.fetch_add(1, Ordering::Relaxed)
                    } else {
                        requests
                    };
                    if n >= requests {
                        if !receive_produce(&mut c, &mut pending, &mut latencies_us) {
                            break;
                        }
                        continue;
                    }
                    let scheduled = start + Duration::from_nanos(n * interval_ns);
                    if interval_ns > 0 {
                        // Answers that come in before the next send is due are read (and timed)
                        // now, not when the window is full. A wait that overruns the schedule
                        // is counted, since latency is measured from the scheduled time.
                        while Instant::now() < scheduled
                            && receive_produce(&mut c, &mut pending, &mut latencies_us)
                        {
                        }
                        let now = Instant::now();
                        if scheduled > now {
                            std::thread::sleep(scheduled - now);
                        }
                    }
                    let sent = if interval_ns > 0 {
                        scheduled
                    } else {
                        Instant::now()
                    };
                    let partition = (n % partitions as u64) as i32;
                    let request = produce::ProduceRequest {
                        acks,
                        timeout_ms: 30_000,
                        topic_data: vec![produce::TopicProduceData {
                            name: topic.clone(),
                            partition_data: vec![produce::PartitionProduceData {
                                index: partition,
                                records: Some(batch.to_vec()),
                            }],
                        }],
                        ..Default::default()
                    };
                    c.send(0, 7, |e| request.encode(e, 7));
                    if acks == 0 {
                        latencies_us.push(sent.elapsed().as_micros() as u64);
                    } else {
                        pending.push_back(sent);
                    }
                }
                latencies_us
            })
        })
        .collect();
    let mut latencies: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let sent = requests * batch_records as u64;
    let bytes = sent * record_size as u64;
    println!(
        "produce records={sent} record_size={record_size} batch={batch_records} connections={connections} in_flight={in_flight} partitions={partitions} acks={acks} rate={rate}"
    );
    println!(
        "  {:.0} records/s  {:.1} MB/s  ({elapsed:.2} s)  latency ms p50={:.2} p99={:.2} p99.9={:.2} max={:.2}",
        sent as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        percentile(&latencies, 1.0),
    );
}

/// Reads the answer to the oldest request in flight and records its latency; false when none is
/// in flight.
fn receive_produce(
    c: &mut Connection,
    pending: &mut VecDeque<Instant>,
    latencies_us: &mut Vec<u64>,
) -> bool {
    let Some(sent) = pending.pop_front() else {
        return false;
    };
    let r = c.receive_decoded(0, 7, produce::ProduceResponse::decode);
    let code = r.responses[0].partition_responses[0].error_code;
    assert_eq!(code, 0, "produce failed with error {code}");
    latencies_us.push(sent.elapsed().as_micros() as u64);
    true
}

fn run_fetch(addr: &str, topic: &str, max_bytes: i32) {
    let mut c = Connection::open(addr);
    let request = metadata::MetadataRequest {
        topics: Some(vec![metadata::MetadataRequestTopic {
            name: Some(topic.into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let meta = c.call(
        3,
        4,
        |e| request.encode(e, 4),
        metadata::MetadataResponse::decode,
    );
    let partitions: Vec<i32> = meta.topics[0]
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .collect();
    let ends: Vec<i64> = partitions
        .iter()
        .map(|&p| {
            let request = list_offsets::ListOffsetsRequest {
                replica_id: -1,
                topics: vec![list_offsets::ListOffsetsTopic {
                    name: topic.into(),
                    partitions: vec![list_offsets::ListOffsetsPartition {
                        partition_index: p,
                        timestamp: -1,
                        ..Default::default()
                    }],
                }],
                ..Default::default()
            };
            let r = c.call(
                2,
                2,
                |e| request.encode(e, 2),
                list_offsets::ListOffsetsResponse::decode,
            );
            r.topics[0].partitions[0].offset
        })
        .collect();
    let start = Instant::now();
    let mut total_bytes = 0u64;
    for (&p, &end) in partitions.iter().zip(&ends) {
        let mut offset = 0i64;
        while offset < end {
            let request = fetch::FetchRequest {
                replica_id: -1,
                max_wait_ms: 0,
                min_bytes: 1,
                max_bytes,
                topics: vec![fetch::FetchTopic {
                    topic: topic.into(),
                    partitions: vec![fetch::FetchPartition {
                        partition: p,
                        fetch_offset: offset,
                        partition_max_bytes: max_bytes,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let r = c.call(
                1,
                11,
                |e| request.encode(e, 11),
                fetch::FetchResponse::decode,
            );
            let records = r.responses[0].partitions[0]
                .records
                .clone()
                .unwrap_or_default();
            if records.is_empty() {
                break;
            }
            total_bytes += records.len() as u64;
            let mut last = offset;
            for batch in sprat::storage::record_batch::Batches::new(&records).flatten() {
                last = batch.last_offset();
            }
            offset = last + 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "fetch topic={topic} partitions={} bytes={total_bytes}\n  {:.1} MB/s ({elapsed:.2} s)",
        partitions.len(),
        total_bytes as f64 / elapsed / 1e6
    );
}

fn main() {
    let args = Args::parse();
    if let Some(ca) = &args.tls_ca {
        let _ = TLS.set((tls_config(ca), args.tls_server_name.clone()));
    }
    match args.command {
        Command::Produce(load) => run_produce(&args.bootstrap, load),
        Command::Fetch { topic, max_bytes } => run_fetch(&args.bootstrap, &topic, max_bytes),
        Command::Scale {
            topics,
            partitions,
            prefix,
            steps,
        } => run_scale(&args.bootstrap, topics, partitions, &prefix, &steps),
        Command::Connections { count } => run_connections(&args.bootstrap, count),
    }
}

/// The topics and partitions of the `scale` load, in request order.
fn scale_topics(prefix: &str, topics: usize) -> Vec<String> {
    (0..topics).map(|t| format!("{prefix}-{t}")).collect()
}

fn run_scale(addr: &str, topics: usize, partitions: i32, prefix: &str, steps: &str) {
    let names = scale_topics(prefix, topics);
    let total = topics * partitions as usize;
    let mut c = Connection::open(addr);
    let step = |name: &str| steps.split(',').any(|s| s.trim() == name);
    if step("create") {
        let start = Instant::now();
        // Kafka refuses more than 10,000 metadata records per request: a topic is one, plus one
        // per partition.
        let per_request = (10_000 / (partitions as usize + 1)).max(1);
        for chunk in names.chunks(per_request) {
            let request = create_topics::CreateTopicsRequest {
                topics: chunk
                    .iter()
                    .map(|name| create_topics::CreatableTopic {
                        name: name.clone(),
                        num_partitions: partitions,
                        replication_factor: 1,
                        ..Default::default()
                    })
                    .collect(),
                timeout_ms: 60_000,
                ..Default::default()
            };
            let response = c.call(
                19,
                3,
                |e| request.encode(e, 3),
                create_topics::CreateTopicsResponse::decode,
            );
            for t in &response.topics {
                assert!(
                    t.error_code == 0 || t.error_code == 36,
                    "creating {} failed with error {}",
                    t.name,
                    t.error_code
                );
            }
        }
        println!(
            "create: {topics} topics of {partitions} partitions in {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
    if step("produce") {
        let start = Instant::now();
        // One request per 1,000 partitions, as a client batches per broker up to its request
        // size.
        let all: Vec<(&String, i32)> = names
            .iter()
            .flat_map(|n| (0..partitions).map(move |p| (n, p)))
            .collect();
        for chunk in all.chunks(1000) {
            let mut topic_data: Vec<produce::TopicProduceData> = Vec::new();
            for &(name, p) in chunk {
                let batch = build_batch(
                    &BatchHeader::default(),
                    &[Record {
                        value: Some(format!("{name}/{p}").into_bytes()),
                        ..Default::default()
                    }],
                );
                match topic_data.last_mut() {
                    Some(t) if &t.name == name => {}
                    _ => topic_data.push(produce::TopicProduceData {
                        name: name.clone(),
                        partition_data: Vec::new(),
                    }),
                }
                let t = topic_data.last_mut().expect("pushed above");
                t.partition_data.push(produce::PartitionProduceData {
                    index: p,
                    records: Some(batch),
                });
            }
            let request = produce::ProduceRequest {
                acks: -1,
                timeout_ms: 30_000,
                topic_data,
                ..Default::default()
            };
            let response = c.call(
                0,
                9,
                |e| request.encode(e, 9),
                produce::ProduceResponse::decode,
            );
            for t in &response.responses {
                for p in &t.partition_responses {
                    assert_eq!(p.error_code, 0, "producing to {}-{}", t.name, p.index);
                }
            }
        }
        println!(
            "produce: one record to each of {total} partitions in {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
    if step("metadata") {
        let start = Instant::now();
        let request = metadata::MetadataRequest {
            topics: None,
            ..Default::default()
        };
        let response = c.call(
            3,
            12,
            |e| request.encode(e, 12),
            metadata::MetadataResponse::decode,
        );
        let found: usize = response
            .topics
            .iter()
            .filter(|t| t.name.as_deref().is_some_and(|n| n.starts_with(prefix)))
            .map(|t| t.partitions.len())
            .sum();
        assert_eq!(found, total, "Metadata lists every partition");
        println!(
            "metadata: all {total} partitions in {:.3} s",
            start.elapsed().as_secs_f64()
        );
    }
    if step("fetch") {
        let start = Instant::now();
        let mut records = 0;
        for chunk in names.chunks(10) {
            let request = fetch::FetchRequest {
                replica_id: -1,
                max_wait_ms: 0,
                min_bytes: 0,
                max_bytes: 64 << 20,
                session_epoch: -1,
                topics: chunk
                    .iter()
                    .map(|name| fetch::FetchTopic {
                        topic: name.clone(),
                        partitions: (0..partitions)
                            .map(|p| fetch::FetchPartition {
                                partition: p,
                                fetch_offset: 0,
                                partition_max_bytes: 1 << 20,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            let response = c.call(
                1,
                12,
                |e| request.encode(e, 12),
                fetch::FetchResponse::decode,
            );
            for t in &response.responses {
                for p in &t.partitions {
                    assert_eq!(
                        p.error_code, 0,
                        "fetching {}-{}",
                        t.topic, p.partition_index
                    );
                    if p.records.as_ref().is_some_and(|r| !r.is_empty()) {
                        records += 1;
                    }
                }
            }
        }
        assert_eq!(records, total, "every partition returned its record");
        println!(
            "fetch: the records of all {total} partitions in {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
}

fn run_connections(addr: &str, count: usize) {
    let start = Instant::now();
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let mut c = Connection::open(addr);
        // Each connection must be served, not only accepted.
        c.send(18, 0, |_| {});
        held.push(c);
        // Collect answers as they come, so that the listen backlog never fills.
        if i % 100 == 99 {
            for c in &mut held[i - 99..=i] {
                c.receive();
            }
        }
    }
    let answered_before = count - count % 100;
    for c in &mut held[answered_before..] {
        c.receive();
    }
    println!(
        "connections: {count} open, each answered ApiVersions, in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    // Hold them until told to stop.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(held);
}
