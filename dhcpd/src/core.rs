//! The DHCPv4 protocol core: a decoded request in, an [`Action`] out. No I/O.
//!
//! `server.rs` decodes a packet, calls [`Dhcp::handle`] with the receiving
//! interface's address and the time, and carries out the action: send a
//! reply, ping an address before offering it, or commit a lease to the store
//! and only then send the ACK.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use dhcproto::v4::relay::{RelayCode, RelayInfo};
use dhcproto::v4::{DhcpOption, DhcpOptions, Flags, Message, MessageType, Opcode, OptionCode};
use labnet_config::{DhcpConfig, Subnet};
use labnet_pxe::BootFiles;
use labnet_store::{format_mac, Lease};

use crate::leases::{Client, ClientKey, LeaseTable, Refusal};
use crate::options::SubnetOptions;
use crate::pxe;

/// Probation after a DECLINE when the ping check will look at the address
/// again before it is offered.
const DECLINE_RECHECK: i64 = 300;

/// Where the request came from.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    /// Our address on the interface the packet arrived on; it is the server
    /// identifier (option 54) and, for direct clients, picks the subnet.
    pub iface_addr: Ipv4Addr,
    pub src: SocketAddrV4,
}

/// A reply and where it goes.
#[derive(Debug, Clone)]
pub struct Reply {
    pub msg: Message,
    pub to: SocketAddrV4,
}

/// Why a packet got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    NotARequest,
    BadHardwareAddress,
    NoMessageType,
    UnsupportedMessageType,
    RateLimited,
    NoSubnet,
    /// The pool is exhausted: worth a warning, unlike the others.
    PoolExhausted,
    OtherServerChosen,
    MissingRequestedAddress,
    UnknownLease,
    NotAuthoritative,
    /// The relay circuit holds `max_leases_per_circuit` addresses already.
    CircuitLimit,
    /// A RELEASE or DECLINE that did not come from where the lease lives
    /// (another source address, another relay circuit): likely forged.
    NotFromHolder,
}

/// What the socket loop must do with a request.
#[derive(Debug)]
pub enum Action {
    /// No answer (logged at debug, or warn for an exhausted pool).
    Silent(Silence),
    /// Send now (OFFER of a known address, NAK, INFORM's ACK).
    Send(Reply),
    /// Ping `ip` first; send the OFFER if nobody answers, else report the
    /// address with [`Dhcp::address_in_use`] and handle the request again.
    PingThenSend { ip: Ipv4Addr, reply: Reply },
    /// Write `lease` to the store; once committed, send `reply` (an ACK), if any.
    Commit { lease: Lease, reply: Option<Reply> },
}

/// The DHCP server's state: config, lease table, per-client rate limits.
pub struct Dhcp {
    cfg: Arc<DhcpConfig>,
    pub table: LeaseTable,
    options: Vec<SubnetOptions>,
    rate: RateLimiter,
    /// Per relay circuit: the clients offered or bound an address through
    /// it (stale entries are pruned when counted).
    circuits: HashMap<Circuit, Vec<(ClientKey, Ipv4Addr)>>,
    /// The circuit each address was last handed out through.
    circuit_of_ip: HashMap<Ipv4Addr, Circuit>,
    /// Boot profiles and the `[pxe]` config, when network boot is served.
    /// Read from memory; the server refreshes it from the store.
    boot: Option<Arc<BootFiles>>,
}

impl Dhcp {
    pub fn new(cfg: Arc<DhcpConfig>) -> Dhcp {
        let options = cfg
            .subnets
            .iter()
            .map(|s| SubnetOptions::new(s, &cfg.options))
            .collect();
        Dhcp {
            table: LeaseTable::new(&cfg.subnets),
            rate: RateLimiter::new(cfg.max_packets_per_client),
            circuits: HashMap::new(),
            circuit_of_ip: HashMap::new(),
            options,
            cfg,
            boot: None,
        }
    }

    /// Serve `cfg` from now on (SIGHUP): subnets, pools, exclusions,
    /// options, lease times, limits. Leases, offers, probations and
    /// reservations are kept; an address that leaves every pool stays with
    /// its holder until its lease runs out, but is not renewed (a REQUEST
    /// for it is NAKed as for any address not ours, RFC 2131 §4.3.2).
    /// Interfaces and port are bound once: a change needs a restart.
    pub fn reconfigure(&mut self, cfg: Arc<DhcpConfig>) {
        self.options = cfg
            .subnets
            .iter()
            .map(|s| SubnetOptions::new(s, &cfg.options))
            .collect();
        self.table.set_subnets(&cfg.subnets);
        if cfg.max_packets_per_client != self.cfg.max_packets_per_client {
            self.rate = RateLimiter::new(cfg.max_packets_per_client);
        }
        self.cfg = cfg;
    }

