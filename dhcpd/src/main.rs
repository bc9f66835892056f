//! `labnet-dhcpd --config PATH [--check-config]`: the shared daemon start
//! (flags, config, logs, signals, readiness); the server is the library.

use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use labnet_config::Config;
use tokio::sync::Notify;

const NAME: &str = "labnet-dhcpd";

fn main() -> ExitCode {
    let config = match labnet_daemon::start(NAME, labnet_dhcpd::ABOUT, |c| {
        c.require_dhcp(NAME).map(drop)
    }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // One thread serves the sockets (sqlx keeps its own for SQLite): with
    // the core behind a mutex held per packet, more workers only add
    // hand-offs between threads.
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(serve(config)));
    labnet_daemon::finish(NAME, result)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let dhcp = config.require_dhcp(NAME)?;
    let store = labnet_store::open(&config.store.url)
        .await
        .with_context(|| format!("opening the store {}", config.store.url))?;
    let mut server = labnet_dhcpd::Server::bind(dhcp, store).await?;
    // With a [pxe] section, boot clients get their loader or iPXE script.
    if let Some(pxe) = &config.pxe {
        server = server
            .with_pxe(pxe.clone())
            .await
            .context("loading boot profiles")?;
    }
    labnet_daemon::serve_metrics(&config, NAME, labnet_dhcpd::metrics::describe)?;
    // SIGHUP: re-read the store at once, and the config file; a file that
    // does not load is refused and the running config kept.
    let hup = Arc::new(Notify::new());
    let shutdown = labnet_daemon::stop_on_signals(Some(hup.clone()))?;
    let (store_reload, reconfigure) = (server.reload_handle(), server.reconfigure_handle());
    let path = config.path.clone();
    tokio::spawn(async move {
        loop {
            hup.notified().await;
            store_reload.notify_one();
            if let Some(new) = labnet_daemon::reread(&path, |c| c.require_dhcp(NAME).map(drop)) {
                if let Some(dhcp) = new.dhcp {
                    reconfigure.send(dhcp).await;
                }
            }
        }
    });
    labnet_daemon::ready();
    server.run(shutdown).await?;
    labnet_daemon::stopping();
    Ok(())
}
