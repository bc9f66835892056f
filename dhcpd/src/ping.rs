//! ICMP echo check before an OFFER: if an address answers, someone uses it
//! without a lease (dnsmasq does the same, on by default).
//!
//! Written by hand over a raw socket from `socket2`: the maintained tokio ping
//! crates bring their own socket management and timers for what is, here,
//! one echo request and one awaited reply per address.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// Sends echo requests and matches replies to waiting callers.
pub struct Pinger {
    sock: Arc<UdpSocket>,
    ident: u16,
    waiting: Arc<Mutex<HashMap<Ipv4Addr, Vec<oneshot::Sender<()>>>>>,
    seq: Mutex<u16>,
}

impl Pinger {
    /// Open the raw ICMP socket (needs CAP_NET_RAW) and start the reader.
    pub fn open() -> std::io::Result<Arc<Pinger>> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        s.set_nonblocking(true)?;
        let sock = Arc::new(UdpSocket::from_std(std::net::UdpSocket::from(s))?);
        let pinger = Arc::new(Pinger {
            sock: sock.clone(),
            ident: (std::process::id() & 0xffff) as u16,
            waiting: Arc::new(Mutex::new(HashMap::new())),
            seq: Mutex::new(0),
        });
        let waiting = pinger.waiting.clone();
        let ident = pinger.ident;
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                let SocketAddr::V4(from) = from else { continue };
                if is_echo_reply(&buf[..n], ident) {
                    let senders = waiting
                        .lock()
                        .map(|mut w| w.remove(from.ip()))
                        .unwrap_or_default();
                    for tx in senders.into_iter().flatten() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        Ok(pinger)
    }

    /// True if `ip` answered an echo request within `timeout`.
    pub async fn in_use(&self, ip: Ipv4Addr, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.entry(ip).or_default().push(tx);
        }
        let seq = self
            .seq
            .lock()
            .map(|mut s| {
                *s = s.wrapping_add(1);
                *s
            })
            .unwrap_or(0);
        let pkt = echo_request(self.ident, seq);
        if let Err(e) = self
            .sock
            .send_to(&pkt, SocketAddr::V4(SocketAddrV4::new(ip, 0)))
            .await
        {
            tracing::debug!(%ip, error = %e, "ping not sent");
        }
        let answered = tokio::time::timeout(timeout, rx)
            .await
            .is_ok_and(|r| r.is_ok());
        if !answered {
            if let Ok(mut w) = self.waiting.lock() {
                w.remove(&ip);
            }
        }
        answered
    }
}

/// RFC 792 echo request with a checksum (RFC 1071).
fn echo_request(ident: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8; // type: echo request
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"labnetdh");
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A raw IPv4 socket hands us the IP header too.
fn is_echo_reply(pkt: &[u8], ident: u16) -> bool {
    let Some(&vihl) = pkt.first() else {
        return false;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let Some(icmp) = pkt.get(ihl..) else {
        return false;
    };
    icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == ident.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksums_to_zero() {
        let p = echo_request(0x1234, 7);
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn only_our_echo_replies_match() {
        let mut reply = vec![0x45u8; 20];
        reply.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 1]);
        assert!(is_echo_reply(&reply, 0x1234));
        assert!(!is_echo_reply(&reply, 0x4321));
        reply[20] = 8;
        assert!(!is_echo_reply(&reply, 0x1234));
        assert!(!is_echo_reply(&[0x4f], 0x1234));
    }
}
