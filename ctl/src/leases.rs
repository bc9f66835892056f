//! `labnetctl leases list|release`.

use std::net::Ipv4Addr;

use anyhow::bail;
use clap::Subcommand;
use labnet_store::{unix_now, Store};

#[derive(Subcommand)]
pub enum Cmd {
    /// Leases in the store (bound ones unless --all).
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Include released, expired and declined addresses.
        #[arg(long)]
        all: bool,
    },
    /// Free an address now; its client must ask again.
    Release { ip: Ipv4Addr },
}

pub async fn run(cmd: Cmd, store: &dyn Store) -> anyhow::Result<()> {
    match cmd {
        Cmd::List { json, all } => {
            let now = unix_now();
            let mut leases = if all {
                store.load_leases().await?
            } else {
                store.active_leases(now).await?
            };
            leases.sort_by_key(|l| l.ip);
            if json {
                println!("{}", serde_json::to_string_pretty(&leases)?);
                return Ok(());
            }
            println!(
                "{:<16} {:<18} {:<9} {:>8}  HOSTNAME",
                "IP", "MAC", "STATE", "EXPIRES"
            );
            for l in leases {
                let left = l.expires - now;
                println!(
                    "{:<16} {:<18} {:<9} {:>7}s  {}",
                    l.ip,
                    l.mac,
                    l.state.as_str(),
                    left.max(0),
                    l.hostname.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        Cmd::Release { ip } => {
            if !store.release_lease(ip, unix_now()).await? {
                bail!("no bound lease on {ip}");
            }
            println!("released {ip}");
            Ok(())
        }
    }
}
