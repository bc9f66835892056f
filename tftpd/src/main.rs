//! `labnet-tftpd --config PATH [--check-config]`: the shared daemon start
//! (flags, config, logs, signals, readiness); the server is the library.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use labnet_config::Config;

const NAME: &str = "labnet-tftpd";

fn main() -> ExitCode {
    let config = match labnet_daemon::start(NAME, labnet_tftpd::ABOUT, |c| {
        c.require_tftp(NAME)?;
        c.check_tftp_dirs()
    }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(serve(config)));
    labnet_daemon::finish(NAME, result)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let tftp = config.require_tftp(NAME)?;
    // With a [pxe] section, pxelinux configs and iPXE scripts are rendered
    // from the boot profiles in the store.
    let files: Option<Arc<dyn labnet_tftpd::VirtualFiles>> = match &config.pxe {
        Some(pxe) => {
            let store = labnet_store::open(&config.store.url)
                .await
                .with_context(|| format!("opening the store {}", config.store.url))?;
            let files = labnet_pxe::BootFiles::load(store, pxe.clone())
                .await
                .context("loading boot profiles")?;
            Some(Arc::new(files))
        }
        None => None,
    };
    // [http]: the same root and the same generated files over HTTP.
    let http = config
        .http
        .as_ref()
        .map(|h| labnet_tftpd::http::HttpServer::bind(h, &tftp.root, files.clone()))
        .transpose()?;
    let server = labnet_tftpd::Server::bind(tftp, files)?;
    // Generated files follow the store on their own: SIGHUP has nothing to reload.
    labnet_daemon::serve_metrics(&config, NAME, labnet_tftpd::metrics::describe)?;
    let shutdown = labnet_daemon::stop_on_signals(None)?;
    labnet_daemon::ready();
    let http = async {
        match http {
            Some(h) => h.serve(shutdown.clone()).await,
            None => Ok(()),
        }
    };
    let (tftp, http) = tokio::join!(server.serve(shutdown.clone()), http);
    tftp?;
    http?;
    labnet_daemon::stopping();
    Ok(())
}
