//! The library's server on loopback, port 0, driven by a few lines of std
//! UDP client: generated files (the `VirtualFiles` hook), caps, IPv6, the
//! EDK2 size probe, and that replies come from the address asked.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use labnet_config::TftpConfig;
use labnet_tftpd::packet::{encode_ack, encode_error, encode_request, ErrorCode, Packet};
use labnet_tftpd::{Server, VirtualFiles};
use tokio_util::sync::CancellationToken;

fn config(root: &Path, listen: &str, per_client: usize) -> TftpConfig {
    TftpConfig {
        listen: vec![listen.parse().unwrap()],
        root: root.to_owned(),
        upload_dir: None,
        max_transfers: 8,
        max_transfers_per_client: per_client,
        max_blksize: 65464,
        max_windowsize: 16,
        timeout: Duration::from_secs(1),
        retries: 2,
        max_stall: Duration::from_secs(30),
        max_transfer_time: Duration::from_secs(600),
        file_cache_size: 64 << 20,
    }
}

/// Renders `pxelinux.cfg/01-<mac>` for one MAC, like labnet-pxe will.
struct Pxe;

#[async_trait]
impl VirtualFiles for Pxe {
    async fn get(&self, path: &str, client: SocketAddr) -> Option<Vec<u8>> {
        (path == "pxelinux.cfg/01-52-54-00-12-34-56")
            .then(|| format!("DEFAULT linux\n# for {}\n", client.ip()).into_bytes())
    }
}

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

async fn start(cfg: TftpConfig, files: Option<Arc<dyn VirtualFiles>>) -> Running {
    let server = Server::bind(&cfg, files).unwrap();
    let addr = server.local_addrs()[0];
    let shutdown = CancellationToken::new();
    let sd = shutdown.clone();
    let handle = tokio::spawn(async move { server.serve(sd).await.unwrap() });
    Running {
        addr,
        shutdown,
        handle,
    }
}

fn client(addr: SocketAddr) -> UdpSocket {
    let bind = if addr.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Download `name` in lockstep; returns the bytes, or the ERROR (code, text).
fn get(addr: SocketAddr, name: &str, opts: &[(&str, &str)]) -> Result<Vec<u8>, (u16, String)> {
    let s = client(addr);
    s.send_to(&encode_request(false, name, "octet", opts), addr)
        .unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70000];
    let mut blksize = 512;
    loop {
        let (n, from) = s.recv_from(&mut buf).unwrap();
        // Replies come from the address we sent to; transfers from a new
        // port (a "busy" refusal comes from the listening port).
        assert_eq!(from.ip(), addr.ip());
        let pkt = Packet::decode(&buf[..n]).unwrap();
        if !matches!(pkt, Packet::Error { .. }) {
            assert_ne!(from.port(), addr.port());
        }
        match pkt {
            Packet::Oack { options } => {
                if let Some((_, v)) = options.iter().find(|(k, _)| *k == "blksize") {
                    blksize = v.parse().unwrap();
                }
                s.send_to(&encode_ack(0), from).unwrap();
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(data);
                s.send_to(&encode_ack(block), from).unwrap();
                if data.len() < blksize {
                    return Ok(out);
                }
            }
            Packet::Error { code, message } => return Err((code, message.to_owned())),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_files_before_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pxelinux.cfg")).unwrap();
    std::fs::write(dir.path().join("pxelinux.cfg/default"), b"disk default\n").unwrap();
    let r = start(config(dir.path(), "127.0.0.1:0", 4), Some(Arc::new(Pxe))).await;
    let addr = r.addr;
    tokio::task::spawn_blocking(move || {
        // Generated, with Windows separators and a leading slash normalised.
        let got = get(addr, "\\pxelinux.cfg\\01-52-54-00-12-34-56", &[]).unwrap();
        assert_eq!(got, b"DEFAULT linux\n# for 127.0.0.1\n");
        // Not generated: falls through to the disk.
        assert_eq!(
            get(addr, "pxelinux.cfg/default", &[]).unwrap(),
            b"disk default\n"
        );
        assert_eq!(
            get(addr, "pxelinux.cfg/01-00-00-00-00-00-00", &[])
                .unwrap_err()
                .0,
            ErrorCode::FileNotFound as u16
        );
    })
    .await
    .unwrap();
    r.shutdown.cancel();
    r.handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_and_loopback_blksize() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("f"), &data).unwrap();
    let r = start(config(dir.path(), "[::1]:0", 4), None).await;
    let addr = r.addr;
    tokio::task::spawn_blocking(move || {
        // lo's MTU is 65536: the largest RFC 2348 block fits.
        assert_eq!(get(addr, "f", &[("blksize", "65464")]).unwrap(), data);
    })
    .await
    .unwrap();
    r.shutdown.cancel();
    r.handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_cap_and_size_probe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; 5000]).unwrap();
    let r = start(config(dir.path(), "127.0.0.1:0", 1), None).await;
    let addr = r.addr;
    tokio::task::spawn_blocking(move || {
        // First transfer held open (OACK not acknowledged) ...
        let a = client(addr);
        a.send_to(
            &encode_request(false, "f", "octet", &[("tsize", "0")]),
            addr,
        )
        .unwrap();
        let mut buf = [0u8; 1500];
        let (n, tid) = a.recv_from(&mut buf).unwrap();
        assert!(matches!(
            Packet::decode(&buf[..n]).unwrap(),
            Packet::Oack { ref options } if options == &[("tsize", "5000")]
        ));
        // ... so a second one from the same address is refused (cap 1).
        let (code, msg) = get(addr, "f", &[]).unwrap_err();
        assert_eq!(code, 0);
        assert!(msg.contains("too many"), "{msg}");
        // The EDK2 probe ends with an ERROR: the slot is free at once.
        a.send_to(&encode_error(ErrorCode::NotDefined, "probe done"), tid)
            .unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            match get(addr, "f", &[]) {
                Ok(d) => {
                    assert_eq!(d, vec![7u8; 5000]);
                    break;
                }
                Err(e) if std::time::Instant::now() < end => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("slot not freed after the client ERROR: {e:?}"),
            }
        }
        // No OACK retransmission after the ERROR.
        a.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        assert!(a.recv_from(&mut buf).is_err(), "OACK re-sent after ERROR");
    })
    .await
    .unwrap();
    r.shutdown.cancel();
    r.handle.await.unwrap();
}
