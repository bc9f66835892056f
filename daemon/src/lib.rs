//! `labnet-daemon`: the parts of `main` that labnet-dhcpd, labnet-dnsd and
//! labnet-tftpd share, so the three behave alike under systemd:
//! logs to stderr with `RUST_LOG` filtering (plain text unless stderr is a
//! terminal, so journald gets no colour codes), SIGTERM/SIGINT stop the
//! daemon through one `CancellationToken`, SIGHUP asks for a reload, and
//! `sd_notify` says READY once the sockets are bound.

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Install the tracing subscriber: `RUST_LOG`, else `info`. sqlx logs every
/// statement at debug, and the daemons poll the store several times a
/// second, so it is held at `warn` unless `RUST_LOG` names it.
pub fn init_logging() {
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
                        tracing::info!("SIGHUP: reloading from the store");
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

/// Tell systemd (`Type=notify`) the daemon is serving.
pub fn ready() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// Tell systemd the daemon is on its way out.
pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}