    /// Answer network-boot clients with the boot decisions of `files`.
    pub fn set_boot(&mut self, files: Arc<BootFiles>) {
        self.boot = Some(files);
    }

    pub fn boot(&self) -> Option<&Arc<BootFiles>> {
        self.boot.as_ref()
    }

    pub fn config(&self) -> &DhcpConfig {
        &self.cfg
    }

    /// Handle one decoded request at `now` (Unix seconds).
    pub fn handle(&mut self, req: &Message, inc: &Incoming, now: i64) -> Action {
        if req.opcode() != Opcode::BootRequest {
            return Action::Silent(Silence::NotARequest);
        }
        let hlen = usize::from(req.hlen());
        if hlen == 0 || hlen > 16 {
            return Action::Silent(Silence::BadHardwareAddress);
        }
        let Some(mtype) = req.opts().msg_type() else {
            return Action::Silent(Silence::NoMessageType);
        };
        let chaddr = &req.chaddr()[..hlen];
        if !self.rate.allow(chaddr, now) {
            return Action::Silent(Silence::RateLimited);
        }
        let client_id = match req.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => Some(id.clone()),
            _ => None,
        };
        let client = Client::new(format_mac(chaddr), client_id);
        let Some(idx) = self.table.subnet_index(select_address(req, inc)) else {
            return Action::Silent(Silence::NoSubnet);
        };
        self.table.sweep(now);
        let ctx = Ctx {
            req,
            inc,
            client: &client,
            idx,
            now,
        };
        match mtype {
            MessageType::Discover => self.discover(&ctx),
            MessageType::Request => self.request(&ctx),
            MessageType::Release => self.release(&ctx),
            MessageType::Decline => self.decline(&ctx),
            MessageType::Inform => self.inform(&ctx),
            _ => Action::Silent(Silence::UnsupportedMessageType),
        }
    }

    /// Our ping for `ip` was answered: somebody uses it without a lease.
    /// Put it on probation so it is not offered again for a while.
    pub fn address_in_use(&mut self, ip: Ipv4Addr, now: i64) {
        let until = now + self.cfg.decline_probation.as_secs() as i64;
        self.table.set_probation(ip, until);
    }

    /// RFC 2131 §4.3.1.
    fn discover(&mut self, c: &Ctx<'_>) -> Action {
        let requested = requested_ip(c.req);
        let hold = self.cfg.offer_hold.as_secs() as i64;
        if self.circuit_full(c) {
            return Action::Silent(Silence::CircuitLimit);
        }
        let Some(offer) = self.table.offer(c.idx, c.client, requested, c.now, hold) else {
            return Action::Silent(Silence::PoolExhausted);
        };
        self.note_circuit(c, offer.ip);
        let reply = self.reply(c, MessageType::Offer, offer.ip);
        if self.cfg.ping_check && !offer.known {
            Action::PingThenSend {
                ip: offer.ip,
                reply,
            }
        } else {
            Action::Send(reply)
        }
    }

    /// RFC 2131 §4.3.2: the client's state decides which address it means.
    fn request(&mut self, c: &Ctx<'_>) -> Action {
        let server_id = match c.req.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        };
        let requested = requested_ip(c.req);
        let ciaddr = c.req.ciaddr();
        let ip = match (server_id, requested) {
            // SELECTING: answering some server's OFFER.
            (Some(sid), _) if sid != c.inc.iface_addr => {
                return Action::Silent(Silence::OtherServerChosen);
            }
            (Some(_), Some(ip)) => ip,
            (Some(_), None) if !ciaddr.is_unspecified() => ciaddr,
            (Some(_), None) => return Action::Silent(Silence::MissingRequestedAddress),
            // INIT-REBOOT: verifying a remembered address.
            (None, Some(ip)) if ciaddr.is_unspecified() => ip,
            // RENEWING (unicast) or REBINDING (broadcast): ciaddr is the address.
            _ if !ciaddr.is_unspecified() => ciaddr,
            _ => return Action::Silent(Silence::MissingRequestedAddress),
        };
        // A REQUEST straight for a free address (no DISCOVER) counts against
        // the circuit too.
        if !self.table.holds(&c.client.key, ip, c.now) && self.circuit_full(c) {
            return Action::Silent(Silence::CircuitLimit);
        }
        match self.table.check(c.idx, c.client, ip, c.now) {
            Ok(()) => {
                self.note_circuit(c, ip);
                let subnet = self.table.subnet(c.idx);
                let expires = c.now + subnet.lease_time.as_secs() as i64;
                let hostname = self
                    .table
                    .reservation(c.client)
                    .and_then(|r| r.hostname.clone())
                    .or_else(|| client_hostname(c.req));
                let lease = self.table.bind(c.client, ip, hostname, c.now, expires);
                let reply = self.reply(c, MessageType::Ack, ip);
                Action::Commit {
                    lease,
                    reply: Some(reply),
                }
            }
            // A wrong network or an address someone else holds: NAK
            // (RFC 2131 §4.3.2), so the client restarts at DISCOVER.
            Err(Refusal::WrongNetwork | Refusal::Taken) => Action::Send(self.nak(c)),
            // An address in our subnet we never hand out: only an
            // authoritative server may say no.
            Err(Refusal::NotOurs) if self.cfg.authoritative => Action::Send(self.nak(c)),
            Err(Refusal::NotOurs) => Action::Silent(Silence::NotAuthoritative),
        }
    }

    /// RFC 2131 §4.3.4: no reply; the address is free again. The client
    /// unicasts it from the address it gives up, so a RELEASE from another
    /// source (or, relayed, from another circuit) is not the holder's.
    fn release(&mut self, c: &Ctx<'_>) -> Action {
        let ip = c.req.ciaddr();
        let relayed = !c.req.giaddr().is_unspecified();
        if (!relayed && *c.inc.src.ip() != ip) || (relayed && !self.same_circuit(c, ip)) {
            return Action::Silent(Silence::NotFromHolder);
        }
        match self.table.release(c.client, ip, c.now) {
            Some(lease) => Action::Commit { lease, reply: None },
            None => Action::Silent(Silence::UnknownLease),
        }
    }

    /// RFC 2131 §4.3.3: the client saw the address in use; no reply. Only
    /// a fresh binding may be declined (see `LeaseTable::decline`), only
    /// from its circuit, and only while the subnet's probation has room;
    /// past that the address is simply freed (the ping check guards the
    /// next offer of it).
    fn decline(&mut self, c: &Ctx<'_>) -> Action {
        let Some(ip) = requested_ip(c.req) else {
            return Action::Silent(Silence::MissingRequestedAddress);
        };
        if !c.req.giaddr().is_unspecified() && !self.same_circuit(c, ip) {
            return Action::Silent(Silence::NotFromHolder);
        }
        let (on, cap) = self.table.probation(c.idx, c.now);
        if on >= cap {
            tracing::warn!(ip = %ip, mac = %c.client.mac, on_probation = on, "probation full: declined address freed instead");
            return match self.table.release(c.client, ip, c.now) {
                Some(lease) => Action::Commit { lease, reply: None },
                None => Action::Silent(Silence::UnknownLease),
            };
        }
        // With the ping check on, the next offer of this address pings it
        // first (and a reply sets the full probation, `address_in_use`), so
        // a DECLINE need not hold it long: a flood of them then costs
        // minutes, not the hour a conflict without the check deserves.
        let mut probation = self.cfg.decline_probation.as_secs() as i64;
        if self.cfg.ping_check {
            probation = probation.min(DECLINE_RECHECK);
        }
        match self.table.decline(c.client, ip, c.now, probation) {
            Some(lease) => Action::Commit { lease, reply: None },
            None => Action::Silent(Silence::UnknownLease),
        }
    }

    /// Whether the request's relay circuit is at `max_leases_per_circuit`
    /// without this client in it.
    fn circuit_full(&mut self, c: &Ctx<'_>) -> bool {
        let (Some(cap), Some(circuit)) = (self.cfg.max_leases_per_circuit, circuit(c.req)) else {
            return false;
        };
        let Some(held) = self.circuits.get_mut(&circuit) else {
            return false;
        };
        let table = &self.table;
        held.retain(|(k, ip)| table.holds(k, *ip, c.now));
        !held.iter().any(|(k, _)| *k == c.client.key) && held.len() >= cap
    }

    /// Remember that `ip` went to the client through its circuit.
    fn note_circuit(&mut self, c: &Ctx<'_>, ip: Ipv4Addr) {
        let Some(circuit) = circuit(c.req) else {
            self.circuit_of_ip.remove(&ip);
            return;
        };
        let held = self.circuits.entry(circuit.clone()).or_default();
        held.retain(|(k, _)| *k != c.client.key);
        held.push((c.client.key.clone(), ip));
        self.circuit_of_ip.insert(ip, circuit);
    }

    /// A relayed RELEASE/DECLINE for `ip` comes through the circuit the
    /// address was handed out through (unknown after a restart: allowed).
    fn same_circuit(&self, c: &Ctx<'_>, ip: Ipv4Addr) -> bool {
        match self.circuit_of_ip.get(&ip) {
            Some(known) => circuit(c.req).as_ref() == Some(known),
            None => true,
        }
    }

    /// RFC 2131 §4.3.5: configuration only, no lease, no lease time.
    fn inform(&mut self, c: &Ctx<'_>) -> Action {
        let mut reply = self.reply(c, MessageType::Ack, Ipv4Addr::UNSPECIFIED);
        let opts = reply.msg.opts_mut();
        opts.remove(OptionCode::AddressLeaseTime);
        opts.remove(OptionCode::Renewal);
        opts.remove(OptionCode::Rebinding);
        Action::Send(reply)
    }

    fn reply(&self, c: &Ctx<'_>, mtype: MessageType, yiaddr: Ipv4Addr) -> Reply {
        let req = c.req;
        let subnet: &Subnet = self.table.subnet(c.idx);
        let mut msg = base_reply(req);
        msg.set_yiaddr(yiaddr);
        // RFC 2131 Table 3: ciaddr is echoed in ACKs to RENEWING/REBINDING
        // and INFORM clients, and zero in OFFERs.
        if mtype == MessageType::Ack {
            msg.set_ciaddr(req.ciaddr());
        }
        let mut opts = self.options[c.idx].template.clone();
        opts.insert(DhcpOption::MessageType(mtype));
        opts.insert(DhcpOption::ServerIdentifier(c.inc.iface_addr));
        opts.insert(DhcpOption::AddressLeaseTime(
            subnet.lease_time.as_secs() as u32
        ));
        opts.insert(DhcpOption::Renewal(subnet.renew_time.as_secs() as u32));
        opts.insert(DhcpOption::Rebinding(subnet.rebind_time.as_secs() as u32));
        if let Some(name) = self
            .table
            .reservation(c.client)
            .and_then(|r| r.hostname.clone())
        {
            opts.insert(DhcpOption::Hostname(name));
        }
        if let Some(d) = self
            .boot
            .as_ref()
            .and_then(|b| b.decide(&pxe::boot_request(req), &c.client.mac))
        {
            tracing::debug!(xid = req.xid(), mac = %c.client.mac, file = %d.boot_file, kind = ?d.kind, "boot decision");
            pxe::apply(&d, &mut msg, &mut opts);
        }
        echo_relay_info(req, &mut opts);
        msg.set_opts(opts);
        Reply {
            to: destination(req, false, self.cfg.port),
            msg,
        }
    }

    fn nak(&self, c: &Ctx<'_>) -> Reply {
        let req = c.req;
        let mut msg = base_reply(req);
        let mut opts = DhcpOptions::new();
        opts.insert(DhcpOption::MessageType(MessageType::Nak));
        opts.insert(DhcpOption::ServerIdentifier(c.inc.iface_addr));
        opts.insert(DhcpOption::Message(
            "requested address not available".into(),
        ));
        echo_relay_info(req, &mut opts);
        msg.set_opts(opts);
        // RFC 2131 §4.3.2: a NAK through a relay asks it to broadcast.
        if !req.giaddr().is_unspecified() {
            msg.set_flags(Flags::default().set_broadcast());
        }
        Reply {
            to: destination(req, true, self.cfg.port),
            msg,
        }
    }
}

