//! Test harness: starts the real `sprat` binary on an ephemeral port with its own temporary log
//! directory, and talks to it with the crate's own codec.

#![allow(dead_code)]

use sprat::metadata::MetadataRecord;
use sprat::metadata::records::{
    feature_level_record::FeatureLevelRecord, partition_record::PartitionRecord,
    topic_record::TopicRecord,
};
use sprat::protocol::RequestHeader;
use sprat::protocol::wire::{Decoder, Encoder, Uuid};
use sprat::storage::record_batch::{BatchHeader, Record, build_batch};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("sprat-it-{}-{n}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running broker process. Killed (and its directory removed) when dropped.
pub struct TestBroker {
    pub dir: PathBuf,
    pub log_dir: PathBuf,
    pub addr: SocketAddr,
    child: Child,
    pub extra_properties: Vec<String>,
    /// Environment variables the process is started with (e.g. LD_PRELOAD for fault tests).
    pub extra_env: Vec<(String, String)>,
    /// RLIMIT_NOFILE (soft and hard) the process is started with, if not this process's.
    pub open_files_limit: Option<u64>,
    log_lines: mpsc::Receiver<String>,
}

impl TestBroker {
    /// Starts a broker on an empty log directory.
    pub fn start(name: &str) -> TestBroker {
        Self::start_with(name, |_| {}, &[])
    }

    /// Prepares the log directory with `setup`, then starts a broker with extra properties.
    pub fn start_with(name: &str, setup: impl FnOnce(&Path), properties: &[&str]) -> TestBroker {
        let dir = temp_dir(name);
        let log_dir = dir.join("logs");
        fs::create_dir_all(&log_dir).unwrap();
        setup(&log_dir);
        let props: Vec<String> = properties.iter().map(|s| s.to_string()).collect();
        Self::launch(dir, log_dir, props, Vec::new())
    }

    /// Starts a broker on an empty log directory (`dir/logs`, created before `env` is computed
    /// from the test's directory) with extra properties and environment variables.
    pub fn start_with_env(
        name: &str,
        properties: &[&str],
        env: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> TestBroker {
        let dir = temp_dir(name);
        let log_dir = dir.join("logs");
        fs::create_dir_all(&log_dir).unwrap();
        let env = env(&dir);
        let props: Vec<String> = properties.iter().map(|s| s.to_string()).collect();
        Self::launch(dir, log_dir, props, env)
    }

    /// Starts a broker on an empty log directory with extra properties, under an open file
    /// limit of `nofile` (soft and hard, so that the broker cannot raise it).
    pub fn start_with_open_files_limit(name: &str, properties: &[&str], nofile: u64) -> TestBroker {
        let dir = temp_dir(name);
        let log_dir = dir.join("logs");
        fs::create_dir_all(&log_dir).unwrap();
        let props: Vec<String> = properties.iter().map(|s| s.to_string()).collect();
        let (child, log_lines, addr) = spawn(&dir, &log_dir, &props, &[], Some(nofile));
        TestBroker {
            dir,
            log_dir,
            addr,
            child,
            extra_properties: props,
            extra_env: Vec::new(),
            open_files_limit: Some(nofile),
            log_lines,
        }
    }

    fn launch(
        dir: PathBuf,
        log_dir: PathBuf,
        extra_properties: Vec<String>,
        extra_env: Vec<(String, String)>,
    ) -> TestBroker {
        let (child, log_lines, addr) = spawn(&dir, &log_dir, &extra_properties, &extra_env, None);
        TestBroker {
            dir,
            log_dir,
            addr,
            child,
            extra_properties,
            extra_env,
            open_files_limit: None,
            log_lines,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The process id of the running broker, for reading its `/proc/<pid>` files.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL and starts a new one on the same directory.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.restart();
    }

    /// Kills the process with SIGKILL and waits for it, leaving its files for the test to change
    /// before [`TestBroker::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a new process on the same directory (after the old one exited).
    pub fn restart(&mut self) {
        let (child, log_lines, addr) = spawn(
            &self.dir,
            &self.log_dir,
            &self.extra_properties,
            &self.extra_env,
            self.open_files_limit,
        );
        self.child = child;
        self.log_lines = log_lines;
        self.addr = addr;
    }

    /// Stops the broker with SIGTERM and waits for it to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        send_signal(self.child.id(), 15);
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Whether the broker process is still running (it has not crashed or exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Log lines the broker has printed so far.
    pub fn drain_log(&self) -> Vec<String> {
        self.log_lines.try_iter().collect()
    }

    /// Panics if the broker has logged a panic (of a connection thread) since the last drain.
    pub fn assert_no_panics(&self) {
        let panics: Vec<String> = self
            .drain_log()
            .into_iter()
            .filter(|l| l.contains("panicked"))
            .collect();
        assert!(panics.is_empty(), "a broker thread panicked: {panics:?}");
    }
}

/// Starts the broker process and waits for its "listening on" line.
fn spawn(
    dir: &Path,
    log_dir: &Path,
    extra_properties: &[String],
    extra_env: &[(String, String)],
    open_files_limit: Option<u64>,
) -> (Child, mpsc::Receiver<String>, SocketAddr) {
    let config = dir.join("server.properties");
    let mut text = format!(
        "process.roles=broker,controller\nnode.id=1\nlisteners=PLAINTEXT://127.0.0.1:0,CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER\nlog.dirs={}\n",
        log_dir.display()
    );
    for p in extra_properties {
        text.push_str(p);
        text.push('\n');
    }
    fs::write(&config, text).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sprat"));
    if let Some(nofile) = open_files_limit {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // setrlimit, which is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = command
        .arg(&config)
        .env(
            "RUST_LOG",
            std::env::var("SPRAT_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sprat");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let echo = std::env::var_os("SPRAT_TEST_LOG").is_some();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("[broker] {line}");
            }
            // The receiver may be gone; keep draining so the broker never blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("broker did not start listening");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    (child, rx, addr)
}

fn send_signal(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A raw protocol client.
pub struct Client {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Client {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Sends a request frame built from a header and an encoded body; returns the correlation id.
    pub fn send(&mut self, api_key: i16, version: i16, body: impl FnOnce(&mut Encoder)) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        self.send_with_correlation_id(api_key, version, correlation_id, body);
        correlation_id
    }

    /// Sends a request frame with a correlation id chosen by the caller.
    pub fn send_with_correlation_id(
        &mut self,
        api_key: i16,
        version: i16,
        correlation_id: i32,
        body: impl FnOnce(&mut Encoder),
    ) {
        let frame = request_frame(api_key, version, correlation_id, body);
        self.stream.write_all(&frame).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response frame (without its size prefix).
    pub fn receive(&mut self) -> Vec<u8> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).unwrap();
        body
    }

    /// Whether the broker closed the connection (EOF) within a few seconds.
    pub fn is_closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1];
        match self.stream.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        }
    }

    /// Sends raw bytes and reads one response frame, returned with its size prefix so that it can
    /// be compared with a recorded hexdump.
    pub fn round_trip(&mut self, request: &[u8]) -> Vec<u8> {
        self.send_raw(request);
        let body = self.receive();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend(body);
        frame
    }

    /// Panics if any byte arrives within `wait`: a response must be followed by nothing (the
    /// CodeCrafters tester reads for 100 ms after a response and counts every byte it gets).
    pub fn assert_no_more_bytes(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 64];
        let result = self.stream.read(&mut buf);
        self.stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        match result {
            Ok(0) => panic!("the broker closed the connection"),
            Ok(n) => panic!("unexpected bytes after the response: {:02x?}", &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Panics unless the broker closes the connection (EOF or reset) within a few seconds without
    /// sending anything first. Unlike [`Client::is_closed`], a read timeout is a failure.
    pub fn assert_closed(&mut self) {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected the connection to be closed, got bytes {:02x?}",
                &buf[..n]
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("expected the connection to be closed, but it is still open after 10 s")
            }
            Err(e) => panic!("expected the connection to be closed, but the read failed with: {e}"),
        }
    }

    /// Sends a request and decodes the response with `decode`, checking the correlation id, the
    /// response header version and that the body is consumed exactly.
    pub fn call<T>(
        &mut self,
        api_key: i16,
        version: i16,
        body: impl FnOnce(&mut Encoder),
        decode: impl FnOnce(&mut Decoder<'_>, i16) -> sprat::protocol::wire::DecodeResult<T>,
    ) -> T {
        let correlation_id = self.send(api_key, version, body);
        let frame = self.receive();
        let mut d = Decoder::new(&frame);
        assert_eq!(d.i32().unwrap(), correlation_id, "correlation id");
        if sprat::protocol::response_header_is_flexible(api_key, version) {
            d.skip_tagged_fields().unwrap();
        }
        let value = decode(&mut d, version).unwrap();
        d.finish().expect("response fully consumed");
        value
    }
}

/// Builds a complete request frame, size prefix included, with request header v1 or v2 as the API
/// and version require.
pub fn request_frame(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    body: impl FnOnce(&mut Encoder),
) -> Vec<u8> {
    let mut e = Encoder::new();
    e.i32(0);
    RequestHeader {
        api_key,
        api_version: version,
        correlation_id,
        client_id: Some("sprat-test".into()),
    }
    .encode(&mut e, sprat::protocol::is_flexible(api_key, version));
    body(&mut e);
    let mut frame = e.into_inner();
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    frame
}

/// Decodes a response frame (without its size prefix): checks the correlation id, reads the tag
/// buffer of response header v1 when `tagged_header` says so (the caller states it rather than
/// asking the crate, so that a wrong header version is caught), and checks that the body is
/// consumed exactly.
pub fn decode_response<T>(
    frame: &[u8],
    correlation_id: i32,
    tagged_header: bool,
    version: i16,
    decode: impl FnOnce(&mut Decoder<'_>, i16) -> sprat::protocol::wire::DecodeResult<T>,
) -> T {
    let mut d = Decoder::new(frame);
    assert_eq!(d.i32().unwrap(), correlation_id, "correlation id");
    if tagged_header {
        assert_eq!(
            d.uvarint().unwrap(),
            0,
            "response header v1 carries no tagged fields"
        );
    }
    let value = decode(&mut d, version).unwrap();
    d.finish().expect("response fully consumed");
    value
}

/// Parses bytes written as hex pairs separated by whitespace. Lines copied from a hexdump in the
/// `0010 | 66 6b 61 ... | ascii` layout are accepted: only the column between the bars is read.
pub fn hex(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.lines() {
        let hex_part = match line.split('|').collect::<Vec<_>>().as_slice() {
            [_, bytes, ..] => *bytes,
            [bytes] => *bytes,
            [] => "",
        };
        for pair in hex_part.split_whitespace() {
            out.push(
                u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex byte {pair:?}")),
            );
        }
    }
    out
}

/// Parses a UUID in its canonical form (`71a59a51-8968-4f8b-937e-49379a7e97cc`), as the tester
/// prints it.
pub fn uuid(text: &str) -> Uuid {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    assert_eq!(digits.len(), 32, "{text}");
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap();
    }
    Uuid(bytes)
}

/// The bytes of a partition's first log segment, as the tester reads them after a produce.
pub fn read_partition_log(log_dir: &Path, topic: &str, partition: i32) -> Vec<u8> {
    fs::read(
        log_dir
            .join(format!("{topic}-{partition}"))
            .join("00000000000000000000.log"),
    )
    .unwrap()
}

/// A small deterministic random generator (SplitMix64). The seed comes from `SPRAT_TEST_SEED` or
/// the clock and is printed, so that a failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new(test: &str) -> Rng {
        let seed = std::env::var("SPRAT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
                    ^ NEXT_DIR.fetch_add(1, Ordering::SeqCst) as u64
            });
        eprintln!("{test}: SPRAT_TEST_SEED={seed}");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo < hi);
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    pub fn i32(&mut self) -> i32 {
        self.next_u64() as i32
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.range(0, i as i64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A topic to write into a test metadata log.
pub struct TopicSpec {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
}

impl TopicSpec {
    /// A topic with a given id, for instance one copied from a recorded tester run.
    pub fn with_id(name: &str, id: Uuid, partitions: i32) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            id,
            partitions,
        }
    }

    pub fn new(name: &str, id_byte: u8, partitions: i32) -> TopicSpec {
        let mut id = [
            0x71, 0xa5, 0x9a, 0x51, 0x89, 0x68, 0x4f, 0x8b, 0x93, 0x7e, 0, 0, 0, 0, 0, 0,
        ];
        id[15] = id_byte;
        TopicSpec {
            name: name.into(),
            id: Uuid(id),
            partitions,
        }
    }
}

/// Writes a `__cluster_metadata-0` log the way the CodeCrafters tester does: a FeatureLevelRecord
/// batch at offset 1, then one batch per topic with its TopicRecord and PartitionRecords. Also
/// creates each partition's directory with an empty log and `partition.metadata`.
pub fn write_cluster_metadata(log_dir: &Path, topics: &[TopicSpec]) {
    let dir = log_dir.join("__cluster_metadata-0");
    fs::create_dir_all(&dir).unwrap();
    let mut log = Vec::new();
    let feature = MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: "metadata.version".into(),
        feature_level: 20,
    });
    let header = BatchHeader {
        base_offset: 1,
        partition_leader_epoch: 1,
        base_timestamp: 1726045943832,
        max_timestamp: 1726045943832,
        ..BatchHeader::default()
    };
    log.extend(build_batch(&header, &[record(feature.encode())]));
    let mut offset = 2;
    for t in topics {
        let mut records = vec![record(
            MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: t.id,
            })
            .encode(),
        )];
        for p in 0..t.partitions {
            records.push(record(partition_record_v1(t.id, p)));
        }
        let header = BatchHeader {
            base_offset: offset,
            partition_leader_epoch: 1,
            base_timestamp: 1726045957397,
            max_timestamp: 1726045957397,
            ..BatchHeader::default()
        };
        offset += records.len() as i64;
        log.extend(build_batch(&header, &records));
        for p in 0..t.partitions {
            let pdir = log_dir.join(format!("{}-{p}", t.name));
            fs::create_dir_all(&pdir).unwrap();
            fs::write(pdir.join("00000000000000000000.log"), b"").unwrap();
            fs::write(
                pdir.join("partition.metadata"),
                format!("version: 0\ntopic_id: {}", t.id),
            )
            .unwrap();
        }
    }
    fs::write(dir.join("00000000000000000000.log"), log).unwrap();
}

