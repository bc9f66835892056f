//! Sockets, the view reloader and NOTIFY: everything with I/O.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use labnet_config::Config;
use labnet_store::{unix_now, watch, Store, StoreError, Topic, Watch};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::handler::{handle, Reply, TransferAcl, Transport, View};
use crate::view::{build, LeaseZones, SerialState, Snapshot};
use crate::DnsError;

/// How long a UDP socket read blocks before its loop looks at shutdown.
const POLL: Duration = Duration::from_millis(250);
/// A TCP connection with no complete query for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// At most this many TCP connections at once; more are closed at accept.
const TCP_MAX_CONNECTIONS: usize = 256;
/// How long shutdown waits for tasks to drain.
const DRAIN: Duration = Duration::from_secs(5);

/// The current view, swapped whole on reload. Readers keep their own `Arc`
/// and only take the lock when `version` has moved.
pub struct Shared {
    current: RwLock<Arc<View>>,
    version: AtomicU64,
}

impl Shared {
    pub fn new(view: View) -> Shared {
        Shared {
            current: RwLock::new(Arc::new(view)),
            version: AtomicU64::new(1),
        }
    }

    pub fn load(&self) -> (u64, Arc<View>) {
        let v = self.version.load(Ordering::Acquire);
        let view = match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        (v, view)
    }

    fn store(&self, view: View) -> Arc<View> {
        let new = Arc::new(view);
        let old = match self.current.write() {
            Ok(mut g) => std::mem::replace(&mut *g, new),
            Err(p) => std::mem::replace(&mut *p.into_inner(), new),
        };
        self.version.fetch_add(1, Ordering::AcqRel);
        old
    }

    /// Reload our cached view if a newer one exists.
    fn refresh(&self, cached: &mut (u64, Arc<View>)) {
        if self.version.load(Ordering::Acquire) != cached.0 {
            *cached = self.load();
        }
    }
}

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
        // Follow the store from before the first build, so no write is
        // missed between the two.
        let watch = watch(
            self.store.clone(),
            &[Topic::Zones, Topic::Leases, Topic::Reservations],
        )
        .await?;
        let mut reloader = Reloader {
            store: self.store.clone(),
            leases_to,
            acl,
            serials: SerialState::default(),
            next_expiry: None,
            refused: HashSet::new(),
        };
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
        for sock in udp {
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            tracker.spawn_blocking(move || udp_loop(sock, shared, shutdown));
        }
        let sem = Arc::new(Semaphore::new(TCP_MAX_CONNECTIONS));
        for l in tcp {
            tracker.spawn(tcp_accept(
                l,
                shared.clone(),
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
    acl: TransferAcl,
    serials: SerialState,
    next_expiry: Option<i64>,
    /// Lease names refused at the last build, so each refusal is logged once.
    refused: HashSet<(Ipv4Addr, String)>,
}

impl Reloader {
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
        let view = View::new(built.catalog, self.acl.clone());
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
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = watch.changed() => if let Err(e) = r {
                tracing::error!(error = %e, "the store is gone; stopping");
                if let Ok(mut l) = lost.lock() {
                    *l = Some(e);
                }
                shutdown.cancel();
                return;
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => if !reloader.expired() { continue },
            _ = reload.notified() => {}
        }
        match reloader.rebuild().await {
            Ok(view) => {
                let new = serials(&view);
                let old = shared.store(view);
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

/// One blocking thread per UDP socket: recv, answer, send. Blocking calls
/// cost less per query than a reactor round trip.
fn udp_loop(sock: std::net::UdpSocket, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 65535];
    let mut cached = shared.load();
    while !shutdown.is_cancelled() {
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp recv");
                continue;
            }
        };
        shared.refresh(&mut cached);
        match handle(&buf[..n], src, Transport::Udp, &cached.1) {
            Reply::Message(m) => {
                if let Err(e) = sock.send_to(&m, src) {
                    tracing::debug!(peer = %src, error = %e, "udp send");
                }
            }
            Reply::Stream(_) | Reply::Drop => {}
        }
    }
}

async fn tcp_accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    sem: Arc<Semaphore>,
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
        let Ok(permit) = sem.clone().try_acquire_owned() else {
            tracing::debug!(peer = %peer, "tcp connection cap reached");
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tcp_conn(stream, peer, shared, shutdown).await;
            drop(permit);
        });
    }
}

/// RFC 7766: length-framed messages, several per connection, answered in
/// order; closed after `TCP_IDLE` without a query.
async fn tcp_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut cached = shared.load();
    loop {
        let mut len = [0u8; 2];
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)) => r,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        shared.refresh(&mut cached);
        let msgs = match handle(&buf, peer, Transport::Tcp, &cached.1) {
            Reply::Drop => continue,
            Reply::Message(m) => vec![m],
            Reply::Stream(ms) => ms,
        };
        for m in msgs {
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
