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
use crate::storage::log::{AppendNotifier, LogConfig, Partition, PartitionLog, TopicPartition};
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
use std::thread::JoinHandle;

/// How many append commands may wait for the writer before producers block (back-pressure).
const WRITER_QUEUE_CAPACITY: usize = 4096;

/// What connection threads share.
pub struct BrokerContext {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub metadata: RwLock<MetadataImage>,
    pub partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    pub writer: Sender<WriterCommand>,
    pub appends: Arc<AppendNotifier>,
    /// The port the listener actually bound (differs from the configured one when that is 0).
    pub bound_port: u16,
    pub group_coordinator: Arc<GroupCoordinator>,
}

impl BrokerContext {
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// A copy of one topic's metadata, taken without holding the lock afterwards.
    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.metadata.read().topic(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<TopicMetadata> {
        self.metadata.read().topic_by_id(id).cloned()
    }

    /// The host and port clients should connect to: the advertised listener, with the bound
    /// port substituted when the configured one is 0 (an ephemeral port).
    pub fn advertised_host_port(&self) -> (String, u16) {
        let (host, port) = self.config.advertised_host_port();
        (host, if port == 0 { self.bound_port } else { port })
    }
}

/// A running broker.
pub struct Broker {
    pub context: Arc<BrokerContext>,
    local_addr: SocketAddr,
    writer_thread: Option<JoinHandle<()>>,
}

impl Broker {
    /// Loads state from the log directory and starts serving.
    pub fn start(config: BrokerConfig) -> io::Result<Broker> {
        let log_dir = config.log_dir().to_path_buf();
        fs::create_dir_all(&log_dir)?;
        let cluster_id = load_or_create_meta_properties(&log_dir, config.node_id)?;
        let metadata_log = PartitionLog::open(
            &log_dir.join(metadata_topic_partition().dir_name()),
            metadata_topic_partition(),
            LogConfig::default(),
        )?;
        let image = replay(&metadata_log.partition)?;
        let mut logs = Vec::new();
        let mut partitions = HashMap::new();
        for topic in image.topics() {
            for &index in topic.partitions.keys() {
                let log = open_partition_log(&log_dir, &config, topic, index)?;
                partitions.insert(log.partition.topic_partition.clone(), log.partition.clone());
                logs.push(log);
            }
        }
        info!(
            "loaded {} topics with {} partitions from {}",
            image.topic_count(),
            partitions.len(),
            log_dir.display()
        );
        logs.push(metadata_log);
        let group_coordinator = Arc::new(GroupCoordinator::new(&config));
        group_coordinator.load(&partitions)?;
        let (writer_tx, writer_rx) = crossbeam_channel::bounded(WRITER_QUEUE_CAPACITY);
        let listener = TcpListener::bind(config.bind_address())?;
        let local_addr = listener.local_addr()?;
        let context = Arc::new(BrokerContext {
            config,
            cluster_id,
            metadata: RwLock::new(image),
            partitions: RwLock::new(partitions),
            writer: writer_tx,
            appends: Arc::new(AppendNotifier::default()),
            bound_port: local_addr.port(),
            group_coordinator,
        });
        context.group_coordinator.start_expiration_thread()?;
        let writer = LogWriter::new(context.clone(), logs);
        let writer_thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(writer_rx))?;
        info!(
            "listening on {local_addr} (cluster id {})",
            context.cluster_id
        );
        let ctx = context.clone();
        std::thread::Builder::new()
            .name("acceptor".into())
            .spawn(move || crate::server::accept_loop(listener, ctx))?;
        Ok(Broker {
            context,
            local_addr,
            writer_thread: Some(writer_thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Lets queued appends finish, flushes every log and stops the writer.
    pub fn shutdown(&mut self) {
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

/// Opens one partition's log, writing `partition.metadata` if it is missing.
pub fn open_partition_log(
    log_dir: &Path,
    config: &BrokerConfig,
    topic: &TopicMetadata,
    index: i32,
) -> io::Result<PartitionLog> {
    let tp = TopicPartition::new(topic.name.clone(), index);
    let dir = log_dir.join(tp.dir_name());
    let log = PartitionLog::open(&dir, tp, log_config(config, topic))?;
    let metadata_path = dir.join("partition.metadata");
    if !metadata_path.exists() {
        write_partition_metadata(&dir, &topic.topic_id)?;
    }
    Ok(log)
}

/// The log settings of a topic: broker defaults, overridden by the topic's configs.
pub fn log_config(config: &BrokerConfig, topic: &TopicMetadata) -> LogConfig {
    let segment_bytes = topic
        .configs
        .get("segment.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(config.log_segment_bytes);
    LogConfig {
        segment_bytes,
        index_interval_bytes: u64::from(config.log_index_interval_bytes),
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
