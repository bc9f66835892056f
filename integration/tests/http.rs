//! labnet-tftpd's `[http]` through `curl` (issue 10, Boot): the TFTP root
//! and the generated PXE files over HTTP, as iPXE and UEFI HTTP boot fetch
//! them — GET, HEAD, one byte range (206), an unsatisfiable one (416), 404,
//! no way out of the root, bounded and timed-out connections, metrics.
//!
//! Each test runs the daemon in its own network namespace and talks to it on
//! that namespace's loopback. Needs root and curl.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use labnet_integration::{ctl, in_netns, require_root, require_tools, Daemon, Netns};

const URL: &str = "http://127.0.0.1:8080";

/// Dropped in field order: the daemon first, then the namespace, then files.
struct Lab {
    daemon: Daemon,
    ns: Netns,
    dir: tempfile::TempDir,
}

/// Deterministic pseudo-random bytes (xorshift).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

impl Lab {
    /// A root with `big.bin` (3 MB), `sub/small.txt`, a symlink out of the
    /// root and one inside it; a `secret` beside the root; a boot profile
    /// `rescue` (the default). `http_extra` is appended to `[http]`.
    fn start(tag: &str, http_extra: &str) -> Lab {
        require_root();
        require_tools("curl", &["curl"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).expect("root");
        std::fs::write(root.join("big.bin"), pattern(3_000_000, 7)).expect("big");
        std::fs::write(root.join("sub/small.txt"), "hello over http\n").expect("small");
        std::fs::write(dir.path().join("secret"), "not for clients\n").expect("secret");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).expect("symlink");
        std::os::unix::fs::symlink("sub/small.txt", root.join("in")).expect("symlink");
        let config = dir.path().join("labnet.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[store]
url = "sqlite://{d}/labnet.db"

[tftp]
listen = ["127.0.0.1:69"]
root = "{r}"

[http]
listen = ["127.0.0.1:8080"]
{http_extra}

[pxe]
tftp_server = "10.77.0.1"
default_profile = "rescue"

[metrics.listen]
tftpd = "127.0.0.1:9101"
"#,
                d = dir.path().display(),
                r = root.display()
            ),
        )
        .expect("config");
        ctl(&config, &["init"]);
        ctl(
            &config,
            &[
                "profiles",
                "add",
                "rescue",
                "--kernel",
                "vmlinuz",
                "--initrd",
                "initrd.img",
                "--cmdline",
                "console=ttyS0",
            ],
        );
        let ns = Netns::new(tag);
        let mut daemon = Daemon::start(
            Some(&ns),
            "labnet-tftpd",
            &config,
            &dir.path().join("tftpd.log"),
        );
        daemon.wait_log("serving HTTP", Duration::from_secs(20));
        Lab { daemon, ns, dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `curl ARGS` in the namespace, bounded; returns the output whatever
    /// the exit status.
    fn curl(&self, args: &[&str]) -> Output {
        self.ns
            .cmd("curl")
            .args(["--silent", "--show-error", "--max-time", "20"])
            .args(args)
            .output()
            .expect("run curl")
    }

    /// Status code, headers (lower-case names) and body of one request.
    fn fetch(&self, args: &[&str], path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let hdr = self.dir.path().join("headers.txt");
        let body = self.dir.path().join("body.bin");
        let _ = std::fs::remove_file(&body);
        let mut a: Vec<&str> = vec!["--path-as-is", "-D"];
        let (h, b) = (
            hdr.to_str().expect("utf-8").to_owned(),
            body.to_str().expect("utf-8").to_owned(),
        );
        a.push(&h);
        a.extend(["-o", &b, "-w", "%{http_code}"]);
        a.extend(args);
        let url = format!("{URL}{path}");
        a.push(&url);
        let out = self.curl(&a);
        let code: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl {a:?}: {out:?}\n{}", self.daemon.log_text()));
        let headers = std::fs::read_to_string(&hdr)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        (code, headers, std::fs::read(&body).unwrap_or_default())
    }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// GET, HEAD and ranges as curl (and iPXE, and EDK2's HTTP boot) use them.
#[test]
fn get_head_and_ranges() {
    let lab = Lab::start("httpget", "");
    let big = std::fs::read(lab.root().join("big.bin")).expect("big");
    let len = big.len().to_string();

    let (code, h, body) = lab.fetch(&[], "/big.bin");
    assert_eq!(code, 200);
    assert!(body == big, "GET body differs ({} bytes)", body.len());
    assert_eq!(header(&h, "content-length"), Some(len.as_str()));
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));

    // HEAD: the same headers, no body (with --head curl writes the
    // headers where the body would go).
    let (code, h, out) = lab.fetch(&["--head"], "/big.bin");
    assert_eq!(code, 200);
    assert_eq!(header(&h, "content-length"), Some(len.as_str()));
    assert!(
        out.len() < 1000 && out.starts_with(b"HTTP/1.1 200"),
        "HEAD had a body ({} bytes)",
        out.len()
    );