/// A PartitionRecord of version 1 (with directories), as KRaft writes it.
fn partition_record_v1(topic_id: Uuid, partition: i32) -> Vec<u8> {
    let record = PartitionRecord {
        partition_id: partition,
        topic_id,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        directories: vec![Uuid([
            0x10, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1,
        ])],
        ..PartitionRecord::default()
    };
    let mut e = Encoder::new();
    e.uvarint(1);
    e.uvarint(3);
    e.uvarint(1);
    record.encode(&mut e, 1);
    e.into_inner()
}

fn record(value: Vec<u8>) -> Record {
    Record {
        value: Some(value),
        ..Record::default()
    }
}

/// A batch like the CodeCrafters tester's: one record per message, producer id 0, fixed timestamps.
pub fn tester_batch(base_offset: i64, values: &[&[u8]]) -> Vec<u8> {
    let header = BatchHeader {
        base_offset,
        partition_leader_epoch: 0,
        base_timestamp: 1726045973899,
        max_timestamp: 1726045973899,
        producer_id: 0,
        producer_epoch: 0,
        base_sequence: 0,
        ..BatchHeader::default()
    };
    let records: Vec<_> = values
        .iter()
        .map(|v| Record {
            value: Some(v.to_vec()),
            ..Record::default()
        })
        .collect();
    build_batch(&header, &records)
}

