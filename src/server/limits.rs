//! Resource limits of the socket server: connection counts (`max.connections`,
//! `max.connections.per.ip`, `max.connections.per.ip.overrides`, all dynamic) and a global budget of request bytes in memory
//! (`queued.max.request.bytes`), so that many slow or hostile clients cannot make the broker's
//! memory grow without bound.

use crate::config::BrokerConfig;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The connection limits in force: `max.connections`, `max.connections.per.ip` and
/// `max.connections.per.ip.overrides`. The acceptor reads them from the live configuration, so a
/// change made with IncrementalAlterConfigs applies from the next connection on, as Kafka's
/// `DynamicConnectionQuota` does; connections already open stay open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionQuotas {
    pub max_total: usize,
    pub max_per_ip: usize,
    pub per_ip_overrides: HashMap<IpAddr, usize>,
}

impl ConnectionQuotas {
    pub fn from_config(config: &BrokerConfig) -> ConnectionQuotas {
        let overrides = config
            .get(MAX_CONNECTIONS_PER_IP_OVERRIDES)
            .map(parse_per_ip_overrides)
            .unwrap_or_else(|| Ok(HashMap::new()));
        ConnectionQuotas {
            max_total: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            // The value was checked when it was set; one that stopped parsing (a host name that
            // no longer resolves) is logged and overrides nothing.
            per_ip_overrides: overrides.unwrap_or_else(|e| {
                log::error!("{MAX_CONNECTIONS_PER_IP_OVERRIDES} ignored: {e}");
                HashMap::new()
            }),
        }
    }

    fn max_for(&self, ip: &IpAddr) -> usize {
        self.per_ip_overrides
            .get(ip)
            .copied()
            .unwrap_or(self.max_per_ip)
    }
}

pub const MAX_CONNECTIONS_PER_IP_OVERRIDES: &str = "max.connections.per.ip.overrides";

/// Parses `max.connections.per.ip.overrides`: comma-separated `host:count` entries, split at the
/// last colon as Kafka's `parseCsvMap` does (so an IPv6 address keeps its colons). A host that is
/// not an address literal is resolved once here, never on the accept path.
pub fn parse_per_ip_overrides(value: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut out = HashMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("`{entry}` is not host:count"))?;
        let count: usize = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n <= i32::MAX as u32)
            .ok_or_else(|| format!("`{entry}`: the count is not a non-negative int"))?
            as usize;
        let host = host.trim();
        let ips: Vec<IpAddr> = match host.trim_matches(|c| c == '[' || c == ']').parse() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| format!("`{host}` does not resolve: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in ips {
            out.insert(ip, count);
        }
    }
    Ok(out)
}

/// Counts open connections, in total and per client address, across all the listeners.
#[derive(Debug)]
pub struct ConnectionLimits {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Holds one connection's place; releases it when dropped (also when the thread panics).
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnectionLimits {
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a place for a connection from `ip` within `quotas`, or explains why there is none.
    pub fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        quotas: &ConnectionQuotas,
    ) -> Result<ConnectionSlot, String> {
        let mut open = self.open.lock();
        let (total, per_ip) = &mut *open;
        if *total >= quotas.max_total {
            return Err(format!("max.connections ({}) reached", quotas.max_total));
        }
        let max_per_ip = quotas.max_for(&ip);
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= max_per_ip {
            if *count == 0 {
                per_ip.remove(&ip);
            }
            return Err(format!(
                "max.connections.per.ip ({max_per_ip}) reached for {ip}"
            ));
        }
        *count += 1;
        *total += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    pub fn open_connections(&self) -> usize {
        self.open.lock().0
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        let (total, per_ip) = &mut *open;
        *total -= 1;
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// A budget of request bytes held in memory at once. A connection reserves a frame's size before
/// allocating its buffer and gives it back once the response is written.
#[derive(Debug)]
pub struct MemoryPool {
    capacity: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

/// Bytes reserved from a [`MemoryPool`]; returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    pool: Arc<MemoryPool>,
    bytes: usize,
}

impl MemoryPool {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(MemoryPool {
            capacity,
            used: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// Reserves `bytes`, waiting up to `timeout` for others to release enough. A request larger
    /// than the whole pool is granted once the pool is empty, so it cannot starve forever.
    pub fn reserve(self: &Arc<Self>, bytes: usize, timeout: Duration) -> Option<Reservation> {
        let deadline = Instant::now() + timeout;
        let mut used = self.used.lock();
        while *used > 0 && *used + bytes > self.capacity {
            if self.freed.wait_until(&mut used, deadline).timed_out() {
                return None;
            }
        }
        *used += bytes;
        Some(Reservation {
            pool: self.clone(),
            bytes,
        })
    }

    pub fn used(&self) -> usize {
        *self.used.lock()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.pool.used.lock() -= self.bytes;
        self.pool.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_per_ip_and_total() {
        let limits = ConnectionLimits::new();
        let quotas = ConnectionQuotas {
            max_total: 3,
            max_per_ip: 2,
            per_ip_overrides: HashMap::new(),
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = limits.acquire(a, &quotas).unwrap();
        let _s2 = limits.acquire(a, &quotas).unwrap();
        assert!(limits.acquire(a, &quotas).unwrap_err().contains("per.ip"));
        let _s3 = limits.acquire(b, &quotas).unwrap();
        assert!(
            limits
                .acquire(b, &quotas)
                .unwrap_err()
                .contains("max.connections (")
        );
        drop(s1);
        assert_eq!(limits.open_connections(), 2);
        assert!(limits.acquire(a, &quotas).is_ok());
        // Lower limits apply to the next connection; open ones stay.
        let lower = ConnectionQuotas {
            max_per_ip: 1,
            max_total: 10,
            per_ip_overrides: HashMap::from([(b, 3)]),
        };
        assert!(limits.acquire(a, &lower).is_err());
        let _s4 = limits.acquire(b, &lower).expect("b's override is 3");
        assert_eq!(limits.open_connections(), 3);
    }

    #[test]
    fn per_ip_overrides_parse_as_kafka_does() {
        let parsed = parse_per_ip_overrides("127.0.0.1:5, [::1]:7 ,::2:8,").unwrap();
        assert_eq!(parsed[&"127.0.0.1".parse::<IpAddr>().unwrap()], 5);
        assert_eq!(parsed[&"::1".parse::<IpAddr>().unwrap()], 7);
        assert_eq!(parsed[&"::2".parse::<IpAddr>().unwrap()], 8);
        assert!(parse_per_ip_overrides("").unwrap().is_empty());
        for bad in ["127.0.0.1", "127.0.0.1:x", "127.0.0.1:-1", "h:2147483648"] {
            assert!(parse_per_ip_overrides(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_pool_blocks_until_bytes_return() {
        let pool = MemoryPool::new(100);
        let r1 = pool.reserve(80, Duration::from_millis(10)).unwrap();
        assert!(
            pool.reserve(30, Duration::from_millis(20)).is_none(),
            "over budget times out"
        );
        let p2 = pool.clone();
        let waiter =
            std::thread::spawn(move || p2.reserve(30, Duration::from_secs(10)).map(|r| r.bytes));
        std::thread::sleep(Duration::from_millis(20));
        drop(r1);
        assert_eq!(waiter.join().unwrap(), Some(30));
        assert_eq!(pool.used(), 0);
        // Larger than the pool: granted when nothing else is held.
        assert!(pool.reserve(500, Duration::from_millis(10)).is_some());
    }
}
