//! Broker configuration, read from a Kafka `server.properties` file.
//!
//! Operators already have `server.properties` files and know Kafka's key names, so sprat reads the same
//! files with the same keys, defaults and precedence rules (`log.retention.ms` over
//! `log.retention.minutes` over `log.retention.hours`, `log.dirs` over `log.dir`). The file syntax is
//! that of `java.util.Properties`; [`parse_properties`] implements it as a pure function over text, so
//! every syntax case is tested without touching a file. [`BrokerConfig::from_properties`] turns the
//! pairs into typed settings and checks each value against the range Kafka accepts, and
//! [`BrokerConfig::load`] adds the file and the command-line overrides. Keys sprat does not use are
//! kept rather than rejected, because real Kafka files are full of them (`process.roles`,
//! `num.io.threads`, ...); the caller logs them.

use crate::security::SecurityProtocol;
use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::Chars;

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_HOUR: i64 = 3_600_000;
/// Kafka's default for both `log.roll.hours` and `log.retention.hours`: one week.
const DEFAULT_LOG_HOURS: i64 = 168;
/// The bounds of a Kafka `int` key, which Java parses as a 32-bit signed integer.
const INT_MIN: i64 = i32::MIN as i64;
const INT_MAX: i64 = i32::MAX as i64;
/// Kafka's smallest `log.segment.bytes`: the overhead of one legacy record. Tests use tiny segments.
const MIN_LOG_SEGMENT_BYTES: i64 = 14;

/// Why a configuration could not be read, with the file, key or argument at fault.
#[derive(Debug)]
pub enum ConfigError {
    /// The properties file could not be read.
    Io { path: PathBuf, source: io::Error },
    /// The properties text is malformed; only a bad `\uXXXX` escape can make it so.
    Syntax {
        path: Option<PathBuf>,
        line: usize,
        reason: String,
    },
    /// A key holds a value the broker cannot use.
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// A command-line override is not of the form `key=value`.
    InvalidOverride { arg: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfigError::Syntax {
                path: Some(path),
                line,
                reason,
            } => write!(f, "{}:{line}: {reason}", path.display()),
            ConfigError::Syntax {
                path: None,
                line,
                reason,
            } => write!(f, "config line {line}: {reason}"),
            ConfigError::InvalidValue { key, value, reason } => {
                write!(f, "invalid value {value:?} for {key}: {reason}")
            }
            ConfigError::InvalidOverride { arg } => {
                write!(f, "invalid override {arg:?}: expected key=value")
            }
        }
    }
}

impl Error for ConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parses text in `java.util.Properties` syntax into (key, value) pairs in file order.
///
/// A key that appears twice appears twice here; the caller lets the last one win, as Java does.
/// Lines end at `\n`, `\r` or `\r\n`. A line whose first non-blank character is `#` or `!` is a
/// comment. A line ending in an odd number of backslashes continues on the next line, whose leading
/// blanks are dropped; a blank line ends a continued line. The key ends at the first unescaped `=`,
/// `:` or blank, and blanks around that separator are skipped; trailing blanks belong to the value.
/// Keys and values are then unescaped (`\t \n \r \f \uXXXX`, and `\c` is `c` for any other `c`).
/// A logical line that is empty after joining yields no pair.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    for (line, logical) in logical_lines(text) {
        let syntax = |reason| ConfigError::Syntax {
            path: None,
            line,
            reason,
        };
        let (key, value) = split_key_value(&logical);
        pairs.push((
            unescape(key).map_err(syntax)?,
            unescape(value).map_err(syntax)?,
        ));
    }
    Ok(pairs)
}

/// The characters `java.util.Properties` treats as blanks: space, tab and form feed.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// Splits text into natural lines, ending at `\n`, `\r` or `\r\n`, without their terminators.
fn natural_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(end) = rest.find(['\r', '\n']) else {
            return Some(std::mem::take(&mut rest));
        };
        let line = &rest[..end];
        let terminator_len = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + terminator_len..];
        Some(line)
    })
}

/// Joins natural lines into logical lines, each with the number of the natural line it starts on.
///
/// Comments and blank lines are dropped; escapes are left in place except the backslash that joins
/// a continued line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, natural) in natural_lines(text).enumerate() {
        let content = natural.trim_start_matches(is_blank);
        // A comment is only recognised at the start of a logical line, never in a continuation.
        if pending.is_none() && (content.is_empty() || content.starts_with(['#', '!'])) {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        if ends_in_odd_backslashes(content) {
            joined.push_str(&content[..content.len() - 1]);
            pending = Some((start, joined));
        } else {
            joined.push_str(content);
            if !joined.is_empty() {
                lines.push((start, joined));
            }
        }
    }
    // Java also keeps a line continued past the end of the file, without its final backslash.
    lines.extend(pending.filter(|(_, joined)| !joined.is_empty()));
    lines
}

fn ends_in_odd_backslashes(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits a logical line into its still-escaped key and value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (index, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &line[index + c.len_utf8()..];
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..index], skip_to_value(rest, true)),
            c if is_blank(c) => return (&line[..index], skip_to_value(rest, false)),
            _ => {}
        }
    }
    (line, "")
}

/// Skips the blanks after a key and, when the key ended at a blank, one `=` or `:` among them.
fn skip_to_value(rest: &str, has_separator: bool) -> &str {
    let rest = rest.trim_start_matches(is_blank);
    if !has_separator && let Some(after) = rest.strip_prefix(['=', ':']) {
        return after.trim_start_matches(is_blank);
    }
    rest
}

/// Replaces the escapes of a key or value by the characters they stand for.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => out.push(unicode_escape(&mut chars)?),
            Some(other) => out.push(other),
            // A backslash that ends a logical line joined it to the next one and was removed, so a
            // lone trailing backslash cannot reach here; dropping it matches Java regardless.
            None => {}
        }
    }
    Ok(out)
}

/// Decodes the `XXXX` of a `\uXXXX` escape, which Java reads as one UTF-16 code unit. A character
/// outside the Basic Multilingual Plane is written as two escapes, a surrogate pair.
fn unicode_escape(chars: &mut Chars<'_>) -> Result<char, String> {
    let first = hex4(chars)?;
    if !(0xD800..0xDC00).contains(&first) {
        return char::from_u32(first)
            .ok_or_else(|| format!("\\u{first:04X} is an unpaired surrogate"));
    }
    let second = match (chars.next(), chars.next()) {
        (Some('\\'), Some('u')) => hex4(chars)?,
        _ => return Err(format!("\\u{first:04X} is an unpaired surrogate")),
    };
    if !(0xDC00..0xE000).contains(&second) {
        return Err(format!("\\u{first:04X} is an unpaired surrogate"));
    }
    let scalar = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
    char::from_u32(scalar)
        .ok_or_else(|| format!("\\u{first:04X}\\u{second:04X} is not a character"))
}

fn hex4(chars: &mut Chars<'_>) -> Result<u32, String> {
    let mut value = 0;
    for _ in 0..4 {
        let digit = chars.next().and_then(|c| c.to_digit(16));
        value = value * 16 + digit.ok_or("malformed \\uXXXX escape: expected four hex digits")?;
    }
    Ok(value)
}

/// One entry of `listeners` or `advertised.listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listener {
    /// The listener name, upper-cased as Kafka normalises it (`PLAINTEXT`, `CONTROLLER`, ...).
    pub name: String,
    /// A host name or IP address without brackets; empty means all interfaces.
    pub host: String,
    /// The port; 0 asks the operating system for an ephemeral port, which tests use.
    pub port: u16,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name, host_port(&self.host, self.port))
    }
}

/// Formats `host:port`, bracketing an IPv6 address so its colons are not read as the port's.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn is_unspecified_address(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// Parses `NAME://host:port`, `NAME://[v6]:port` or `NAME://:port`; the error is the reason.
fn parse_listener(text: &str) -> Result<Listener, String> {
    let (name, address) = text.split_once("://").ok_or("expected NAME://host:port")?;
    let name_is_valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || !name.chars().all(name_is_valid) {
        return Err(format!(
            "listener name {name:?} must be letters, digits, '_' or '-'"
        ));
    }
    let (host, port) = split_host_port(address)?;
    // The characters Kafka's listener pattern accepts in a host name or IP address.
    let host_is_valid =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '%' | '.' | '_' | ':');
    if !host.chars().all(host_is_valid) {
        return Err(format!("host {host:?} is not a host name or IP address"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))?;
    Ok(Listener {
        name: name.to_ascii_uppercase(),
        host: host.to_string(),
        port,
    })
}

