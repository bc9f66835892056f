//! Sockets and tasks: one listening socket per configured address, one task
//! and one connected socket per transfer.
//!
//! A transfer's socket is bound to the local IP of the listening socket that
//! got the request (port 0, a new TID as RFC 1350 §4 asks) and connected to
//! the client, so replies come from the address the client sent to and the
//! kernel drops datagrams from any other TID. With a wildcard listener
//! (`0.0.0.0:69`, `[::]:69`) the kernel picks the source by route instead.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use labnet_config::TftpConfig;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::error::{Error, Result};
use crate::files::{self, VirtualFiles, VIRTUAL_FILE_TIMEOUT};
use crate::mtu;
use crate::packet::{self, ErrorCode, Mode, Packet, Request};
use crate::transfer::{self, Limits, NetasciiReader, Out, Outcome, Transfer};

/// Read-ahead per transfer: one read syscall per this many bytes of file.
const READ_AHEAD: usize = 256 * 1024;
/// Smallest read-ahead when memory is short.
const MIN_READ_AHEAD: usize = 16 * 1024;
/// Memory all transfers together may hold in windows and read-ahead. Once
/// one client could make 512 transfers hold 1.3 MB each (656 MB); now a
/// transfer is granted what is left, down to lockstep with a small buffer.
const MEMORY_BUDGET: usize = 128 << 20;
/// How long shutdown waits for transfers to send their final ERROR.
const DRAIN: Duration = Duration::from_secs(5);

struct Shared {
    cfg: TftpConfig,
    root: PathBuf,
    upload_dir: Option<PathBuf>,
    files: Option<Arc<dyn VirtualFiles>>,
    permits: Arc<Semaphore>,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    /// Bytes of window and read-ahead granted to running transfers.
    memory: Arc<AtomicUsize>,
}

/// Memory granted to one transfer; returned to the budget when dropped.
struct MemoryGrant {
    pool: Arc<AtomicUsize>,
    bytes: usize,
}

impl MemoryGrant {
    /// Up to `want` bytes of what the budget has left, and never less than
    /// `floor` (a transfer always gets enough for lockstep; the transfer
    /// caps keep the floors' sum small).
    fn take(pool: &Arc<AtomicUsize>, want: usize, floor: usize) -> MemoryGrant {
        let mut bytes = floor;
        let _ = pool.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            bytes = MEMORY_BUDGET.saturating_sub(used).min(want).max(floor);
            Some(used + bytes)
        });
        MemoryGrant {
            pool: pool.clone(),
            bytes,
        }
    }

    /// Give back what the transfer turned out not to need.
    fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.pool.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for MemoryGrant {
    fn drop(&mut self) {
        self.pool.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Holds one of a client's transfer slots; frees it when dropped.
struct ClientSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Shared {
    fn claim(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut m = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.cfg.max_transfers_per_client {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            shared: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self
            .shared
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A bound server, ready to [`Server::serve`].
pub struct Server {
    listeners: Vec<UdpSocket>,
    shared: Arc<Shared>,
}

fn listen_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Keep [::]:69 and 0.0.0.0:69 apart so both can be configured.
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    let _ = s.set_recv_buffer_size(1 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn transfer_socket(local: SocketAddr, peer: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    // Room for a whole window in the kernel without blocking the task.
    let _ = s.set_send_buffer_size(1 << 20);
    s.set_nonblocking(true)?;
    s.bind(&local.into())?;
    s.connect(&peer.into())?;
    UdpSocket::from_std(s.into())
}

fn canonical_dir(key: &'static str, path: &Path) -> Result<PathBuf> {
    let dir = path.canonicalize().map_err(|source| Error::Dir {
        key,
        path: path.to_owned(),
        source,
    })?;
    if !dir.is_dir() {
        return Err(Error::Dir {
            key,
            path: path.to_owned(),
            source: io::Error::other("not a directory"),
        });
    }
    Ok(dir)
}

impl Server {
    /// Check the directories and bind every `listen` address. Must run
    /// inside a tokio runtime.
    pub fn bind(cfg: &TftpConfig, files: Option<Arc<dyn VirtualFiles>>) -> Result<Server> {
        let root = canonical_dir("root", &cfg.root)?;
        let upload_dir = cfg
            .upload_dir
            .as_deref()
            .map(|d| canonical_dir("upload_dir", d))
            .transpose()?;
        let listeners = cfg
            .listen
            .iter()
            .map(|&addr| listen_socket(addr).map_err(|source| Error::Bind { addr, source }))
            .collect::<Result<Vec<_>>>()?;
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                cfg: cfg.clone(),
                root,
                upload_dir,
                files,
                permits: Arc::new(Semaphore::new(cfg.max_transfers)),
                per_client: Mutex::new(HashMap::new()),
                memory: Arc::new(AtomicUsize::new(0)),
            }),
        })
    }

    /// The bound addresses (with the real port when 0 was configured).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Serve until `shutdown` is cancelled, then tell running transfers'
    /// clients and wait (bounded) for the tasks to end.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<()> {
        let addrs = self.local_addrs();
        let tracker = TaskTracker::new();
        for sock in self.listeners {
            let shared = self.shared.clone();
            let sd = shutdown.clone();
            let tr = tracker.clone();
            tracker.spawn(listen_loop(sock, shared, tr, sd));
        }
        info!(
            addrs = ?addrs,
            root = %self.shared.root.display(),
            uploads = self.shared.upload_dir.is_some(),
            "serving"
        );
        shutdown.cancelled().await;
        tracker.close();
        if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
            warn!("transfers still running after the shutdown deadline");
        }
        info!("stopped");
        Ok(())
    }
}

