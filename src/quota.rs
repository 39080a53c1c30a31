//! Client quotas (KIP-13, KIP-55, KIP-546): `producer_byte_rate` and `consumer_byte_rate`
//! enforced by throttling, as Kafka's `ClientQuotaManager` does.
//!
//! Quotas are stored as ClientQuotaRecords in `__cluster_metadata` (AlterClientQuotas) and looked
//! up in Kafka's order of precedence for a request's user principal and client id (user and
//! client id, user with the default client id, user, the default user with the client id, ...,
//! the client id, the default client id). Each (user, client id) has its own rate, measured as
//! Kafka does: [`SAMPLES`] windows of [`SAMPLE_WINDOW`], the rate over at least all but one of
//! them. A request that takes the rate over the quota is answered at once with
//! `throttle_time_ms = (rate - quota) / quota * window`, and its connection is then muted for
//! that long (KIP-219: the connection thread reads nothing more); for versions older than
//! KIP-219 (Produce < 6, Fetch < 8) the response itself is delayed instead.

use crate::metadata::{MetadataImage, QuotaEntity};
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";

/// The entity types of client quotas.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// Kafka's `quota.window.num` and `quota.window.size.seconds` defaults.
const SAMPLES: usize = 11;
const SAMPLE_WINDOW: Duration = Duration::from_secs(1);

/// The longest a client is throttled for one request (Kafka bounds it by the quota window).
const MAX_THROTTLE: Duration = Duration::from_secs(SAMPLES as u64);

/// The `user` quota entity of a principal: its name (`User:alice` is `alice`, a connection
/// without authentication `ANONYMOUS`), as Kafka's quota managers take the session's user.
pub fn quota_user(principal: &str) -> &str {
    principal.strip_prefix("User:").unwrap_or(principal)
}

/// The value type of a quota key, as Kafka's `QuotaConfigs` defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    Long,
    Int,
    Double,
}

