//! Start-up and the state every connection thread shares.
//!
//! [`Broker::start`] loads `meta.properties`, replays the cluster metadata log, opens every
//! partition log, rebuilds committed offsets from `__consumer_offsets`, starts the `log-writer` and
//! `group-coordinator` threads and the accept loop, and returns a handle that can report the bound
//! address and shut the broker down.

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::log::{metadata_topic_partition, replay};
use crate::metadata::{MetadataImage, TopicMetadata};
use crate::protocol::wire::Uuid;
use crate::security::BoundListener;
use crate::security::sasl::SaslConfig;
use crate::storage::checkpoint::{
    self, LOG_START_OFFSET_CHECKPOINT_FILE, RECOVERY_POINT_CHECKPOINT_FILE,
};
use crate::storage::log::{
    AppendNotifier, LoadOptions, LogConfig, Partition, PartitionLog, TopicPartition,
};
use crate::storage::open_files::open_files;
use crate::writer::{LogWriter, WriterCommand};
use crossbeam_channel::Sender;
use log::{info, warn};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Threads that load (and after a crash, recover) partition logs at start-up, unless
/// `num.recovery.threads.per.data.dir` says otherwise.
const DEFAULT_RECOVERY_THREADS: usize = 8;

/// How many append commands may wait for the writer before producers block (back-pressure).
const WRITER_QUEUE_CAPACITY: usize = 4096;

/// What connection threads share.
pub struct BrokerContext {
    /// The static configuration: `server.properties` and the command line's overrides.
    pub config: BrokerConfig,
    /// The live configuration: `config` with the dynamic broker keys set by AlterConfigs on
    /// top (see [`crate::dynamic_config`]); replaced by the `log-writer` when they change.
    pub live: RwLock<Arc<BrokerConfig>>,
    pub cluster_id: String,
    pub metadata: RwLock<MetadataImage>,
    pub partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    pub writer: Sender<WriterCommand>,
    pub appends: Arc<AppendNotifier>,
    /// The port the listener actually bound (differs from the configured one when that is 0).
    pub bound_port: u16,
    /// Every listener bound, with the port it got; the broker listener first.
    pub bound_listeners: Vec<Arc<BoundListener>>,
    pub group_coordinator: Arc<GroupCoordinator>,
    /// The coordinator of every transactional id (see [`crate::txn`]).
    pub transactions: Arc<crate::txn::TransactionCoordinator>,
    /// Set by [`Broker::shutdown`]: the acceptor stops taking connections.
    pub shutting_down: AtomicBool,
    /// Counters and histograms for `GET /metrics` (see [`crate::metrics`]).
    pub metrics: crate::metrics::Metrics,
    /// Client quotas' rates (see [`crate::quota`]).
    pub quotas: crate::quota::QuotaManager,
    /// Fetch responses send record bytes from the segment files with `sendfile`
    /// (`sprat.fetch.zero.copy`, on unless set to false).
    pub zero_copy_fetch: bool,
    /// ACL checks (see [`crate::security::acl`]); allows everything unless
    /// `authorizer.class.name` is set.
    pub authorizer: crate::security::acl::Authorizer,
}