async fn listen_loop(
    sock: UdpSocket,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let local = match sock.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "listening socket has no address");
            return;
        }
    };
    let mut buf = vec![0u8; packet::MAX_PACKET];
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "recv on listening socket");
                    continue;
                }
            },
        };
        let req = match Packet::decode(&buf[..n]) {
            Ok(Packet::Request(r)) => r,
            Ok(_) => {
                debug!(peer = %peer, "non-request on the listening port ignored");
                continue;
            }
            Err(e) => {
                debug!(peer = %peer, error = %e, "malformed request");
                crate::metrics::refused_because("malformed");
                let code = if e == packet::DecodeError::BadMode {
                    ErrorCode::IllegalOperation
                } else {
                    ErrorCode::NotDefined
                };
                let _ = sock
                    .send_to(&packet::encode_error(code, &e.to_string()), peer)
                    .await;
                continue;
            }
        };
        debug!(peer = %peer, file = req.filename, write = req.write, options = ?req.options, "request");
        // Caps: the total first, then this client's share.
        let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
            static BUSY: labnet_daemon::LogLimit = labnet_daemon::LogLimit::new(5);
            if let Some(suppressed) = BUSY.allow() {
                info!(peer = %peer, file = req.filename, suppressed, "refused: server busy");
            }
            crate::metrics::refused_because("busy");
            let _ = sock
                .send_to(
                    &packet::encode_error(ErrorCode::NotDefined, "server busy"),
                    peer,
                )
                .await;
            continue;
        };
        let Some(slot) = shared.claim(peer.ip()) else {
            static CLIENT: labnet_daemon::LogLimit = labnet_daemon::LogLimit::new(5);
            if let Some(suppressed) = CLIENT.allow() {
                info!(peer = %peer, file = req.filename, suppressed, "refused: too many transfers for this client");
            }
            crate::metrics::refused_because("client_limit");
            let _ = sock
                .send_to(
                    &packet::encode_error(ErrorCode::NotDefined, "too many transfers from you"),
                    peer,
                )
                .await;
            continue;
        };
        let span = tracing::info_span!("transfer", peer = %peer, file = req.filename);
        let raw = buf[..n].to_vec();
        let local = SocketAddr::new(local.ip(), 0);
        let fut = transfer_task(shared.clone(), local, peer, raw, shutdown.clone());
        tracker.spawn(
            async move {
                fut.await;
                drop((permit, slot));
            }
            .instrument(span),
        );
    }
}

