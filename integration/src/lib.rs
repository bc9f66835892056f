//! Harness for labnet's end-to-end tests.
//!
//! The tests under `tests/` start the built daemons as separate processes,
//! inside network namespaces this harness creates, and reach them only
//! through stock clients (`dig`, `dhclient`, `udhcpc`, `atftp`, `tftp`,
//! `perfdhcp`, QEMU). The binaries are not `CARGO_BIN_EXE_*` of this crate:
//! build them first (`cargo build --release --bins`, which the README's test
//! command does) and they are found under the workspace's `target/`.
//!
//! Tests need root (namespaces, port 67) and Debian packages; when either is
//! missing they fail with a message that names it. They never skip.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod relay;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_owned()
}

/// Path of a built labnet binary: `$LABNET_BIN_DIR/NAME`, else the newest
/// of `target/release/NAME` and `target/debug/NAME`.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("LABNET_BIN_DIR") {
        let p = Path::new(&dir).join(name);
        assert!(
            p.exists(),
            "{} does not exist (LABNET_BIN_DIR)",
            p.display()
        );
        return p;
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join(name))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).unwrap_or_else(|| {
        panic!(
            "{name} is not built under {}: run `cargo build --release --bins` first",
            target.display()
        )
    })
}

/// Fail unless running as root.
pub fn require_root() {
    // `id -u` rather than libc::geteuid keeps this crate free of unsafe.
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        uid, "0",
        "this test needs root (network namespaces, privileged ports); run the README's test command as root"
    );
}

/// Fail unless every command is on PATH; `package` names the Debian package
/// that provides them.
pub fn require_tools(package: &str, tools: &[&str]) {
    for t in tools {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "`{t}` is missing: install the Debian package `{package}` (the README's test command does)"
        );
    }
}

/// Run a command; panic with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `sh -c SCRIPT`, panicking on failure.
pub fn sh(script: &str) -> String {
    String::from_utf8_lossy(&run(Command::new("sh").arg("-c").arg(script)).stdout).into_owned()
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

static NS_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace owned by one test; deleted (with every process in
/// it) when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace with `lo` up. The name is unique per process and call.
    pub fn new(tag: &str) -> Netns {
        require_root();
        let n = NS_COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ln-{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// `sh -c SCRIPT` inside the namespace; panics on failure, returns stdout.
    pub fn sh(&self, script: &str) -> String {
        String::from_utf8_lossy(&run(self.cmd("sh").arg("-c").arg(script)).stdout).into_owned()
    }

    /// A bridge `br` with `addr` (CIDR) in this namespace.
    pub fn add_bridge(&self, br: &str, addr: &str) {
        self.ip(&["link", "add", br, "type", "bridge"]);
        self.ip(&["addr", "add", addr, "dev", br]);
        self.ip(&["link", "set", br, "up"]);
    }

    /// Connect this namespace's bridge `br` to a new namespace `peer` through
    /// a veth pair: `peer` gets interface `peer_if` (down, no address).
    pub fn attach_veth(&self, br: &str, host_if: &str, peer: &Netns, peer_if: &str) {
        run(Command::new("ip").args([
            "link", "add", host_if, "netns", &self.name, "type", "veth", "peer", "name", peer_if,
            "netns", &peer.name,
        ]));
        self.ip(&["link", "set", host_if, "master", br]);
        self.ip(&["link", "set", host_if, "up"]);
        peer.ip(&["link", "set", peer_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Only processes inside our own namespace, by PID.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A labnet daemon running as a child process; stopped (SIGTERM, then
/// SIGKILL) when dropped. Its stderr goes to `log`.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Start `bin NAME --config CONFIG` inside `ns` (or here when `None`).
    pub fn start(ns: Option<&Netns>, name: &str, config: &Path, log: &Path) -> Daemon {
        let b = bin(name);
        let mut cmd = match ns {
            Some(ns) => ns.cmd(&b),
            None => Command::new(&b),
        };
        let logf = std::fs::File::create(log).expect("create log");
        let child = cmd
            .arg("--config")
            .arg(config)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", b.display()));
        Daemon {
            child,
            log: log.to_owned(),
        }
    }

    /// Wait until the log contains `needle` (e.g. the "serving" line).
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let log = self.log.clone();
        wait_for(&format!("`{needle}` in {}", log.display()), timeout, || {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("daemon exited ({st}); log:\n{}", self.log_text());
            }
            std::fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains(needle))
                .map(|_| ())
        });
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Run `f` on a thread that has entered network namespace `ns`: sockets it
/// opens live there. (The test process itself stays where it is.)
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, f)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Like [`in_netns`], but returns the thread's handle at once.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// Write `text` to `dir/name` and return the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    p
}

/// `labnetctl --config CONFIG ARGS...`, panicking on failure; returns stdout.
pub fn ctl(config: &Path, args: &[&str]) -> String {
    let out = run(Command::new(bin("labnetctl"))
        .arg("--config")
        .arg(config)
        .args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
