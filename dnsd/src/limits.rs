//! What keeps one client on the lab segment from taking the DNS server from
//! everyone else. Pure: the TCP accept loop owns one.
//!
//! - [`TcpLimits`]: connections per client address under a global cap, and
//!   an idle timeout that shrinks as the server fills (RFC 7766 §6.2.3: a
//!   server may close idle connections, sooner under pressure).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Per-address TCP connection accounting.
#[derive(Debug)]
pub struct TcpLimits {
    per_addr: usize,
    total: usize,
    open: HashMap<IpAddr, usize>,
    count: usize,
}

/// Whether a new TCP connection may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpAdmit {
    Yes,
    /// This address holds its share already.
    AddressFull,
    /// The server holds its global cap.
    ServerFull,
}

/// Idle timeout when the server is mostly free.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Idle timeout once three quarters of the connections are in use.
pub const TCP_IDLE_BUSY: Duration = Duration::from_secs(1);

impl TcpLimits {
    pub fn new(per_addr: usize, total: usize) -> TcpLimits {
        TcpLimits {
            per_addr: per_addr.max(1),
            total: total.max(1),
            open: HashMap::new(),
            count: 0,
        }
    }

    /// A connection from `ip` arrived; on `Yes` it is counted until
    /// [`TcpLimits::close`].
    pub fn admit(&mut self, ip: IpAddr) -> TcpAdmit {
        if self.count >= self.total {
            return TcpAdmit::ServerFull;
        }
        let n = self.open.entry(ip).or_insert(0);
        if *n >= self.per_addr {
            return TcpAdmit::AddressFull;
        }
        *n += 1;
        self.count += 1;
        TcpAdmit::Yes
    }

    pub fn close(&mut self, ip: IpAddr) {
        if let Some(n) = self.open.get_mut(&ip) {
            *n -= 1;
            self.count -= 1;
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// How long a connection may wait for its next query now.
    pub fn idle_timeout(&self) -> Duration {
        if self.count * 4 >= self.total * 3 {
            TCP_IDLE_BUSY
        } else {
            TCP_IDLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_tcp_slot() {
        let mut t = TcpLimits::new(16, 256);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let admitted = (0..300).filter(|_| t.admit(a) == TcpAdmit::Yes).count();
        assert_eq!(admitted, 16);
        assert_eq!(t.admit(a), TcpAdmit::AddressFull);
        assert_eq!(t.admit(b), TcpAdmit::Yes);
        t.close(a);
        assert_eq!(t.admit(a), TcpAdmit::Yes);
    }

    #[test]
    fn idle_timeout_shrinks_when_busy() {
        let mut t = TcpLimits::new(1, 8);
        assert_eq!(t.idle_timeout(), TCP_IDLE);
        for i in 0..6u8 {
            assert_eq!(t.admit(IpAddr::from([10, 0, 0, i])), TcpAdmit::Yes);
        }
        assert_eq!(t.idle_timeout(), TCP_IDLE_BUSY);
    }
}
