//! Member health: `tcp:PORT` (the connection opens) and `http:PORT/PATH`
//! (a 2xx or 3xx status line), run by every dnsd every `health_interval`,
//! with a rise/fall threshold ([`RiseFall`], pure) so one lost probe does
//! not flap an answer.
//!
//! [`HealthBook`] owns one [`HealthCell`] per (address, check), shared by
//! every pool that lists the member and kept across table rebuilds. The
//! prober ([`run`]) probes each cell once per interval, at most
//! [`MAX_PROBES`] at once, each within a timeout, and reports the
//! transitions to the store for `labnetctl gslb list`.
//!
//! The HTTP probe is written here rather than with an HTTP client crate:
//! it sends one `GET` with `Connection: close` and reads one status line,
//! which needs no more than a TCP stream (RFC 9112 §4).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labnet_store::{GslbHealth, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Probes in flight at once, whatever the number of members.
pub const MAX_PROBES: usize = 32;
/// The longest a probe may take (less when the interval is shorter).
const MAX_PROBE_TIME: Duration = Duration::from_secs(2);
/// Bytes of an HTTP reply read to find its status line.
const STATUS_LINE_MAX: usize = 512;

/// A member's check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Check {
    Tcp(u16),
    Http { port: u16, path: String },
}

impl Check {
    /// `tcp:PORT` or `http:PORT/PATH`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Check, String> {
        let port = |p: &str| -> Result<u16, String> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("`{p}` is not a port (1-65535)")),
            }
        };
        if let Some(p) = s.strip_prefix("tcp:") {
            return Ok(Check::Tcp(port(p)?));
        }
        if let Some(rest) = s.strip_prefix("http:") {
            let (p, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if path
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(format!("path `{path}` has spaces or control characters"));
            }
            return Ok(Check::Http {
                port: port(p)?,
                path: path.to_owned(),
            });
        }
        Err("use tcp:PORT or http:PORT/PATH".into())
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Tcp(p) => write!(f, "tcp:{p}"),
            Check::Http { port, path } => write!(f, "http:{port}{path}"),
        }
    }
}

/// The rise/fall threshold: `fall` failures in a row take an up member
/// out, `rise` successes in a row bring a down one back. Starts up (a
/// check that has not run yet counts as up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    up: bool,
    /// Probes in a row that disagreed with `up`.
    streak: u32,
}

impl Default for RiseFall {
    fn default() -> RiseFall {
        RiseFall {
            up: true,
            streak: 0,
        }
    }
}

impl RiseFall {
    pub fn up(&self) -> bool {
        self.up
    }

