//! Resource limits of the socket server: connection counts (`max.connections`,
//! `max.connections.per.ip`) and a global budget of request bytes in memory
//! (`queued.max.request.bytes`), so that many slow or hostile clients cannot make the broker's
//! memory grow without bound.

use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts open connections, in total and per client address.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Holds one connection's place; releases it when dropped (also when the thread panics).
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a place for a connection from `ip`, or explains why there is none.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, String> {
        let mut open = self.open.lock();
        let (total, per_ip) = &mut *open;
        if *total >= self.max_total {
            return Err(format!("max.connections ({}) reached", self.max_total));
        }
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return Err(format!(
                "max.connections.per.ip ({}) reached for {ip}",
                self.max_per_ip
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
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = limits.acquire(a).unwrap();
        let _s2 = limits.acquire(a).unwrap();
        assert!(limits.acquire(a).unwrap_err().contains("per.ip"));
        let _s3 = limits.acquire(b).unwrap();
        assert!(limits.acquire(b).unwrap_err().contains("max.connections ("));
        drop(s1);
        assert_eq!(limits.open_connections(), 2);
        assert!(limits.acquire(a).is_ok());
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
