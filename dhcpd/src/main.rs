//! `labnet-dhcpd --config PATH [--check-config]`: flags, logs, signals and
//! readiness; the server itself is the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use labnet_config::Config;

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
    let config = match Config::load(&args.config).and_then(|c| {
        c.require_dhcp("labnet-dhcpd")?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("labnet-dhcpd: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    labnet_daemon::init_logging();
    // One thread serves the sockets (sqlx keeps its own for SQLite): with
    // the core behind a mutex held per packet, more workers only add
    // hand-offs between threads.
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
    // With a [pxe] section, boot clients get their loader or iPXE script.
    if let Some(pxe) = &config.pxe {
        server = server
            .with_pxe(pxe.clone())
            .await
            .context("loading boot profiles")?;
    }
    let shutdown = labnet_daemon::stop_on_signals(Some(server.reload_handle()))?;
    labnet_daemon::ready();
    server.run(shutdown).await?;
    labnet_daemon::stopping();
    Ok(())
}
