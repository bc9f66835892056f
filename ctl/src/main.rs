//! `labnetctl`: the one CLI for everything labnet keeps in its store.
//!
//! Each subcommand group lives in its own module and talks to the store only
//! through `labnet-store`'s traits, so it works on whatever backend the
//! config's `[store] url` names. The daemons notice changes on their own
//! (they follow the store's change counters, and on PostgreSQL its NOTIFY),
//! so nothing here signals them.

mod checks;
mod gslb;
mod leases;
mod profiles;
mod records;
mod reservations;
mod zones;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use labnet_config::Config;

#[derive(Parser)]
#[command(name = "labnetctl", version, about = "Manage labnet's shared store")]
struct Cli {
    /// The labnet config file (its [store] url says which store to use).
    #[arg(long, short, default_value = "/etc/labnet/labnet.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the store (and its directory) and apply migrations.
    Init,
    /// Validate the config file and exit.
    CheckConfig,
    /// DHCP leases.
    #[command(subcommand)]
    Leases(leases::Cmd),
    /// Fixed addresses for known hosts (MAC or client-id -> IP, hostname).
    #[command(subcommand)]
    Reservations(reservations::Cmd),
    /// Boot profiles (PXE) and which host boots which.
    #[command(subcommand)]
    Profiles(profiles::Cmd),
    /// Authoritative DNS zones (import RFC 1035 master files).
    #[command(subcommand)]
    Zones(zones::Cmd),
    /// DNS records, one at a time, in the zone that encloses each name.
    #[command(subcommand)]
    Records(records::Cmd),
    /// GSLB: ISP and region maps, regions, pools, members (labnet-dnsd).
    #[command(subcommand)]
    Gslb(gslb::Cmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("labnetctl: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("labnetctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command, &config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labnetctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Cmd, config: &Config) -> anyhow::Result<()> {
    if let Cmd::CheckConfig = cmd {
        println!("{}: ok", config.path.display());
        return Ok(());
    }
    let store = labnet_store::open(&config.store.url).await?;
    match cmd {
        Cmd::Init => {
            println!("store ready: {}", config.store.url);
            Ok(())
        }
        Cmd::CheckConfig => Ok(()),
        Cmd::Leases(c) => leases::run(c, store.as_ref(), config).await,
        Cmd::Reservations(c) => reservations::run(c, store.as_ref(), config).await,
        Cmd::Profiles(c) => profiles::run(c, store.as_ref(), config).await,
        Cmd::Zones(c) => zones::run(c, store.as_ref()).await,
        Cmd::Records(c) => records::run(c, store.as_ref()).await,
        Cmd::Gslb(c) => gslb::run(c, store.as_ref(), config).await,
    }
}
