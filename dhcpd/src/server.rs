//! The socket side: one UDP socket per served interface, the core task, the
//! committer, the pinger and the store watcher.
//!
//! ```text
//! interface task ──decode──▶ Dhcp::handle (under a mutex) ──▶ send OFFER / NAK
//!                                  │                        ──▶ pinger ──▶ OFFER
//!                                  ▼
//!                              committer: batch → store.commit_leases → send ACKs
//! event task: ping results, store watcher (reservations, admin releases), expiry sweep
//! ```
//!
//! Each socket is bound to its device (`SO_BINDTODEVICE`) on 0.0.0.0:67, so
//! the receiving interface is known without `IP_PKTINFO`, and broadcasts
//! leave through the interface the request came in on. The committer is the
//! only place ACKs are sent, and only after the transaction holding their
//! leases has committed; while one commit runs the next batch fills up
//! (group commit).
//!
//! Several nodes on one store (PostgreSQL): each node keeps its own lease
//! table, and the store is the judge. Every lease write is a conditional
//! claim ([`labnet_store::LeaseStore::commit_leases`]): the database takes
//! it only when it does not show the address held by another client, in the
//! same group-committed transaction, so no address is committed to two
//! clients and no ACK leaves for a lease that was refused. A refused
//! client gets no ACK; its node learns the holder's row, so its retry is
//! NAKed and it starts over with an address that is free. This was chosen
//! over an RFC 3074 hash split of the clients (Kea's load-balancing HA)
//! because it needs no node list, no peer heartbeats and no takeover
//! state: any node serves any client, which is also what lets a survivor
//! serve the renewal or rebinding broadcast of a client whose node died
//! (its REQUEST for its own address is a claim the database grants, the
//! same client holding it). The cost is that two nodes answering the same
//! DISCOVER may offer one address to two clients; one REQUEST then loses
//! and is retried.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhcproto::v4::Message;
use dhcproto::{Encodable, Encoder};
use labnet_config::{DhcpConfig, PxeConfig};
use labnet_pxe::BootFiles;
use labnet_store::{
    unix_now, watch, Lease, LeaseState, Reservation, Store, StoreError, Topic, Watch,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::core::{Action, Dhcp, Incoming, Reply, Silence};
use crate::ping::Pinger;
use crate::DhcpError;

/// Larger datagrams are not DHCP we serve (an Ethernet frame holds 1500).
const MAX_PACKET: usize = 1500;
/// RFC 1542 §2.1: BOOTP relays and old clients expect at least 300 bytes.
const MIN_REPLY: usize = 300;
/// ACKs waiting for the committer; when full, the interface tasks wait
/// (and the socket buffers absorb the burst).
const QUEUE: usize = 8192;
/// Least time between two reads of other nodes' leases (shared store).
const PEER_LEASES_EVERY: Duration = Duration::from_millis(200);
/// How long a busy committer lets a batch fill before writing it.
const LINGER: Duration = Duration::from_millis(4);
/// Offers re-tried after a ping found the address in use.
const PING_RETRIES: u8 = 2;

struct Iface {
    name: String,
    addr: Ipv4Addr,
    sock: Arc<UdpSocket>,
}

enum Event {
    PingDone {
        iface: usize,
        src: SocketAddrV4,
        req: Box<Message>,
        reply: Box<Reply>,
        ip: Ipv4Addr,
        in_use: bool,
        attempt: u8,
    },
    Reservations(Vec<Reservation>),
    AdminLeases(Vec<Lease>),
    /// The store is gone for good (its file replaced): stop.
    StoreLost(StoreError),
    /// Leases the store refused: their addresses are held by other clients
    /// (bound by another node); these are the holders' rows.
    HeldElsewhere(Vec<Lease>),
    /// Leases written to a shared store since we last looked (by other
    /// nodes, and ours).
    PeerLeases(Vec<Lease>),
}

/// Hands a re-read `[dhcp]` section to a running server (SIGHUP).
#[derive(Clone)]
pub struct Reconfigure(mpsc::Sender<DhcpConfig>);

impl Reconfigure {
    /// Serve `cfg` from the next packet on; see [`Dhcp::reconfigure`].
    pub async fn send(&self, cfg: DhcpConfig) {
        if self.0.send(cfg).await.is_err() {
            warn!("the server has stopped; new config not applied");
        }
    }
}

struct Pending {
    lease: Lease,
    reply: Option<(usize, Vec<u8>, SocketAddrV4)>,
}

/// A DHCP server with its sockets bound and its lease table loaded.
pub struct Server {
    core: Dhcp,
    store: Arc<dyn Store>,
    watch: Watch,
    lease_seq: i64,
    ifaces: Arc<Vec<Iface>>,
    reload: Arc<Notify>,
    reconfig: (mpsc::Sender<DhcpConfig>, mpsc::Receiver<DhcpConfig>),
}

impl Server {
    /// Load the store and bind one socket per configured interface.
    pub async fn bind(cfg: &DhcpConfig, store: Arc<dyn Store>) -> Result<Server, DhcpError> {
        let mut core = Dhcp::new(Arc::new(cfg.clone()));
        // Follow the store from before loading, so no change falls between.
        // On a store other nodes write to, follow their leases too.
        let mut topics = vec![Topic::Reservations, Topic::LeaseAdmin];
        if store.shared() {
            topics.push(Topic::Leases);
        }
        let watch = watch(store.clone(), &topics).await?;
        // Rows written after this generation are newer than the load below.
        let lease_seq = store.generation(Topic::Leases).await?;
        let now = unix_now();
        core.table.load(store.load_leases().await?, now);
        core.table.set_reservations(store.reservations().await?);
        let mut ifaces = Vec::new();
        for name in &cfg.interfaces {
            let addr = interface_address(name, cfg)?;
            let sock = bind_socket(name, cfg.port)?;
            ifaces.push(Iface {
                name: name.clone(),
                addr,
                sock: Arc::new(sock),
            });
        }
        Ok(Server {
            core,
            store,
            watch,
            lease_seq,
            ifaces: Arc::new(ifaces),
            reload: Arc::new(Notify::new()),
            reconfig: mpsc::channel(4),
        })
    }

    /// Serve network boot: answer PXE and iPXE clients with boot decisions
    /// from `pxe` and the boot profiles in the store (kept fresh by a
    /// watcher while the server runs).
    pub async fn with_pxe(mut self, pxe: PxeConfig) -> Result<Server, DhcpError> {
        let files = BootFiles::load(self.store.clone(), pxe).await?;
        self.core.set_boot(Arc::new(files));
        Ok(self)
    }

    /// Wake the store watcher now (SIGHUP).
    pub fn reload_handle(&self) -> Arc<Notify> {
        self.reload.clone()
    }

    /// Give the running server a new `[dhcp]` section (SIGHUP).
    pub fn reconfigure_handle(&self) -> Reconfigure {
        Reconfigure(self.reconfig.0.clone())
    }

    /// Serve until `shutdown` is cancelled; pending commits are finished
    /// (and their ACKs sent) before this returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DhcpError> {
        let Server {
            core,
            store,
            watch,
            lease_seq,
            ifaces,
            reload,
            reconfig: (_, mut reconfig_rx),
        } = self;
        let cfg = core.config().clone();
        let tracker = TaskTracker::new();
        let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(1024);
        let (commit_tx, commit_rx) = mpsc::channel::<Pending>(QUEUE);
        // Boot profiles follow the store like reservations do; decisions
        // read them from memory.
        if let Some(boot) = core.boot().cloned() {
            let stop = shutdown.clone();
            tracker.spawn(async move {
                tokio::select! {
                    // A fatal store error reaches the lease watcher too,
                    // which stops the server.
                    _ = boot.follow() => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
        let pinger = if cfg.ping_check {
            match Pinger::open() {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(error = %e, "cannot open an ICMP socket; offering without ping checks");
                    None
                }
            }
        } else {
            None
        };
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            ifaces: ifaces.clone(),
            commit_tx,
            ev_tx: ev_tx.clone(),
            pinger,
            ping_timeout: cfg.ping_timeout,
        });
        for (i, iface) in ifaces.iter().enumerate() {
            info!(interface = %iface.name, address = %iface.addr, "serving");
            tracker.spawn(serve_interface(i, shared.clone(), shutdown.clone()));
        }
        tracker.spawn(committer(
            store.clone(),
            ifaces.clone(),
            commit_rx,
            cfg.commit_batch,
            ev_tx.clone(),
        ));
        tracker.spawn(watcher(
            store.clone(),
            watch,
            lease_seq,
            ev_tx.clone(),
            reload,
            shutdown.clone(),
        ));
        drop(ev_tx);

        // Events that are not packets: ping results, store changes, the clock.
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        let mut lost = None;
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    let mut core = shared.lock();
                    let now = unix_now();
                    core.table.sweep(now);
                    crate::metrics::pools(&core.table.pool_usage(now));
                    continue;
                }
                ev = ev_rx.recv() => match ev { Some(ev) => ev, None => break },
                Some(new) = reconfig_rx.recv() => {
                    reconfigure(&shared, &cfg, new);
                    continue;
                }
            };
            let now = unix_now();
            match ev {
                Event::PingDone {
                    iface,
                    src,
                    req,
                    reply,
                    ip,
                    in_use,
                    attempt,
                } => {
                    if !in_use {
                        send(&ifaces[iface], &reply).await;
                        continue;
                    }
                    warn!(%ip, "address answered a ping but has no lease; putting it on probation");
                    shared.lock().address_in_use(ip, now);
                    if attempt < PING_RETRIES {
                        shared.handle(iface, src, &req, attempt + 1).await;
                    }
                }
                Event::Reservations(rs) => {
                    info!(count = rs.len(), "reservations reloaded");
                    shared.lock().table.set_reservations(rs);
                }
                Event::AdminLeases(leases) => {
                    let mut core = shared.lock();
                    for l in leases.iter().filter(|l| l.state != LeaseState::Bound) {
                        core.table.admin_release(l, now);
                    }
                }
                Event::HeldElsewhere(holders) => {
                    // Learn the other node's bindings, so these addresses
                    // are not offered again while held; the refused
                    // client's retry is NAKed and it starts over.
                    shared.lock().table.load(holders, now);
                }
                Event::PeerLeases(leases) => {
                    shared.lock().table.merge_stored(leases, now);
                }
                Event::StoreLost(e) => {
                    error!(error = %e, "the store is gone; stopping");
                    lost = Some(e);
                    shutdown.cancel();
                    break;
                }
            }
        }
        tracker.close();
        // The interface tasks stop on the token; the committer ends when the
        // last sender is gone, after writing what it holds.
        drop(shared);
        if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
            .await
            .is_err()
        {
            warn!("tasks did not finish within 10s of shutdown");
        }
        match lost {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Apply a re-read `[dhcp]` section. What was bound at start (interfaces,
/// port, commit batch, ping check) stays as it was, with a warning.
fn reconfigure(shared: &Shared, started: &DhcpConfig, new: DhcpConfig) {
    if new.interfaces != started.interfaces || new.port != started.port {
        warn!(
            interfaces = ?new.interfaces,
            port = new.port,
            "dhcp.interfaces and dhcp.port take effect at the next restart"
        );
    }
    let subnets = new.subnets.len();
    shared.lock().reconfigure(Arc::new(new));
    info!(subnets, "config reloaded");
}

/// What the interface tasks share. The core sits behind a mutex that is
/// held for one `handle` call at a time, never across an await.
struct Shared {
    core: Mutex<Dhcp>,
    ifaces: Arc<Vec<Iface>>,
    commit_tx: mpsc::Sender<Pending>,
    ev_tx: mpsc::Sender<Event>,
    pinger: Option<Arc<Pinger>>,
    ping_timeout: Duration,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Dhcp> {
        // Poisoning would only follow a panic inside `handle`; the table is
        // still consistent between calls, so keep serving.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run the core on one request and carry out its action.
    async fn handle(&self, iface: usize, src: SocketAddrV4, req: &Message, attempt: u8) {
        let inc = Incoming {
            iface_addr: self.ifaces[iface].addr,
            src,
        };
        let action = self.lock().handle(req, &inc, unix_now());
        crate::metrics::packet(req.opts().msg_type(), &action);
        match action {
            Action::Silent(Silence::PoolExhausted) => {
                // Once a second is enough to say it; a DISCOVER flood must
                // not become a log flood (issue 12).
                static EXHAUSTED: labnet_daemon::LogLimit = labnet_daemon::LogLimit::new(1);
                if let Some(suppressed) = EXHAUSTED.allow() {
                    warn!(xid = req.xid(), interface = %self.ifaces[iface].name, suppressed, "no free address in the pool");
                }
            }
            Action::Silent(why) => debug!(xid = req.xid(), peer = %src, ?why, "no reply"),
            Action::Send(reply) => send(&self.ifaces[iface], &reply).await,
            Action::PingThenSend { ip, reply } => match &self.pinger {
                Some(p) => {
                    let (p, tx, timeout) = (p.clone(), self.ev_tx.clone(), self.ping_timeout);
                    let req = Box::new(req.clone());
                    tokio::spawn(async move {
                        let in_use = p.in_use(ip, timeout).await;
                        let _ = tx
                            .send(Event::PingDone {
                                iface,
                                src,
                                req,
                                reply: Box::new(reply),
                                ip,
                                in_use,
                                attempt,
                            })
                            .await;
                    });
                }
                None => send(&self.ifaces[iface], &reply).await,
            },
            Action::Commit { lease, reply } => {
                let reply = reply.and_then(|r| encode(&r).map(|b| (iface, b, r.to)));
                if self.commit_tx.send(Pending { lease, reply }).await.is_err() {
                    error!("the committer has stopped; ACK withheld");
                }
            }
        }
    }
}

/// Receive on one interface until shutdown. Each wakeup drains every
/// datagram already queued on the socket before waiting again.
async fn serve_interface(iface: usize, shared: Arc<Shared>, shutdown: CancellationToken) {
    let sock = shared.ifaces[iface].sock.clone();
    let mut buf = vec![0u8; MAX_PACKET + 1];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = sock.readable() => if let Err(e) = r {
                debug!(error = %e, "socket not readable");
                continue;
            },
        }
        loop {
            let (n, src) = match sock.try_recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!(error = %e, "recv failed");
                    break;
                }
            };
            let SocketAddr::V4(src) = src else { continue };
            if n > MAX_PACKET {
                debug!(peer = %src, "oversized packet dropped");
                continue;
            }
            match crate::wire::decode(&buf[..n]) {
                Ok(msg) => shared.handle(iface, src, &msg, 0).await,
                Err(why) => {
                    crate::metrics::malformed();
                    debug!(peer = %src, ?why, len = n, "malformed packet dropped");
                }
            }
        }
    }
}

