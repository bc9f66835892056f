//! `labnetctl reservations add|list|remove`.

use std::net::Ipv4Addr;

use anyhow::{bail, Context};
use clap::Subcommand;
use labnet_config::Config;
use labnet_store::{format_mac, parse_mac, Reservation, ReservationKey, Store};

use crate::checks;

#[derive(Subcommand)]
pub enum Cmd {
    /// Reserve IP for a host known by MAC (or --client-id).
    Add {
        /// Hardware address, aa:bb:cc:dd:ee:ff.
        #[arg(required_unless_present = "client_id")]
        mac: Option<String>,
        ip: Option<Ipv4Addr>,
        /// Match on DHCP option 61 instead of the MAC (hex bytes, aa:bb:..).
        #[arg(long, conflicts_with = "mac")]
        client_id: Option<String>,
        /// The IP, when --client-id is used.
        #[arg(long = "ip")]
        ip_flag: Option<Ipv4Addr>,
        #[arg(long)]
        hostname: Option<String>,
        /// Boot profile for this host.
        #[arg(long)]
        profile: Option<String>,
    },
    /// All reservations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove the reservation of a MAC (or --client-id).
    Remove {
        #[arg(required_unless_present = "client_id")]
        mac: Option<String>,
        #[arg(long, conflicts_with = "mac")]
        client_id: Option<String>,
    },
}

fn key(mac: Option<String>, client_id: Option<String>) -> anyhow::Result<ReservationKey> {
    match (mac, client_id) {
        (Some(m), None) => Ok(ReservationKey::Mac(checks::ethernet_mac(&m)?)),
        (None, Some(c)) => Ok(ReservationKey::ClientId(
            parse_mac(&c).with_context(|| format!("`{c}` is not hex bytes like 01:52:54:00:.."))?,
        )),
        _ => bail!("give a MAC or --client-id"),
    }
}

pub async fn run(cmd: Cmd, store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    match cmd {
        Cmd::Add {
            mac,
            ip,
            client_id,
            ip_flag,
            hostname,
            profile,
        } => {
            let Some(ip) = ip.or(ip_flag) else {
                bail!("give the address to reserve")
            };
            let key = key(mac, client_id)?;
            checks::reservable(config, ip)?;
            if let Some(h) = &hostname {
                checks::host_name(h)?;
            }
            if let Some(p) = &profile {
                checks::profile_exists(store, p).await?;
            }
            let r = Reservation {
                key,
                ip,
                hostname,
                profile,
            };
            store.add_reservation(&r).await?;
            println!("reserved {ip}");
            Ok(())
        }
        Cmd::List { json } => {
            let rs = store.reservations().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rs)?);
                return Ok(());
            }
            println!("{:<16} {:<24} {:<16} PROFILE", "IP", "CLIENT", "HOSTNAME");
            for r in rs {
                let who = match &r.key {
                    ReservationKey::Mac(m) => m.clone(),
                    ReservationKey::ClientId(c) => format!("id:{}", format_mac(c)),
                };
                println!(
                    "{:<16} {:<24} {:<16} {}",
                    r.ip,
                    who,
                    r.hostname.as_deref().unwrap_or("-"),
                    r.profile.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        Cmd::Remove { mac, client_id } => {
            let k = key(mac, client_id)?;
            if !store.remove_reservation(&k).await? {
                bail!("no such reservation");
            }
            println!("removed");
            Ok(())
        }
    }
}
