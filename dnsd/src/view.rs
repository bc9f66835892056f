//! Building the in-memory [`Catalog`] from what the store holds: imported
//! zones and records, plus the names of DHCP clients from active leases.
//! Pure: the caller reads the store and passes `now`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::{A, NS, PTR, SOA};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};
use ipnet::Ipv4Net;
use labnet_store::{lease_names, Lease, LeaseName, Reservation, ZoneRecord};

use crate::zone::{labels, Catalog, Zone};

/// Where lease names go.
#[derive(Debug, Clone)]
pub struct LeaseZones {
    /// `<hostname>.<zone>` A records.
    pub zone: Name,
    pub ttl: u32,
    /// Networks whose reverse zones we serve even with no lease in them
    /// (the DHCP subnets).
    pub subnets: Vec<Ipv4Net>,
    /// Address for `ns.<zone>` in a synthesized zone.
    pub ns_addr: Option<Ipv4Addr>,
}

/// What was read from the store for one rebuild.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// (zone name, stored serial)
    pub zones: Vec<(String, u32)>,
    pub records: Vec<ZoneRecord>,
    /// Active leases at the time of reading.
    pub leases: Vec<Lease>,
    /// Reservations: a reserved hostname is published only for its host.
    pub reservations: Vec<Reservation>,
}

/// The serials we served, so that a zone with lease data moves its serial
/// whenever that data changes (RFC 1982: always forward).
#[derive(Debug, Clone, Default)]
pub struct SerialState {
    served: HashMap<Name, (u64, u32)>,
}

impl SerialState {
    /// The serial for `zone` whose content fingerprint is `fp`; `base` is
    /// the stored serial (or, for a synthesized zone, the clock).
    fn next(&mut self, zone: &Name, fp: u64, base: u32) -> u32 {
        let serial = match self.served.get(zone) {
            Some(&(old_fp, old)) if old_fp == fp => old,
            Some(&(_, old)) => {
                let bumped = old.wrapping_add(1);
                if labnet_store::serial_newer(base, bumped) {
                    base
                } else {
                    bumped
                }
            }
            None => base,
        };
        self.served.insert(zone.clone(), (fp, serial));
        serial
    }
}

/// Decode a stored record's RDATA.
pub fn decode_rdata(rec: &ZoneRecord) -> Result<RData, String> {
    let rtype: RecordType = rec
        .rtype
        .parse()
        .map_err(|_| format!("unknown type {}", rec.rtype))?;
    let len = u16::try_from(rec.wire.len()).map_err(|_| "RDATA too long".to_owned())?;
    let mut d = BinDecoder::new(&rec.wire);
    RData::read(&mut d, rtype, Restrict::new(len)).map_err(|e| e.to_string())
}

/// The in-addr.arpa name of `ip`.
pub fn ptr_name(ip: Ipv4Addr) -> Name {
    let o = ip.octets();
    Name::from_ascii(format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]))
        .unwrap_or_else(|_| Name::root())
}

/// The reverse zone for a network, at the octet boundary that encloses it.
pub fn reverse_zone(net: Ipv4Net) -> Name {
    let o = net.network().octets();
    let n = (net.prefix_len() / 8).clamp(1, 3) as usize;
    let mut s = String::new();
    for i in (0..n).rev() {
        s.push_str(&format!("{}.", o[i]));
    }
    s.push_str("in-addr.arpa.");
    Name::from_ascii(s).unwrap_or_else(|_| Name::root())
}

/// The result of a rebuild.
pub struct Built {
    pub catalog: Catalog,
    /// When the earliest lease in the view expires (rebuild then).
    pub next_expiry: Option<i64>,
    /// Records that could not be used.
    pub warnings: Vec<String>,
    /// Lease names that were refused, and why (`labnet_store::names`).
    pub refused: Vec<LeaseName>,
}