/// Group commit: take what has queued up (at most `batch`), write it in one
/// transaction, then send the ACKs it carries.
async fn committer(
    store: Arc<dyn Store>,
    ifaces: Arc<Vec<Iface>>,
    mut rx: mpsc::Receiver<Pending>,
    batch: usize,
    events: mpsc::Sender<Event>,
) {
    let mut pending: Vec<Pending> = Vec::with_capacity(batch);
    let mut busy = false;
    // Failures are logged when they start and when they end, not per batch.
    let mut withheld = 0usize;
    while rx.recv_many(&mut pending, batch).await > 0 {
        // Under load, let the batch fill for a moment: each commit has a
        // fixed cost (a WAL append, an fsync, thread hand-offs), so fewer,
        // larger batches serve more clients per second. An idle server
        // (last batch of one) commits at once.
        if busy && pending.len() < batch {
            tokio::time::sleep(LINGER).await;
            while pending.len() < batch {
                match rx.try_recv() {
                    Ok(p) => pending.push(p),
                    Err(_) => break,
                }
            }
        }
        busy = pending.len() > 1;
        let leases: Vec<Lease> = pending.iter().map(|p| p.lease.clone()).collect();
        let started = std::time::Instant::now();
        let committed = store.commit_leases(&leases).await;
        crate::metrics::commit(leases.len(), started.elapsed(), committed.is_ok());
        match committed {
            Ok(holders) => {
                if withheld > 0 {
                    info!(withheld, "lease commits work again");
                    withheld = 0;
                }
                let refused: std::collections::HashSet<Ipv4Addr> =
                    holders.iter().map(|l| l.ip).collect();
                for p in pending.drain(..) {
                    if refused.contains(&p.lease.ip) {
                        warn!(ip = %p.lease.ip, mac = %p.lease.mac, "the store shows this address held by another client (another node bound it); no ACK");
                    } else if let Some((iface, bytes, to)) = p.reply {
                        send_bytes(&ifaces[iface], &bytes, to).await;
                        info!(ip = %p.lease.ip, mac = %p.lease.mac, hostname = p.lease.hostname.as_deref().unwrap_or(""), "DHCPACK");
                    } else {
                        info!(ip = %p.lease.ip, mac = %p.lease.mac, state = p.lease.state.as_str(), "lease updated");
                    }
                }
                if !holders.is_empty() {
                    let _ = events.send(Event::HeldElsewhere(holders)).await;
                }
            }
            Err(e) => {
                // No ACK for an uncommitted lease: the clients will retry.
                if withheld == 0 {
                    error!(error = %e, count = pending.len(), "lease commit failed; ACKs withheld until the store takes commits again");
                }
                withheld += pending.len();
                pending.clear();
                if e.is_fatal() {
                    let _ = events.send(Event::StoreLost(e)).await;
                }
            }
        }
    }
}