/// The keys each entity type accepts.
pub fn quota_key(entity_types: &[&str], key: &str) -> Option<QuotaKind> {
    let client = [
        (PRODUCER_BYTE_RATE, QuotaKind::Long),
        (CONSUMER_BYTE_RATE, QuotaKind::Long),
        ("request_percentage", QuotaKind::Double),
        ("controller_mutation_rate", QuotaKind::Double),
    ];
    let ip = [("connection_creation_rate", QuotaKind::Int)];
    let keys: &[(&str, QuotaKind)] = if entity_types.contains(&IP) {
        &ip
    } else {
        &client
    };
    keys.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// Kafka's checks of one AlterClientQuotas entity: known types, each once, `ip` alone and a
/// valid address. `Err` is INVALID_REQUEST's message.
pub fn validate_entity(entity: &QuotaEntity) -> Result<(), String> {
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    let mut seen = Vec::new();
    for (kind, name) in entity {
        if ![USER, CLIENT_ID, IP].contains(&kind.as_str()) {
            return Err(format!("Unhandled client quota entity type: {kind}"));
        }
        if seen.contains(&kind) {
            return Err(format!("Duplicate {kind} entity type"));
        }
        seen.push(kind);
        if kind == IP
            && let Some(name) = name
            && name.parse::<std::net::IpAddr>().is_err()
        {
            return Err(format!("{name} is not a valid IP or resolvable host."));
        }
        if kind != IP && name.as_deref() == Some("") {
            return Err(format!("Invalid empty {kind} entity name"));
        }
    }
    if seen.iter().any(|k| *k == IP) && seen.len() > 1 {
        return Err("Invalid quota entity combination, IP entity should not be combined with User or ClientId".into());
    }
    Ok(())
}

/// Checks a value for `key` as Kafka's `ClientQuotaControlManager` does: integral for LONG and
/// INT keys.
pub fn validate_value(kind: QuotaKind, key: &str, value: f64) -> Result<(), String> {
    match kind {
        QuotaKind::Long | QuotaKind::Int => {
            let whole = (value + 1e-6).trunc();
            if (whole - value).abs() > 1e-6 {
                let name = if kind == QuotaKind::Long {
                    "LONG"
                } else {
                    "INT"
                };
                return Err(format!("Configuration {key} must be a {name} value"));
            }
            Ok(())
        }
        QuotaKind::Double => Ok(()),
    }
}

/// The quota `key` in force for (`user`, `client_id`), in Kafka's order of precedence.
pub fn quota_for(image: &MetadataImage, key: &str, user: &str, client_id: &str) -> Option<f64> {
    let u = |name: Option<&str>| (USER.to_string(), name.map(String::from));
    let c = |name: Option<&str>| (CLIENT_ID.to_string(), name.map(String::from));
    let candidates: [QuotaEntity; 8] = [
        vec![c(Some(client_id)), u(Some(user))],
        vec![c(None), u(Some(user))],
        vec![u(Some(user))],
        vec![c(Some(client_id)), u(None)],
        vec![c(None), u(None)],
        vec![u(None)],
        vec![c(Some(client_id))],
        vec![c(None)],
    ];
    candidates
        .iter()
        .find_map(|entity| image.client_quotas.get(entity)?.get(key).copied())
}

/// A rate over sampled windows, as Kafka's `Rate` with `SampledStat`.
struct Sampler {
    /// (window start, bytes) per sample, oldest first.
    windows: Vec<(Instant, f64)>,
}

impl Sampler {
    fn new() -> Sampler {
        Sampler {
            windows: Vec::with_capacity(SAMPLES),
        }
    }

    fn record(&mut self, value: f64, now: Instant) {
        // Samples older than the whole window are gone.
        let horizon = SAMPLE_WINDOW * SAMPLES as u32;
        self.windows
            .retain(|(start, _)| now.saturating_duration_since(*start) < horizon);
        match self.windows.last_mut() {
            Some((start, total)) if now.saturating_duration_since(*start) < SAMPLE_WINDOW => {
                *total += value;
            }
            _ => self.windows.push((now, value)),
        }
    }

    /// The rate per second and the window it is measured over.
    fn rate(&self, now: Instant) -> (f64, Duration) {
        let total: f64 = self.windows.iter().map(|(_, v)| v).sum();
        let elapsed = self.windows.first().map_or(Duration::ZERO, |(start, _)| {
            now.saturating_duration_since(*start)
        });
        // Kafka counts at least all windows but one, so that a new sampler is not fooled by a
        // short burst into a huge rate.
        let window = elapsed.max(SAMPLE_WINDOW * (SAMPLES as u32 - 1));
        (total / window.as_secs_f64(), window)
    }
}

/// The rates of every (quota key, user, client id) that has a quota.
#[derive(Default)]
pub struct QuotaManager {
    samplers: Mutex<HashMap<(&'static str, String, String), Sampler>>,
}

impl QuotaManager {
    /// Records `bytes` against `key`'s quota for (`user`, `client_id`) and returns how long the
    /// client is to be throttled (zero without a quota or within it).
    pub fn record(
        &self,
        image: &MetadataImage,
        key: &'static str,
        user: &str,
        client_id: &str,
        bytes: usize,
        now: Instant,
    ) -> Duration {
        // Most brokers have no quotas: then a request costs no lookup at all.
        if image.client_quotas.is_empty() {
            return Duration::ZERO;
        }
        let Some(quota) = quota_for(image, key, user, client_id).filter(|q| *q > 0.0) else {
            return Duration::ZERO;
        };
        let mut samplers = self.samplers.lock();
        let sampler = samplers
            .entry((key, user.to_string(), client_id.to_string()))
            .or_insert_with(Sampler::new);
        sampler.record(bytes as f64, now);
        let (rate, window) = sampler.rate(now);
        if rate <= quota {
            return Duration::ZERO;
        }
        let throttle = window.mul_f64((rate - quota) / quota);
        throttle.min(MAX_THROTTLE)
    }
}

thread_local! {
    /// How long the current connection is to stay muted after its response (KIP-219).
    static MUTE: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Applies a throttle to the request being handled on this connection thread: with
/// `after_response` (KIP-219 versions) the connection is muted once the response is written;
/// otherwise the response waits now.
pub fn throttle(duration: Duration, after_response: bool) {
    if duration.is_zero() {
        return;
    }
    if after_response {
        MUTE.with(|m| m.set(m.get().max(duration)));
    } else {
        std::thread::sleep(duration);
    }
}

/// Takes the mute set by [`throttle`] for this connection thread.
pub fn take_mute() -> Duration {
    MUTE.with(|m| m.replace(Duration::ZERO))
}

/// The `throttle_time_ms` of a response.
pub fn throttle_ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataRecord;
    use crate::metadata::records::client_quota_record::{ClientQuotaRecord, EntityData};

    fn set(image: &mut MetadataImage, entity: &[(&str, Option<&str>)], key: &str, value: f64) {
        image.apply(&MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: entity
                .iter()
                .map(|(t, n)| EntityData {
                    entity_type: t.to_string(),
                    entity_name: n.map(String::from),
                })
                .collect(),
            key: key.into(),
            value,
            remove: false,
        }));
    }

    #[test]
    fn precedence_follows_kafka() {
        let mut image = MetadataImage::default();
        set(&mut image, &[(CLIENT_ID, None)], PRODUCER_BYTE_RATE, 1.0);
        assert_eq!(quota_for(&image, PRODUCER_BYTE_RATE, "u", "c"), Some(1.0));
        set(
            &mut image,
            &[(CLIENT_ID, Some("c"))],
            PRODUCER_BYTE_RATE,
            2.0,
        );
        assert_eq!(quota_for(&image, PRODUCER_BYTE_RATE, "u", "c"), Some(2.0));
        assert_eq!(quota_for(&image, PRODUCER_BYTE_RATE, "u", "d"), Some(1.0));
        set(&mut image, &[(USER, Some("u"))], PRODUCER_BYTE_RATE, 3.0);
        assert_eq!(quota_for(&image, PRODUCER_BYTE_RATE, "u", "c"), Some(3.0));
        set(
            &mut image,
            &[(USER, Some("u")), (CLIENT_ID, Some("c"))],
            PRODUCER_BYTE_RATE,
            4.0,
        );
        assert_eq!(quota_for(&image, PRODUCER_BYTE_RATE, "u", "c"), Some(4.0));
        assert_eq!(quota_for(&image, CONSUMER_BYTE_RATE, "u", "c"), None);
    }

    #[test]
    fn throttle_time_is_the_excess_over_the_window() {
        let mut image = MetadataImage::default();
        set(
            &mut image,
            &[(CLIENT_ID, Some("c"))],
            PRODUCER_BYTE_RATE,
            1000.0,
        );
        let quotas = QuotaManager::default();
        let now = Instant::now();
        // 10,000 bytes over the minimum 10 s window is exactly the quota.
        let t = quotas.record(
            &image,
            PRODUCER_BYTE_RATE,
            quota_user(crate::security::ANONYMOUS),
            "c",
            10_000,
            now,
        );
        assert_eq!(t, Duration::ZERO);
        // 10,000 more: 2,000 B/s, twice the quota: throttled for one more window.
        let t = quotas.record(
            &image,
            PRODUCER_BYTE_RATE,
            quota_user(crate::security::ANONYMOUS),
            "c",
            10_000,
            now,
        );
        assert_eq!(t, Duration::from_secs(10));
        let other = quotas.record(
            &image,
            PRODUCER_BYTE_RATE,
            quota_user(crate::security::ANONYMOUS),
            "d",
            1 << 20,
            now,
        );
        assert_eq!(other, Duration::ZERO, "no quota for client d");
    }

    #[test]
    fn entities_and_values_are_checked() {
        let e = |pairs: &[(&str, Option<&str>)]| -> QuotaEntity {
            pairs
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(String::from)))
                .collect()
        };
        assert!(validate_entity(&e(&[(USER, Some("a")), (CLIENT_ID, None)])).is_ok());
        assert!(validate_entity(&e(&[(IP, Some("10.0.0.1"))])).is_ok());
        assert!(validate_entity(&e(&[(IP, Some("nope"))])).is_err());
        assert!(validate_entity(&e(&[(IP, None), (USER, None)])).is_err());
        assert!(validate_entity(&e(&[("group", Some("g"))])).is_err());
        assert!(validate_entity(&e(&[(USER, None), (USER, Some("b"))])).is_err());
        assert_eq!(
            quota_key(&[USER], PRODUCER_BYTE_RATE),
            Some(QuotaKind::Long)
        );
        assert_eq!(quota_key(&[IP], PRODUCER_BYTE_RATE), None);
        assert!(validate_value(QuotaKind::Long, PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(validate_value(QuotaKind::Long, PRODUCER_BYTE_RATE, 10.5).is_err());
    }
}
