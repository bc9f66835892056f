//! A throwaway PostgreSQL server for tests (feature `testing`): Debian's
//! `postgresql` binaries, `initdb` into a temporary directory and
//! `pg_ctl start` listening only on a unix socket in that directory, run as
//! the `postgres` user when the test runs as root (PostgreSQL refuses root).
//! Dropping the [`PgCluster`] stops the server and removes the directory.
//! It fails loudly, naming the package, when the binaries are missing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A PostgreSQL server of this test's own.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

/// The port only names the socket file (`.s.PGSQL.5432`); nothing listens
/// on TCP.
const PORT: u16 = 5432;

impl PgCluster {
    /// Create and start a cluster; panics with the reason when it cannot.
    pub fn start() -> PgCluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let bin = server_bindir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found under \
                 /usr/lib/postgresql/*/bin: install Debian's `postgresql` package \
                 (scripts/deps.sh does)"
            )
        });
        let dir = std::env::temp_dir().join(format!(
            "labnet-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).expect("create the cluster directory");
        let as_postgres = is_root();
        if as_postgres {
            let (uid, gid) = postgres_user().unwrap_or_else(|| {
                panic!("no `postgres` user: install Debian's `postgresql` package")
            });
            for d in [dir.clone(), dir.join("sock")] {
                std::os::unix::fs::chown(&d, Some(uid), Some(gid)).expect("chown cluster dir");
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod cluster dir");
            }
        }
        let c = PgCluster {
            dir,
            bin,
            as_postgres,
        };
        let data = c.dir.join("data");
        c.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--no-locale".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        let opts = c.server_options();
        c.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                c.dir.join("log").as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        );
        c
    }

    /// The server's settings: a socket in our directory only, no TCP.
    fn server_options(&self) -> String {
        format!(
            "-c listen_addresses='' -k {} -p {PORT} -c fsync=off -c max_connections=200",
            self.socket_dir().display()
        )
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// A store URL for database `db` on this server (created on first open).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}&port={PORT}",
            self.socket_dir().display()
        )
    }

    /// Stop the server (fast shutdown); [`PgCluster::resume`] starts it again.
    pub fn stop(&self) {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
    }

    /// Start a stopped server again, as [`PgCluster::start`] did.
    pub fn resume(&self) {
        let data = self.dir.join("data");
        let opts = self.server_options();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                self.dir.join("log").as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        );
    }

    fn command(&self, prog: &str) -> Command {
        let path = self.bin.join(prog);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, prog: &str, args: &[&std::ffi::OsStr]) {
        let out = self
            .command(prog)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            panic!(
                "{prog} failed: {}\n{}\nserver log:\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = self
                .command("pg_ctl")
                .args(["-m", "immediate", "-w", "stop", "-D"])
                .arg(&data)
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` in it.
fn server_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The `postgres` user's uid and gid, from the passwd file.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string(Path::new("/etc/passwd")).ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}
