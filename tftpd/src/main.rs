//! `labnet-tftpd --config PATH`: flags, tracing, signals, sd_notify; the
//! server itself is the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use labnet_config::Config;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[derive(Parser)]
#[command(name = "labnet-tftpd", version, about = "labnet's TFTP server")]
struct Cli {
    /// The labnet config file ([tftp] section).
    #[arg(long, short, default_value = "/etc/labnet/labnet.toml")]
    config: PathBuf,
    /// Validate the config and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("labnet-tftpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    let tftp = config
        .tftp
        .ok_or(labnet_tftpd::Error::NoTftpSection)
        .with_context(|| cli.config.display().to_string())?;
    if cli.check_config {
        println!("{}: ok", cli.config.display());
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        // With a [pxe] section, pxelinux configs and iPXE scripts are
        // rendered from the boot profiles in the store.
        let files: Option<std::sync::Arc<dyn labnet_tftpd::VirtualFiles>> = match config.pxe {
            Some(pxe) => {
                let store = labnet_store::open(&config.store.url)
                    .await
                    .with_context(|| format!("opening the store {}", config.store.url))?;
                let files = labnet_pxe::BootFiles::load(store, pxe)
                    .await
                    .context("loading boot profiles")?;
                Some(std::sync::Arc::new(files))
            }
            None => None,
        };
        let server = labnet_tftpd::Server::bind(&tftp, files)?;
        let shutdown = CancellationToken::new();
        let sd = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received, stopping");
            sd.cancel();
        });
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        server.serve(shutdown).await?;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
