//! Sockets, the view reloader and NOTIFY: everything with I/O.

use std::collections::{HashMap, HashSet};
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use labnet_config::{Config, GslbConfig};
use labnet_store::{unix_now, watch, Current, Store, StoreError, Topic, Watch};
use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, sendto, MsgFlags, MultiHeaders, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::gslb::health::{self, Prober};
use crate::gslb::{Gslb, GslbTable, HealthBook};
use crate::handler::{handle, Reply, Step, TransferAcl, Transport, View};
use crate::limits::{TcpAdmit, TcpLimits};
use crate::metrics::Via;
use crate::pipeline::{Link, Pipeline};
use crate::recursion::Recursion;
use crate::rrl::{Rrl, Verdict};
use crate::view::{build, LeaseZones, SerialState, Snapshot};
use crate::DnsError;

/// How long a UDP socket read blocks before its loop looks at shutdown.
const POLL: Duration = Duration::from_millis(250);
/// Datagrams taken by one `recvmmsg` (see [`udp_loop`]).
const UDP_BATCH: usize = 32;
/// Room for one query: RFC 6891 §6.2.5 lets a client offer up to 64 KiB,
/// but a query (one question, an OPT with a few options) is far smaller.
const UDP_SLOT: usize = 4096;
/// A TCP connection with no complete query for this long is closed.
/// At most this many TCP connections at once; more are closed at accept.
const TCP_MAX_CONNECTIONS: usize = 256;
/// At most this many from one client address, so that one host cannot fill
/// the server (16 hosts are needed to reach the global cap).
const TCP_PER_CLIENT: usize = 16;
/// Client queries waiting for upstream answers at once; more are dropped
/// (the client retries), so a flood of cache misses cannot grow memory.
const MAX_PENDING: usize = 4096;
/// How long shutdown waits for tasks to drain.
const DRAIN: Duration = Duration::from_secs(5);

/// The current view, swapped whole on reload.
type Shared = Current<View>;

/// labnet-dnsd with its config and store; [`Server::run`] serves until
/// `shutdown`.
pub struct Server {
    config: Config,
    store: Arc<dyn Store>,
    reload: Arc<Notify>,
}

impl Server {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Server {
        Server {
            config,
            store,
            reload: Arc::new(Notify::new()),
        }
    }