    /// Feed one probe result; `Some(new state)` when the state flips.
    pub fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { fall } else { rise };
        if self.streak >= needed.max(1) {
            self.up = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// The health of one (address, check): read on every answer, written by
/// the prober.
#[derive(Debug)]
pub struct HealthCell {
    pub ip: IpAddr,
    pub check: Check,
    up: AtomicBool,
    state: Mutex<RiseFall>,
}

impl HealthCell {
    fn new(ip: IpAddr, check: Check) -> HealthCell {
        HealthCell {
            ip,
            check,
            up: AtomicBool::new(true),
            state: Mutex::new(RiseFall::default()),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Feed one probe; `Some(new state)` on a flip.
    pub fn observe(&self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let flip = st.observe(ok, rise, fall);
        self.up.store(st.up(), Ordering::Relaxed);
        flip
    }

    /// Set the state outright (`labnetctl gslb explain`, from the store).
    pub fn force(&self, up: bool) {
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *st = RiseFall { up, streak: 0 };
        self.up.store(up, Ordering::Relaxed);
    }
}

/// Every health cell, by (address, check).
#[derive(Debug, Default)]
pub struct HealthBook {
    cells: Mutex<HashMap<(IpAddr, Check), Arc<HealthCell>>>,
}

impl HealthBook {
    /// The cell for `ip` and `check`, made (up) if new.
    pub fn cell(&self, ip: IpAddr, check: Check) -> Arc<HealthCell> {
        let mut cells = match self.cells.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        cells
            .entry((ip, check.clone()))
            .or_insert_with(|| Arc::new(HealthCell::new(ip, check)))
            .clone()
    }

    /// The cells some table still uses (the book's own reference aside);
    /// the others are forgotten.
    fn live(&self) -> Vec<Arc<HealthCell>> {
        let mut cells = match self.cells.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        cells.retain(|_, c| Arc::strong_count(c) > 1);
        cells.values().cloned().collect()
    }
}

/// One probe: true when the member answered as its check wants.
pub async fn probe(ip: IpAddr, check: &Check, timeout: Duration) -> bool {
    let work = async {
        match check {
            Check::Tcp(port) => TcpStream::connect(SocketAddr::new(ip, *port)).await.is_ok(),
            Check::Http { port, path } => http_ok(SocketAddr::new(ip, *port), path)
                .await
                .unwrap_or(false),
        }
    };
    tokio::time::timeout(timeout, work).await.unwrap_or(false)
}

async fn http_ok(addr: SocketAddr, path: &str) -> std::io::Result<bool> {
    let mut s = TcpStream::connect(addr).await?;
    let host = match addr.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: labnet-dnsd\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(STATUS_LINE_MAX);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < STATUS_LINE_MAX {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status_ok(&buf))
}

/// RFC 9112 §4: `HTTP/1.x SP 3DIGIT SP ...`; 2xx and 3xx are healthy.
pub fn status_ok(reply: &[u8]) -> bool {
    let line = reply.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let version = parts.next().unwrap_or(&[]);
    let code = parts.next().unwrap_or(&[]);
    version.starts_with(b"HTTP/")
        && code.len() == 3
        && code.iter().all(u8::is_ascii_digit)
        && matches!(code[0], b'2' | b'3')
}

/// What the prober needs.
pub struct Prober {
    pub book: Arc<HealthBook>,
    pub store: Arc<dyn Store>,
    pub interval: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Who we are in the store's health reports.
    pub node: String,
}

/// Probe every live cell every interval until `shutdown`.
pub async fn run(p: Prober, shutdown: CancellationToken) {
    let sem = Arc::new(Semaphore::new(MAX_PROBES));
    let timeout = p.interval.min(MAX_PROBE_TIME);
    let mut tick = tokio::time::interval(p.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cells = p.book.live();
        let mut tasks = tokio::task::JoinSet::new();
        for cell in cells {
            let sem = sem.clone();
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await.ok()?;
                let ok = probe(cell.ip, &cell.check, timeout).await;
                Some((cell, ok))
            });
        }
        let mut flips = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let Ok(Some((cell, ok))) = r else { continue };
            if let Some(up) = cell.observe(ok, p.rise, p.fall) {
                tracing::info!(ip = %cell.ip, check = %cell.check, up, "gslb member health changed");
                flips.push(GslbHealth {
                    ip: cell.ip,
                    check: cell.check.to_string(),
                    node: p.node.clone(),
                    up,
                    at: labnet_store::unix_now(),
                });
            }
        }
        if !flips.is_empty() {
            if let Err(e) = p.store.gslb_health_report(&flips).await {
                tracing::warn!(error = %e, "cannot report GSLB health to the store");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_need_streaks() {
        let mut s = RiseFall::default();
        assert!(s.up(), "a check that has not run counts as up");
        assert_eq!(s.observe(false, 2, 3), None);
        assert_eq!(s.observe(false, 2, 3), None);
        // A success resets the streak.
        assert_eq!(s.observe(true, 2, 3), None);
        assert_eq!(s.observe(false, 2, 3), None);
        assert_eq!(s.observe(false, 2, 3), None);
        assert_eq!(s.observe(false, 2, 3), Some(false));
        assert!(!s.up());
        assert_eq!(s.observe(true, 2, 3), None);
        assert_eq!(s.observe(true, 2, 3), Some(true));
        assert!(s.up());
    }

    #[test]
    fn checks_parse_and_print() {
        assert_eq!(Check::parse("tcp:80"), Ok(Check::Tcp(80)));
        assert_eq!(
            Check::parse("http:8080/health"),
            Ok(Check::Http {
                port: 8080,
                path: "/health".into()
            })
        );
        assert_eq!(
            Check::parse("http:80").map(|c| c.to_string()),
            Ok("http:80/".into())
        );
        assert!(Check::parse("tcp:0").is_err());
        assert!(Check::parse("tcp:70000").is_err());
        assert!(Check::parse("udp:53").is_err());
        assert!(Check::parse("http:80/a b").is_err());
    }

    #[test]
    fn status_lines() {
        assert!(status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_ok(b"HTTP/1.0 302 Found\r\n"));
        assert!(!status_ok(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(!status_ok(b"SSH-2.0-OpenSSH\r\n"));
        assert!(!status_ok(b""));
    }

    #[tokio::test]
    async fn tcp_probe_sees_a_listener_come_and_go() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(probe(ip, &Check::Tcp(port), Duration::from_secs(1)).await);
        drop(l);
        assert!(!probe(ip, &Check::Tcp(port), Duration::from_secs(1)).await);
    }
}