struct Ctx<'a> {
    req: &'a Message,
    inc: &'a Incoming,
    client: &'a Client,
    idx: usize,
    now: i64,
}

/// The fixed header of a reply: RFC 2131 Table 3.
fn base_reply(req: &Message) -> Message {
    let hlen = usize::from(req.hlen()).min(16);
    let mut msg = Message::new_with_id(
        req.xid(),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        req.giaddr(),
        &req.chaddr()[..hlen],
    );
    msg.set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_flags(req.flags());
    msg
}

/// The address that picks the client's subnet: for a relayed request the
/// link-selection sub-option (RFC 3527), else the subnet-selection option
/// (RFC 3011), else giaddr; for a direct one, our interface's address. A
/// client on our own segment does not choose another subnet with option
/// 118: it would get an address of a relay-only network it is not on
/// (RFC 3011 §3 lets the server ignore the option).
pub fn select_address(req: &Message, inc: &Incoming) -> Ipv4Addr {
    let giaddr = req.giaddr();
    if giaddr.is_unspecified() {
        return inc.iface_addr;
    }
    if let Some(DhcpOption::RelayAgentInformation(info)) =
        req.opts().get(OptionCode::RelayAgentInformation)
    {
        if let Some(RelayInfo::LinkSelection(ip)) = info.get(RelayCode::LinkSelection) {
            return *ip;
        }
    }
    if let Some(DhcpOption::SubnetSelection(ip)) = req.opts().get(OptionCode::SubnetSelection) {
        return *ip;
    }
    giaddr
}