    /// Notify this to reload the view from the store now (SIGHUP).
    pub fn reload_trigger(&self) -> Arc<Notify> {
        self.reload.clone()
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DnsError> {
        let dns = self.config.require_dns("labnet-dnsd")?.clone();
        let acl = TransferAcl {
            secondaries: dns.secondaries.clone(),
            allow: dns.allow_transfer.clone(),
        };
        let leases_to = match &dns.lease_zone {
            Some(z) => Some(LeaseZones {
                zone: {
                    let mut n = Name::from_ascii(z)
                        .map_err(|e| DnsError::Zone(format!("lease_zone `{z}`: {e}")))?
                        .to_lowercase();
                    // Names hash with their FQDN flag: `lab.test` must
                    // match the zone `lab.test.`.
                    n.set_fqdn(true);
                    n
                },
                ttl: dns.lease_ttl,
                subnets: self
                    .config
                    .dhcp
                    .as_ref()
                    .map(|d| d.subnets.iter().map(|s| s.cidr).collect())
                    .unwrap_or_default(),
                ns_addr: dns.listen.iter().find_map(|a| match a.ip() {
                    IpAddr::V4(v4) if !v4.is_unspecified() && !v4.is_loopback() => Some(v4),
                    _ => None,
                }),
            }),
            None => None,
        };
        // GSLB before recursion: it answers its pools' names, and the
        // local link hands it CNAMEs into them.
        let mut more: Vec<Arc<dyn Link>> = vec![Arc::new(Gslb)];
        let book = Arc::new(HealthBook::default());
        if dns.recursion_allowed.is_empty() {
            tracing::info!("recursion off: recursion_allowed is empty");
        } else {
            let anchors = match crate::recursion::trust_anchors(&self.config)? {
                Ok(a) => {
                    tracing::info!(
                        anchors = if dns.trust_anchors.is_some() {
                            "trust_anchors"
                        } else {
                            "built-in IANA root KSKs"
                        },
                        "DNSSEC validation on"
                    );
                    Some(a)
                }
                Err(why) => {
                    tracing::info!(reason = why, "DNSSEC validation off");
                    None
                }
            };
            let r = Recursion::from_config(&dns, self.config.dns_root_hints()?, anchors)?;
            tracing::info!(
                mode = if !dns.forwarders.is_empty() {
                    "forwarding"
                } else if dns.root_hints.is_some() {
                    "iterating from root_hints"
                } else {
                    "iterating from the IANA root"
                },
                forward_zones = dns.forward.len(),
                cache_bytes = dns.cache_size,
                "recursion on"
            );
            more.push(Arc::new(r));
        }
        let pipeline = Arc::new(Pipeline::new(more));
        let pending = Arc::new(Semaphore::new(MAX_PENDING));
        // Follow the store from before the first build, so no write is
        // missed between the two.
        let watch = watch(
            self.store.clone(),
            &[
                Topic::Zones,
                Topic::Leases,
                Topic::Reservations,
                Topic::Gslb,
            ],
        )
        .await?;
        let mut reloader = Reloader {
            store: self.store.clone(),
            leases_to,
            recursion_allowed: dns.recursion_allowed.clone(),
            acl,
            serials: SerialState::default(),
            next_expiry: None,
            refused: HashSet::new(),
            gslb_config: dns.gslb.clone(),
            book: book.clone(),
            gslb: Arc::default(),
        };
        reloader.reload_gslb().await?;
        let first = reloader.rebuild().await?;
        let serials0 = serials(&first);
        let shared = Arc::new(Shared::new(first));

        // Bind everything before saying "serving".
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in &dns.listen {
            udp.extend(bind_udp(*addr)?);
            let l = bind_tcp(*addr)?;
            tcp.push(l);
        }
        let addrs: Vec<String> = tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.to_string())
            .collect();

        let tracker = TaskTracker::new();
        let rrl = Arc::new(Rrl::new(dns.rate_limit, dns.rate_limit_slip));
        if rrl.enabled() {
            tracing::info!(
                rate = dns.rate_limit,
                slip = dns.rate_limit_slip,
                "response rate limiting on for clients outside recursion_allowed"
            );
        }
        for sock in udp {
            let ctx = UdpCtx {
                sock: Arc::new(sock),
                shared: shared.clone(),
                pipeline: pipeline.clone(),
                pending: pending.clone(),
                rrl: rrl.clone(),
                runtime: tokio::runtime::Handle::current(),
                tracker: tracker.clone(),
            };
            let shutdown = shutdown.clone();
            tracker.spawn_blocking(move || udp_loop(ctx, shutdown));
        }
        let sem = Arc::new(Mutex::new(TcpLimits::new(
            TCP_PER_CLIENT,
            TCP_MAX_CONNECTIONS,
        )));
        for l in tcp {
            tracker.spawn(tcp_accept(
                l,
                shared.clone(),
                pipeline.clone(),
                sem.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        let notifier = Notifier {
            secondaries: dns.secondaries.clone(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        };
        // Tell the secondaries at start: they may have missed changes.
        notifier.notify_changed(&HashMap::new(), &serials0);
        tracker.spawn(health::run(
            Prober {
                book,
                store: self.store.clone(),
                interval: dns.gslb.health_interval,
                rise: dns.gslb.rise,
                fall: dns.gslb.fall,
                node: node_name(&addrs),
            },
            shutdown.clone(),
        ));
        let lost = Arc::new(std::sync::Mutex::new(None));
        tracker.spawn(reload_loop(
            reloader,
            watch,
            shared.clone(),
            self.reload.clone(),
            notifier,
            shutdown.clone(),
            lost.clone(),
        ));
        tracing::info!(addrs = ?addrs, zones = serials0.len(), "serving");
        labnet_daemon::ready();

        shutdown.cancelled().await;
        labnet_daemon::stopping();
        tracker.close();
        if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
            tracing::warn!("tasks did not stop in time");
        }
        tracing::info!("stopped");
        // The store went away under us (e.g. its file was replaced): exit
        // with the reason rather than serve a store no one writes.
        let lost = lost.lock().ok().and_then(|mut l| l.take());
        match lost {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

fn serials(view: &View) -> HashMap<Name, u32> {
    view.catalog
        .zones
        .iter()
        .map(|(n, z)| (n.clone(), z.serial))
        .collect()
}

struct Reloader {
    store: Arc<dyn Store>,
    leases_to: Option<LeaseZones>,
    recursion_allowed: Vec<ipnet::IpNet>,
    acl: TransferAcl,
    serials: SerialState,
    next_expiry: Option<i64>,
    /// Lease names refused at the last build, so each refusal is logged once.
    refused: HashSet<(Ipv4Addr, String)>,
    gslb_config: GslbConfig,
    /// Member health, kept across GSLB rebuilds.
    book: Arc<HealthBook>,
    /// The GSLB table, rebuilt only when `Topic::Gslb` moves (its maps can
    /// hold tens of thousands of prefixes; lease writes must not reload them).
    gslb: Arc<GslbTable>,
}

/// Who this dnsd is in GSLB health reports: the host name and the first
/// listening address (several dnsd may share a host).
fn node_name(addrs: &[String]) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "dnsd".into());
    match addrs.first() {
        Some(a) => format!("{host}/{a}"),
        None => host,
    }
}

impl Reloader {
    /// Read the GSLB tables from the store and build the table anew.
    async fn reload_gslb(&mut self) -> Result<(), DnsError> {
        let data = self.store.gslb_data().await?;
        let (table, warnings) = GslbTable::build(&data, &self.gslb_config, &self.book);
        for w in &warnings {
            tracing::warn!(problem = %w, "GSLB row skipped");
        }
        tracing::info!(
            pools = data.pools.len(),
            members = data.members.len(),
            isp_prefixes = data.isp_map.len(),
            region_prefixes = data.region_map.len(),
            "GSLB table built"
        );
        self.gslb = Arc::new(table);
        Ok(())
    }

    async fn rebuild(&mut self) -> Result<View, DnsError> {
        let now = unix_now();
        let snap = Snapshot {
            zones: self
                .store
                .zones()
                .await?
                .into_iter()
                .map(|z| (z.name, z.serial))
                .collect(),
            records: self.store.zone_records(None).await?,
            leases: if self.leases_to.is_some() {
                self.store.active_leases(now).await?
            } else {
                Vec::new()
            },
            reservations: if self.leases_to.is_some() {
                self.store.reservations().await?
            } else {
                Vec::new()
            },
        };
        let built = build(&snap, self.leases_to.as_ref(), &mut self.serials, now);
        for w in &built.warnings {
            tracing::warn!(problem = %w, "record skipped");
        }
        let mut refused = HashSet::new();
        for n in &built.refused {
            let key = (n.ip, n.name.clone());
            if !self.refused.contains(&key) {
                if let Err(why) = &n.outcome {
                    tracing::warn!(ip = %n.ip, name = %n.name, reason = %why, "lease name refused");
                }
            }
            refused.insert(key);
        }
        self.refused = refused;
        self.next_expiry = built.next_expiry;
        let view = View::with_gslb(built.catalog, self.acl.clone(), self.gslb.clone())
            .with_recursion_allowed(self.recursion_allowed.clone());
        tracing::debug!(
            zones = view.catalog.zones.len(),
            prebuilt = view.fast_len(),
            leases = snap.leases.len(),
            "view built"
        );
        Ok(view)
    }

    /// Whether a lease ran out since the last build.
    fn expired(&self) -> bool {
        self.next_expiry.is_some_and(|e| e <= unix_now())
    }
}

/// Rebuild the view when the store's zones or leases move (the store's
/// watcher says so), a lease runs out, or SIGHUP asks. A store that goes
/// away for good ([`StoreError::is_fatal`]) is put in `lost` and stops the
/// server.
async fn reload_loop(
    mut reloader: Reloader,
    mut watch: Watch,
    shared: Arc<Shared>,
    reload: Arc<Notify>,
    notifier: Notifier,
    shutdown: CancellationToken,
    lost: Arc<std::sync::Mutex<Option<StoreError>>>,
) {
    loop {
        let mut gslb_moved = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = watch.changed() => match r {
                Ok(topics) => gslb_moved = topics.contains(&Topic::Gslb),
                Err(e) => {
                    tracing::error!(error = %e, "the store is gone; stopping");
                    if let Ok(mut l) = lost.lock() {
                        *l = Some(e);
                    }
                    shutdown.cancel();
                    return;
                }
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => if !reloader.expired() { continue },
            // SIGHUP reloads everything.
            _ = reload.notified() => gslb_moved = true,
        }
        if gslb_moved {
            if let Err(e) = reloader.reload_gslb().await {
                tracing::warn!(error = %e, "cannot reload the GSLB table; serving the old one");
            }
        }
        match reloader.rebuild().await {
            Ok(view) => {
                let new = serials(&view);
                let old = shared.replace(view);
                let old = serials(&old);
                for (zone, serial) in &new {
                    if old.get(zone) != Some(serial) {
                        tracing::info!(zone = %zone, serial, "zone changed");
                    }
                }
                notifier.notify_changed(&old, &new);
            }
            Err(e) => tracing::warn!(error = %e, "cannot reload the view; serving the old one"),
        }
    }
}

fn bind_udp(addr: SocketAddr) -> Result<Vec<std::net::UdpSocket>, DnsError> {
    let bind_err = |source| DnsError::Bind { addr, source };
    // One socket per core with SO_REUSEPORT; the kernel spreads queries.
    let n = if addr.port() == 0 {
        1
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4)
    };
    let mut out = Vec::new();
    let mut addr = addr;
    for _ in 0..n {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(bind_err)?;
        if addr.is_ipv6() {
            s.set_only_v6(true).map_err(bind_err)?;
        }
        s.set_reuse_port(true).map_err(bind_err)?;
        let _ = s.set_recv_buffer_size(4 << 20);
        s.bind(&addr.into()).map_err(bind_err)?;
        s.set_read_timeout(Some(POLL)).map_err(bind_err)?;
        let std_sock: std::net::UdpSocket = s.into();
        if let Ok(a) = std_sock.local_addr() {
            addr = a;
        }
        out.push(std_sock);
    }
    Ok(out)
}

fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, DnsError> {
    let bind_err = |source| DnsError::Bind { addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_err)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(bind_err)?;
    }
    s.set_reuse_address(true).map_err(bind_err)?;
    s.set_nonblocking(true).map_err(bind_err)?;
    s.bind(&addr.into()).map_err(bind_err)?;
    s.listen(1024).map_err(bind_err)?;
    TcpListener::from_std(s.into()).map_err(bind_err)
}

/// What a UDP socket thread needs.
struct UdpCtx {
    sock: Arc<std::net::UdpSocket>,
    shared: Arc<Shared>,
    pipeline: Arc<Pipeline>,
    /// Bounds the client queries waiting on upstream work.
    pending: Arc<Semaphore>,
    rrl: Arc<Rrl>,
    runtime: tokio::runtime::Handle,
    tracker: TaskTracker,
}

/// One blocking thread per UDP socket: receive a batch, answer it, send the
/// replies. Blocking calls cost less per query than a reactor round trip,
/// and batches cost less than a call per datagram: `recvmmsg` with
/// `MSG_WAITFORONE` blocks for the first datagram and takes whatever else
/// is queued (up to [`UDP_BATCH`]) in the same call, and `sendmmsg` sends
/// the replies together. Under a light load a batch is one query, so the
/// latency is that of a plain recv/send. nix's safe wrappers do the calls
/// (`unsafe` is denied here). A query the pipeline cannot answer at once
/// (it waits on upstream servers) becomes a task on the runtime, which
/// sends the reply itself, so this thread goes straight back to the next
/// datagram.
fn udp_loop(u: UdpCtx, shutdown: CancellationToken) {
    let fd = u.sock.as_raw_fd();
    let mut bufs = vec![0u8; UDP_BATCH * UDP_SLOT];
    let mut rx_headers = MultiHeaders::<SockaddrStorage>::preallocate(UDP_BATCH, None);
    let mut got: Vec<(usize, SocketAddr)> = Vec::with_capacity(UDP_BATCH);
    let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(UDP_BATCH);
    let mut cached = u.shared.load();
    while !shutdown.is_cancelled() {
        got.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .chunks_mut(UDP_SLOT)
                .map(|c| [IoSliceMut::new(c)])
                .collect();
            match recvmmsg(
                fd,
                &mut rx_headers,
                &mut iovs,
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(msgs) => {
                    for m in msgs {
                        let src = m.address.as_ref().and_then(std_addr);
                        match src {
                            // A datagram cut short by its slot is no query we
                            // could answer right: leave it unanswered.
                            Some(src) if !m.flags.contains(MsgFlags::MSG_TRUNC) => {
                                got.push((m.bytes, src))
                            }
                            _ => got.push((0, SocketAddr::from(([0, 0, 0, 0], 0)))),
                        }
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "udp recv");
                    continue;
                }
            }
        }
        u.shared.refresh(&mut cached);
        let now = std::time::Instant::now();
        for (i, &(n, src)) in got.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let query = &bufs[i * UDP_SLOT..i * UDP_SLOT + n];
            match handle(query, src, Transport::Udp, &cached.1, &u.pipeline, now) {
                Step::Ready(Reply::Message(m)) => {
                    // Only replies decided here: a pending one is for a client
                    // that may recurse, which RRL spares.
                    let m = if u.rrl.enabled() && !cached.1.may_recurse(src.ip()) {
                        match u.rrl.check(&m, src.ip(), now) {
                            Verdict::Send => m,
                            Verdict::Slip(t) => {
                                crate::metrics::rate_limited(false);
                                t
                            }
                            Verdict::Drop => {
                                crate::metrics::rate_limited(true);
                                continue;
                            }
                        }
                    } else {
                        m
                    };
                    crate::metrics::reply(Via::Udp, &m);
                    replies.push((m, src));
                }
                Step::Ready(Reply::Stream(_) | Reply::Drop) => crate::metrics::dropped(Via::Udp),
                Step::Pending(ctx) => {
                    let Ok(permit) = u.pending.clone().try_acquire_owned() else {
                        tracing::debug!(peer = %src, "too many queries waiting upstream; dropped");
                        continue;
                    };
                    let (sock, pipeline, view) =
                        (u.sock.clone(), u.pipeline.clone(), cached.1.clone());
                    let _guard = u.runtime.enter();
                    u.tracker.spawn(async move {
                        let answer = pipeline.run(&ctx, &view).await;
                        if let Reply::Message(m) = ctx.reply(&answer) {
                            crate::metrics::reply(Via::Udp, &m);
                            // A UDP send does not block in practice (the socket
                            // buffer drains at line rate).
                            if let Err(e) = sock.send_to(&m, ctx.src) {
                                tracing::debug!(peer = %ctx.src, error = %e, "udp send");
                            }
                        }
                        drop(permit);
                    });
                }
            }
        }
        send_replies(fd, &replies);
        replies.clear();
    }
}

