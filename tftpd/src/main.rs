//! `labnet-tftpd --config PATH`: flags, tracing, signals, sd_notify; the
//! server itself is the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use labnet_config::Config;
use tracing::error;

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
    labnet_daemon::init_logging();
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
        // Generated files follow the store on their own: SIGHUP has nothing to reload.
        let shutdown = labnet_daemon::stop_on_signals(None)?;
        labnet_daemon::ready();
        server.serve(shutdown).await?;
        labnet_daemon::stopping();
        Ok(())
    })
}