/// Follow the store: reservations, lease releases an admin made, and on a
/// shared store the leases other nodes write.
/// SIGHUP (`reload`) reloads both whether or not the store moved.
async fn watcher(
    store: Arc<dyn Store>,
    mut watch: Watch,
    mut lease_seq: i64,
    tx: mpsc::Sender<Event>,
    reload: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let moved = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = watch.changed() => match r {
                Ok(moved) => moved,
                Err(e) => {
                    let _ = tx.send(Event::StoreLost(e)).await;
                    return;
                }
            },
            _ = reload.notified() => vec![Topic::Reservations, Topic::LeaseAdmin],
        };
        if moved.contains(&Topic::Reservations) {
            match store.reservations().await {
                Ok(rs) => {
                    let _ = tx.send(Event::Reservations(rs)).await;
                }
                Err(e) => warn!(error = %e, "cannot reload reservations"),
            }
        }
        if moved.contains(&Topic::Leases) {
            // Another node's leases (a shared store): only what changed.
            match store.leases_since(lease_seq).await {
                Ok((ls, seq)) => {
                    lease_seq = seq;
                    let _ = tx.send(Event::PeerLeases(ls)).await;
                }
                Err(e) => warn!(error = %e, "cannot read other nodes' leases"),
            }
            // Under load the counter moves with every batch: read at most
            // a few times a second.
            tokio::time::sleep(PEER_LEASES_EVERY).await;
        }
        if moved.contains(&Topic::LeaseAdmin) {
            match store.load_leases().await {
                Ok(ls) => {
                    let _ = tx.send(Event::AdminLeases(ls)).await;
                }
                Err(e) => warn!(error = %e, "cannot reload leases"),
            }
        }
    }
}

