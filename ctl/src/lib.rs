//! `labnetctl`: the one CLI for everything labnet keeps in its store.
//!
//! Each subcommand group lives in its own module and talks to the store only
//! through `labnet-store`'s traits, so it works on whatever backend the
//! config's `[store] url` names. The daemons notice changes on their own
//! (they follow the store's change counters, and on PostgreSQL its NOTIFY),
//! so nothing here signals them.
//!
//! The binary (`main.rs`) only parses [`Cli`] and calls [`dispatch`]; the
//! command line is here so that `labnet-xtask` can generate the man page and
//! shell completions from it.

mod checks;
mod gslb;
mod leases;
mod profiles;
mod records;
mod reservations;
mod status;
mod zones;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use labnet_config::Config;

#[derive(Parser)]
#[command(name = "labnetctl", version, about = "Manage labnet's shared store")]
pub struct Cli {
    /// The labnet config file (its [store] url says which store to use).
    #[arg(long, short, default_value = "/etc/labnet/labnet.toml", global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create the store (and its directory) and apply migrations.
    Init,
    /// Validate the config file and exit.
    CheckConfig,
    /// Whether each configured daemon is up, asked of its metrics endpoint
    /// ([metrics.listen]); exits 1 when one is down.
    Status {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// DHCP leases.
    #[command(subcommand)]
    Leases(leases::Cmd),
    /// Fixed addresses for known hosts (MAC or client-id -> IP, hostname).
    #[command(subcommand)]
    Reservations(reservations::Cmd),
    /// Boot profiles (PXE) and which host boots which.
    #[command(subcommand)]
    Profiles(profiles::Cmd),
    /// Authoritative DNS zones (create, or import RFC 1035 master files).
    #[command(subcommand)]
    Zones(zones::Cmd),
    /// DNS records, one at a time, in the zone that encloses each name.
    #[command(subcommand)]
    Records(records::Cmd),
    /// GSLB: ISP and region maps, regions, pools, members (labnet-dnsd).
    #[command(subcommand)]
    Gslb(gslb::Cmd),
}

/// labnetctl's command line, for the man page and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Run one command against the store the config names.
pub async fn dispatch(cmd: Cmd, config: &Config) -> anyhow::Result<()> {
    match cmd {
        Cmd::CheckConfig => {
            println!("{}: ok", config.path.display());
            return Ok(());
        }
        // Asks the daemons, not the store.
        Cmd::Status { json } => return status::run(config, json).await,
        _ => {}
    }
    let store = labnet_store::open(&config.store.url).await?;
    match cmd {
        Cmd::Init => {
            println!("store ready: {}", config.store.url);
            Ok(())
        }
        Cmd::CheckConfig | Cmd::Status { .. } => Ok(()),
        Cmd::Leases(c) => leases::run(c, store.as_ref(), config).await,
        Cmd::Reservations(c) => reservations::run(c, store.as_ref(), config).await,
        Cmd::Profiles(c) => profiles::run(c, store.as_ref(), config).await,
        Cmd::Zones(c) => zones::run(c, store.as_ref()).await,
        Cmd::Records(c) => records::run(c, store.as_ref()).await,
        Cmd::Gslb(c) => gslb::run(c, store.as_ref(), config).await,
    }
}