/// Send `replies` with `sendmmsg`, as few calls as the kernel takes; a reply
/// the kernel refuses (it comes first in the call that fails) is logged
/// and skipped.
fn send_replies(fd: RawFd, replies: &[(Vec<u8>, SocketAddr)]) {
    let mut i = 0;
    while i < replies.len() {
        let rest = &replies[i..];
        let r = if let [(m, dst)] = rest {
            sendto(fd, m, &SockaddrStorage::from(*dst), MsgFlags::empty()).map(|_| 1)
        } else {
            let iovs: Vec<[IoSlice<'_>; 1]> = rest.iter().map(|(m, _)| [IoSlice::new(m)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = rest
                .iter()
                .map(|(_, a)| Some(SockaddrStorage::from(*a)))
                .collect();
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(rest.len(), None);
            sendmmsg(fd, &mut headers, &iovs, &addrs, [], MsgFlags::empty()).map(|r| r.count())
        };
        match r {
            Ok(n) if n > 0 => i += n,
            Ok(_) => i += 1,
            Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::debug!(peer = %rest[0].1, error = %e, "udp send");
                i += 1;
            }
        }
    }
}

/// A received datagram's source as a std address.
fn std_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        Some(SocketAddr::V4((*v4).into()))
    } else {
        a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
    }
}