fn split_host_port(address: &str) -> Result<(&str, &str), String> {
    let Some(bracketed) = address.strip_prefix('[') else {
        return address
            .rsplit_once(':')
            .ok_or_else(|| "expected host:port".to_string());
    };
    let (host, rest) = bracketed
        .split_once(']')
        .ok_or("IPv6 address lacks its closing ']'")?;
    let port = rest.strip_prefix(':').ok_or("expected ':port' after ']'")?;
    Ok((host, port))
}

/// Picks the listener brokers and clients talk to: the one named by `inter.broker.listener.name`,
/// else the first that is not a controller listener.
fn select_broker_listener<'a>(
    listeners: &'a [Listener],
    controller_listener_names: &[String],
    inter_broker_listener_name: Option<&str>,
) -> Option<&'a Listener> {
    match inter_broker_listener_name {
        Some(name) => listeners.iter().find(|l| l.name == name),
        None => listeners
            .iter()
            .find(|l| !controller_listener_names.contains(&l.name)),
    }
}

/// The broker's settings, with Kafka's key names and defaults. Sizes and durations carry their unit
/// last in the name. Built by [`BrokerConfig::from_properties`] or [`BrokerConfig::load`], which
/// guarantee at least one broker listener and one log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `listeners`, default `PLAINTEXT://:9092`.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners`; when unset or blank, the listeners that are not controller listeners.
    pub advertised_listeners: Vec<Listener>,
    /// `controller.listener.names`, upper-cased; these listeners are never bound by sprat.
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name`, upper-cased; when set, the listener sprat binds.
    pub inter_broker_listener_name: Option<String>,
    /// `listener.security.protocol.map`, names upper-cased; by default each protocol's name maps
    /// to that protocol (see [`crate::security::default_protocol_map`]).
    pub listener_security_protocols: BTreeMap<String, SecurityProtocol>,
    /// `log.dirs`, else `log.dir`, comma-separated; default `/tmp/kraft-combined-logs`.
    pub log_dirs: Vec<PathBuf>,
    /// `node.id`, or `broker.id` (they must agree when both are set); default 1.
    pub node_id: i32,
    /// `auto.create.topics.enable`, default true.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of an auto-created topic, default 1.
    pub num_partitions: i32,
    /// `default.replication.factor`, default 1.
    pub default_replication_factor: i16,
    /// `log.segment.bytes`: the size at which a segment is rolled, default 1 GiB. Kept below 2 GiB
    /// because index entries hold 32-bit file positions.
    pub log_segment_bytes: u64,
    /// `log.roll.ms`, else `log.roll.hours` (default 168) in milliseconds.
    pub log_roll_ms: i64,
    /// `log.index.interval.bytes`: bytes appended between offset index entries, default 4096.
    pub log_index_interval_bytes: u32,
    /// `log.index.size.max.bytes`: the size of a segment's index file, default 10 MiB.
    pub log_index_size_max_bytes: u32,
    /// `log.retention.ms`, else `log.retention.minutes`, else `log.retention.hours` (default 168),
    /// in milliseconds; -1 (any negative value) means no time limit.
    pub log_retention_ms: i64,
    /// `log.retention.bytes` per partition; -1 (any negative value) means no size limit.
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`, default 300000.
    pub log_retention_check_interval_ms: u64,
    /// `log.flush.interval.messages`: messages appended before an fsync, default `i64::MAX`.
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms`; `None` leaves flushing to `log.flush.interval.messages`.
    pub log_flush_interval_ms: Option<i64>,
    /// `log.flush.scheduler.interval.ms`, default `i64::MAX`.
    pub log_flush_scheduler_interval_ms: i64,
    /// `sprat.log.flush.on.ack` (sprat only), default false: fsync each group of appends before
    /// answering produce requests with acks=-1.
    pub log_flush_on_ack: bool,
    /// `socket.request.max.bytes`: the largest request frame accepted, default 100 MiB.
    pub socket_request_max_bytes: usize,
    /// `message.max.bytes`: the largest record batch accepted, default 1048588.
    pub message_max_bytes: i32,
    /// `max.connections`, default `i32::MAX`.
    pub max_connections: usize,
    /// `max.connections.per.ip`, default `i32::MAX`.
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`: idle connections are closed after this, default 10 minutes.
    pub connections_max_idle_ms: u64,
    /// `group.min.session.timeout.ms`, default 6000.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`, default 1800000.
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`, default 3000.
    pub group_initial_rebalance_delay_ms: i32,
    /// `offsets.retention.minutes`, default 10080 (7 days).
    pub offsets_retention_minutes: i64,
    /// `offsets.topic.num.partitions`, default 50.
    pub offsets_topic_num_partitions: i32,
    /// `sprat.fetch.zero.copy` (sprat only), default true: fetch responses send record bytes
    /// from the segment files with `sendfile`.
    pub fetch_zero_copy: bool,
    /// `sprat.open.files.cache.size` (sprat only): how many segment files may be open at once;
    /// by default derived from the open file limit and `max.connections`.
    pub open_files_cache_size: Option<usize>,
    /// `sprat.metrics.listener` (sprat only): `HOST:PORT` where `GET /metrics` is served in
    /// Prometheus' text format; off unless set.
    pub metrics_listener: Option<String>,
    /// Keys sprat does not use, sorted by key, for the caller to log.
    pub unknown: Vec<(String, String)>,
    /// Every key with its last value, so later code can read keys not modelled here.
    pub raw: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let listener = Listener {
            name: "PLAINTEXT".to_string(),
            host: String::new(),
            port: 9092,
        };
        BrokerConfig {
            listeners: vec![listener.clone()],
            advertised_listeners: vec![listener],
            controller_listener_names: Vec::new(),
            inter_broker_listener_name: None,
            listener_security_protocols: crate::security::default_protocol_map(),
            log_dirs: vec![PathBuf::from("/tmp/kraft-combined-logs")],
            node_id: 1,
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: DEFAULT_LOG_HOURS * MS_PER_HOUR,
            log_index_interval_bytes: 4096,
            log_index_size_max_bytes: 10 << 20,
            log_retention_ms: DEFAULT_LOG_HOURS * MS_PER_HOUR,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            log_flush_interval_messages: i64::MAX,
            log_flush_interval_ms: None,
            log_flush_scheduler_interval_ms: i64::MAX,
            log_flush_on_ack: false,
            socket_request_max_bytes: 100 << 20,
            message_max_bytes: 1_048_588,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle_ms: 600_000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3000,
            offsets_retention_minutes: 10_080,
            offsets_topic_num_partitions: 50,
            fetch_zero_copy: true,
            open_files_cache_size: None,
            metrics_listener: None,
            unknown: Vec::new(),
            raw: BTreeMap::new(),
        }
    }
}

/// `sprat.metrics.listener`: blank is off; otherwise `HOST:PORT` (HOST may be empty, for every
/// interface, or a bracketed IPv6 address).
fn read_metrics_listener(r: &mut Reader<'_>) -> Result<Option<String>, ConfigError> {
    const KEY: &str = "sprat.metrics.listener";
    let Some(value) = r.value(KEY).map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let valid = value
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    if !valid {
        return Err(invalid(KEY, value, "expected HOST:PORT"));
    }
    Ok(Some(value.to_string()))
}

impl BrokerConfig {
    /// Reads the properties file at `path` (none means all defaults), then applies `overrides`, each
    /// `key=value` like Kafka's `--override`; overrides are taken literally, without unescaping.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<BrokerConfig, ConfigError> {
        let mut props = match path {
            Some(path) => read_properties_file(path)?,
            None => Vec::new(),
        };
        for arg in overrides {
            props.push(parse_override(arg)?);
        }
        BrokerConfig::from_properties(&props)
    }

    /// Builds the configuration from (key, value) pairs; when a key repeats, the last value wins.
    pub fn from_properties(props: &[(String, String)]) -> Result<BrokerConfig, ConfigError> {
        let raw: BTreeMap<String, String> = props.iter().cloned().collect();
        let d = BrokerConfig::default();
        let mut r = Reader {
            raw: &raw,
            used: BTreeSet::new(),
        };
        let listeners = read_listeners(&mut r, &d)?;
        let mut config = BrokerConfig {
            listeners: listeners.listeners,
            advertised_listeners: listeners.advertised_listeners,
            controller_listener_names: listeners.controller_listener_names,
            inter_broker_listener_name: listeners.inter_broker_listener_name,
            listener_security_protocols: listeners.security_protocols,
            log_dirs: read_log_dirs(&mut r, d.log_dirs)?,
            node_id: read_node_id(&mut r, d.node_id)?,
            auto_create_topics_enable: r
                .boolean("auto.create.topics.enable", d.auto_create_topics_enable)?,
            num_partitions: r.integer("num.partitions", d.num_partitions, 1..=INT_MAX)?,
            default_replication_factor: r.integer(
                "default.replication.factor",
                d.default_replication_factor,
                1..=i64::from(i16::MAX),
            )?,
            log_segment_bytes: r.integer(
                "log.segment.bytes",
                d.log_segment_bytes,
                MIN_LOG_SEGMENT_BYTES..=INT_MAX,
            )?,
            log_roll_ms: read_log_roll_ms(&mut r)?,
            log_index_interval_bytes: r.integer(
                "log.index.interval.bytes",
                d.log_index_interval_bytes,
                0..=INT_MAX,
            )?,
            log_index_size_max_bytes: r.integer(
                "log.index.size.max.bytes",
                d.log_index_size_max_bytes,
                4..=INT_MAX,
            )?,
            log_retention_ms: read_log_retention_ms(&mut r)?,
            log_retention_bytes: r
                .integer(
                    "log.retention.bytes",
                    d.log_retention_bytes,
                    i64::MIN..=i64::MAX,
                )?
                .max(-1),
            log_retention_check_interval_ms: r.integer(
                "log.retention.check.interval.ms",
                d.log_retention_check_interval_ms,
                1..=i64::MAX,
            )?,
            log_flush_interval_messages: r.integer(
                "log.flush.interval.messages",
                d.log_flush_interval_messages,
                1..=i64::MAX,
            )?,
            log_flush_interval_ms: r.optional_integer("log.flush.interval.ms", 0..=i64::MAX)?,
            log_flush_scheduler_interval_ms: r.integer(
                "log.flush.scheduler.interval.ms",
                d.log_flush_scheduler_interval_ms,
                1..=i64::MAX,
            )?,
            log_flush_on_ack: r.boolean("sprat.log.flush.on.ack", d.log_flush_on_ack)?,
            socket_request_max_bytes: r.integer(
                "socket.request.max.bytes",
                d.socket_request_max_bytes,
                1..=INT_MAX,
            )?,
            message_max_bytes: r.integer("message.max.bytes", d.message_max_bytes, 0..=INT_MAX)?,
            max_connections: r.integer("max.connections", d.max_connections, 0..=INT_MAX)?,
            max_connections_per_ip: r.integer(
                "max.connections.per.ip",
                d.max_connections_per_ip,
                0..=INT_MAX,
            )?,
            connections_max_idle_ms: r.integer(
                "connections.max.idle.ms",
                d.connections_max_idle_ms,
                0..=i64::MAX,
            )?,
            group_min_session_timeout_ms: r.integer(
                "group.min.session.timeout.ms",
                d.group_min_session_timeout_ms,
                0..=INT_MAX,
            )?,
            group_max_session_timeout_ms: r.integer(
                "group.max.session.timeout.ms",
                d.group_max_session_timeout_ms,
                0..=INT_MAX,
            )?,
            group_initial_rebalance_delay_ms: r.integer(
                "group.initial.rebalance.delay.ms",
                d.group_initial_rebalance_delay_ms,
                0..=INT_MAX,
            )?,
            offsets_retention_minutes: r.integer(
                "offsets.retention.minutes",
                d.offsets_retention_minutes,
                1..=INT_MAX,
            )?,
            offsets_topic_num_partitions: r.integer(
                "offsets.topic.num.partitions",
                d.offsets_topic_num_partitions,
                1..=INT_MAX,
            )?,
            fetch_zero_copy: r.boolean("sprat.fetch.zero.copy", d.fetch_zero_copy)?,
            open_files_cache_size: r
                .optional_integer("sprat.open.files.cache.size", 1..=INT_MAX)?,
            metrics_listener: read_metrics_listener(&mut r)?,
            unknown: Vec::new(),
            raw: BTreeMap::new(),
        };
        config.unknown = r.unused();
        config.raw = raw;
        Ok(config)
    }

    /// The value last given for `key`, for keys not modelled as fields.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw.get(key).map(String::as_str)
    }

    /// This configuration with `dynamic` keys (set at run time with AlterConfigs) on top.
    pub fn with_dynamic(
        &self,
        dynamic: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        if dynamic.is_empty() {
            return Ok(self.clone());
        }
        let props: Vec<(String, String)> = self
            .raw
            .iter()
            .chain(dynamic)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        BrokerConfig::from_properties(&props)
    }

    /// The listener sprat binds: the one named by `inter.broker.listener.name`, else the first that
    /// is not a controller listener.
    ///
    /// # Panics
    ///
    /// Panics if `listeners` was emptied after construction.
    pub fn broker_listener(&self) -> &Listener {
        select_broker_listener(
            &self.listeners,
            &self.controller_listener_names,
            self.inter_broker_listener_name.as_deref(),
        )
        .or(self.listeners.first())
        .expect("a BrokerConfig has at least one listener")
    }

    /// The `host:port` to bind for [`BrokerConfig::broker_listener`]: `0.0.0.0` when the host is
    /// empty, `[v6]:port` for an IPv6 address.
    pub fn bind_address(&self) -> String {
        let listener = self.broker_listener();
        let host = if listener.host.is_empty() {
            "0.0.0.0"
        } else {
            &listener.host
        };
        host_port(host, listener.port)
    }

    /// Every listener sprat binds (all but the controller listeners), the
    /// [`BrokerConfig::broker_listener`] first.
    pub fn bound_listeners(&self) -> Vec<&Listener> {
        let first = self.broker_listener();
        let others = self
            .listeners
            .iter()
            .filter(|l| l.name != first.name && !self.controller_listener_names.contains(&l.name));
        std::iter::once(first).chain(others).collect()
    }

    /// The `host:port` to bind for `listener`: `0.0.0.0` when the host is empty, `[v6]:port` for
    /// an IPv6 address.
    pub fn bind_address_of(listener: &Listener) -> String {
        let host = if listener.host.is_empty() {
            "0.0.0.0"
        } else {
            &listener.host
        };
        host_port(host, listener.port)
    }

    /// The security protocol of the listener named `name` (PLAINTEXT if it has none, which
    /// validation rules out for configured listeners).
    pub fn security_protocol(&self, name: &str) -> SecurityProtocol {
        self.listener_security_protocols
            .get(name)
            .copied()
            .unwrap_or(SecurityProtocol::Plaintext)
    }

    /// The host and port clients of the listener named `name` are told to connect to: its
    /// advertised listener, else the listener itself; `None` if there is no such listener. An
    /// empty or wildcard host becomes `localhost`.
    pub fn advertised_host_port_of(&self, name: &str) -> Option<(String, u16)> {
        let advertised = self
            .advertised_listeners
            .iter()
            .chain(&self.listeners)
            .find(|l| l.name == name)?;
        let host = if advertised.host.is_empty() || is_unspecified_address(&advertised.host) {
            "localhost"
        } else {
            &advertised.host
        };
        Some((host.to_string(), advertised.port))
    }

    /// The host and port clients are told to connect to: the advertised listener with the bound
    /// listener's name, else the bound listener itself. An empty or wildcard host becomes
    /// `localhost`, because a client cannot connect to "all interfaces".
    pub fn advertised_host_port(&self) -> (String, u16) {
        let bound = self.broker_listener();
        let advertised = self
            .advertised_listeners
            .iter()
            .find(|l| l.name == bound.name)
            .unwrap_or(bound);
        let host = if advertised.host.is_empty() || is_unspecified_address(&advertised.host) {
            "localhost"
        } else {
            &advertised.host
        };
        (host.to_string(), advertised.port)
    }

    /// The first log directory, where sprat keeps its partitions.
    ///
    /// # Panics
    ///
    /// Panics if `log_dirs` was emptied after construction.
    pub fn log_dir(&self) -> &Path {
        self.log_dirs
            .first()
            .expect("a BrokerConfig has at least one log directory")
    }
}

/// Reads and parses a properties file. Java reads these files as ISO-8859-1; sprat reads UTF-8, the
/// encoding of nearly every file written today, and falls back to ISO-8859-1 when the bytes are not
/// valid UTF-8.
fn read_properties_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let bytes = fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_properties(&decode_text(bytes)).map_err(|error| match error {
        ConfigError::Syntax { line, reason, .. } => ConfigError::Syntax {
            path: Some(path.to_path_buf()),
            line,
            reason,
        },
        other => other,
    })
}

fn decode_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| error.into_bytes().into_iter().map(char::from).collect())
}

/// Splits a command-line override at its first `=`; the value may be empty or contain `=`.
fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(ConfigError::InvalidOverride {
            arg: arg.to_string(),
        }),
    }
}

/// Reads typed values from the raw map the way Kafka's `ConfigDef` does (values trimmed, errors
/// naming the key), and remembers which keys sprat knows so the rest can be reported.
struct Reader<'a> {
    raw: &'a BTreeMap<String, String>,
    used: BTreeSet<&'static str>,
}

impl<'a> Reader<'a> {
    fn value(&mut self, key: &'static str) -> Option<&'a str> {
        self.used.insert(key);
        self.raw.get(key).map(String::as_str)
    }

    fn integer<T: TryFrom<i64>>(
        &mut self,
        key: &'static str,
        default: T,
        range: RangeInclusive<i64>,
    ) -> Result<T, ConfigError> {
        Ok(self.optional_integer(key, range)?.unwrap_or(default))
    }

    /// Parses an integer key and checks it against `range`, which must fit in `T`.
    fn optional_integer<T: TryFrom<i64>>(
        &mut self,
        key: &'static str,
        range: RangeInclusive<i64>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.value(key) else {
            return Ok(None);
        };
        let number: i64 = value
            .trim()
            .parse()
            .map_err(|error| invalid(key, value, format!("not an integer ({error})")))?;
        let out_of_range = || invalid(key, value, range_reason(&range));
        if !range.contains(&number) {
            return Err(out_of_range());
        }
        T::try_from(number).map(Some).map_err(|_| out_of_range())
    }

    fn boolean(&mut self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.value(key) else {
            return Ok(default);
        };
        match value.trim() {
            v if v.eq_ignore_ascii_case("true") => Ok(true),
            v if v.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(invalid(key, value, "expected true or false")),
        }
    }

    /// Reads a comma-separated list key, returning its raw value and its non-empty trimmed items.
    fn list(&mut self, key: &'static str) -> Option<(&'a str, Vec<&'a str>)> {
        let value = self.value(key)?;
        let items = value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty());
        Some((value, items.collect()))
    }

    /// Reads a list of listeners, which may be empty; names must be distinct.
    fn listeners(
        &mut self,
        key: &'static str,
    ) -> Result<Option<(&'a str, Vec<Listener>)>, ConfigError> {
        let Some((value, items)) = self.list(key) else {
            return Ok(None);
        };
        let mut listeners: Vec<Listener> = Vec::with_capacity(items.len());
        for item in items {
            let listener = parse_listener(item)
                .map_err(|reason| invalid(key, value, format!("{item:?}: {reason}")))?;
            if listeners.iter().any(|l| l.name == listener.name) {
                return Err(invalid(
                    key,
                    value,
                    format!("listener name {} appears twice", listener.name),
                ));
            }
            listeners.push(listener);
        }
        Ok(Some((value, listeners)))
    }

    /// The keys present in the file that sprat never asked for, sorted by key.
    fn unused(&self) -> Vec<(String, String)> {
        self.raw
            .iter()
            .filter(|(key, _)| !self.used.contains(key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

fn range_reason(range: &RangeInclusive<i64>) -> String {
    match (*range.start(), *range.end()) {
        (i64::MIN, i64::MAX) => "out of range".to_string(),
        (start, i64::MAX) => format!("must be at least {start}"),
        (start, end) => format!("must be between {start} and {end}"),
    }
}

struct ListenerSettings {
    listeners: Vec<Listener>,
    advertised_listeners: Vec<Listener>,
    controller_listener_names: Vec<String>,
    inter_broker_listener_name: Option<String>,
    security_protocols: BTreeMap<String, SecurityProtocol>,
}

/// Reads the four listener keys and checks that they leave sprat a broker listener to bind and
/// advertise, as Kafka's own validation does.
fn read_listeners(
    r: &mut Reader<'_>,
    defaults: &BrokerConfig,
) -> Result<ListenerSettings, ConfigError> {
    let controller_listener_names: Vec<String> = r
        .list("controller.listener.names")
        .map(|(_, names)| names.iter().map(|name| name.to_ascii_uppercase()).collect())
        .unwrap_or_default();
    let inter_broker_listener_name = r
        .value("inter.broker.listener.name")
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_ascii_uppercase);
    let (value, listeners) = r
        .listeners("listeners")?
        .unwrap_or(("", defaults.listeners.clone()));
    if listeners.is_empty() {
        return Err(invalid(
            "listeners",
            value,
            "at least one listener is required",
        ));
    }
    if select_broker_listener(
        &listeners,
        &controller_listener_names,
        inter_broker_listener_name.as_deref(),
    )
    .is_none()
    {
        return Err(match &inter_broker_listener_name {
            Some(name) => invalid(
                "inter.broker.listener.name",
                name,
                "no listener has this name",
            ),
            None => invalid(
                "listeners",
                value,
                "every listener is a controller listener",
            ),
        });
    }
    let advertised_listeners = match r.listeners("advertised.listeners")? {
        Some((value, advertised)) if !advertised.is_empty() => {
            check_advertised_listeners(value, &advertised, &listeners)?;
            advertised
        }
        _ => listeners
            .iter()
            .filter(|l| !controller_listener_names.contains(&l.name))
            .cloned()
            .collect(),
    };
    let security_protocols = read_security_protocols(r, &listeners)?;
    Ok(ListenerSettings {
        listeners,
        advertised_listeners,
        controller_listener_names,
        inter_broker_listener_name,
        security_protocols,
    })
}

/// Reads `listener.security.protocol.map` and checks that every listener has a protocol, as
/// Kafka does.
fn read_security_protocols(
    r: &mut Reader<'_>,
    listeners: &[Listener],
) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    let (value, map) = match r.value(KEY).filter(|v| !v.trim().is_empty()) {
        Some(value) => (
            value,
            crate::security::parse_protocol_map(value)
                .map_err(|reason| invalid(KEY, value, reason))?,
        ),
        None => ("", crate::security::default_protocol_map()),
    };
    for listener in listeners {
        if !map.contains_key(&listener.name) {
            let reason = format!(
                "no security protocol is defined for listener {}",
                listener.name
            );
            return Err(invalid(KEY, value, reason));
        };
    }
    Ok(map)
}

/// Kafka requires every advertised listener to name a real listener and to be routable.
fn check_advertised_listeners(
    value: &str,
    advertised: &[Listener],
    listeners: &[Listener],
) -> Result<(), ConfigError> {
    for listener in advertised {
        if !listeners.iter().any(|l| l.name == listener.name) {
            let reason = format!(
                "{} is not the name of a listener in listeners",
                listener.name
            );
            return Err(invalid("advertised.listeners", value, reason));
        }
        if is_unspecified_address(&listener.host) {
            let reason =
                format!("{listener} is not routable; advertise an address clients can reach");
            return Err(invalid("advertised.listeners", value, reason));
        }
    }
    Ok(())
}

/// `log.dirs` wins over `log.dir`; whichever is used must name at least one directory.
fn read_log_dirs(r: &mut Reader<'_>, default: Vec<PathBuf>) -> Result<Vec<PathBuf>, ConfigError> {
    let log_dirs = r.list("log.dirs").map(|list| ("log.dirs", list));
    let log_dir = r.list("log.dir").map(|list| ("log.dir", list));
    let Some((key, (value, dirs))) = log_dirs.or(log_dir) else {
        return Ok(default);
    };
    if dirs.is_empty() {
        return Err(invalid(
            key,
            value,
            "at least one log directory is required",
        ));
    }
    Ok(dirs.into_iter().map(PathBuf::from).collect())
}

/// `node.id` is the KRaft name of the older `broker.id`; either may be given, both must agree.
fn read_node_id(r: &mut Reader<'_>, default: i32) -> Result<i32, ConfigError> {
    let node_id: Option<i32> = r.optional_integer("node.id", 0..=INT_MAX)?;
    let broker_id: Option<i32> = r.optional_integer("broker.id", 0..=INT_MAX)?;
    match (node_id, broker_id) {
        (Some(node_id), Some(broker_id)) if node_id != broker_id => Err(invalid(
            "broker.id",
            &broker_id.to_string(),
            format!("must equal node.id ({node_id})"),
        )),
        _ => Ok(node_id.or(broker_id).unwrap_or(default)),
    }
}

/// `log.roll.ms` wins over `log.roll.hours`. Both keys are read so both are validated and known.
fn read_log_roll_ms(r: &mut Reader<'_>) -> Result<i64, ConfigError> {
    let ms: Option<i64> = r.optional_integer("log.roll.ms", 1..=i64::MAX)?;
    let hours: i64 = r.integer("log.roll.hours", DEFAULT_LOG_HOURS, 1..=INT_MAX)?;
    // An `int` number of hours in milliseconds stays far below i64::MAX.
    Ok(ms.unwrap_or(hours * MS_PER_HOUR))
}

/// `log.retention.ms` wins over `log.retention.minutes`, which wins over `log.retention.hours`.
/// Like Kafka, any negative result means unlimited and is stored as -1.
fn read_log_retention_ms(r: &mut Reader<'_>) -> Result<i64, ConfigError> {
    let ms: Option<i64> = r.optional_integer("log.retention.ms", i64::MIN..=i64::MAX)?;
    let minutes: Option<i64> = r.optional_integer("log.retention.minutes", INT_MIN..=INT_MAX)?;
    let hours: i64 = r.integer("log.retention.hours", DEFAULT_LOG_HOURS, INT_MIN..=INT_MAX)?;
    // Minutes and hours are `int`s, so their products cannot overflow an i64.
    let retention_ms = ms
        .or(minutes.map(|m| m * MS_PER_MINUTE))
        .unwrap_or(hours * MS_PER_HOUR);
    Ok(retention_ms.max(-1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config(text: &str) -> BrokerConfig {
        let props = parse_properties(text).expect("valid properties");
        BrokerConfig::from_properties(&props).expect("valid config")
    }

    fn config_error(text: &str) -> ConfigError {
        let props = parse_properties(text).expect("valid properties");
        BrokerConfig::from_properties(&props).expect_err("invalid config")
    }

    fn listener(name: &str, host: &str, port: u16) -> Listener {
        Listener {
            name: name.to_string(),
            host: host.to_string(),
            port,
        }
    }

    /// A file in the temp directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> TempFile {
            let path =
                std::env::temp_dir().join(format!("sprat-config-{}-{name}", std::process::id()));
            fs::write(&path, contents).expect("write temp file");
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    /// A named properties text and the pairs it must parse to.
    type SyntaxCase = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );

    #[test]
    fn properties_syntax() {
        let cases: &[SyntaxCase] = &[
            ("empty text", "", &[]),
            ("blank lines", "\n  \n\t\n\x0c\n", &[]),
            ("hash comment", "# a=b\n", &[]),
            ("bang comment", "! a=b\n", &[]),
            ("indented comment", "   # a=b", &[]),
            ("comment is not continued", "# a \\\nb=c", &[("b", "c")]),
            ("equals", "a=b", &[("a", "b")]),
            ("colon", "a:b", &[("a", "b")]),
            ("space separator", "a b", &[("a", "b")]),
            ("tab separator", "a\tb", &[("a", "b")]),
            ("blanks around equals", "a  =  b", &[("a", "b")]),
            ("blanks then colon", "a \t: b", &[("a", "b")]),
            ("form feed blanks", "\x0ca\x0c=\x0cb", &[("a", "b")]),
            ("first separator wins", "a=b=c", &[("a", "b=c")]),
            ("colon after equals is value", "a=:b", &[("a", ":b")]),
            (
                "second equals after blanks is value",
                "a = = b",
                &[("a", "= b")],
            ),
            ("leading blanks dropped", "   a=b", &[("a", "b")]),
            ("trailing blanks kept", "a=b  \t", &[("a", "b  \t")]),
            ("inner blanks kept", "a=b c  d", &[("a", "b c  d")]),
            ("key only", "a", &[("a", "")]),
            ("key and separator only", "a = ", &[("a", "")]),
            ("empty key", "=b", &[("", "b")]),
            (
                "escaped separators in key",
                "a\\=b\\:c\\ d=e",
                &[("a=b:c d", "e")],
            ),
            (
                "control escapes",
                "a=\\t\\n\\r\\f\\\\",
                &[("a", "\t\n\r\x0c\\")],
            ),
            ("escaped comment characters", "\\#a=\\!b", &[("#a", "!b")]),
            (
                "unknown escapes are the character",
                "a=\\q\\z\\=",
                &[("a", "qz=")],
            ),
            ("escaped leading blank in value", "a=\\  b", &[("a", "  b")]),
            (
                "unicode escapes",
                "a=\\u0041\\u00e9\\u4E2D",
                &[("a", "Aé中")],
            ),
            ("unicode escape in key", "\\u0061=b", &[("a", "b")]),
            ("surrogate pair", "a=\\uD83D\\uDE00", &[("a", "😀")]),
            (
                "windows path",
                "log.dirs=C:\\\\kafka\\\\logs",
                &[("log.dirs", "C:\\kafka\\logs")],
            ),
            ("continuation", "a=b\\\n   c", &[("a", "bc")]),
            (
                "continuation keeps blanks before backslash",
                "a=b \\\n  c",
                &[("a", "b c")],
            ),
            (
                "several continuations",
                "a=1,\\\n  2,\\\n  3",
                &[("a", "1,2,3")],
            ),
            (
                "even backslashes do not continue",
                "a=b\\\\\nc=d",
                &[("a", "b\\"), ("c", "d")],
            ),
            (
                "three backslashes continue",
                "a=b\\\\\\\nc",
                &[("a", "b\\c")],
            ),
            (
                "continuation is not a comment",
                "a=b\\\n#c",
                &[("a", "b#c")],
            ),
            (
                "blank line ends continuation",
                "a=b\\\n\nc=d",
                &[("a", "b"), ("c", "d")],
            ),
            (
                "blanks-only line ends continuation",
                "a=b\\\n  \nc=d",
                &[("a", "b"), ("c", "d")],
            ),
            ("continuation at end of text", "a=b\\", &[("a", "b")]),
            ("continuation inside key", "ke\\\n  y=v", &[("key", "v")]),
            ("continuation before separator", "a\\\n =b", &[("a", "b")]),
            (
                "empty continued line yields nothing",
                "\\\n\n# c\nd=e",
                &[("d", "e")],
            ),
            ("CRLF lines", "a=b\r\nc=d\r\n", &[("a", "b"), ("c", "d")]),
            ("CR lines", "a=b\rc=d", &[("a", "b"), ("c", "d")]),
            ("CRLF continuation", "a=b\\\r\n c", &[("a", "bc")]),
            (
                "duplicates kept in order",
                "a=1\nb=2\na=3",
                &[("a", "1"), ("b", "2"), ("a", "3")],
            ),
            ("non-ASCII text", "clé=välue", &[("clé", "välue")]),
        ];
        for (name, text, expected) in cases {
            let parsed = parse_properties(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed, pairs(expected), "{name}");
        }
    }

    #[test]
    fn properties_syntax_errors_name_the_line() {
        let cases: &[(&str, &str, usize)] = &[
            ("bad hex digit", "a=\\u00G1", 1),
            ("short escape at end", "x=1\ny=\\u12", 2),
            ("short escape in key", "\\u12=b", 1),
            ("lone high surrogate", "a=\\uD83Dx", 1),
            ("high surrogate then non-low", "a=\\uD83D\\u0041", 1),
            ("lone low surrogate", "a=\\uDE00", 1),
            ("error after continued line", "a=1\\\n2\n\nb=\\uZZZZ", 4),
            ("continued line reports its start", "# c\na=\\\n \\u00", 2),
        ];
        for (name, text, expected_line) in cases {
            match parse_properties(text) {
                Err(ConfigError::Syntax {
                    path: None, line, ..
                }) => assert_eq!(line, *expected_line, "{name}"),
                other => panic!("{name}: expected a syntax error, got {other:?}"),
            }
        }
    }

    #[test]
    fn defaults() {
        let d = BrokerConfig::default();
        assert_eq!(d.listeners, vec![listener("PLAINTEXT", "", 9092)]);
        assert_eq!(d.advertised_listeners, d.listeners);
        assert!(d.controller_listener_names.is_empty());
        assert_eq!(d.inter_broker_listener_name, None);
        assert_eq!(d.bind_address(), "0.0.0.0:9092");
        assert_eq!(d.advertised_host_port(), ("localhost".to_string(), 9092));
        assert_eq!(d.log_dir(), Path::new("/tmp/kraft-combined-logs"));
        assert_eq!(d.node_id, 1);
        assert!(d.auto_create_topics_enable);
        assert_eq!(d.num_partitions, 1);
        assert_eq!(d.default_replication_factor, 1);
        assert_eq!(d.log_segment_bytes, 1_073_741_824);
        assert_eq!(d.log_roll_ms, 168 * 3_600_000);
        assert_eq!(d.log_index_interval_bytes, 4096);
        assert_eq!(d.log_index_size_max_bytes, 10_485_760);
        assert_eq!(d.log_retention_ms, 604_800_000);
        assert_eq!(d.log_retention_bytes, -1);
        assert_eq!(d.log_retention_check_interval_ms, 300_000);
        assert_eq!(d.log_flush_interval_messages, i64::MAX);
        assert_eq!(d.log_flush_interval_ms, None);
        assert_eq!(d.log_flush_scheduler_interval_ms, i64::MAX);
        assert!(!d.log_flush_on_ack);
        assert_eq!(d.socket_request_max_bytes, 104_857_600);
        assert_eq!(d.message_max_bytes, 1_048_588);
        assert_eq!(d.max_connections, 2_147_483_647);
        assert_eq!(d.max_connections_per_ip, 2_147_483_647);
        assert_eq!(d.connections_max_idle_ms, 600_000);
        assert_eq!(d.group_min_session_timeout_ms, 6000);
        assert_eq!(d.group_max_session_timeout_ms, 1_800_000);
        assert_eq!(d.group_initial_rebalance_delay_ms, 3000);
        assert_eq!(d.offsets_retention_minutes, 10_080);
        assert_eq!(d.offsets_topic_num_partitions, 50);
        assert!(d.unknown.is_empty());
        assert!(d.raw.is_empty());
    }

    #[test]
    fn no_properties_give_the_defaults() {
        assert_eq!(
            BrokerConfig::from_properties(&[]).unwrap(),
            BrokerConfig::default()
        );
        assert_eq!(
            BrokerConfig::load(None, &[]).unwrap(),
            BrokerConfig::default()
        );
    }

    #[test]
    fn every_key() {
        let c = config(
            "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n\
             controller.listener.names=controller\n\
             advertised.listeners=PLAINTEXT://broker.example:29092\n\
             log.dirs=/data/a, /data/b\n\
             node.id=7\n\
             auto.create.topics.enable=FALSE\n\
             num.partitions=3\n\
             default.replication.factor=2\n\
             log.segment.bytes=1048576\n\
             log.roll.ms=60000\n\
             log.index.interval.bytes=512\n\
             log.index.size.max.bytes=65536\n\
             log.retention.ms=120000\n\
             log.retention.bytes=1000000\n\
             log.retention.check.interval.ms=1000\n\
             log.flush.interval.messages=10\n\
             log.flush.interval.ms=500\n\
             log.flush.scheduler.interval.ms=250\n\
             sprat.log.flush.on.ack=true\n\
             socket.request.max.bytes=2048\n\
             message.max.bytes=1024\n\
             max.connections=100\n\
             max.connections.per.ip=10\n\
             connections.max.idle.ms=30000\n\
             group.min.session.timeout.ms=100\n\
             group.max.session.timeout.ms=200\n\
             group.initial.rebalance.delay.ms=0\n\
             offsets.retention.minutes=60\n\
             offsets.topic.num.partitions=5\n",
        );
        assert_eq!(
            c.listeners,
            vec![
                listener("PLAINTEXT", "127.0.0.1", 19092),
                listener("CONTROLLER", "127.0.0.1", 19093)
            ]
        );
        assert_eq!(c.controller_listener_names, vec!["CONTROLLER".to_string()]);
        assert_eq!(
            c.advertised_listeners,
            vec![listener("PLAINTEXT", "broker.example", 29092)]
        );
        assert_eq!(c.bind_address(), "127.0.0.1:19092");
        assert_eq!(
            c.advertised_host_port(),
            ("broker.example".to_string(), 29092)
        );
        assert_eq!(
            c.log_dirs,
            vec![PathBuf::from("/data/a"), PathBuf::from("/data/b")]
        );
        assert_eq!(c.log_dir(), Path::new("/data/a"));
        assert_eq!(c.node_id, 7);
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.default_replication_factor, 2);
        assert_eq!(c.log_segment_bytes, 1_048_576);
        assert_eq!(c.log_roll_ms, 60_000);
        assert_eq!(c.log_index_interval_bytes, 512);
        assert_eq!(c.log_index_size_max_bytes, 65_536);
        assert_eq!(c.log_retention_ms, 120_000);
        assert_eq!(c.log_retention_bytes, 1_000_000);
        assert_eq!(c.log_retention_check_interval_ms, 1000);
        assert_eq!(c.log_flush_interval_messages, 10);
        assert_eq!(c.log_flush_interval_ms, Some(500));
        assert_eq!(c.log_flush_scheduler_interval_ms, 250);
        assert!(c.log_flush_on_ack);
        assert_eq!(c.socket_request_max_bytes, 2048);
        assert_eq!(c.message_max_bytes, 1024);
        assert_eq!(c.max_connections, 100);
        assert_eq!(c.max_connections_per_ip, 10);
        assert_eq!(c.connections_max_idle_ms, 30_000);
        assert_eq!(c.group_min_session_timeout_ms, 100);
        assert_eq!(c.group_max_session_timeout_ms, 200);
        assert_eq!(c.group_initial_rebalance_delay_ms, 0);
        assert_eq!(c.offsets_retention_minutes, 60);
        assert_eq!(c.offsets_topic_num_partitions, 5);
        assert!(c.unknown.is_empty(), "{:?}", c.unknown);
        assert_eq!(c.get("num.partitions"), Some("3"));
    }

    #[test]
    fn values_are_trimmed_like_kafka() {
        let c = config(
            "num.partitions = 4  \nauto.create.topics.enable=  false \nlog.retention.bytes=+5",
        );
        assert_eq!(c.num_partitions, 4);
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.log_retention_bytes, 5);
    }

    #[test]
    fn retention_precedence() {
        let cases: &[(&str, &str, i64)] = &[
            ("default is 168 hours", "", 604_800_000),
            ("hours", "log.retention.hours=2", 7_200_000),
            (
                "minutes over hours",
                "log.retention.hours=2\nlog.retention.minutes=3",
                180_000,
            ),
            (
                "ms over minutes and hours",
                "log.retention.minutes=3\nlog.retention.ms=42\nlog.retention.hours=2",
                42,
            ),
            ("-1 is unlimited", "log.retention.ms=-1", -1),
            ("any negative is unlimited", "log.retention.minutes=-5", -1),
            ("negative hours are unlimited", "log.retention.hours=-1", -1),
            ("zero is kept", "log.retention.ms=0", 0),
        ];
        for (name, text, expected) in cases {
            assert_eq!(config(text).log_retention_ms, *expected, "{name}");
        }
        assert_eq!(config("log.retention.bytes=-7").log_retention_bytes, -1);
    }

    #[test]
    fn roll_precedence() {
        assert_eq!(config("log.roll.hours=1").log_roll_ms, 3_600_000);
        assert_eq!(config("log.roll.hours=1\nlog.roll.ms=10").log_roll_ms, 10);
    }

    #[test]
    fn log_dirs_precedence() {
        assert_eq!(config("log.dir=/one").log_dirs, vec![PathBuf::from("/one")]);
        assert_eq!(
            config("log.dir=/one\nlog.dirs=/two,/three,").log_dirs,
            vec![PathBuf::from("/two"), PathBuf::from("/three")]
        );
        assert_eq!(
            config("log.dirs=/two\nlog.dir=/one").log_dir(),
            Path::new("/two")
        );
    }

    #[test]
    fn node_id_and_broker_id() {
        assert_eq!(config("node.id=4").node_id, 4);
        assert_eq!(config("broker.id=5").node_id, 5);
        assert_eq!(config("broker.id=6\nnode.id=6").node_id, 6);
    }

    #[test]
    fn later_values_win() {
        let props = pairs(&[("num.partitions", "2"), ("num.partitions", "5")]);
        let c = BrokerConfig::from_properties(&props).unwrap();
        assert_eq!(c.num_partitions, 5);
        assert_eq!(c.get("num.partitions"), Some("5"));
        assert_eq!(config("a=1\na=2").get("a"), Some("2"));
    }

    #[test]
    fn unknown_keys_are_kept_and_sorted() {
        let c = config("process.roles=broker,controller\nnum.io.threads=8\nnum.partitions=3");
        assert_eq!(
            c.unknown,
            pairs(&[
                ("num.io.threads", "8"),
                ("process.roles", "broker,controller")
            ])
        );
        assert_eq!(c.get("process.roles"), Some("broker,controller"));
        assert_eq!(c.get("missing"), None);
    }

    #[test]
    fn listener_parsing() {
        let cases = [
            (
                "PLAINTEXT://127.0.0.1:9092",
                listener("PLAINTEXT", "127.0.0.1", 9092),
            ),
            ("PLAINTEXT://[::1]:9092", listener("PLAINTEXT", "::1", 9092)),
            ("PLAINTEXT://::1:9092", listener("PLAINTEXT", "::1", 9092)),
            ("PLAINTEXT://[]:9092", listener("PLAINTEXT", "", 9092)),
            ("PLAINTEXT://:9092", listener("PLAINTEXT", "", 9092)),
            (
                "plaintext://broker-1.example.com:0",
                listener("PLAINTEXT", "broker-1.example.com", 0),
            ),
            (
                "SASL_SSL://host_1:65535",
                listener("SASL_SSL", "host_1", 65535),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                config(&format!("listeners={text}")).listeners,
                vec![expected],
                "{text}"
            );
        }
        let c = config("listeners = PLAINTEXT://:9092 , CONTROLLER://[fe80::1%eth0]:9093 ,");
        assert_eq!(
            c.listeners,
            vec![
                listener("PLAINTEXT", "", 9092),
                listener("CONTROLLER", "fe80::1%eth0", 9093)
            ]
        );
    }

    #[test]
    fn listener_security_protocol_map() {
        let c = config(
            "listeners=PLAINTEXT://:9092,INTERNAL://:9094,SECURE://:9095\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,internal:PLAINTEXT,SECURE:sasl_ssl",
        );
        assert_eq!(c.security_protocol("INTERNAL"), SecurityProtocol::Plaintext);
        assert_eq!(c.security_protocol("SECURE"), SecurityProtocol::SaslSsl);
        let names: Vec<&str> = c
            .bound_listeners()
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["PLAINTEXT", "INTERNAL", "SECURE"]);
        let d = config("listeners=SSL://:9093,PLAINTEXT://:9092");
        assert_eq!(d.security_protocol("SSL"), SecurityProtocol::Ssl);
        for bad in [
            "listeners=INTERNAL://:9094",
            "listeners=PLAINTEXT://:9092\nlistener.security.protocol.map=PLAINTEXT:TLS",
            "listeners=PLAINTEXT://:9092\nlistener.security.protocol.map=SSL:SSL",
        ] {
            match config_error(bad) {
                ConfigError::InvalidValue { key, .. } => {
                    assert_eq!(key, "listener.security.protocol.map", "{bad}")
                }
                other => panic!("{bad}: expected an invalid value, got {other:?}"),
            }
        }
    }

    #[test]
    fn bound_listeners_skip_controller_listeners_and_start_with_the_broker_listener() {
        let c = config(
            "listeners=CONTROLLER://:9093,A://:1,B://:2\ncontroller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=B\n\
             listener.security.protocol.map=A:PLAINTEXT,B:PLAINTEXT,CONTROLLER:PLAINTEXT",
        );
        let names: Vec<&str> = c
            .bound_listeners()
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["B", "A"]);
        assert_eq!(
            c.advertised_host_port_of("A"),
            Some(("localhost".into(), 1))
        );
        assert_eq!(c.advertised_host_port_of("NONE"), None);
    }

    #[test]
    fn listener_display_round_trips() {
        for text in [
            "PLAINTEXT://:9092",
            "PLAINTEXT://[::1]:9092",
            "SSL://host:9093",
        ] {
            assert_eq!(parse_listener(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn bind_address() {
        let cases: &[(&str, &str)] = &[
            ("", "0.0.0.0:9092"),
            ("listeners=PLAINTEXT://127.0.0.1:9092", "127.0.0.1:9092"),
            ("listeners=PLAINTEXT://[::1]:9092", "[::1]:9092"),
            ("listeners=PLAINTEXT://::1:9092", "[::1]:9092"),
            (
                "listeners=CONTROLLER://:9093,PLAINTEXT://:9092\ncontroller.listener.names=CONTROLLER",
                "0.0.0.0:9092",
            ),
            (
                "listeners=PLAINTEXT://:9092,CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER",
                "0.0.0.0:9092",
            ),
            (
                "listeners=EXTERNAL://:9092,INTERNAL://10.0.0.1:9094\ninter.broker.listener.name=internal\n\
                 listener.security.protocol.map=EXTERNAL:PLAINTEXT,INTERNAL:PLAINTEXT",
                "10.0.0.1:9094",
            ),
            (
                "listeners=A://:1,B://:2\nlistener.security.protocol.map=A:PLAINTEXT,B:SSL",
                "0.0.0.0:1",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(config(text).bind_address(), *expected, "{text}");
        }
    }

    #[test]
    fn advertised_host_port() {
        let cases: &[(&str, &str, u16)] = &[
            ("", "localhost", 9092),
            ("listeners=PLAINTEXT://0.0.0.0:9092", "localhost", 9092),
            ("listeners=PLAINTEXT://[::]:9092", "localhost", 9092),
            ("listeners=PLAINTEXT://10.1.2.3:9092", "10.1.2.3", 9092),
            (
                "advertised.listeners=PLAINTEXT://broker1:19092",
                "broker1",
                19092,
            ),
            ("advertised.listeners=PLAINTEXT://[::1]:9092", "::1", 9092),
            ("advertised.listeners=", "localhost", 9092),
            (
                "listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n\
                 controller.listener.names=CONTROLLER\n\
                 advertised.listeners=CONTROLLER://ctl:9093,PLAINTEXT://broker:9092",
                "broker",
                9092,
            ),
            (
                "listeners=PLAINTEXT://host:9092,OTHER://:9095\nadvertised.listeners=OTHER://other:9095\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT",
                "host",
                9092,
            ),
        ];
        for (text, host, port) in cases {
            assert_eq!(
                config(text).advertised_host_port(),
                (host.to_string(), *port),
                "{text}"
            );
        }
    }

    #[test]
    fn default_advertised_listeners_exclude_controllers() {
        let c = config(
            "listeners=PLAINTEXT://:9092,CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER",
        );
        assert_eq!(
            c.advertised_listeners,
            vec![listener("PLAINTEXT", "", 9092)]
        );
    }

    #[test]
    fn kafka_kraft_sample_file() {
        let c = config(
            "############################# Server Basics #############################\n\
             \n\
             # The role of this server. Setting this puts us in KRaft mode\n\
             process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@localhost:9093\n\
             listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n\
             inter.broker.listener.name=PLAINTEXT\n\
             advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL\n\
             num.network.threads=3\n\
             num.io.threads=8\n\
             socket.request.max.bytes=104857600\n\
             log.dirs=/tmp/kraft-combined-logs\n\
             num.partitions=1\n\
             log.retention.hours=168\n\
             log.segment.bytes=1073741824\n\
             log.retention.check.interval.ms=300000\n",
        );
        assert_eq!(c.bind_address(), "0.0.0.0:9092");
        assert_eq!(c.advertised_host_port(), ("localhost".to_string(), 9092));
        assert_eq!(c.log_retention_ms, 604_800_000);
        let unknown: Vec<&str> = c.unknown.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            unknown,
            vec![
                "controller.quorum.voters",
                "num.io.threads",
                "num.network.threads",
                "process.roles"
            ]
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("num.partitions=abc", "num.partitions"),
            ("num.partitions=", "num.partitions"),
            ("num.partitions=0", "num.partitions"),
            ("num.partitions=2147483648", "num.partitions"),
            ("auto.create.topics.enable=yes", "auto.create.topics.enable"),
            ("sprat.log.flush.on.ack=1", "sprat.log.flush.on.ack"),
            ("log.segment.bytes=3000000000", "log.segment.bytes"),
            ("log.segment.bytes=-1", "log.segment.bytes"),
            ("log.segment.bytes=1.5", "log.segment.bytes"),
            ("log.roll.ms=0", "log.roll.ms"),
            ("log.roll.hours=0", "log.roll.hours"),
            ("log.retention.hours=1.5", "log.retention.hours"),
            ("log.retention.minutes=9999999999", "log.retention.minutes"),
            ("log.index.size.max.bytes=3", "log.index.size.max.bytes"),
            (
                "log.flush.interval.messages=0",
                "log.flush.interval.messages",
            ),
            ("log.flush.interval.ms=-1", "log.flush.interval.ms"),
            ("max.connections=-1", "max.connections"),
            ("socket.request.max.bytes=0", "socket.request.max.bytes"),
            (
                "default.replication.factor=40000",
                "default.replication.factor",
            ),
            ("offsets.retention.minutes=0", "offsets.retention.minutes"),
            ("node.id=-5", "node.id"),
            ("node.id=1\nbroker.id=2", "broker.id"),
            ("log.dirs=,", "log.dirs"),
            ("log.dir= ", "log.dir"),
            ("listeners=", "listeners"),
            ("listeners=PLAINTEXT:/9092", "listeners"),
            ("listeners=PLAINTEXT://host", "listeners"),
            ("listeners=PLAINTEXT://host:99999", "listeners"),
            ("listeners=PLAINTEXT://host:-1", "listeners"),
            ("listeners=PLAINTEXT://[::1:9092", "listeners"),
            ("listeners=PLAINTEXT://[::1]9092", "listeners"),
            ("listeners=://:9092", "listeners"),
            ("listeners=PLAIN TEXT://:9092", "listeners"),
            ("listeners=PLAINTEXT://ho/st:9092", "listeners"),
            ("listeners=PLAINTEXT://:9092,plaintext://:9093", "listeners"),
            (
                "listeners=CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER",
                "listeners",
            ),
            (
                "inter.broker.listener.name=INTERNAL",
                "inter.broker.listener.name",
            ),
            ("advertised.listeners=OTHER://h:1", "advertised.listeners"),
            (
                "advertised.listeners=PLAINTEXT://0.0.0.0:9092",
                "advertised.listeners",
            ),
            ("advertised.listeners=PLAINTEXT://h", "advertised.listeners"),
        ];
        for (text, expected_key) in cases {
            let error = config_error(text);
            match &error {
                ConfigError::InvalidValue { key, .. } => assert_eq!(key, expected_key, "{text}"),
                other => panic!("{text}: expected an invalid value, got {other:?}"),
            }
            assert!(error.to_string().contains(expected_key), "{text}: {error}");
        }
    }

    #[test]
    fn error_messages_give_key_value_and_reason() {
        let error = config_error("num.partitions=0");
        assert_eq!(
            error.to_string(),
            "invalid value \"0\" for num.partitions: must be between 1 and 2147483647"
        );
        let error = config_error("auto.create.topics.enable=yes");
        assert_eq!(
            error.to_string(),
            "invalid value \"yes\" for auto.create.topics.enable: expected true or false"
        );
    }

    #[test]
    fn overrides_apply_after_the_file() {
        let file = TempFile::new(
            "overrides.properties",
            b"num.partitions=2\nlog.dirs=/from/file\n",
        );
        let overrides = [
            "num.partitions=9".to_string(),
            "log.dirs=C:\\data".to_string(),
        ];
        let c = BrokerConfig::load(Some(&file.0), &overrides).unwrap();
        assert_eq!(c.num_partitions, 9);
        // Overrides are command-line arguments and are taken literally, without unescaping.
        assert_eq!(c.log_dirs, vec![PathBuf::from("C:\\data")]);
        let c = BrokerConfig::load(Some(&file.0), &[]).unwrap();
        assert_eq!(c.num_partitions, 2);
    }

    #[test]
    fn overrides_without_a_file() {
        let overrides = [
            "num.partitions=3".to_string(),
            " custom.key =a=b".to_string(),
            "empty.value=".to_string(),
        ];
        let c = BrokerConfig::load(None, &overrides).unwrap();
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.get("custom.key"), Some("a=b"));
        assert_eq!(c.get("empty.value"), Some(""));
    }

    #[test]
    fn invalid_overrides() {
        for arg in ["num.partitions", "=3", " =3", ""] {
            let error = BrokerConfig::load(None, &[arg.to_string()]).expect_err(arg);
            assert!(
                matches!(error, ConfigError::InvalidOverride { .. }),
                "{arg:?}: {error:?}"
            );
        }
        let error = BrokerConfig::load(None, &["num.partitions=x".to_string()]).unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidValue { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let path = Path::new("/nonexistent/sprat/server.properties");
        let error = BrokerConfig::load(Some(path), &[]).unwrap_err();
        assert!(matches!(error, ConfigError::Io { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("/nonexistent/sprat/server.properties"),
            "{error}"
        );
        assert!(error.source().is_some());
    }

    #[test]
    fn syntax_error_in_a_file_names_the_path_and_line() {
        let file = TempFile::new("syntax.properties", b"a=1\nb=\\uXYZW\n");
        let error = BrokerConfig::load(Some(&file.0), &[]).unwrap_err();
        match &error {
            ConfigError::Syntax { path, line, .. } => {
                assert_eq!(path.as_deref(), Some(file.0.as_path()));
                assert_eq!(*line, 2);
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}:2: ", file.0.display())),
            "{error}"
        );
    }

    #[test]
    fn file_text_falls_back_to_latin1() {
        assert_eq!(decode_text(b"a=caf\xc3\xa9".to_vec()), "a=café");
        assert_eq!(decode_text(b"a=caf\xe9".to_vec()), "a=café");
        let file = TempFile::new("latin1.properties", b"greeting=caf\xe9\n");
        let c = BrokerConfig::load(Some(&file.0), &[]).unwrap();
        assert_eq!(c.get("greeting"), Some("café"));
    }
}
