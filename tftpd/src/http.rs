//! `[http]`: the TFTP root and the generated PXE files over HTTP/1.1, for
//! iPXE and UEFI HTTP boot (UEFI spec 2.x §24.7), on hyper.
//!
//! Why here, in labnet-tftpd: HTTP boot serves exactly what TFTP serves —
//! the same root, confined by the same checks ([`files::normalize`],
//! [`files::open_read`]), and the same generated pxelinux configs and iPXE
//! scripts ([`VirtualFiles`], kept fresh from the store by labnet-pxe). One
//! process owning "the boot files" keeps one copy of the profile book, one
//! store watcher and one place that decides what a path means; a separate
//! daemon would duplicate all three for a listener.
//!
//! A request flows: accept (at most `max_connections` at once: the accept
//! loop waits for a permit, so more clients wait in the kernel's backlog) →
//! hyper parses it (`timeout` to send the headers, `max_connection_time` for
//! the whole connection) → [`respond`]: GET and HEAD only (405 otherwise);
//! the path is percent-decoded and normalised as a TFTP name, generated
//! files first, then the disk; one byte range (`Range: bytes=a-b`, RFC 9110
//! §14) is answered 206, an unsatisfiable one 416, several or a malformed
//! one are ignored (§14.2 lets a server) and the whole file sent; file
//! bodies stream from disk 64 KiB at a time, never loaded whole.
//!
//! Range parsing is `http-range-header`'s (the parser tower-http uses); the
//! protocol is hyper's. Nothing of HTTP is written by hand here.

