//! `labnetctl zones create|import|list|remove`.
//!
//! Master files (RFC 1035 §5: `$ORIGIN`, `$TTL`, `$INCLUDE`, relative names,
//! `@`, parentheses, comments) are read with hickory-proto's zone parser, the
//! same codec labnet-dnsd serves with, so what imports is what is served.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_proto::serialize::txt::Parser;
use labnet_store::{unix_now, NewRecord, Store};
use serde::Serialize;

#[derive(Subcommand)]
pub enum Cmd {
    /// Create an empty zone: an SOA and one NS, then add records with
    /// `records add`.
    Create {
        name: String,
        /// The zone's name server (SOA MNAME and NS); default ns.NAME.
        #[arg(long)]
        ns: Option<String>,
        /// An address for the name server, added as its A record when it
        /// lies inside the zone (glue; RFC 1034 §4.2.1).
        #[arg(long)]
        ns_addr: Option<std::net::Ipv4Addr>,
        /// The admin mailbox as a name (SOA RNAME); default hostmaster.NAME.
        #[arg(long)]
        hostmaster: Option<String>,
        /// TTL of the SOA and NS records, and the negative-caching TTL
        /// (SOA MINIMUM, RFC 2308 §4).
        #[arg(long, default_value_t = 300)]
        ttl: u32,
    },
    /// Load (or replace) a zone from an RFC 1035 master file.
    Import {
        file: PathBuf,
        /// The zone's origin when the file has no $ORIGIN.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Zones in the store with their serials.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a zone and all its records.
    Remove { name: String },
}

/// `name` made absolute (a final dot) and lowercase, as zones are keyed.
pub fn zone_key(name: &str) -> String {
    let mut s = name.trim().to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// A parsed record as the store keeps it: presentation and wire RDATA.
pub fn new_record(rec: &Record) -> anyhow::Result<NewRecord> {
    let mut wire = Vec::new();
    {
        let mut enc = BinEncoder::new(&mut wire);
        // Uncompressed names: the RDATA stands alone in the store.
        enc.set_canonical_form(true);
        rec.data
            .emit(&mut enc)
            .with_context(|| format!("cannot encode {} {}", rec.name, rec.record_type()))?;
    }
    Ok(NewRecord {
        name: rec.name.to_ascii(),
        rtype: rec.record_type().to_string(),
        ttl: rec.ttl,
        rdata: presentation(&rec.data),
        wire,
    })
}

/// RDATA as a master file writes it. hickory's `Display` for TXT runs the
/// strings together, so TXT is quoted here (RFC 1035 §5.1 escapes).
pub fn presentation(data: &RData) -> String {
    match data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| {
                let mut out = String::from("\"");
                for &b in s.iter() {
                    match b {
                        b'"' | b'\\' => {
                            out.push('\\');
                            out.push(b as char);
                        }
                        0x20..=0x7e => out.push(b as char),
                        _ => out.push_str(&format!("\\{b:03}")),
                    }
                }
                out.push('"');
                out
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// Parse master-file text relative to `origin`.
/// The line where the record that breaks a master file starts.
/// hickory's parser reports what is wrong but not where, so this parses
/// growing prefixes that end between records (parentheses closed, RFC 1035
/// §5.1) and bisects for the first one that fails: once a bad record is in,
/// every longer prefix fails too.
fn error_line(text: &str, path: Option<PathBuf>, origin: Option<Name>) -> Option<usize> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut cuts = vec![0usize];
    let mut depth = 0i32;
    for (i, line) in lines.iter().enumerate() {
        let mut quoted = false;
        let mut escaped = false;
        for ch in line.chars() {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = !quoted,
                ';' if !quoted => break,
                '(' if !quoted => depth += 1,
                ')' if !quoted => depth -= 1,
                _ => {}
            }
        }
        if depth <= 0 {
            depth = 0;
            cuts.push(i + 1);
        }
    }
    let fails = |k: usize| {
        Parser::new(lines[..k].concat(), path.clone(), origin.clone())
            .parse()
            .is_err()
    };
    // cuts[0] (empty) parses; find the first cut that fails.
    let (mut lo, mut hi) = (0usize, cuts.len() - 1);
    if !fails(cuts[hi]) {
        return None;
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fails(cuts[mid]) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // The bad record starts on the first non-blank line after the last
    // prefix that parsed.
    (cuts[lo]..cuts[hi])
        .find(|&i| !lines[i].trim().is_empty() && !lines[i].trim_start().starts_with(';'))
        .map(|i| i + 1)
}

pub fn parse(
    text: &str,
    path: Option<PathBuf>,
    origin: Option<&str>,
) -> anyhow::Result<(Name, Vec<Record>)> {
    let origin = origin
        .map(|o| Name::from_ascii(zone_key(o)))
        .transpose()
        .context("bad --origin")?;
    let (origin, sets) = match Parser::new(text, path.clone(), origin.clone()).parse() {
        Ok(x) => x,
        Err(e) => {
            let hint = if text.contains("$ORIGIN") || origin.is_some() {
                String::new()
            } else {
                " (a file without $ORIGIN needs --origin)".to_owned()
            };
            match error_line(text, path, origin) {
                Some(line) => bail!("line {line}: {e}{hint}"),
                None => bail!("{e}{hint}"),
            }
        }
    };
    let records = sets
        .values()
        .flat_map(|s| s.records_without_rrsigs().cloned())
        .collect();
    Ok((origin, records))
}

pub async fn run(cmd: Cmd, store: &dyn Store) -> anyhow::Result<()> {
    match cmd {
        Cmd::Import { file, origin } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (origin, records) = parse(&text, Some(file.clone()), origin.as_deref())
                .with_context(|| format!("{}", file.display()))?;
            let zone = zone_key(&origin.to_ascii());
            let soa = records
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) if r.name.eq_ignore_root(&origin) => Some(soa.serial),
                    _ => None,
                })
                .with_context(|| format!("{}: no SOA record at {zone}", file.display()))?;
            let mut rows = Vec::with_capacity(records.len());
            for r in &records {
                if !origin.zone_of(&r.name) {
                    bail!("{}: {} is outside the zone {zone}", file.display(), r.name);
                }
                if r.record_type() == RecordType::SOA && !r.name.eq_ignore_root(&origin) {
                    bail!("{}: SOA below the apex at {}", file.display(), r.name);
                }
                rows.push(new_record(r)?);
            }
            let z = store.import_zone(&zone, soa, &rows).await?;
            println!(
                "imported {} records into {} (serial {})",
                z.records, z.name, z.serial
            );
            Ok(())
        }
        Cmd::Create {
            name,
            ns,
            ns_addr,
            hostmaster,
            ttl,
        } => {
            let zone = zone_key(&name);
            if store.zones().await?.iter().any(|z| z.name == zone) {
                bail!("zone {zone} exists already (`zones import` replaces a zone)");
            }
            let ns = zone_key(ns.as_deref().unwrap_or(&format!("ns.{zone}")));
            let rname = zone_key(
                hostmaster
                    .as_deref()
                    .unwrap_or(&format!("hostmaster.{zone}")),
            );
            // The clock as the first serial, as dnsd does for the zones it
            // synthesizes: a zone removed and created again still moves
            // forward for secondaries (RFC 1982). Refresh, retry and expire
            // are RFC 1912 §2.2's suggestions.
            let serial = (unix_now().max(1) as u64 & 0xffff_ffff) as u32;
            let mut text = format!(
                "$ORIGIN {zone}\n@ {ttl} IN SOA {ns} {rname} {serial} 3600 600 1209600 {ttl}\n@ {ttl} IN NS {ns}\n"
            );
            if let Some(ip) = ns_addr {
                if ns == zone || ns.ends_with(&format!(".{zone}")) {
                    text.push_str(&format!("{ns} {ttl} IN A {ip}\n"));
                } else {
                    bail!("--ns-addr: {ns} is outside {zone}; give its address in its own zone");
                }
            }
            let (_, records) =
                parse(&text, None, Some(&zone)).with_context(|| format!("cannot create {zone}"))?;
            let rows = records
                .iter()
                .map(new_record)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let z = store.import_zone(&zone, serial, &rows).await?;
            println!(
                "created {} (serial {}, NS {ns}); add records with `labnetctl records add NAME TYPE RDATA`",
                z.name, z.serial
            );
            Ok(())
        }
        Cmd::List { json } => {
            let zones = store.zones().await?;
            if json {
                #[derive(Serialize)]
                struct Row<'a> {
                    name: &'a str,
                    serial: u32,
                    records: u64,
                }
                let rows: Vec<Row> = zones
                    .iter()
                    .map(|z| Row {
                        name: &z.name,
                        serial: z.serial,
                        records: z.records,
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!("{:<40} {:>10} {:>8}", "ZONE", "SERIAL", "RECORDS");
            for z in zones {
                println!("{:<40} {:>10} {:>8}", z.name, z.serial, z.records);
            }
            Ok(())
        }
        Cmd::Remove { name } => {
            let zone = zone_key(&name);
            if !store.remove_zone(&zone).await? {
                bail!("no zone {zone}");
            }
            println!("removed {zone}");
            Ok(())
        }
    }
}
