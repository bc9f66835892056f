//! `labnetctl gslb ...`: the ISP and region maps, regions, pools and
//! members that labnet-dnsd's GSLB link answers from, and `explain`, which
//! runs dnsd's own selection (`labnet_dnsd::gslb`) on the store's data.
//!
//! Prefix lists import one CIDR a line with `#` comments (the output of
//! `location export --format list AS…` from Debian's `location`); an import
//! replaces that ISP's or region's list in one transaction.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use hickory_proto::rr::Name;
use ipnet::IpNet;
use labnet_config::{Config, GslbConfig};
use labnet_dnsd::gslb::{is_label, Check, GslbTable, HealthBook};
use labnet_store::{GslbMap, GslbMember, GslbPool, GslbPrefix, GslbRegion, Store, WhenAllDown};

use crate::zones::zone_key;

#[derive(Subcommand)]
pub enum Cmd {
    /// The ISP map: CIDR -> ISP (level 1).
    #[command(subcommand)]
    Isp(IspCmd),
    /// Regions (with coordinates) and the region map: CIDR -> region (level 2).
    #[command(subcommand)]
    Region(RegionCmd),
    /// GSLB service names.
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Addresses of a pool.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Pools, members and their health as the dnsd nodes last saw it.
    List {
        #[arg(long)]
        json: bool,
    },
    /// The ISP, region, candidates, health and answer for one client, and why.
    Explain {
        pool: String,
        client: IpAddr,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum IspCmd {
    /// Map one prefix to an ISP.
    Add { cidr: String, isp: String },
    /// Replace an ISP's prefixes with a file's (one CIDR a line, `#` comments).
    Import { isp: String, file: PathBuf },
    /// Remove one prefix.
    Remove { cidr: String },
}

#[derive(Subcommand)]
pub enum RegionCmd {
    /// Add a region (or move it).
    Add {
        region: String,
        #[arg(long, allow_hyphen_values = true)]
        lat: f64,
        #[arg(long, allow_hyphen_values = true)]
        lon: f64,
    },
    /// Map one prefix to a region.
    Map { cidr: String, region: String },
    /// Replace a region's prefixes with a file's.
    Import { region: String, file: PathBuf },
    /// Remove one prefix from the region map.
    Unmap { cidr: String },
}

#[derive(Subcommand)]
pub enum PoolCmd {
    /// Add a pool (or change its settings). NAME must lie in a zone in the store.
    Add {
        name: String,
        /// At most this many addresses per answer.
        #[arg(long, default_value_t = 2)]
        answers: u32,
        #[arg(long, default_value_t = 30)]
        ttl: u32,
        /// When no member is up: `any` answers all, `none` answers NODATA.
        #[arg(long, default_value = "any")]
        when_all_down: String,
    },
    /// Remove a pool and its members.
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum MemberCmd {
    /// Add a member to a pool (or change it).
    Add {
        pool: String,
        ip: IpAddr,
        #[arg(long)]
        isp: String,
        #[arg(long)]
        region: String,
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// `tcp:PORT` or `http:PORT/PATH` (2xx/3xx is up).
        #[arg(long)]
        check: Option<String>,
    },
    /// Remove a member.
    Remove { pool: String, ip: IpAddr },
}

/// A CIDR with its host bits clear, or an error naming it.
fn cidr(s: &str) -> anyhow::Result<IpNet> {
    let net: IpNet = s
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("`{s}` is not a CIDR (e.g. 192.0.2.0/24)"))?;
    if net.trunc() != net {
        bail!("`{s}` has host bits set; did you mean {}?", net.trunc());
    }
    Ok(net)
}

/// ISP and region names become DNS labels (`abc.<isp>.gslb...`).
fn label(kind: &str, s: &str) -> anyhow::Result<String> {
    let l = s.to_ascii_lowercase();
    if !is_label(&l) {
        bail!("{kind} `{s}` must be one DNS label: letters, digits and `-`, at most 63");
    }
    if l == labnet_dnsd::gslb::ANY {
        bail!("{kind} `{s}` is reserved: `any` is the level-2 name for clients of no known ISP");
    }
    Ok(l)
}

/// One CIDR a line; `#` starts a comment. Errors name the file and line.
pub fn read_prefixes(path: &Path, name: &str) -> anyhow::Result<Vec<GslbPrefix>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let net = cidr(line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
        out.push(GslbPrefix {
            cidr: net,
            name: name.to_owned(),
        });
    }
    Ok(out)
}

/// `abc.gslb.lab.test` → `abc.gslb.lab.test.`, checked to lie in a zone.
async fn pool_name(store: &dyn Store, name: &str) -> anyhow::Result<String> {
    let key = zone_key(name);
    let parsed = Name::from_ascii(&key).map_err(|e| anyhow::anyhow!("pool `{name}`: {e}"))?;
    if parsed.num_labels() < 2 {
        bail!("pool `{name}` needs at least two labels (abc.gslb.lab.test)");
    }
    let zones = store.zones().await?;
    let inside = zones
        .iter()
        .any(|z| z.name != key && (z.name == "." || key.ends_with(&format!(".{}", z.name))));
    if !inside {
        bail!("pool `{name}` is in no zone labnet serves; import its zone first (labnetctl zones import)");
    }
    Ok(key)
}

fn gslb_config(config: &Config) -> GslbConfig {
    config
        .dns
        .as_ref()
        .map(|d| d.gslb.clone())
        .unwrap_or_default()
}

pub async fn run(cmd: Cmd, store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    match cmd {
        Cmd::Isp(IspCmd::Add { cidr: c, isp }) => {
            let p = GslbPrefix {
                cidr: cidr(&c)?,
                name: label("ISP", &isp)?,
            };
            store.gslb_map_add(GslbMap::Isp, &[p], None).await?;
            println!("{c} -> {isp}");
        }
        Cmd::Isp(IspCmd::Import { isp, file }) => {
            let isp = label("ISP", &isp)?;
            let list = read_prefixes(&file, &isp)?;
            let n = store.gslb_map_add(GslbMap::Isp, &list, Some(&isp)).await?;
            println!("{isp}: {n} prefixes");
        }
        Cmd::Isp(IspCmd::Remove { cidr: c }) => {
            if !store.gslb_map_remove(GslbMap::Isp, cidr(&c)?).await? {
                bail!("{c} is not in the ISP map");
            }
        }
        Cmd::Region(RegionCmd::Add { region, lat, lon }) => {
            if !(-90.0..=90.0).contains(&lat) {
                bail!("--lat {lat}: a latitude is within -90..=90");
            }
            if !(-180.0..=180.0).contains(&lon) {
                bail!("--lon {lon}: a longitude is within -180..=180");
            }
            let name = label("region", &region)?;
            store
                .gslb_region_put(&GslbRegion { name, lat, lon })
                .await?;
            println!("{region}: {lat}, {lon}");
        }
        Cmd::Region(RegionCmd::Map { cidr: c, region }) => {
            let p = GslbPrefix {
                cidr: cidr(&c)?,
                name: label("region", &region)?,
            };
            store.gslb_map_add(GslbMap::Region, &[p], None).await?;
            println!("{c} -> {region}");
        }
        Cmd::Region(RegionCmd::Import { region, file }) => {
            let region = label("region", &region)?;
            let list = read_prefixes(&file, &region)?;
            let n = store
                .gslb_map_add(GslbMap::Region, &list, Some(&region))
                .await?;
            println!("{region}: {n} prefixes");
        }
        Cmd::Region(RegionCmd::Unmap { cidr: c }) => {
            if !store.gslb_map_remove(GslbMap::Region, cidr(&c)?).await? {
                bail!("{c} is not in the region map");
            }
        }
        Cmd::Pool(PoolCmd::Add {
            name,
            answers,
            ttl,
            when_all_down,
        }) => {
            let Some(when) = WhenAllDown::parse(&when_all_down) else {
                bail!("--when-all-down `{when_all_down}`: use any or none");
            };
            if answers == 0 {
                bail!("--answers 0: a pool answers at least one address");
            }
            let name = pool_name(store, &name).await?;
            store
                .gslb_pool_put(&GslbPool {
                    name: name.clone(),
                    answers,
                    ttl,
                    when_all_down: when,
                })
                .await?;
            println!("pool {name}: {answers} answers, ttl {ttl}, when all down: {when_all_down}");
        }
        Cmd::Pool(PoolCmd::Remove { name }) => {
            if !store.gslb_pool_remove(&zone_key(&name)).await? {
                bail!("no pool {name}");
            }
        }
        Cmd::Member(MemberCmd::Add {
            pool,
            ip,
            isp,
            region,
            weight,
            check,
        }) => {
            if weight == 0 {
                bail!("--weight 0: weights start at 1");
            }
            if let Some(c) = &check {
                Check::parse(c).map_err(|e| anyhow::anyhow!("--check `{c}`: {e}"))?;
            }
            let m = GslbMember {
                pool: zone_key(&pool),
                ip,
                isp: label("ISP", &isp)?,
                region: label("region", &region)?,
                weight,
                check,
            };
            store.gslb_member_put(&m).await?;
            println!("{} member {ip} ({}, {})", m.pool, m.isp, m.region);
        }
        Cmd::Member(MemberCmd::Remove { pool, ip }) => {
            if !store.gslb_member_remove(&zone_key(&pool), ip).await? {
                bail!("{ip} is not a member of {pool}");
            }
        }
        Cmd::List { json } => list(store, json).await?,
        Cmd::Explain { pool, client, json } => {
            let data = store.gslb_data().await?;
            let book = HealthBook::default();
            // Health as the nodes last reported it (the latest report wins).
            let mut latest: HashMap<(IpAddr, String), (i64, bool)> = HashMap::new();
            for h in store.gslb_health().await? {
                let e = latest
                    .entry((h.ip, h.check.clone()))
                    .or_insert((h.at, h.up));
                if h.at >= e.0 {
                    *e = (h.at, h.up);
                }
            }
            for ((ip, check), (_, up)) in latest {
                if let Ok(c) = Check::parse(&check) {
                    book.cell(ip, c).force(up);
                }
            }
            let (table, _) = GslbTable::build(&data, &gslb_config(config), &book);
            let name = Name::from_ascii(zone_key(&pool))
                .map_err(|e| anyhow::anyhow!("pool `{pool}`: {e}"))?;
            let Some(e) = table.explain(&name, client) else {
                bail!("no pool {pool}");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
                return Ok(());
            }
            let opt = |n: &Option<IpNet>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
            println!("pool      {}", e.pool);
            println!("client    {}", e.client);
            println!("isp       {} (prefix {})", e.isp, opt(&e.isp_prefix));
            println!(
                "region    {} (prefix {})",
                e.region.as_deref().unwrap_or("-"),
                opt(&e.region_prefix)
            );
            println!("level 1   {} CNAME {}", e.pool, e.level2);
            println!("candidates (nearest first):");
            for c in &e.candidates {
                println!(
                    "  {:<39} isp {:<10} region {:<12} {:>8} weight {} {}",
                    c.ip,
                    c.isp,
                    c.region,
                    c.distance_km
                        .map(|d| format!("{d} km"))
                        .unwrap_or_else(|| "-".into()),
                    c.weight,
                    match (c.checked, c.up) {
                        (false, _) => "unchecked",
                        (true, true) => "up",
                        (true, false) => "DOWN",
                    }
                );
            }
            let answer: Vec<String> = e.answer.iter().map(|a| a.to_string()).collect();
            println!(
                "answer    {}",
                if answer.is_empty() {
                    "NODATA".into()
                } else {
                    answer.join(" ")
                }
            );
            for w in &e.why {
                println!("why       {w}");
            }
        }
    }
    Ok(())
}

async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let data = store.gslb_data().await?;
    let health = store.gslb_health().await?;
    if json {
        let v = serde_json::json!({
            "pools": data.pools,
            "members": data.members,
            "regions": data.regions,
            "isp_prefixes": data.isp_map.len(),
            "region_prefixes": data.region_map.len(),
            "health": health,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut isps: HashMap<&str, usize> = HashMap::new();
    for p in &data.isp_map {
        *isps.entry(&p.name).or_default() += 1;
    }
    let mut isps: Vec<_> = isps.into_iter().collect();
    isps.sort();
    for (isp, n) in isps {
        println!("isp {isp}: {n} prefixes");
    }
    for r in &data.regions {
        let n = data.region_map.iter().filter(|p| p.name == r.name).count();
        println!("region {}: {}, {} ({n} prefixes)", r.name, r.lat, r.lon);
    }
    for p in &data.pools {
        println!(
            "pool {}: answers {}, ttl {}, when all down: {}",
            p.name,
            p.answers,
            p.ttl,
            p.when_all_down.as_str()
        );
        for m in data.members.iter().filter(|m| m.pool == p.name) {
            let seen: Vec<String> = health
                .iter()
                .filter(|h| h.ip == m.ip && Some(&h.check) == m.check.as_ref())
                .map(|h| format!("{} {}", h.node, if h.up { "up" } else { "DOWN" }))
                .collect();
            let state = match (&m.check, seen.is_empty()) {
                (None, _) => "unchecked".to_owned(),
                (Some(_), true) => "up (no change reported)".to_owned(),
                (Some(_), false) => seen.join(", "),
            };
            println!(
                "  {} isp {} region {} weight {} check {} : {state}",
                m.ip,
                m.isp,
                m.region,
                m.weight,
                m.check.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