    // One range: 206 with Content-Range and exactly those bytes.
    let (code, h, body) = lab.fetch(&["--range", "1000-1999"], "/big.bin");
    assert_eq!(code, 206);
    assert_eq!(
        header(&h, "content-range"),
        Some(format!("bytes 1000-1999/{len}").as_str())
    );
    assert_eq!(header(&h, "content-length"), Some("1000"));
    assert!(body == big[1000..2000], "range body differs");
    // A suffix range, and an open-ended one (what a resumed download sends).
    let (code, _, body) = lab.fetch(&["-H", "Range: bytes=-10"], "/big.bin");
    assert_eq!(code, 206);
    assert!(body == big[big.len() - 10..]);
    let (code, _, body) = lab.fetch(&["-H", "Range: bytes=2999990-"], "/big.bin");
    assert_eq!(code, 206);
    assert!(body == big[2_999_990..]);
    // Beyond the end: 416 naming the length.
    let (code, h, _) = lab.fetch(&["-H", "Range: bytes=3000000-"], "/big.bin");
    assert_eq!(code, 416);
    assert_eq!(
        header(&h, "content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // Several ranges: allowed to be ignored (RFC 9110 §14.2), whole file.
    let (code, _, body) = lab.fetch(&["-H", "Range: bytes=0-1,5-6"], "/big.bin");
    assert_eq!(code, 200);
    assert_eq!(body.len(), big.len());

    // A file in a subdirectory, a symlink inside the root, a missing file.
    let (code, _, body) = lab.fetch(&[], "/sub/small.txt");
    assert_eq!((code, body.as_slice()), (200, &b"hello over http\n"[..]));
    let (code, _, body) = lab.fetch(&[], "/in");
    assert_eq!((code, body.as_slice()), (200, &b"hello over http\n"[..]));
    assert_eq!(lab.fetch(&[], "/nope.bin").0, 404);
    assert_eq!(lab.fetch(&[], "/").0, 404);
    assert_eq!(lab.fetch(&[], "/sub").0, 403, "a directory is not a file");
    // Only GET and HEAD.
    let (code, h, _) = lab.fetch(&["-X", "POST", "-d", "x"], "/big.bin");
    assert_eq!(code, 405);
    assert_eq!(header(&h, "allow"), Some("GET, HEAD"));
}

/// No request reaches outside the root: `..` raw, percent-encoded, with
/// backslashes, or through a symlink that points out.
#[test]
fn no_path_escapes_the_root() {
    let lab = Lab::start("httpesc", "");
    for path in [
        "/../secret",
        "/sub/../../secret",
        "/%2e%2e/secret",
        "/%2E%2E%2Fsecret",
        "/sub/..%5c..%5csecret",
        "/..\\secret",
        "/out",
    ] {
        let (code, _, body) = lab.fetch(&[], path);
        assert_eq!(code, 403, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(
            !String::from_utf8_lossy(&body).contains("not for clients"),
            "{path} leaked the secret"
        );
    }
    // Malformed percent-encoding (not UTF-8) is a bad request.
    assert_eq!(lab.fetch(&[], "/%ff%fe").0, 400);
    // The root's own absolute path is the root (as over TFTP).
    let abs = format!("{}/sub/small.txt", lab.root().display());
    assert_eq!(lab.fetch(&[], &abs).0, 200);
    // Still serving.
    assert_eq!(lab.fetch(&[], "/sub/small.txt").0, 200);
}

/// The generated iPXE script is served over HTTP too, and with `[http]` it
/// fetches kernel and initrd over HTTP; the metrics count what was served.
#[test]
fn generated_scripts_point_at_http_and_metrics_count() {
    let lab = Lab::start("httpgen", "");
    let (code, h, body) = lab.fetch(&[], "/boot-01-52-54-00-00-00-01.ipxe");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(code, 200, "{text}");
    assert!(
        header(&h, "content-type").is_some_and(|t| t.starts_with("text/plain")),
        "{h:?}"
    );
    assert!(text.starts_with("#!ipxe\n"), "{text}");
    assert!(
        text.contains(&format!(
            "kernel {URL}/vmlinuz initrd=initrd.img console=ttyS0\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("initrd {URL}/initrd.img\n")),
        "{text}"
    );
    // HEAD on a generated file: its length, no body.
    let (code, h, out) = lab.fetch(&["--head"], "/boot-01-52-54-00-00-00-01.ipxe");
    assert_eq!(code, 200);
    assert_eq!(
        header(&h, "content-length"),
        Some(text.len().to_string().as_str())
    );
    assert!(
        !String::from_utf8_lossy(&out).contains("#!ipxe"),
        "HEAD had a body"
    );
    // The pxelinux config too.
    let (code, _, body) = lab.fetch(&[], "/pxelinux.cfg/default");
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("KERNEL vmlinuz"));
    assert_eq!(lab.fetch(&[], "/nope").0, 404);

    let out = lab.curl(&["http://127.0.0.1:9101/metrics"]);
    let m = String::from_utf8_lossy(&out.stdout);
    for want in [
        "labnet_http_requests_total{method=\"GET\",status=\"200\"} 2",
        "labnet_http_requests_total{method=\"HEAD\",status=\"200\"} 1",
        "labnet_http_requests_total{method=\"GET\",status=\"404\"} 1",
        "labnet_http_response_bytes_total ",
        "labnet_http_connections_active ",
    ] {
        assert!(m.contains(want), "metrics lack `{want}`:\n{m}");
    }
}

/// `max_connections` bounds connections; `timeout` closes one that sends
/// no request, which frees its slot for the next client.
#[test]
fn connections_are_bounded_and_idle_ones_time_out() {
    let lab = Lab::start("httpcap", "max_connections = 2\ntimeout = \"1s\"");
    // Two connections that never send a request fill the server.
    let idle = in_netns(&lab.ns, || {
        let open = || {
            let s = std::net::TcpStream::connect("127.0.0.1:8080").expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            s
        };
        (open(), open())
    });
    let start = std::time::Instant::now();
    // The third client is served once the idle ones are closed (~1 s).
    let (code, _, _) = lab.fetch(&[], "/sub/small.txt");
    assert_eq!(code, 200);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "served after {waited:?}: the cap of 2 connections did not hold"
    );
    // The server closed both idle connections (EOF, or a reset after
    // hyper's 408).
    for mut s in [idle.0, idle.1] {
        let mut buf = Vec::new();
        let closed = match s.read_to_end(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "an idle connection was not closed");
    }
}