async fn tcp_accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    pipeline: Arc<Pipeline>,
    limits: Arc<Mutex<TcpLimits>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let admit = lock(&limits).admit(peer.ip());
        if admit != TcpAdmit::Yes {
            tracing::debug!(peer = %peer, why = ?admit, "tcp connection closed at accept");
            drop(stream);
            continue;
        }
        let slot = TcpSlot {
            limits: limits.clone(),
            ip: peer.ip(),
        };
        let shared = shared.clone();
        let pipeline = pipeline.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tcp_conn(stream, peer, shared, pipeline, &slot, shutdown).await;
        });
    }
}

fn lock(limits: &Mutex<TcpLimits>) -> std::sync::MutexGuard<'_, TcpLimits> {
    limits.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection's place in [`TcpLimits`], given back when it closes.
struct TcpSlot {
    limits: Arc<Mutex<TcpLimits>>,
    ip: IpAddr,
}

impl TcpSlot {
    fn idle_timeout(&self) -> Duration {
        lock(&self.limits).idle_timeout()
    }
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        lock(&self.limits).close(self.ip);
    }
}

/// RFC 7766: length-framed messages, several per connection, answered in
/// order; closed when idle (RFC 7766 §6.2.3: 10 s, 1 s once the server is
/// three quarters full, see [`TcpLimits::idle_timeout`]).
async fn tcp_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    pipeline: Arc<Pipeline>,
    slot: &TcpSlot,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut cached = shared.load();
    loop {
        let mut len = [0u8; 2];
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(slot.idle_timeout(), stream.read_exact(&mut len)) => r,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        match tokio::time::timeout(slot.idle_timeout(), stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        shared.refresh(&mut cached);
        let reply = match handle(
            &buf,
            peer,
            Transport::Tcp,
            &cached.1,
            &pipeline,
            std::time::Instant::now(),
        ) {
            Step::Ready(r) => r,
            Step::Pending(ctx) => ctx.reply(&pipeline.run(&ctx, &cached.1).await),
        };
        let msgs = match reply {
            Reply::Drop => {
                crate::metrics::dropped(Via::Tcp);
                continue;
            }
            Reply::Message(m) => vec![m],
            Reply::Stream(ms) => ms,
        };
        for m in msgs {
            crate::metrics::reply(Via::Tcp, &m);
            let mut out = Vec::with_capacity(m.len() + 2);
            out.extend_from_slice(&(m.len() as u16).to_be_bytes());
            out.extend_from_slice(&m);
            if let Err(e) = stream.write_all(&out).await {
                tracing::debug!(peer = %peer, error = %e, "tcp write");
                return;
            }
        }
    }
}