/// A batch like the tester's but from a producer without idempotence (producer id -1).
pub fn plain_batch(base_offset: i64, values: &[&[u8]]) -> Vec<u8> {
    let header = BatchHeader {
        base_offset,
        partition_leader_epoch: 0,
        base_timestamp: 1726045973899,
        max_timestamp: 1726045973899,
        ..BatchHeader::default()
    };
    let records: Vec<_> = values
        .iter()
        .map(|v| Record {
            value: Some(v.to_vec()),
            ..Record::default()
        })
        .collect();
    build_batch(&header, &records)
}

/// Appends batches to a partition's log file before the broker starts.
pub fn write_partition_log(log_dir: &Path, topic: &str, partition: i32, batches: &[Vec<u8>]) {
    let path = log_dir
        .join(format!("{topic}-{partition}"))
        .join("00000000000000000000.log");
    fs::write(path, batches.concat()).unwrap();
}

/// Produces one batch (acks -1) to one partition with Produce `version`; returns the partition's
/// error code and base offset, and the response's `throttle_time_ms`.
pub fn produce_batch(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    batch: &[u8],
) -> (i16, i64, i32) {
    use sprat::protocol::messages::produce;
    let request = produce::ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30000,
        topic_data: vec![produce::TopicProduceData {
            name: topic.into(),
            partition_data: vec![produce::PartitionProduceData {
                index: partition,
                records: Some(batch.to_vec()),
            }],
        }],
    };
    let response = client.call(
        produce::API_KEY,
        version,
        |e| request.encode(e, version),
        produce::ProduceResponse::decode,
    );
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, response.throttle_time_ms)
}

/// Fetch v11 of one partition from `offset` at the isolation level (0 read_uncommitted, 1
/// read_committed), asserting the partition's error is NONE.
pub fn fetch_partition(
    client: &mut Client,
    topic: &str,
    offset: i64,
    isolation_level: i8,
) -> sprat::protocol::messages::fetch::PartitionData {
    use sprat::protocol::messages::fetch as f;
    let version = 11;
    let request = f::FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        isolation_level,
        session_id: 0,
        session_epoch: -1,
        topics: vec![f::FetchTopic {
            topic: topic.into(),
            partitions: vec![f::FetchPartition {
                partition: 0,
                current_leader_epoch: -1,
                fetch_offset: offset,
                log_start_offset: -1,
                partition_max_bytes: 1 << 20,
                ..f::FetchPartition::default()
            }],
            ..f::FetchTopic::default()
        }],
        ..f::FetchRequest::default()
    };
    let response = client.call(
        f::API_KEY,
        version,
        |e| request.encode(e, version),
        f::FetchResponse::decode,
    );
    let p = response.responses[0].partitions[0].clone();
    assert_eq!(p.error_code, 0, "fetch of {topic} at {offset}");
    p
}