/// A relay circuit: the relay (giaddr) and the port it saw the client on
/// (option 82 circuit-id, RFC 3046 §3.1), when the relay sends one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Circuit {
    relay: Ipv4Addr,
    circuit_id: Vec<u8>,
}

/// The circuit of a relayed request; `None` for a direct client.
fn circuit(req: &Message) -> Option<Circuit> {
    let relay = req.giaddr();
    if relay.is_unspecified() {
        return None;
    }
    let circuit_id = match req.opts().get(OptionCode::RelayAgentInformation) {
        Some(DhcpOption::RelayAgentInformation(info)) => {
            match info.get(RelayCode::AgentCircuitId) {
                Some(RelayInfo::AgentCircuitId(id)) => id.clone(),
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    };
    Some(Circuit { relay, circuit_id })
}

/// RFC 2131 §4.1: where a reply goes. Through a relay: to the relay's server
/// port. A NAK or a client without an address: broadcast. Otherwise unicast
/// to ciaddr. (Unicast to yiaddr before the client has its address would
/// need an ARP entry written by hand; broadcast works for every client.)
fn destination(req: &Message, nak: bool, server_port: u16) -> SocketAddrV4 {
    let client_port = server_port.wrapping_add(1);
    if !req.giaddr().is_unspecified() {
        SocketAddrV4::new(req.giaddr(), server_port)
    } else if nak || req.ciaddr().is_unspecified() {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port)
    } else {
        SocketAddrV4::new(req.ciaddr(), client_port)
    }
}

/// RFC 3046 §2.2: the relay agent information goes back as it came.
fn echo_relay_info(req: &Message, opts: &mut DhcpOptions) {
    if req.giaddr().is_unspecified() {
        return;
    }
    if let Some(info) = req.opts().get(OptionCode::RelayAgentInformation) {
        opts.insert(info.clone());
    }
}

fn requested_ip(req: &Message) -> Option<Ipv4Addr> {
    match req.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) if !ip.is_unspecified() => Some(*ip),
        _ => None,
    }
}