/// RFC 1996: tell the secondaries when a zone's serial moves.
struct Notifier {
    secondaries: Vec<SocketAddr>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Notifier {
    fn notify_changed(&self, old: &HashMap<Name, u32>, new: &HashMap<Name, u32>) {
        for (zone, serial) in new {
            if old.get(zone) == Some(serial) {
                continue;
            }
            for sec in &self.secondaries {
                let zone = zone.clone();
                let sec = *sec;
                let shutdown = self.shutdown.clone();
                self.tracker.spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = send_notify(zone, sec) => {}
                    }
                });
            }
        }
    }
}

/// RFC 1996 §3.6: retry until the secondary answers, a few times.
async fn send_notify(zone: Name, to: SocketAddr) {
    let bind: SocketAddr = if to.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
        return;
    };
    let id: u16 = (unix_now() as u16) ^ (zone.len() as u16).rotate_left(7);
    let mut msg = Message::new(id, MessageType::Query, OpCode::Notify);
    msg.metadata.authoritative = true;
    let mut q = Query::query(zone.clone(), RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    msg.add_query(q);
    let Ok(bytes) = msg.to_vec() else { return };
    let mut buf = [0u8; 512];
    for attempt in 0..5u32 {
        if sock.send_to(&bytes, to).await.is_err() {
            return;
        }
        let wait = Duration::from_secs(1 << attempt.min(3));
        if let Ok(Ok((n, _))) = tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
            if n >= 4 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
                tracing::info!(zone = %zone, secondary = %to, rcode = buf[3] & 0x0f, "notify acknowledged");
                return;
            }
        }
    }
    tracing::warn!(zone = %zone, secondary = %to, "notify not acknowledged");
}