use std::convert::Infallible;
use std::io::{self, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use labnet_config::HttpConfig;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::files::{self, VirtualFiles, VIRTUAL_FILE_TIMEOUT};
use crate::metrics;

/// Bytes read from disk per body chunk.
const CHUNK: usize = 64 * 1024;
/// How long shutdown waits for responses in flight.
const DRAIN: Duration = Duration::from_secs(5);

type Body = BoxBody<Bytes, io::Error>;

struct Shared {
    cfg: HttpConfig,
    root: PathBuf,
    files: Option<Arc<dyn VirtualFiles>>,
}

/// A bound HTTP server, ready to [`HttpServer::serve`].
pub struct HttpServer {
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
}

fn listen_socket(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

impl HttpServer {
    /// Bind every `[http] listen` address to serve `root` (the TFTP root)
    /// and `files`. Must run inside a tokio runtime.
    pub fn bind(
        cfg: &HttpConfig,
        root: &Path,
        files: Option<Arc<dyn VirtualFiles>>,
    ) -> Result<HttpServer> {
        let root = root.canonicalize().map_err(|source| Error::Dir {
            key: "root",
            path: root.to_owned(),
            source,
        })?;
        let listeners = cfg
            .listen
            .iter()
            .map(|&addr| listen_socket(addr).map_err(|source| Error::Bind { addr, source }))
            .collect::<Result<Vec<_>>>()?;
        Ok(HttpServer {
            listeners,
            shared: Arc::new(Shared {
                cfg: cfg.clone(),
                root,
                files,
            }),
        })
    }

    /// The bound addresses (with the real port when 0 was configured).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serve until `shutdown` is cancelled, then let responses in flight
    /// finish (bounded).
    pub async fn serve(self, shutdown: CancellationToken) -> Result<()> {
        let addrs = self.local_addrs();
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(self.shared.cfg.max_connections));
        for l in self.listeners {
            tracker.spawn(accept_loop(
                l,
                self.shared.clone(),
                permits.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        info!(addrs = ?addrs, url = %self.shared.cfg.url, "serving HTTP");
        shutdown.cancelled().await;
        tracker.close();
        if tokio::time::timeout(DRAIN + Duration::from_secs(1), tracker.wait())
            .await
            .is_err()
        {
            warn!("HTTP connections still open after the shutdown deadline");
        }
        Ok(())
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        // The permit first: beyond the cap, clients wait in the backlog
        // instead of costing a task and a buffer each.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let sd = shutdown.clone();
        tracker.spawn(async move {
            metrics::http_connection(true);
            connection(stream, peer, shared, sd).await;
            metrics::http_connection(false);
            drop(permit);
        });
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let cfg = shared.cfg.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(&shared, &req, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.timeout)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
        _ = tokio::time::sleep(cfg.max_connection_time) => {
            debug!(%peer, "HTTP connection closed: max_connection_time");
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        }
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A short plain-text error response.
fn status(code: StatusCode, head: bool) -> Response<Body> {
    let text = format!("{code}\n");
    let len = text.len();
    let mut r = Response::new(if head { empty() } else { full(text) });
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// The media type a loader expects: UEFI HTTP boot decides what to do with
/// the download by it (UEFI spec 2.x §24.7.4: `application/efi`, and the
/// `vnd.efi-iso` / `vnd.efi-img` RAM disk types), falling back to the
/// name's extension when the type is one it does not know.
fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "efi" => "application/efi",
        "iso" => "application/vnd.efi-iso",
        "img" => "application/vnd.efi-img",
        "ipxe" | "cfg" | "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// What a request's `Range` asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Whole,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

/// RFC 9110 §14.2: a single satisfiable range → 206; an unsatisfiable one
/// → 416; several ranges, a malformed header, or a conditional `If-Range`
/// (we keep no validators to check it against) → ignored, whole body.
fn wanted(req: &Request<Incoming>, len: u64) -> Want {
    wanted_from(
        req.headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok()),
        req.headers().contains_key(header::IF_RANGE),
        len,
    )
}

fn wanted_from(range: Option<&str>, if_range: bool, len: u64) -> Want {
    let Some(range) = range else {
        return Want::Whole;
    };
    if if_range {
        return Want::Whole;
    }
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        return Want::Whole;
    };
    match parsed.validate(len) {
        Ok(r) if r.len() == 1 => Want::Part(*r[0].start(), *r[0].end()),
        Ok(_) => Want::Whole,
        Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => Want::Unsatisfiable,
        Err(_) => Want::Whole,
    }
}

/// Where a response's bytes come from.
enum Source {
    Generated(Bytes),
    Disk(std::fs::File),
}

async fn respond(shared: &Shared, req: &Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let method = req.method().clone();
    let resp = respond_inner(shared, req, peer).await;
    let code = resp.status();
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .filter(|_| method == Method::GET)
        .unwrap_or(0);
    metrics::http_response(method.as_str(), code.as_u16(), bytes);
    info!(%peer, method = %method, path = req.uri().path(), status = code.as_u16(), bytes, "http request");
    resp
}

async fn respond_inner(
    shared: &Shared,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = status(StatusCode::METHOD_NOT_ALLOWED, false);
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Ok(name) = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8() else {
        return status(StatusCode::BAD_REQUEST, head);
    };
    if name.contains('\0') {
        return status(StatusCode::BAD_REQUEST, head);
    }
    // The TFTP name rules: `..` refused, `\` is a separator, the root's own
    // prefix dropped.
    let rel = match files::normalize(&name, &shared.root) {
        Ok(r) => r,
        Err(Error::Access("empty file name")) => return status(StatusCode::NOT_FOUND, head),
        Err(e) => {
            debug!(%peer, path = %name, error = %e, "HTTP path refused");
            return status(StatusCode::FORBIDDEN, head);
        }
    };
    let generated = match &shared.files {
        Some(f) => tokio::time::timeout(VIRTUAL_FILE_TIMEOUT, f.get(&rel, peer))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let (source, len) = match generated {
        Some(b) => {
            let len = b.len() as u64;
            (Source::Generated(Bytes::from(b)), len)
        }
        None => {
            let root = shared.root.clone();
            let rel2 = rel.clone();
            match tokio::task::spawn_blocking(move || files::open_read(&root, &rel2)).await {
                Ok(Ok((f, md, _))) => (Source::Disk(f), md.len()),
                Ok(Err(e)) => {
                    let code = match e.tftp_code() {
                        crate::packet::ErrorCode::FileNotFound => StatusCode::NOT_FOUND,
                        crate::packet::ErrorCode::AccessViolation => StatusCode::FORBIDDEN,
                        _ => StatusCode::INTERNAL_SERVER_ERROR,
                    };
                    debug!(%peer, path = %rel, error = %e, "HTTP file not served");
                    return status(code, head);
                }
                Err(e) => {
                    warn!(error = %e, "HTTP file open task failed");
                    return status(StatusCode::INTERNAL_SERVER_ERROR, head);
                }
            }
        }
    };
    let (code, start, count) = match wanted(req, len) {
        Want::Whole => (StatusCode::OK, 0, len),
        Want::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Want::Unsatisfiable => {
            let mut r = status(StatusCode::RANGE_NOT_SATISFIABLE, head);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let body = if head {
        empty()
    } else {
        match source {
            Source::Generated(b) => {
                // Both within `len`, which is the buffer's length.
                let (a, n) = (start as usize, count as usize);
                full(b.slice(a..a + n))
            }
            Source::Disk(f) => {
                let mut f = tokio::fs::File::from_std(f);
                if start > 0 {
                    if let Err(e) = f.seek(SeekFrom::Start(start)).await {
                        warn!(path = %rel, error = %e, "HTTP seek failed");
                        return status(StatusCode::INTERNAL_SERVER_ERROR, head);
                    }
                }
                let stream = ReaderStream::with_capacity(f.take(count), CHUNK).map_ok(Frame::data);
                StreamBody::new(stream).boxed()
            }
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&rel)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if code == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{len}", start + count - 1);
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(wanted_from(None, false, 10), Want::Whole);
        assert_eq!(wanted_from(Some("bytes=0-3"), false, 10), Want::Part(0, 3));
        assert_eq!(wanted_from(Some("bytes=5-"), false, 10), Want::Part(5, 9));
        assert_eq!(wanted_from(Some("bytes=-4"), false, 10), Want::Part(6, 9));
        // An end past the file is cut to the file (RFC 9110 §14.1.2).
        assert_eq!(wanted_from(Some("bytes=8-99"), false, 10), Want::Part(8, 9));
        assert_eq!(
            wanted_from(Some("bytes=10-"), false, 10),
            Want::Unsatisfiable
        );
        // Ignored: several ranges, nonsense, other units, If-Range.
        assert_eq!(wanted_from(Some("bytes=0-1,4-5"), false, 10), Want::Whole);
        assert_eq!(wanted_from(Some("bytes=x"), false, 10), Want::Whole);
        assert_eq!(wanted_from(Some("lines=1-2"), false, 10), Want::Whole);
        assert_eq!(wanted_from(Some("bytes=0-3"), true, 10), Want::Whole);
    }

    #[test]
    fn media_types() {
        assert_eq!(content_type("ipxe.efi"), "application/efi");
        assert_eq!(content_type("EFI/BOOT/BOOTX64.EFI"), "application/efi");
        assert_eq!(content_type("boot.ipxe"), "text/plain; charset=utf-8");
        assert_eq!(content_type("vmlinuz"), "application/octet-stream");
    }
}