/// The client's name for itself: option 12, else the first label of the
/// FQDN option 81 (RFC 4702), cleaned to the DNS label dnsd will publish
/// it under (`labnet_store::clean_label`, the same rule as `lease_label`).
pub fn client_hostname(req: &Message) -> Option<String> {
    let raw = match req.opts().get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(h)) => h.clone(),
        _ => match req.opts().get(OptionCode::ClientFQDN) {
            Some(DhcpOption::ClientFQDN(f)) => f
                .domain()
                .iter()
                .next()
                .map(|l| String::from_utf8_lossy(l).into_owned())?,
            _ => return None,
        },
    };
    labnet_store::clean_label(&raw)
}

/// At most `per_second` packets per second per hardware address; a flood
/// from one client cannot starve the others. The table is bounded: it is
/// cleared whenever it grows past `MAX_TRACKED` clients.
struct RateLimiter {
    per_second: u32,
    seen: HashMap<Vec<u8>, (i64, u32)>,
}

const MAX_TRACKED: usize = 1 << 17;

impl RateLimiter {
    fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second,
            seen: HashMap::new(),
        }
    }

    fn allow(&mut self, chaddr: &[u8], now: i64) -> bool {
        if self.seen.len() >= MAX_TRACKED {
            self.seen.clear();
        }
        let e = self.seen.entry(chaddr.to_vec()).or_insert((now, 0));
        if e.0 != now {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 <= self.per_second
    }
}
