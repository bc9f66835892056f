//! What keeps one client on the lab segment from taking the DNS server from
//! everyone else. Pure: the socket loops own one of each and pass `now`.
//!
//! - [`TcpLimits`]: connections per client address under a global cap, and
//!   an idle timeout that shrinks as the server fills (RFC 7766 §6.2.3: a
//!   server may close idle connections, sooner under pressure).
//! - [`Rrl`]: response rate limiting as NSD and Knot do it: responses per
//!   second per client prefix (/24 for IPv4, /56 for IPv6); past the rate,
//!   every `slip`-th answer goes out truncated (TC=1, empty sections) so a
//!   real client retries over TCP, the rest are dropped, so a spoofed source
//!   gets no amplification. Only for clients outside `recursion_allowed`:
//!   the lab's own machines are trusted and may be many behind one /24.
//! - [`LogLimiter`]: at most a few log lines per kind and second, then one
//!   line saying how many were left out, so a packet flood cannot turn into
//!   a disk flood.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

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

/// What to do with one UDP response under RRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrlAction {
    Send,
    /// Send it truncated (TC=1, no records): the client may retry over TCP.
    Slip,
    Drop,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    over: u64,
}

/// Response rate limiting per client prefix.
#[derive(Debug)]
pub struct Rrl {
    rate: u32,
    slip: u32,
    buckets: HashMap<IpAddr, Bucket>,
    /// Most prefixes tracked; past this, buckets idle for a second are
    /// dropped (a full bucket is what a new one starts as anyway).
    max_prefixes: usize,
}

impl Rrl {
    /// `rate` responses per second per prefix (0: off); `slip`: every n-th
    /// limited response is sent truncated (0: none, 1: all).
    pub fn new(rate: u32, slip: u32) -> Rrl {
        Rrl {
            rate,
            slip,
            buckets: HashMap::new(),
            max_prefixes: 65_536,
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0
    }

    /// The prefix a client is accounted under (NSD's and Knot's defaults).
    pub fn prefix(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                IpAddr::from([o[0], o[1], o[2], 0])
            }
            IpAddr::V6(v6) => {
                let mut o = v6.octets();
                for b in &mut o[7..] {
                    *b = 0;
                }
                IpAddr::from(o)
            }
        }
    }

    /// One response to `client` at `now`.
    pub fn check(&mut self, client: IpAddr, now: Instant) -> RrlAction {
        if self.rate == 0 {
            return RrlAction::Send;
        }
        if self.buckets.len() >= self.max_prefixes {
            self.buckets
                .retain(|_, b| now.duration_since(b.last) < Duration::from_secs(1));
        }
        let rate = f64::from(self.rate);
        let b = self.buckets.entry(Self::prefix(client)).or_insert(Bucket {
            tokens: rate,
            last: now,
            over: 0,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return RrlAction::Send;
        }
        b.over += 1;
        if self.slip > 0 && b.over.is_multiple_of(u64::from(self.slip)) {
            RrlAction::Slip
        } else {
            RrlAction::Drop
        }
    }
}

/// Log lines per kind per second, the rest counted and summarised.
#[derive(Debug)]
pub struct LogLimiter {
    per_second: u32,
    kinds: HashMap<&'static str, (Instant, u32, u64)>,
}

/// Whether to write a log line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVerdict {
    /// Write it; `suppressed` lines of this kind were left out before it.
    Write {
        suppressed: u64,
    },
    Skip,
}

impl LogLimiter {
    pub fn new(per_second: u32) -> LogLimiter {
        LogLimiter {
            per_second,
            kinds: HashMap::new(),
        }
    }

    pub fn check(&mut self, kind: &'static str, now: Instant) -> LogVerdict {
        let e = self.kinds.entry(kind).or_insert((now, 0, 0));
        if now.duration_since(e.0) >= Duration::from_secs(1) {
            e.0 = now;
            e.1 = 0;
        }
        if e.1 < self.per_second {
            e.1 += 1;
            let suppressed = std::mem::take(&mut e.2);
            LogVerdict::Write { suppressed }
        } else {
            e.2 += 1;
            LogVerdict::Skip
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

    #[test]
    fn rrl_limits_a_prefix_slips_and_spares_others() {
        let mut r = Rrl::new(10, 2);
        let t0 = Instant::now();
        let flood: IpAddr = "10.0.0.7".parse().expect("ip");
        let same_prefix: IpAddr = "10.0.0.9".parse().expect("ip");
        let other: IpAddr = "10.0.1.7".parse().expect("ip");
        let acts: Vec<_> = (0..100).map(|_| r.check(flood, t0)).collect();
        assert_eq!(acts.iter().filter(|a| **a == RrlAction::Send).count(), 10);
        assert_eq!(acts.iter().filter(|a| **a == RrlAction::Slip).count(), 45);
        assert_ne!(r.check(same_prefix, t0), RrlAction::Send);
        assert_eq!(r.check(other, t0), RrlAction::Send);
        // Tokens come back with time.
        assert_eq!(
            r.check(flood, t0 + Duration::from_millis(500)),
            RrlAction::Send
        );
        assert_eq!(Rrl::new(0, 2).check(flood, t0), RrlAction::Send);
    }

    #[test]
    fn log_lines_are_bounded_and_counted() {
        let mut l = LogLimiter::new(3);
        let t0 = Instant::now();
        let written = (0..1000)
            .filter(|_| l.check("refused", t0) != LogVerdict::Skip)
            .count();
        assert_eq!(written, 3);
        assert_eq!(
            l.check("refused", t0 + Duration::from_secs(1)),
            LogVerdict::Write { suppressed: 997 }
        );
    }
}
