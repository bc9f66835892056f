//! `labnet-dhcpd --config PATH [--check-config]`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use labnet_config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "labnet-dhcpd", version, about = "labnet's DHCPv4 server")]
struct Args {
    #[arg(long, short, default_value = "/etc/labnet/labnet.toml")]
    config: PathBuf,
    /// Validate the config file and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("labnet-dhcpd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = config.require_dhcp("labnet-dhcpd") {
        eprintln!("labnet-dhcpd: {e}");
        return ExitCode::from(2);
    }
    if args.check_config {
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("labnet-dhcpd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("labnet-dhcpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let dhcp = config.require_dhcp("labnet-dhcpd")?;
    let store = labnet_store::open(&config.store.url)
        .await
        .with_context(|| format!("opening the store {}", config.store.url))?;
    let mut server = labnet_dhcpd::Server::bind(dhcp, store).await?;
    if let Some(pxe) = config.pxe.clone() {
        server = server.with_pxe(pxe).await?;
    }
    let shutdown = CancellationToken::new();
    let reload = server.reload_handle();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading reservations and leases from the store");
                    reload.notify_one();
                }
            }
        }
        tracing::info!("stopping");
        stop.cancel();
    });
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    server.run(shutdown).await?;
    Ok(())
}