impl BrokerContext {
    /// The live configuration (see [`BrokerContext::live`]).
    pub fn live_config(&self) -> Arc<BrokerConfig> {
        self.live.read().clone()
    }

    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// One topic's metadata as it is now, shared: the lock is not held afterwards, and a later
    /// change makes a new copy rather than changing this one.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicMetadata>> {
        self.metadata.read().topic(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<TopicMetadata>> {
        self.metadata.read().topic_by_id(id).cloned()
    }

    /// The host and port clients should connect to: the advertised address of the listener the
    /// calling connection thread's client arrived on (the broker listener's on other threads),
    /// with the bound port substituted when the configured one is 0 (an ephemeral port).
    pub fn advertised_host_port(&self) -> (String, u16) {
        let current = crate::security::current_listener();
        let listener = current
            .as_deref()
            .or(self.bound_listeners.first().map(|l| &**l));
        let advertised = listener.and_then(|l| {
            let (host, port) = self.config.advertised_host_port_of(&l.name)?;
            Some((host, if port == 0 { l.port } else { port }))
        });
        advertised.unwrap_or_else(|| {
            let (host, port) = self.config.advertised_host_port();
            (host, if port == 0 { self.bound_port } else { port })
        })
    }
}

/// A running broker.
pub struct Broker {
    pub context: Arc<BrokerContext>,
    local_addr: SocketAddr,
    /// Every bound listener's address, `local_addr` first.
    local_addrs: Vec<SocketAddr>,
    writer_thread: Option<JoinHandle<()>>,
}

impl Broker {
    /// Loads state from the log directory and starts serving.
    pub fn start(config: BrokerConfig) -> io::Result<Broker> {
        let log_dir = config.log_dir().to_path_buf();
        fs::create_dir_all(&log_dir).map_err(|e| {
            io::Error::new(e.kind(), format!("log.dirs {}: {e}", log_dir.display()))
        })?;
        let new_log_dir = !log_dir.join("meta.properties").exists();
        let cluster_id = load_or_create_meta_properties(&log_dir, config.node_id)?;
        let fd_limits = crate::fd_budget::raise_limit();
        let cache = crate::fd_budget::cache_capacity(
            fd_limits.soft,
            config.max_connections,
            config.open_files_cache_size,
        );
        open_files().set_capacity(cache);
        info!("segment files: at most {cache} open at once");
        let started = std::time::Instant::now();
        let checkpoints = LogDirCheckpoints::read(&log_dir);
        let metadata_tp = metadata_topic_partition();
        let metadata_log = PartitionLog::load(
            &log_dir.join(metadata_tp.dir_name()),
            metadata_tp.clone(),
            // Every metadata record is fsynced before it takes effect, and nobody reads past
            // what is on disk, so a failed fsync is cut off rather than taking the log offline.
            LogConfig {
                flush_on_ack: true,
                ..LogConfig::default()
            },
            checkpoints.load_options(&metadata_tp),
        )?;
        let image = replay(&metadata_log.partition)?;
        let authorizer_config = crate::security::acl::AuthorizerConfig::from_config(&config)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        let authorizer =
            crate::security::acl::Authorizer::new(authorizer_config, image.acls.clone());
        let live = crate::dynamic_config::live_config(&config, &image).unwrap_or_else(|e| {
            // Every dynamic change was validated before it was stored, so this takes a
            // metadata log written by something else.
            warn!("ignoring the dynamic broker configs: {e}");
            config.clone()
        });
        let mut logs = load_partition_logs(&log_dir, &live, &image, &checkpoints)?;
        let partitions: HashMap<_, _> = logs
            .iter()
            .map(|log| (log.partition.topic_partition.clone(), log.partition.clone()))
            .collect();
        // From here on the logs change: a crash must not pass for a clean shutdown.
        checkpoint::remove_clean_shutdown_marker(&log_dir)?;
        info!(
            "loaded {} topics with {} partitions from {} in {} ms {}",
            image.topic_count(),
            partitions.len(),
            log_dir.display(),
            started.elapsed().as_millis(),
            if new_log_dir {
                "(a new log directory)"
            } else if checkpoints.had_clean_shutdown {
                "after a clean shutdown"
            } else {
                "after an unclean shutdown"
            }
        );
        logs.push(metadata_log);
        let group_coordinator = Arc::new(GroupCoordinator::new(&config));
        group_coordinator.load(&partitions)?;
        let transactions = Arc::new(crate::txn::TransactionCoordinator::new(&config));
        transactions.load(&partitions)?;
        let (writer_tx, writer_rx) = crossbeam_channel::bounded(WRITER_QUEUE_CAPACITY);
        let zero_copy_fetch = config.fetch_zero_copy;
        let sockets = bind_listeners(&config)?;
        let local_addr = sockets[0].0.local_addr()?;
        let local_addrs = sockets
            .iter()
            .map(|(socket, _)| socket.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let bound_listeners: Vec<Arc<BoundListener>> =
            sockets.iter().map(|(_, l)| l.clone()).collect();
        let context = Arc::new(BrokerContext {
            config,
            live: RwLock::new(Arc::new(live)),
            cluster_id,
            metadata: RwLock::new(image),
            partitions: RwLock::new(partitions),
            writer: writer_tx,
            appends: Arc::new(AppendNotifier::default()),
            bound_port: local_addr.port(),
            bound_listeners,
            group_coordinator,
            transactions,
            shutting_down: AtomicBool::new(false),
            metrics: crate::metrics::Metrics::default(),
            quotas: crate::quota::QuotaManager::default(),
            zero_copy_fetch,
            authorizer,
        });
        context.group_coordinator.attach(&context);
        context.group_coordinator.start_expiration_thread()?;
        let writer = LogWriter::new(context.clone(), logs);
        let writer_thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(writer_rx))?;
        crate::cleaner::start(context.clone())?;
        crate::txn::TransactionCoordinator::start(&context)?;
        info!(
            "listening on {local_addr} (cluster id {})",
            context.cluster_id
        );
        if let Some(addr) = &context.config.metrics_listener {
            crate::metrics::http::start(addr, context.clone())?;
        }
        // Kafka counts max.connections and max.connections.per.ip over all the listeners.
        let connection_limits = crate::server::limits::ConnectionLimits::new();
        for (i, (socket, listener)) in sockets.into_iter().enumerate() {
            if i > 0 {
                info!(
                    "listener {} ({}) also listening at {}",
                    listener.name, listener.protocol, local_addrs[i]
                );
            }
            let ctx = context.clone();
            let limits = connection_limits.clone();
            std::thread::Builder::new()
                .name(format!("acceptor-{}", listener.name))
                .spawn(move || crate::server::accept_loop(socket, listener, ctx, limits))?;
        }
        Ok(Broker {
            context,
            local_addr,
            local_addrs,
            writer_thread: Some(writer_thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets queued appends finish, closes every log (flush,
    /// checkpoints, clean shutdown marker) and stops the writer.
    pub fn shutdown(&mut self) {
        self.context.shutting_down.store(true, Ordering::SeqCst);
        // Wake the acceptors, which are blocked in accept, so that they see the flag and close
        // their listeners.
        for &addr in &self.local_addrs {
            let mut wake = addr;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = std::net::TcpStream::connect_timeout(&wake, std::time::Duration::from_secs(1));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self
            .context
            .writer
            .send(WriterCommand::Shutdown { reply: tx })
            .is_ok()
        {
            let _ = rx.recv();
        }
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
        info!("shut down");
    }
}

/// Binds every listener that is not a controller listener, the broker listener first. An error
/// names the listener that could not be bound, or whose TLS or SASL settings are wrong.
fn bind_listeners(config: &BrokerConfig) -> io::Result<Vec<(TcpListener, Arc<BoundListener>)>> {
    let mut bound = Vec::new();
    for listener in config.bound_listeners() {
        let protocol = config.security_protocol(&listener.name);
        let sasl = if protocol.uses_sasl() {
            let sasl = SaslConfig::for_listener(config, &listener.name)
                .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
            Some(Arc::new(sasl))
        } else {
            None
        };
        let tls = if protocol.uses_tls() {
            let tls =
                crate::security::tls::server_config(config, &listener.name).map_err(|reason| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("listener {listener}: {reason}"),
                    )
                })?;
            Some(tls)
        } else {
            None
        };
        let address = BrokerConfig::bind_address_of(listener);
        let socket = TcpListener::bind(&address).map_err(|e| {
            io::Error::new(e.kind(), format!("listener {listener} ({address}): {e}"))
        })?;
        let bound_listener = BoundListener {
            name: listener.name.clone(),
            protocol,
            port: socket.local_addr()?.port(),
            sasl,
            tls,
        };
        bound.push((socket, Arc::new(bound_listener)));
    }
    Ok(bound)
}

/// What the log directory's checkpoint files say, read once at start-up.
struct LogDirCheckpoints {
    had_clean_shutdown: bool,
    recovery_points: HashMap<TopicPartition, i64>,
    log_start_offsets: HashMap<TopicPartition, i64>,
}

impl LogDirCheckpoints {
    /// Reads the clean shutdown marker and both offset checkpoints. An unreadable checkpoint is
    /// treated as missing: the logs are then recovered from their first segment.
    fn read(log_dir: &Path) -> LogDirCheckpoints {
        let read = |name: &str| {
            checkpoint::read_offset_checkpoint(&log_dir.join(name)).unwrap_or_else(|e| {
                warn!("{e}; ignoring it");
                HashMap::new()
            })
        };
        LogDirCheckpoints {
            had_clean_shutdown: checkpoint::had_clean_shutdown(log_dir),
            recovery_points: read(RECOVERY_POINT_CHECKPOINT_FILE),
            log_start_offsets: read(LOG_START_OFFSET_CHECKPOINT_FILE),
        }
    }

    fn load_options(&self, tp: &TopicPartition) -> LoadOptions {
        LoadOptions {
            had_clean_shutdown: self.had_clean_shutdown,
            recovery_point: self.recovery_points.get(tp).copied(),
            log_start_offset: self.log_start_offsets.get(tp).copied(),
        }
    }
}

/// Opens every topic partition's log, on up to `num.recovery.threads.per.data.dir` threads.
/// sprat's default is [`DEFAULT_RECOVERY_THREADS`]: recovering logs after a crash waits on disk
/// reads far more than on the CPU. Measured on a 2-core VM with a 10 GiB log in 4 partitions of
/// 16 KiB batches, page cache dropped, `kill -9` with the recovery point at the log end: 3.4 s
/// with 4 or more threads, 6.8 s with 2, 14 s with 1.
fn load_partition_logs(
    log_dir: &Path,
    config: &BrokerConfig,
    image: &MetadataImage,
    checkpoints: &LogDirCheckpoints,
) -> io::Result<Vec<PartitionLog>> {
    let work: Vec<(&TopicMetadata, i32)> = image
        .topics()
        .flat_map(|t| t.partitions.keys().map(move |&index| (t, index)))
        .collect();
    let threads = config
        .get("num.recovery.threads.per.data.dir")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_RECOVERY_THREADS)
        .clamp(1, work.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<parking_lot::Mutex<Option<io::Result<PartitionLog>>>> =
        work.iter().map(|_| parking_lot::Mutex::new(None)).collect();
    std::thread::scope(|scope| -> io::Result<()> {
        for _ in 0..threads {
            std::thread::Builder::new()
                .name("log-recovery".into())
                .spawn_scoped(scope, || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(topic, index)) = work.get(i) else {
                            break;
                        };
                        let tp = TopicPartition::new(topic.name.clone(), index);
                        let options = checkpoints.load_options(&tp);
                        let log = open_partition_log(log_dir, config, topic, index, options);
                        *results[i].lock() = Some(log);
                    }
                })?;
        }
        Ok(())
    })?;
    results
        .into_iter()
        .map(|r| r.into_inner().expect("every partition was loaded"))
        .collect()
}

/// Opens one partition's log, writing `partition.metadata` if it is missing.
pub fn open_partition_log(
    log_dir: &Path,
    config: &BrokerConfig,
    topic: &TopicMetadata,
    index: i32,
    options: LoadOptions,
) -> io::Result<PartitionLog> {
    let tp = TopicPartition::new(topic.name.clone(), index);
    let dir = log_dir.join(tp.dir_name());
    let in_dir = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
    let log = PartitionLog::load(&dir, tp, log_config(config, topic), options).map_err(in_dir)?;
    let metadata_path = dir.join("partition.metadata");
    if !metadata_path.exists() {
        write_partition_metadata(&dir, &topic.topic_id).map_err(in_dir)?;
    }
    Ok(log)
}

/// What a topic's `cleanup.policy` asks for: its override, else the broker's
/// `log.cleanup.policy`, else Kafka's default, `delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

pub fn cleanup_policy(
    topic_configs: &std::collections::BTreeMap<String, String>,
    config: &BrokerConfig,
) -> CleanupPolicy {
    let policy = topic_configs
        .get("cleanup.policy")
        .map(String::as_str)
        .or_else(|| config.get("log.cleanup.policy"))
        .unwrap_or("delete");
    let has = |p: &str| policy.split(',').any(|x| x.trim() == p);
    CleanupPolicy {
        delete: has("delete"),
        compact: has("compact"),
    }
}

/// The log settings of a topic: broker defaults (`log.*`), overridden by the topic's configs
/// with Kafka's topic-level names.
pub fn log_config(config: &BrokerConfig, topic: &TopicMetadata) -> LogConfig {
    let value = |key: &str| topic.configs.get(key).map(|v| v.trim());
    let long = |key: &str, default: i64| {
        value(key)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    LogConfig {
        segment_bytes: long("segment.bytes", config.log_segment_bytes as i64).max(1) as u64,
        segment_ms: long("segment.ms", config.log_roll_ms),
        index_interval_bytes: long(
            "index.interval.bytes",
            i64::from(config.log_index_interval_bytes),
        )
        .max(0) as u64,
        max_index_size: long(
            "segment.index.bytes",
            i64::from(config.log_index_size_max_bytes),
        )
        .max(0) as u64,
        retention_ms: long("retention.ms", config.log_retention_ms),
        retention_bytes: long("retention.bytes", config.log_retention_bytes),
        delete_enabled: cleanup_policy(&topic.configs, config).delete,
        flush_interval_messages: long("flush.messages", config.log_flush_interval_messages),
        flush_interval_ms: value("flush.ms")
            .and_then(|v| v.parse().ok())
            .or(config.log_flush_interval_ms),
        flush_on_ack: config.log_flush_on_ack,
    }
}

/// Writes Kafka's `partition.metadata` file: the format version and the topic id.
pub fn write_partition_metadata(dir: &Path, topic_id: &Uuid) -> io::Result<()> {
    write_atomically(
        &dir.join("partition.metadata"),
        format!("version: 0\ntopic_id: {topic_id}\n").as_bytes(),
    )
}

/// Writes a file through a temporary file, fsync and rename, so that a crash leaves either the old
/// or the new content.
pub fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A random UUID from the standard library's randomly keyed hasher (no extra crate needed).
pub fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    // Kafka's Uuid.randomUuid is a version-4 UUID.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid(bytes)
}

/// Reads `cluster.id` from `meta.properties`, or writes a new file with a fresh cluster id (as
/// `kafka-storage format` would).
fn load_or_create_meta_properties(log_dir: &Path, node_id: i32) -> io::Result<String> {
    let path = log_dir.join("meta.properties");
    if let Ok(text) = fs::read_to_string(&path) {
        let props = crate::config::parse_properties(&text).unwrap_or_default();
        if let Some((_, id)) = props.iter().rev().find(|(k, _)| k == "cluster.id") {
            return Ok(id.clone());
        }
        warn!(
            "{} has no cluster.id; keeping the file and using a new id",
            path.display()
        );
        return Ok(random_uuid().to_string());
    }
    let cluster_id = random_uuid().to_string();
    let content = format!(
        "#\n#Written by sprat\nnode.id={node_id}\ndirectory.id={}\nversion=1\ncluster.id={cluster_id}\n",
        random_uuid()
    );
    write_atomically(&path, content.as_bytes())?;
    info!("wrote {} with new cluster id {cluster_id}", path.display());
    Ok(cluster_id)
}

/// Blocks until SIGINT or SIGTERM arrives.
pub fn wait_for_shutdown_signal() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            if let Some(signal) = signals.forever().next() {
                info!("received signal {signal}; shutting down");
            }
        }
        Err(e) => {
            warn!("cannot install signal handlers ({e}); running until killed");
            loop {
                std::thread::park();
            }
        }
    }
}