/// Build the catalog.
pub fn build(
    snap: &Snapshot,
    leases_to: Option<&LeaseZones>,
    serials: &mut SerialState,
    now: i64,
) -> Built {
    let mut warnings = Vec::new();
    let mut zones: HashMap<Name, (Zone, u32, bool)> = HashMap::new();
    for (name, serial) in &snap.zones {
        match Name::from_ascii(name) {
            Ok(n) => {
                let z = Zone::new(&n);
                zones.insert(z.origin.clone(), (z, *serial, false));
            }
            Err(e) => warnings.push(format!("zone {name}: {e}")),
        }
    }
    for rec in &snap.records {
        let Ok(zname) = Name::from_ascii(&rec.zone) else {
            continue;
        };
        let Some((zone, _, _)) = zones.get_mut(&zname) else {
            continue;
        };
        let owner = match Name::from_ascii(&rec.name) {
            Ok(n) => n,
            Err(e) => {
                warnings.push(format!("{}: {e}", rec.name));
                continue;
            }
        };
        match decode_rdata(rec) {
            Ok(rd) => {
                if !zone.insert(&owner, rec.ttl, rd) {
                    warnings.push(format!("{} is outside zone {}", rec.name, rec.zone));
                }
            }
            Err(e) => warnings.push(format!("{} {}: {e}", rec.name, rec.rtype)),
        }
    }

    // Lease names, grouped per zone so each zone's fingerprint covers them.
    let mut lease_data: HashMap<Name, BTreeSet<(String, String)>> = HashMap::new();
    let mut next_expiry = None;
    let mut refused = Vec::new();
    if let Some(lz) = leases_to {
        let fwd = lz.zone.to_lowercase();
        synthesize(&mut zones, &fwd, lz, now);
        for net in &lz.subnets {
            synthesize(&mut zones, &reverse_zone(*net), lz, now);
        }
        // Admin data is what the zone holds before any lease goes in
        // (imported records and the synthesized SOA/NS/ns.<zone>).
        // A synthesized zone reserves `ns.<zone>` whether or not it has an
        // address, as `labnetctl leases list` assumes.
        let mut admin: HashSet<Name> = HashSet::new();
        if let Some((z, _, synthesized)) = zones.get(&fwd) {
            admin.extend(z.nodes.keys().cloned());
            if *synthesized {
                admin.extend(fwd.prepend_label("ns").ok());
            }
        }
        let names = lease_names(
            &snap.leases,
            &snap.reservations,
            &fwd.to_ascii(),
            now,
            |n| Name::from_ascii(n).is_ok_and(|n| admin.contains(&n)),
        );
        let by_ip: HashMap<Ipv4Addr, &Lease> = snap.leases.iter().map(|l| (l.ip, l)).collect();
        for name in names {
            if name.outcome.is_err() {
                refused.push(name);
                continue;
            }
            let (Some(lease), Ok(host)) = (by_ip.get(&name.ip), Name::from_ascii(&name.name))
            else {
                continue;
            };
            next_expiry = Some(next_expiry.map_or(lease.expires, |e: i64| e.min(lease.expires)));
            if let Some((z, _, _)) = zones.get_mut(&fwd) {
                if z.insert(&host, lz.ttl, RData::A(A(lease.ip))) {
                    lease_data
                        .entry(fwd.clone())
                        .or_default()
                        .insert((host.to_ascii(), lease.ip.to_string()));
                }
            }
            let rev = ptr_name(lease.ip);
            let rz = match find_enclosing(&zones, &rev) {
                Some(z) => z,
                None => {
                    let z = reverse_zone(Ipv4Net::new(lease.ip, 24).unwrap_or_default());
                    synthesize(&mut zones, &z, lz, now);
                    z
                }
            };
            if let Some((z, _, _)) = zones.get_mut(&rz) {
                // An admin PTR at this address wins; the lease adds none.
                if z.nodes.get(&rev).is_some_and(|n| !n.rrsets.is_empty()) {
                    continue;
                }
                if z.insert(&rev, lz.ttl, RData::PTR(PTR(host.clone()))) {
                    lease_data
                        .entry(rz.clone())
                        .or_default()
                        .insert((rev.to_ascii(), host.to_ascii()));
                }
            }
        }
    }

    let mut catalog = Catalog::default();
    for (origin, (mut zone, base, synthesized)) in zones {
        let leases = lease_data.get(&origin);
        // Every zone goes through the serial state, so one whose lease data
        // changes moves forward even when its stored serial did not.
        let mut h = DefaultHasher::new();
        if !synthesized {
            base.hash(&mut h);
        }
        leases.hash(&mut h);
        zone.set_serial(serials.next(&origin, h.finish(), base));
        catalog.insert(zone);
    }
    Built {
        catalog,
        next_expiry,
        warnings,
        refused,
    }
}

fn find_enclosing(zones: &HashMap<Name, (Zone, u32, bool)>, name: &Name) -> Option<Name> {
    let n_labels = labels(name);
    (0..=n_labels)
        .rev()
        .map(|n| name.trim_to(n))
        .find(|n| zones.contains_key(n))
}

/// Add a generated zone (SOA + NS) at `origin` unless one exists.
fn synthesize(
    zones: &mut HashMap<Name, (Zone, u32, bool)>,
    origin: &Name,
    lz: &LeaseZones,
    now: i64,
) {
    if zones.contains_key(origin) {
        return;
    }
    let fwd = lz.zone.to_lowercase();
    let ns = fwd.prepend_label("ns").unwrap_or_else(|_| fwd.clone());
    let rname = fwd
        .prepend_label("hostmaster")
        .unwrap_or_else(|_| fwd.clone());
    let mut z = Zone::new(origin);
    // The clock as a base serial keeps it moving forward across restarts.
    let base = (now.max(0) as u64 & 0xffff_ffff) as u32;
    let soa = SOA::new(ns.clone(), rname, base, 3600, 600, 86400, lz.ttl);
    z.insert(origin, lz.ttl, RData::SOA(soa));
    z.insert(origin, lz.ttl, RData::NS(NS(ns.clone())));
    if z.origin == fwd {
        if let Some(ip) = lz.ns_addr {
            z.insert(&ns, lz.ttl, RData::A(A(ip)));
        }
    }
    zones.insert(z.origin.clone(), (z, base, true));
}