async fn transfer_task(
    shared: Arc<Shared>,
    local: SocketAddr,
    peer: SocketAddr,
    raw: Vec<u8>,
    shutdown: CancellationToken,
) {
    let Ok(Packet::Request(req)) = Packet::decode(&raw) else {
        return;
    };
    let sock = match transfer_socket(local, peer) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot open a transfer socket");
            return;
        }
    };
    let local_ip = sock.local_addr().map(|a| a.ip()).unwrap_or(local.ip());
    let cfg = &shared.cfg;
    let max_blksize = cfg.max_blksize.min(mtu::blksize_cap(local_ip, peer.ip()));
    let mut memory = MemoryGrant::take(
        &shared.memory,
        transfer::MAX_WINDOW_BYTES + READ_AHEAD,
        usize::from(max_blksize) + 4 + MIN_READ_AHEAD,
    );
    let read_ahead = (memory.bytes / 4).clamp(MIN_READ_AHEAD, READ_AHEAD);
    let limits = Limits {
        max_blksize,
        max_windowsize: cfg.max_windowsize,
        timeout: cfg.timeout,
        retries: cfg.retries,
        max_window_bytes: memory.bytes - read_ahead,
        max_stall: cfg.max_stall,
        max_life: cfg.max_transfer_time,
    };
    let started = Instant::now();
    let start = if req.write {
        start_write(&shared, &req, &limits, read_ahead, started).map(|(t, o, p)| (t, o, Some(p)))
    } else {
        start_read(&shared, &req, peer, &limits, read_ahead, started)
            .await
            .map(|(t, o)| (t, o, None))
    };
    let (mut t, outs, upload) = match start {
        Ok(x) => x,
        Err(e) => {
            let code = e.tftp_code();
            // A request flood for missing files must not become a log
            // flood (issue 12): a few lines a second, the rest counted.
            static REFUSED: labnet_daemon::LogLimit = labnet_daemon::LogLimit::new(10);
            if let Some(suppressed) = REFUSED.allow() {
                info!(code = code as u16, error = %e, write = req.write, suppressed, "refused");
            }
            crate::metrics::refused(code);
            let msg = match code {
                ErrorCode::NotDefined => "error".to_string(),
                _ => e.to_string(),
            };
            let _ = sock.send(&packet::encode_error(code, &msg)).await;
            return;
        }
    };
    let blksize = t.blksize();
    memory.shrink_to(t.window_bytes() + read_ahead);
    crate::metrics::started();
    let outcome = drive(&mut t, &sock, outs, &shutdown).await;
    let st = t.stats();
    crate::metrics::finished(req.write, &outcome, st, started.elapsed());
    let ms = started.elapsed().as_millis() as u64;
    match &outcome {
        Outcome::Complete => info!(
            write = req.write,
            bytes = st.bytes,
            blocks = st.blocks,
            blksize,
            retransmits = st.retransmits,
            ms,
            "transfer complete"
        ),
        Outcome::ClientError {
            probe: true,
            code,
            message,
        } => debug!(code, message, "size probe: client aborted after the OACK"),
        Outcome::ClientError { code, message, .. } => info!(
            code,
            message,
            bytes = st.bytes,
            ms,
            "transfer aborted by the client"
        ),
        other => {
            info!(outcome = ?other, bytes = st.bytes, retransmits = st.retransmits, ms, "transfer failed")
        }
    }
    if let (Some(path), false) = (upload, outcome == Outcome::Complete) {
        // Never leave a partial upload behind.
        let _ = std::fs::remove_file(path);
    }
}

