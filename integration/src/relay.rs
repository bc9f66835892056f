//! A DHCP relay agent in miniature, for tests that need to see every reply:
//! it sends DISCOVER/REQUEST as a relay would (giaddr set, from port 67,
//! optionally with option 82) and records what comes back. perfdhcp does the
//! same for load, but reports only counts; the crash test must know which
//! address went to which client.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::relay::{RelayAgentInformation, RelayInfo};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

/// A relay agent bound to `giaddr:67`, talking to one server.
pub struct Relay {
    sock: UdpSocket,
    giaddr: Ipv4Addr,
    server: SocketAddr,
    xid: u32,
    /// Sent as option 82 sub-option 1 when set.
    pub circuit_id: Option<Vec<u8>>,
}

/// What a relayed exchange gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: MessageType,
    pub yiaddr: Ipv4Addr,
    pub relay_info: Option<RelayAgentInformation>,
    pub hostname: Option<String>,
}

impl Relay {
    /// Bind `giaddr:67` (call from a thread inside the relay's namespace).
    pub fn bind(giaddr: Ipv4Addr, server: Ipv4Addr) -> std::io::Result<Relay> {
        let sock = UdpSocket::bind((giaddr, 67))?;
        Ok(Relay {
            sock,
            giaddr,
            server: SocketAddr::from((server, 67)),
            xid: 0x5000_0000,
            circuit_id: None,
        })
    }

    fn request(&mut self, kind: MessageType, mac: [u8; 6], extra: &[DhcpOption]) -> Message {
        self.xid = self.xid.wrapping_add(1);
        let mut m = Message::new_with_id(
            self.xid,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            self.giaddr,
            &mac,
        );
        m.set_opcode(Opcode::BootRequest).set_hops(1);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in extra {
            m.opts_mut().insert(o.clone());
        }
        if let Some(c) = &self.circuit_id {
            let mut info = RelayAgentInformation::default();
            info.insert(RelayInfo::AgentCircuitId(c.clone()));
            m.opts_mut().insert(DhcpOption::RelayAgentInformation(info));
        }
        m
    }

    /// Send raw bytes to the server (for malformed-packet tests).
    pub fn send_raw(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).expect("send");
    }

    fn exchange(&mut self, m: &Message, timeout: Duration) -> Option<Reply> {
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).expect("encode");
        self.sock.send_to(&buf, self.server).expect("send");
        let end = Instant::now() + timeout;
        let mut rbuf = [0u8; 1500];
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let Ok((n, _)) = self.sock.recv_from(&mut rbuf) else {
                return None;
            };
            let Ok(r) = Message::decode(&mut Decoder::new(&rbuf[..n])) else {
                continue;
            };
            if r.xid() != m.xid() || r.opcode() != Opcode::BootReply {
                continue;
            }
            let kind = r.opts().msg_type()?;
            let relay_info = match r.opts().get(OptionCode::RelayAgentInformation) {
                Some(DhcpOption::RelayAgentInformation(i)) => Some(i.clone()),
                _ => None,
            };
            let hostname = match r.opts().get(OptionCode::Hostname) {
                Some(DhcpOption::Hostname(h)) => Some(h.clone()),
                _ => None,
            };
            return Some(Reply {
                kind,
                yiaddr: r.yiaddr(),
                relay_info,
                hostname,
            });
        }
    }

    /// DISCOVER; the OFFER, if one came within `timeout`.
    pub fn discover(&mut self, mac: [u8; 6], timeout: Duration) -> Option<Reply> {
        let m = self.request(MessageType::Discover, mac, &[]);
        self.exchange(&m, timeout)
    }

    /// REQUEST (SELECTING) for `ip` from `server_id`.
    pub fn request_ip(
        &mut self,
        mac: [u8; 6],
        ip: Ipv4Addr,
        server_id: Ipv4Addr,
        timeout: Duration,
    ) -> Option<Reply> {
        let m = self.request(
            MessageType::Request,
            mac,
            &[
                DhcpOption::RequestedIpAddress(ip),
                DhcpOption::ServerIdentifier(server_id),
            ],
        );
        self.exchange(&m, timeout)
    }

    /// A DHCPRELEASE of `ip` for `mac`, sent from this socket with giaddr
    /// set or not (`relayed`); the server sends no reply (RFC 2131 §4.3.4).
    pub fn release(&mut self, mac: [u8; 6], ip: Ipv4Addr, server_id: Ipv4Addr, relayed: bool) {
        let mut m = self.request(
            MessageType::Release,
            mac,
            &[DhcpOption::ServerIdentifier(server_id)],
        );
        m.set_ciaddr(ip);
        if !relayed {
            m.set_giaddr(Ipv4Addr::UNSPECIFIED).set_hops(0);
            m.opts_mut().remove(OptionCode::RelayAgentInformation);
        }
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).expect("encode");
        self.send_raw(&buf);
    }

    /// A whole DISCOVER-OFFER-REQUEST-ACK; the ACKed address.
    pub fn dora(
        &mut self,
        mac: [u8; 6],
        server_id: Ipv4Addr,
        timeout: Duration,
    ) -> Option<Ipv4Addr> {
        let offer = self.discover(mac, timeout)?;
        if offer.kind != MessageType::Offer {
            return None;
        }
        let ack = self.request_ip(mac, offer.yiaddr, server_id, timeout)?;
        (ack.kind == MessageType::Ack).then_some(ack.yiaddr)
    }
}

/// Every ACK a test saw: address → the clients it was given to.
#[derive(Default, Debug)]
pub struct AckLog {
    pub by_ip: HashMap<Ipv4Addr, Vec<[u8; 6]>>,
}

impl AckLog {
    pub fn record(&mut self, ip: Ipv4Addr, mac: [u8; 6]) {
        let v = self.by_ip.entry(ip).or_default();
        if !v.contains(&mac) {
            v.push(mac);
        }
    }

    /// Addresses ACKed to more than one client.
    pub fn doubles(&self) -> Vec<(Ipv4Addr, Vec<[u8; 6]>)> {
        self.by_ip
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(ip, v)| (*ip, v.clone()))
            .collect()
    }
}