fn encode(reply: &Reply) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(576);
    if let Err(e) = reply.msg.encode(&mut Encoder::new(&mut buf)) {
        error!(error = %e, "cannot encode a reply");
        return None;
    }
    if buf.len() < MIN_REPLY {
        buf.resize(MIN_REPLY, 0);
    }
    Some(buf)
}

async fn send(iface: &Iface, reply: &Reply) {
    if let Some(bytes) = encode(reply) {
        send_bytes(iface, &bytes, reply.to).await;
        if let Some(t) = reply.msg.opts().msg_type() {
            info!(kind = ?t, ip = %reply.msg.yiaddr(), to = %reply.to, "reply");
        }
    }
}

async fn send_bytes(iface: &Iface, bytes: &[u8], to: SocketAddrV4) {
    if let Err(e) = iface.sock.send_to(bytes, to).await {
        warn!(interface = %iface.name, %to, error = %e, "send failed");
    }
}

/// One socket per interface, bound to the device so that the interface a
/// packet came in on is known, and broadcasts leave through it.
fn bind_socket(iface: &str, port: u16) -> Result<UdpSocket, DhcpError> {
    let io = |source| DhcpError::Socket {
        interface: iface.to_owned(),
        source,
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
    s.set_reuse_address(true).map_err(io)?;
    s.set_broadcast(true).map_err(io)?;
    // Room for a burst (a relay forwarding a whole rack that powered on at
    // once); the kernel caps this at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(1 << 20);
    s.bind_device(Some(iface.as_bytes())).map_err(io)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
        .map_err(io)?;
    s.set_nonblocking(true).map_err(io)?;
    UdpSocket::from_std(s.into()).map_err(io)
}

/// The interface's IPv4 address that lies in a configured subnet (else its
/// first IPv4 address: relayed clients may be served through it).
fn interface_address(name: &str, cfg: &DhcpConfig) -> Result<Ipv4Addr, DhcpError> {
    let addrs: Vec<Ipv4Addr> = nix::ifaddrs::getifaddrs()
        .map_err(|e| DhcpError::Interface {
            interface: name.to_owned(),
            reason: e.to_string(),
        })?
        .filter(|a| a.interface_name == name)
        .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
        .collect();
    addrs
        .iter()
        .find(|a| cfg.subnets.iter().any(|s| s.cidr.contains(*a)))
        .or(addrs.first())
        .copied()
        .ok_or_else(|| DhcpError::Interface {
            interface: name.to_owned(),
            reason: "it does not exist or has no IPv4 address".into(),
        })
}
