//! `labnet-dnsd --config PATH [--check-config]`: the shared daemon start
//! (flags, config, logs, signals); the server is the library.

use std::process::ExitCode;

use anyhow::Context;
use labnet_config::Config;

const NAME: &str = "labnet-dnsd";

fn main() -> ExitCode {
    let config = match labnet_daemon::start(NAME, labnet_dnsd::ABOUT, |c| {
        c.require_dns(NAME)?;
        c.dns_root_hints()?;
        labnet_dnsd::recursion::trust_anchors(c).map(drop)
    }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(serve(config)));
    labnet_daemon::finish(NAME, result)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = labnet_store::open(&config.store.url).await?;
    labnet_daemon::serve_metrics(&config, NAME, labnet_dnsd::metrics::describe)?;
    let server = labnet_dnsd::Server::new(config, store);
    let shutdown = labnet_daemon::stop_on_signals(Some(server.reload_trigger()))?;
    server.run(shutdown).await?;
    Ok(())
}
