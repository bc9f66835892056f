//! `labnet-daemon`: the parts of `main` that labnet-dhcpd, labnet-dnsd and
//! labnet-tftpd share, so the three behave alike under systemd: the same
//! flags (`--config PATH`, `--check-config`), a bad config refused with exit
//! code 2 and its line and key, logs to stderr with `RUST_LOG` filtering (plain text unless stderr is a
//! terminal, so journald gets no colour codes), SIGTERM/SIGINT stop the
//! daemon through one `CancellationToken`, SIGHUP asks for a reload, and
//! `sd_notify` says READY once the sockets are bound. With `[metrics.listen]`
//! naming the daemon, [`serve_metrics`] serves Prometheus text over HTTP
//! (metrics-exporter-prometheus, on hyper); the daemon libraries only record
//! through the `metrics` facade. [`LogLimit`] bounds the log lines a
//! packet flood can cause.

mod loglimit;

pub use loglimit::LogLimit;

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser};
use labnet_config::{Config, ConfigError};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why the shared start-up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The metrics endpoint could not be set up (most often: the address is
    /// taken or not local).
    #[error("metrics.listen.{daemon} = {addr}: {source}")]
    Metrics {
        daemon: String,
        addr: SocketAddr,
        #[source]
        source: metrics_exporter_prometheus::BuildError,
    },
}

/// Histogram buckets for metrics whose name ends in `_seconds`: 100 µs to
/// 5 s, as a store commit or a reply can take.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets for metrics whose name ends in `_size` (counts of items).
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Serve `GET /metrics` (Prometheus text format) on `[metrics.listen]`'s
/// address for `name`, if there is one, then run `describe` (the daemon's
/// HELP texts, which only reach an installed recorder); call inside the
/// runtime, before [`ready`]. Histograms get fixed buckets (so they sum
/// across daemons and nodes, unlike summaries). Returns the address served.
pub fn serve_metrics(
    config: &Config,
    name: &str,
    describe: fn(),
) -> Result<Option<SocketAddr>, DaemonError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let Some(addr) = config.metrics_listen(name) else {
        return Ok(None);
    };
    let err = |source| DaemonError::Metrics {
        daemon: name.trim_start_matches("labnet-").to_owned(),
        addr,
        source,
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS))
        .map_err(err)?
        .install()
        .map_err(err)?;
    describe();
    tracing::info!(%addr, "serving metrics at /metrics");
    Ok(Some(addr))
}

/// The flags every daemon takes.
#[derive(Parser)]
struct Args {
    /// The labnet config file; the daemon uses its own section.
    #[arg(long, short, default_value = "/etc/labnet/labnet.toml")]
    config: PathBuf,
    /// Validate the config file and exit.
    #[arg(long)]
    check_config: bool,
}

/// Parse the flags, load the config and check that `require` finds the
/// daemon's section. `Ok` means: serve with this config (logging is
/// installed). `Err` carries the exit code: 2 for a refused config, 0 after
/// `--check-config`.
pub fn start(
    name: &'static str,
    about: &'static str,
    require: impl Fn(&Config) -> Result<(), ConfigError>,
) -> Result<Config, ExitCode> {
    let matches = Args::command()
        .name(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = match Config::load(&args.config).and_then(|c| require(&c).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return Err(ExitCode::from(2));
        }
    };
    if args.check_config {
        println!("{}: ok", args.config.display());
        return Err(ExitCode::SUCCESS);
    }
    init_logging();
    Ok(config)
}

/// The exit code for how `serve` ended; an error is logged and printed
/// with its causes (`{:#}`).
pub fn finish<E: Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Install the tracing subscriber: `RUST_LOG`, else `info`. sqlx logs every
/// statement at debug, and the daemons poll the store several times a
/// second, so it is held at `warn` unless `RUST_LOG` names it.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if v.contains("sqlx") => filter,
        _ => filter.add_directive("sqlx=warn".parse().expect("static directive")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Handle signals from now on (call inside the runtime): the returned token
/// is cancelled on SIGTERM or SIGINT; SIGHUP wakes `reload`, if given.
pub fn stop_on_signals(reload: Option<Arc<Notify>>) -> std::io::Result<CancellationToken> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => match &reload {
                    Some(r) => {
                        tracing::info!("SIGHUP: reloading");
                        r.notify_one();
                    }
                    None => tracing::info!("SIGHUP: nothing to reload"),
                },
            }
        }
        tracing::info!("stopping");
        stop.cancel();
    });
    Ok(shutdown)
}

/// Re-read the config file for a reload (SIGHUP). `Some` when it loads and
/// `require` accepts it; otherwise the error (file, line, key, reason) is
/// logged and `None` returned, and the caller keeps serving what it has.
pub fn reread(
    path: &std::path::Path,
    require: impl Fn(&Config) -> Result<(), ConfigError>,
) -> Option<Config> {
    match Config::load(path).and_then(|c| require(&c).map(|()| c)) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "new config refused; still serving the running one");
            None
        }
    }
}

/// Tell systemd (`Type=notify`) the daemon is serving.
pub fn ready() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// Tell systemd the daemon is on its way out.
pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}
