//! `labnetctl leases list|release`.

use std::net::Ipv4Addr;

use std::collections::HashMap;

use anyhow::bail;
use clap::Subcommand;
use ipnet::Ipv4Net;
use labnet_config::Config;
use labnet_store::{admin_names, fqdn, lease_names, synthesized_ns, unix_now, Store};
use serde::Serialize;

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
        /// Only addresses inside this network (e.g. 10.77.0.0/24).
        #[arg(long, value_name = "CIDR")]
        subnet: Option<Ipv4Net>,
    },
    /// Free an address now; its client must ask again.
    Release { ip: Ipv4Addr },
}

/// What dnsd publishes for a lease: its name, or why it has none.
#[derive(Serialize)]
struct DnsName {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

/// The DNS outcome of every active named lease, by address, decided by the
/// same rule dnsd applies (`labnet_store::names`).
async fn dns_names(
    store: &dyn Store,
    config: &Config,
    now: i64,
) -> anyhow::Result<HashMap<Ipv4Addr, DnsName>> {
    let Some(zone) = config.dns.as_ref().and_then(|d| d.lease_zone.as_deref()) else {
        return Ok(HashMap::new());
    };
    let apex = fqdn(zone);
    let stored = store.zones().await?.iter().any(|z| fqdn(&z.name) == apex);
    let records = store.zone_records(None).await?;
    let mut admin = admin_names(zone, records.iter());
    if !stored {
        admin.insert(synthesized_ns(zone));
    }
    let leases = store.active_leases(now).await?;
    let reservations = store.reservations().await?;
    Ok(
        lease_names(&leases, &reservations, zone, now, |n| admin.contains(n))
            .into_iter()
            .map(|n| {
                let dns = DnsName {
                    name: n.name,
                    refused: n.outcome.err().map(|why| why.to_string()),
                };
                (n.ip, dns)
            })
            .collect(),
    )
}

pub async fn run(cmd: Cmd, store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    match cmd {
        Cmd::List { json, all, subnet } => {
            let now = unix_now();
            let mut leases = if all {
                store.load_leases().await?
            } else {
                store.active_leases(now).await?
            };
            if let Some(net) = subnet {
                leases.retain(|l| net.contains(&l.ip));
            }
            leases.sort_by_key(|l| l.ip);
            let mut names = dns_names(store, config, now).await?;
            if json {
                #[derive(Serialize)]
                struct Row<'a> {
                    #[serde(flatten)]
                    lease: &'a labnet_store::Lease,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    dns: Option<DnsName>,
                }
                let rows: Vec<Row> = leases
                    .iter()
                    .map(|l| Row {
                        lease: l,
                        dns: names.remove(&l.ip),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!(
                "{:<16} {:<18} {:<9} {:>8}  {:<16} DNS",
                "IP", "MAC", "STATE", "EXPIRES", "HOSTNAME"
            );
            for l in leases {
                let left = l.expires - now;
                let dns = match names.remove(&l.ip) {
                    Some(DnsName {
                        refused: Some(why), ..
                    }) => format!("none: {why}"),
                    Some(DnsName { name, .. }) => name,
                    None => "-".to_owned(),
                };
                println!(
                    "{:<16} {:<18} {:<9} {:>7}s  {:<16} {}",
                    l.ip,
                    l.mac,
                    l.state.as_str(),
                    left.max(0),
                    l.hostname.as_deref().unwrap_or("-"),
                    dns
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
