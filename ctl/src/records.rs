//! `labnetctl records add|list|remove`: one record at a time, in the zone
//! that encloses its name. RDATA is written as in a master file and parsed
//! with the same parser as `zones import` (relative names are relative to
//! the zone).

use anyhow::{bail, Context};
use clap::Subcommand;
use labnet_store::Store;
use serde::Serialize;

use crate::zones::{new_record, parse, zone_key};

#[derive(Subcommand)]
pub enum Cmd {
    /// Add a record, e.g. `records add www.lab.test A 10.77.0.10 --ttl 300`.
    Add {
        name: String,
        #[arg(value_name = "TYPE")]
        rtype: String,
        /// RDATA in master-file form (several words for MX, SRV, CAA, ...).
        #[arg(required = true, num_args = 1..)]
        rdata: Vec<String>,
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
    /// Records of one zone, or of all.
    List {
        zone: Option<String>,
        /// One JSON array instead of master-file lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove the records at NAME, optionally only of TYPE and with RDATA.
    Remove {
        name: String,
        #[arg(value_name = "TYPE")]
        rtype: Option<String>,
        #[arg(num_args = 0..)]
        rdata: Vec<String>,
    },
}

/// The longest zone in the store that encloses `name`.
async fn zone_for(store: &dyn Store, name: &str) -> anyhow::Result<String> {
    let name = zone_key(name);
    store
        .zones()
        .await?
        .into_iter()
        .map(|z| z.name)
        .filter(|z| z == "." || name == *z || name.ends_with(&format!(".{z}")))
        .max_by_key(|z| z.len())
        .with_context(|| {
            format!("no zone in the store encloses {name}; create or import one first")
        })
}

/// Parse one record line through the master-file parser.
fn one_record(
    zone: &str,
    name: &str,
    rtype: &str,
    rdata: &[String],
    ttl: u32,
) -> anyhow::Result<labnet_store::NewRecord> {
    let line = format!(
        "$ORIGIN {zone}\n{} {ttl} IN {} {}\n",
        zone_key(name),
        rtype.to_ascii_uppercase(),
        rdata.join(" ")
    );
    let (_, records) = parse(&line, None, Some(zone))
        .with_context(|| format!("bad record `{name} {rtype} {}`", rdata.join(" ")))?;
    let [rec] = records.as_slice() else {
        bail!("expected one record from `{}`", line.trim());
    };
    new_record(rec)
}

pub async fn run(cmd: Cmd, store: &dyn Store) -> anyhow::Result<()> {
    match cmd {
        Cmd::Add {
            name,
            rtype,
            rdata,
            ttl,
        } => {
            if rtype.eq_ignore_ascii_case("SOA") {
                bail!("a zone's SOA comes from `zones import`; its serial moves by itself");
            }
            let zone = zone_for(store, &name).await?;
            let rec = one_record(&zone, &name, &rtype, &rdata, ttl)?;
            let existing: Vec<String> = store
                .zone_records(Some(&zone))
                .await?
                .into_iter()
                .filter(|r| zone_key(&r.name) == zone_key(&rec.name))
                .map(|r| r.rtype)
                .collect();
            crate::checks::cname_rule(&rec.name, &rec.rtype, &existing)?;
            let serial = store.add_record(&zone, &rec).await?;
            println!(
                "added {} {} {} {} (zone {zone}, serial {serial})",
                rec.name, rec.ttl, rec.rtype, rec.rdata
            );
            Ok(())
        }
        Cmd::List { zone, json } => {
            let zone = zone.map(|z| zone_key(&z));
            let records = store.zone_records(zone.as_deref()).await?;
            if json {
                #[derive(Serialize)]
                struct Row<'a> {
                    zone: &'a str,
                    name: &'a str,
                    ttl: u32,
                    #[serde(rename = "type")]
                    rtype: &'a str,
                    rdata: &'a str,
                }
                let rows: Vec<Row> = records
                    .iter()
                    .map(|r| Row {
                        zone: &r.zone,
                        name: &r.name,
                        ttl: r.ttl,
                        rtype: &r.rtype,
                        rdata: &r.rdata,
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            for r in records {
                println!("{}\t{}\tIN\t{}\t{}", r.name, r.ttl, r.rtype, r.rdata);
            }
            Ok(())
        }
        Cmd::Remove { name, rtype, rdata } => {
            let zone = zone_for(store, &name).await?;
            let rdata = match (&rtype, rdata.is_empty()) {
                (Some(t), false) => Some(one_record(&zone, &name, t, &rdata, 0)?.rdata),
                _ => None,
            };
            let n = store
                .remove_records(&zone, &zone_key(&name), rtype.as_deref(), rdata.as_deref())
                .await?;
            if n == 0 {
                bail!("no matching record at {}", zone_key(&name));
            }
            println!("removed {n} record(s) (zone {zone})");
            Ok(())
        }
    }
}