/// Run a transfer to its end: send, wait for a packet or the deadline, repeat.
async fn drive(
    t: &mut Transfer,
    sock: &UdpSocket,
    mut outs: Vec<Out>,
    shutdown: &CancellationToken,
) -> Outcome {
    // Room for a whole DATA of an upload, or any reply to a read.
    let mut buf = vec![0u8; (t.blksize() + 5).max(1024)];
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let sleep = tokio::time::sleep_until(far());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        for o in outs.drain(..) {
            let r = match o {
                Out::Send(p) => sock.send(&p).await,
                Out::Data(slot) => sock.send(t.data(slot)).await,
                Out::Done(outcome) => return outcome,
            };
            if let Err(e) = r {
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    // ICMP port unreachable: the client is gone.
                    return Outcome::Local("client port unreachable".into());
                }
                debug!(error = %e, "send failed");
            }
        }
        // The deadline moves forward with every ACK. Re-arming the timer for
        // each packet costs more than a spurious wake-up, so only re-arm
        // when the deadline comes earlier than the armed one, or after the
        // timer fired (on_timeout ignores a deadline not yet reached).
        let deadline = t.deadline();
        let earlier = matches!((deadline, armed), (Some(d), Some(a)) if d < a);
        if armed.is_none() || earlier {
            let at = deadline
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(far);
            armed = Some(at.into_std());
            sleep.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let _ = sock
                    .send(&packet::encode_error(ErrorCode::NotDefined, "server shutting down"))
                    .await;
                return Outcome::Local("server shutting down".into());
            }
            r = sock.recv(&mut buf) => match r {
                Ok(n) => match Packet::decode(&buf[..n]) {
                    Ok(p) => {
                        debug!(packet = ?PacketSummary(&p), "received");
                        outs = t.on_packet(&p, Instant::now());
                    }
                    Err(e) => debug!(error = %e, "malformed packet ignored"),
                },
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Outcome::Local("client port unreachable".into());
                }
                Err(e) => debug!(error = %e, "recv failed"),
            },
            _ = &mut sleep => {
                armed = None;
                outs = t.on_timeout(Instant::now());
                if !outs.is_empty() {
                    debug!("timeout: retransmitting");
                }
            }
        }
    }
}

/// Short debug form of a packet (no payload bytes).
struct PacketSummary<'a, 'b>(&'a Packet<'b>);

impl std::fmt::Debug for PacketSummary<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Packet::Ack { block } => write!(f, "ACK {block}"),
            Packet::Data { block, data } => write!(f, "DATA {block} ({} bytes)", data.len()),
            Packet::Error { code, message } => write!(f, "ERROR {code} {message:?}"),
            Packet::Oack { .. } => f.write_str("OACK"),
            Packet::Request(r) => write!(f, "REQUEST {:?}", r.filename),
        }
    }
}

async fn start_read(
    shared: &Shared,
    req: &Request<'_>,
    peer: SocketAddr,
    limits: &Limits,
    read_ahead: usize,
    now: Instant,
) -> Result<(Transfer, Vec<Out>)> {
    let rel = files::normalize(req.filename, &shared.root)?;
    let mut generated = None;
    if let Some(vf) = &shared.files {
        match tokio::time::timeout(VIRTUAL_FILE_TIMEOUT, vf.get(&rel, peer)).await {
            Ok(found) => generated = found,
            Err(_) => warn!(file = %rel, "generated file lookup timed out; trying the disk"),
        }
    }
    let (source, size): (Box<dyn Read + Send>, u64) = match generated {
        Some(bytes) => {
            debug!(file = %rel, len = bytes.len(), "generated file");
            let len = bytes.len() as u64;
            (Box::new(Cursor::new(bytes)), len)
        }
        None => {
            let (f, len) = files::open_read(&shared.root, &rel)?;
            (Box::new(BufReader::with_capacity(read_ahead, f)), len)
        }
    };
    let (source, size): (Box<dyn Read + Send>, Option<u64>) = match req.mode {
        Mode::Octet => (source, Some(size)),
        // The converted size is unknown until read: no tsize in netascii.
        Mode::Netascii => (Box::new(NetasciiReader::new(source)), None),
    };
    let neg = transfer::negotiate(req, limits, size);
    debug!(blksize = neg.blksize, windowsize = neg.windowsize, oack = ?neg.oack, "negotiated");
    Ok(Transfer::read(source, &neg, limits, now))
}

fn start_write(
    shared: &Shared,
    req: &Request<'_>,
    limits: &Limits,
    read_ahead: usize,
    now: Instant,
) -> Result<(Transfer, Vec<Out>, PathBuf)> {
    // RFC 1350 §5: without an upload directory a write is an access violation.
    let Some(dir) = &shared.upload_dir else {
        return Err(Error::Access("uploads are disabled"));
    };
    let rel = files::normalize(req.filename, dir)?;
    let (f, path) = files::create_upload(dir, &rel)?;
    let sink: Box<dyn Write + Send> = Box::new(BufWriter::with_capacity(read_ahead, f));
    let neg = transfer::negotiate(req, limits, None);
    let (t, outs) = Transfer::write(sink, req.mode, &neg, limits, now);
    Ok((t, outs, path))
}
