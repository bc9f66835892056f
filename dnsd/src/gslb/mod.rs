//! GSLB: names answered by the asking client's ISP and region (issue 8).
//!
//! The two levels of the design notes:
//!
//! ```text
//! abc.lab.test.             CNAME abc.gslb.lab.test.        ordinary record (zone::Catalog)
//! abc.gslb.lab.test.        CNAME abc.<isp>.gslb.lab.test.  level 1: ISP of the client address
//! abc.<isp>.gslb.lab.test.  A/AAAA, at most `answers`       level 2: that ISP's healthy
//!                                                           members, nearest region first
//! ```
//!
//! [`GslbTable`] is built from the store's [`GslbData`] whenever
//! `Topic::Gslb` moves and held by the [`crate::handler::View`]; the
//! [`Gslb`] link answers from it without I/O. The client address is the
//! EDNS Client Subnet address when the query has one with a source prefix
//! above 0 (RFC 7871 §7.1.2), else the packet's source; replies to an ECS
//! query echo it with SCOPE PREFIX-LENGTH = the prefix length of the map
//! entry that decided (RFC 7871 §7.2.1). Prefix maps are tries
//! (`prefix-trie`), so an ISP list of tens of thousands of prefixes costs a
//! lookup a few dozen node visits.
//!
//! Health: [`health`] runs each member's check every `health_interval` with
//! rise/fall and flips a flag the table reads at query time, so a member
//! going down is left out at once, without a rebuild.

pub mod health;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::opt::ClientSubnet;
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use labnet_config::GslbConfig;
use labnet_store::{GslbData, WhenAllDown};
use prefix_trie::PrefixMap;
use serde::Serialize;

use crate::handler::View;
use crate::pipeline::{Flow, Link, LinkFuture};
use crate::query::{Answer, QueryCtx};
pub use health::{Check, HealthBook, HealthCell};

/// The label of the level-2 name that considers every member.
pub const ANY: &str = "any";
/// Mean Earth radius (km), for great-circle distances.
const EARTH_KM: f64 = 6371.0;

/// A prefix map entry: what it maps to and its prefix length (the SCOPE it
/// gives), and whether a more specific entry lies inside it (then the
/// answer does not hold for the whole prefix, and the SCOPE is the client's
/// own source prefix instead).
#[derive(Debug, Clone, Copy)]
struct Entry {
    idx: u16,
    len: u8,
    covers_more: bool,
}

/// A CIDR → index map for both families.
#[derive(Default)]
struct NetMap {
    v4: PrefixMap<Ipv4Net, Entry>,
    v6: PrefixMap<Ipv6Net, Entry>,
}

impl NetMap {
    fn build(entries: impl Iterator<Item = (IpNet, u16)>) -> NetMap {
        let mut m = NetMap::default();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (net, idx) in entries {
            let e = Entry {
                idx,
                len: net.prefix_len(),
                covers_more: false,
            };
            match net.trunc() {
                IpNet::V4(n) => {
                    m.v4.insert(n, e);
                    v4.push(n);
                }
                IpNet::V6(n) => {
                    m.v6.insert(n, e);
                    v6.push(n);
                }
            }
        }
        // Mark each entry that has a more specific one inside it.
        for n in v4 {
            if let Some(parent) = n.supernet() {
                let p = m.v4.get_lpm(&parent).map(|(p, _)| *p);
                if let Some(e) = p.and_then(|p| m.v4.get_mut(&p)) {
                    e.covers_more = true;
                }
            }
        }
        for n in v6 {
            if let Some(parent) = n.supernet() {
                let p = m.v6.get_lpm(&parent).map(|(p, _)| *p);
                if let Some(e) = p.and_then(|p| m.v6.get_mut(&p)) {
                    e.covers_more = true;
                }
            }
        }
        m
    }

    /// Longest match for `ip`: the entry and its prefix.
    fn lookup(&self, ip: IpAddr) -> Option<(Entry, IpNet)> {
        match ip {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(p, e)| (*e, IpNet::V4(*p))),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(p, e)| (*e, IpNet::V6(*p))),
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// A region and where it is.
#[derive(Debug, Clone)]
struct Region {
    name: String,
    lat: f64,
    lon: f64,
}

/// One member of a pool.
#[derive(Debug, Clone)]
struct Member {
    ip: IpAddr,
    isp: u16,
    region: u16,
    weight: u32,
    health: Option<Arc<HealthCell>>,
}

impl Member {
    /// A check that has not run yet counts as up (issue 8).
    fn up(&self) -> bool {
        self.health.as_ref().is_none_or(|h| h.is_up())
    }
}

/// A pool with its members, and for each client region (the last slot:
/// no region known) its members grouped by distance, nearest first.
#[derive(Debug)]
struct Pool {
    /// As stored: lowercase, absolute.
    name: Name,
    answers: usize,
    ttl: u32,
    when_all_down: WhenAllDown,
    members: Vec<Member>,
    /// `order[region]`: groups of member indices at equal distance.
    order: Vec<Vec<Vec<u32>>>,
    /// Level-2 name per ISP index (`isps.len()`: the `any` name).
    level2: Vec<Name>,
}

/// What a name we own is.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A pool's name: level 1.
    Level1(u16),
    /// `abc.<isp>.gslb...`: level 2 for an ISP (`None`: any).
    Level2(u16, Option<u16>),
}

/// Everything the GSLB link answers from; built whole, swapped whole.
#[derive(Default)]
pub struct GslbTable {
    isp_map: NetMap,
    region_map: NetMap,
    isps: Vec<String>,
    regions: Vec<Region>,
    pools: Vec<Pool>,
    names: HashMap<Name, Target>,
    default_isp: Option<u16>,
}

impl std::fmt::Debug for GslbTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GslbTable")
            .field("isp_prefixes", &self.isp_map.len())
            .field("region_prefixes", &self.region_map.len())
            .field("isps", &self.isps)
            .field("pools", &self.pools.len())
            .finish()
    }
}

/// Great-circle distance in km (haversine).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_KM * a.sqrt().min(1.0).asin()
}

/// Why the table could not use a row (logged, the row skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GslbError {
    #[error("pool `{0}` is not a DNS name")]
    PoolName(String),
    #[error("`{0}` is not one DNS label")]
    Label(String),
    #[error("member {ip} of pool `{pool}`: region `{region}` does not exist")]
    Region {
        ip: IpAddr,
        pool: String,
        region: String,
    },
    #[error("member {ip} of pool `{pool}`: check `{check}`: {reason}")]
    Check {
        ip: IpAddr,
        pool: String,
        check: String,
        reason: String,
    },
}

/// Is `s` usable as one label of a level-2 name?
pub fn is_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `abc.gslb.lab.test.` → `abc.<isp>.gslb.lab.test.`
pub fn level2_name(pool: &Name, isp: &str) -> Option<Name> {
    let mut labels = pool.iter();
    let first = labels.next()?;
    let mut out: Vec<Vec<u8>> = vec![first.to_vec(), isp.as_bytes().to_vec()];
    out.extend(labels.map(|l| l.to_vec()));
    let mut n = Name::from_labels(out).ok()?;
    n.set_fqdn(true);
    Some(n.to_lowercase())
}

impl GslbTable {
    /// Build the table from the store's rows; rows it cannot use are
    /// returned as warnings and left out. Checked members get their health
    /// cell from `book` (kept across rebuilds, so a rebuild forgets no
    /// probe history).
    pub fn build(
        data: &GslbData,
        cfg: &GslbConfig,
        book: &HealthBook,
    ) -> (GslbTable, Vec<GslbError>) {
        let mut warnings = Vec::new();
        let mut t = GslbTable::default();
        let mut isp_idx: HashMap<String, u16> = HashMap::new();
        let mut isp = |name: &str, t: &mut GslbTable| -> u16 {
            let name = name.to_ascii_lowercase();
            *isp_idx.entry(name.clone()).or_insert_with(|| {
                t.isps.push(name);
                (t.isps.len() - 1) as u16
            })
        };
        let mut isp_entries = Vec::with_capacity(data.isp_map.len());
        for p in &data.isp_map {
            if !is_label(&p.name) {
                warnings.push(GslbError::Label(p.name.clone()));
                continue;
            }
            isp_entries.push((p.cidr, isp(&p.name, &mut t)));
        }
        t.isp_map = NetMap::build(isp_entries.into_iter());
        if let Some(d) = &cfg.default_isp {
            t.default_isp = Some(isp(d, &mut t));
        }
        let mut region_idx: HashMap<&str, u16> = HashMap::new();
        for r in &data.regions {
            region_idx.insert(&r.name, t.regions.len() as u16);
            t.regions.push(Region {
                name: r.name.clone(),
                lat: r.lat,
                lon: r.lon,
            });
        }
        t.region_map = NetMap::build(
            data.region_map
                .iter()
                .filter_map(|p| region_idx.get(p.name.as_str()).map(|&i| (p.cidr, i))),
        );
        let mut pool_idx: HashMap<&str, u16> = HashMap::new();
        for p in &data.pools {
            let Ok(name) = Name::from_ascii(&p.name).map(|n| n.to_lowercase()) else {
                warnings.push(GslbError::PoolName(p.name.clone()));
                continue;
            };
            if name.num_labels() < 2 {
                warnings.push(GslbError::PoolName(p.name.clone()));
                continue;
            }
            pool_idx.insert(&p.name, t.pools.len() as u16);
            t.pools.push(Pool {
                name,
                answers: p.answers.max(1) as usize,
                ttl: p.ttl,
                when_all_down: p.when_all_down,
                members: Vec::new(),
                order: Vec::new(),
                level2: Vec::new(),
            });
        }
        for m in &data.members {
            let Some(&pi) = pool_idx.get(m.pool.as_str()) else {
                continue; // the store's foreign key keeps this from happening
            };
            let Some(&ri) = region_idx.get(m.region.as_str()) else {
                warnings.push(GslbError::Region {
                    ip: m.ip,
                    pool: m.pool.clone(),
                    region: m.region.clone(),
                });
                continue;
            };
            if !is_label(&m.isp) {
                warnings.push(GslbError::Label(m.isp.clone()));
                continue;
            }
            let health = match &m.check {
                None => None,
                Some(spec) => match Check::parse(spec) {
                    Ok(c) => Some(book.cell(m.ip, c)),
                    Err(reason) => {
                        warnings.push(GslbError::Check {
                            ip: m.ip,
                            pool: m.pool.clone(),
                            check: spec.clone(),
                            reason,
                        });
                        None
                    }
                },
            };
            let ii = isp(&m.isp, &mut t);
            t.pools[pi as usize].members.push(Member {
                ip: m.ip,
                isp: ii,
                region: ri,
                weight: m.weight.max(1),
                health,
            });
        }
        // Orders per client region, and the names.
        let nregions = t.regions.len();
        for (pi, pool) in t.pools.iter_mut().enumerate() {
            pool.order = (0..=nregions)
                .map(|c| group_by_distance(&pool.members, &t.regions, (c < nregions).then_some(c)))
                .collect();
            t.names.insert(pool.name.clone(), Target::Level1(pi as u16));
            for (ii, isp) in t
                .isps
                .iter()
                .chain(std::iter::once(&ANY.to_owned()))
                .enumerate()
            {
                let Some(n) = level2_name(&pool.name, isp) else {
                    continue;
                };
                let target = Target::Level2(pi as u16, (ii < t.isps.len()).then_some(ii as u16));
                t.names.insert(n.clone(), target);
                pool.level2.push(n);
            }
        }
        (t, warnings)
    }

    /// The names this table answers (the catalog passes them on).
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.names.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// Answer `qname`/`qtype` for the client at `client` (its address and
    /// source prefix), or `None` when the name is not ours.
    pub fn answer(
        &self,
        owner: &Name,
        qname: &Name,
        qtype: RecordType,
        client: IpAddr,
        source_prefix: u8,
        shuffle: bool,
    ) -> Option<GslbAnswer> {
        let target = *self.names.get(qname)?;
        let mut out = GslbAnswer {
            records: Vec::new(),
            scope: 0,
            nodata: false,
        };
        let (pi, isp) = match target {
            Target::Level1(pi) => {
                let pool = &self.pools[pi as usize];
                let (isp, scope) = self.isp_of(client, source_prefix);
                out.scope = scope;
                let l2 = pool.level2[isp.map_or(self.isps.len(), usize::from)].clone();
                let mut r = Record::from_rdata(owner.clone(), pool.ttl, RData::CNAME(CNAME(l2)));
                r.dns_class = DNSClass::IN;
                out.records.push(r);
                if matches!(qtype, RecordType::CNAME) {
                    return Some(out);
                }
                (pi, isp)
            }
            Target::Level2(pi, isp) => (pi, isp),
        };
        let pool = &self.pools[pi as usize];
        let l2 = &pool.level2[isp.map_or(self.isps.len(), usize::from)];
        let (region, scope) = self.region_of(client, source_prefix);
        out.scope = out.scope.max(scope);
        let want_v4 = match qtype {
            RecordType::A => true,
            RecordType::AAAA => false,
            _ => {
                out.nodata = true;
                return Some(out);
            }
        };
        let picked = select(pool, isp, region, want_v4, shuffle).ips;
        if picked.is_empty() {
            out.nodata = true;
        }
        let owner2 = match target {
            Target::Level1(_) => l2.clone(),
            Target::Level2(..) => owner.clone(),
        };
        for ip in picked {
            let rd = match ip {
                IpAddr::V4(a) => RData::A(A(a)),
                IpAddr::V6(a) => RData::AAAA(AAAA(a)),
            };
            let mut r = Record::from_rdata(owner2.clone(), pool.ttl, rd);
            r.dns_class = DNSClass::IN;
            out.records.push(r);
        }
        Some(out)
    }

    /// Level 1: the client's ISP (`None`: any) and the SCOPE it gives.
    fn isp_of(&self, client: IpAddr, source_prefix: u8) -> (Option<u16>, u8) {
        match self.isp_map.lookup(client) {
            Some((e, _)) => (Some(e.idx), scope(e, source_prefix)),
            // No entry covers it: the answer holds for the client's own
            // subnet only (we cannot tell how far the gap reaches).
            None => (self.default_isp, source_prefix),
        }
    }

    /// The client's region (`None`: no map places it) and the SCOPE.
    fn region_of(&self, client: IpAddr, source_prefix: u8) -> (Option<u16>, u8) {
        match self.region_map.lookup(client) {
            Some((e, _)) => (Some(e.idx), scope(e, source_prefix)),
            None => (None, source_prefix),
        }
    }

    /// Everything `labnetctl gslb explain` prints, for one pool and client.
    pub fn explain(&self, pool: &Name, client: IpAddr) -> Option<Explanation> {
        let pool_name = pool.to_lowercase();
        let Some(Target::Level1(pi)) = self.names.get(&pool_name).copied() else {
            return None;
        };
        let p = &self.pools[pi as usize];
        let full = if client.is_ipv4() { 32 } else { 128 };
        let isp_hit = self.isp_map.lookup(client);
        let (isp, _) = self.isp_of(client, full);
        let region_hit = self.region_map.lookup(client);
        let region = region_hit.map(|(e, _)| e.idx);
        let isp_name = isp.map_or(ANY.to_owned(), |i| self.isps[i as usize].clone());
        let mut why = Vec::new();
        match isp_hit {
            Some((e, net)) => why.push(format!(
                "ISP {} by the ISP map entry {net}",
                self.isps[e.idx as usize]
            )),
            None => why.push(match &self.default_isp {
                Some(d) => format!(
                    "no ISP map entry covers {client}: [dns.gslb] default_isp = {}",
                    self.isps[*d as usize]
                ),
                None => {
                    format!("no ISP map entry covers {client}: level 2 is `{ANY}` (every member)")
                }
            }),
        }
        match region_hit {
            Some((e, net)) => why.push(format!(
                "region {} by the region map entry {net}",
                self.regions[e.idx as usize].name
            )),
            None => why.push(format!(
                "no region map entry covers {client}: regions in the order they were added"
            )),
        }
        let sel = select(p, isp, region, client.is_ipv4(), false);
        why.extend(sel.notes);
        let here = region.map(|r| &self.regions[r as usize]);
        let candidates = p.order[region.map_or(self.regions.len(), usize::from)]
            .iter()
            .flatten()
            .map(|&i| {
                let m = &p.members[i as usize];
                let r = &self.regions[m.region as usize];
                Candidate {
                    ip: m.ip,
                    isp: self.isps[m.isp as usize].clone(),
                    region: r.name.clone(),
                    distance_km: here.map(|h| distance_km(h.lat, h.lon, r.lat, r.lon).round()),
                    weight: m.weight,
                    checked: m.health.is_some(),
                    up: m.up(),
                }
            })
            .collect();
        Some(Explanation {
            pool: p.name.to_string(),
            client,
            isp: isp_name,
            isp_prefix: isp_hit.map(|(_, n)| n),
            region: region.map(|r| self.regions[r as usize].name.clone()),
            region_prefix: region_hit.map(|(_, n)| n),
            level2: p.level2[isp.map_or(self.isps.len(), usize::from)].to_string(),
            candidates,
            answer: sel.ips,
            why,
        })
    }
}

/// RFC 7871 §7.2.1: SCOPE = the prefix length of the entry that decided,
/// unless a more specific entry lies inside it (then the answer holds only
/// for the client's own subnet).
fn scope(e: Entry, source_prefix: u8) -> u8 {
    if e.covers_more {
        source_prefix.max(e.len)
    } else {
        e.len
    }
}

/// What the link answers for one GSLB name.
#[derive(Debug)]
pub struct GslbAnswer {
    /// The CNAME (level 1) and the addresses.
    pub records: Vec<Record>,
    /// SCOPE PREFIX-LENGTH for the reply's ECS option.
    pub scope: u8,
    /// No address to give (other type, or all down with `none`).
    pub nodata: bool,
}

/// `labnetctl gslb explain`.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub pool: String,
    pub client: IpAddr,
    pub isp: String,
    pub isp_prefix: Option<IpNet>,
    pub region: Option<String>,
    pub region_prefix: Option<IpNet>,
    pub level2: String,
    /// Nearest first.
    pub candidates: Vec<Candidate>,
    pub answer: Vec<IpAddr>,
    pub why: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Candidate {
    pub ip: IpAddr,
    pub isp: String,
    pub region: String,
    pub distance_km: Option<f64>,
    pub weight: u32,
    pub checked: bool,
    pub up: bool,
}

/// Members grouped by their region's distance from `client` (nearest
/// first); without a client region, by region in the order they were added.
fn group_by_distance(
    members: &[Member],
    regions: &[Region],
    client: Option<usize>,
) -> Vec<Vec<u32>> {
    let key = |m: &Member| -> f64 {
        match client {
            Some(c) => {
                let (a, b) = (&regions[c], &regions[m.region as usize]);
                distance_km(a.lat, a.lon, b.lat, b.lon)
            }
            None => f64::from(m.region),
        }
    };
    let mut idx: Vec<(f64, u16, u32)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (key(m), m.region, i as u32))
        .collect();
    // Ties in distance keep region then addition order.
    idx.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut groups: Vec<Vec<u32>> = Vec::new();
    let mut last: Option<f64> = None;
    for (d, _, i) in idx {
        // Equal distance (the same region, or two regions equally far):
        // one group, shuffled by weight at answer time.
        if last.is_some_and(|l| (l - d).abs() < 1e-6) {
            if let Some(g) = groups.last_mut() {
                g.push(i);
            }
        } else {
            groups.push(vec![i]);
        }
        last = Some(d);
    }
    groups
}

/// The outcome of level 2.
struct Selection {
    ips: Vec<IpAddr>,
    notes: Vec<String>,
}

/// Level 2: the first `answers` members of `isp` (all ISPs for `None`)
/// that are up, nearest group first; when the ISP has none up, the nearest
/// of the other ISPs; when nothing is up, `when_all_down`.
fn select(
    pool: &Pool,
    isp: Option<u16>,
    region: Option<u16>,
    v4: bool,
    shuffle: bool,
) -> Selection {
    let groups = &pool.order[region.map_or(pool.order.len() - 1, usize::from)];
    let family = |m: &Member| m.ip.is_ipv4() == v4;
    let of_isp = |m: &Member| isp.is_none_or(|i| m.isp == i);
    let mut notes = Vec::new();
    let mut ips = pick(pool, groups, |m| family(m) && of_isp(m) && m.up(), shuffle);
    if ips.is_empty() && isp.is_some() {
        ips = pick(pool, groups, |m| family(m) && m.up(), shuffle);
        if !ips.is_empty() {
            notes.push(
                "no member of this ISP is up: the nearest healthy members of other ISPs".into(),
            );
        }
    }
    if ips.is_empty() {
        match pool.when_all_down {
            WhenAllDown::Any => {
                ips = pick(pool, groups, |m| family(m) && of_isp(m), shuffle);
                if ips.is_empty() {
                    ips = pick(pool, groups, family, shuffle);
                }
                if !ips.is_empty() {
                    notes.push(
                        "nothing is up: --when-all-down any answers regardless of health".into(),
                    );
                }
            }
            WhenAllDown::None => {
                notes.push("nothing is up: --when-all-down none answers NODATA".into());
            }
        }
    }
    Selection { ips, notes }
}

/// Walk the groups nearest first, taking the members `ok` accepts, each
/// group in weighted random order (Efraimidis–Spirakis keys), until
/// `pool.answers` are taken.
fn pick(
    pool: &Pool,
    groups: &[Vec<u32>],
    ok: impl Fn(&Member) -> bool,
    shuffle: bool,
) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(pool.answers);
    let mut group: Vec<(f64, &Member)> = Vec::new();
    for g in groups {
        group.clear();
        group.extend(
            g.iter()
                .map(|&i| &pool.members[i as usize])
                .filter(|m| ok(m))
                .map(|m| (0.0, m)),
        );
        if shuffle && group.len() > 1 {
            for (k, m) in group.iter_mut() {
                // u^(1/w) sorted descending == -ln(u)/w sorted ascending.
                let u: f64 = rand::random::<f64>().max(f64::MIN_POSITIVE);
                *k = -u.ln() / f64::from(m.weight);
            }
            group.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        for (_, m) in &group {
            if out.len() == pool.answers {
                return out;
            }
            out.push(m.ip);
        }
    }
    out
}

/// The GSLB link of the pipeline: answers the names of the view's
/// [`GslbTable`], passes everything else.
pub struct Gslb;

impl Link for Gslb {
    fn name(&self) -> &'static str {
        "gslb"
    }

    fn answer<'a>(&'a self, ctx: &'a QueryCtx, view: &'a View) -> LinkFuture<'a> {
        Box::pin(std::future::ready(answer(ctx, view)))
    }
}

/// The client address and source prefix for `ctx`: RFC 7871 §7.1.2, the
/// ECS address when its source prefix is above 0, else the packet source.
pub fn client_of(ctx: &QueryCtx) -> (IpAddr, u8) {
    if let Some(ecs) = &ctx.client_subnet {
        let p = ecs.source_prefix();
        if p > 0 {
            return (ecs.addr(), p);
        }
    }
    let ip = match ctx.src.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    (ip, if ip.is_ipv4() { 32 } else { 128 })
}

fn answer(ctx: &QueryCtx, view: &View) -> Flow {
    let (client, source) = client_of(ctx);
    let Some(g) = view.gslb.answer(
        ctx.query.name(),
        &ctx.qname,
        ctx.qtype,
        client,
        source,
        true,
    ) else {
        return Flow::Continue;
    };
    let mut a = Answer::rcode(ResponseCode::NoError);
    a.authoritative = true;
    a.answers = g.records;
    if g.nodata || a.answers.is_empty() {
        if let Some(soa) = view
            .catalog
            .find_zone(&ctx.qname)
            .and_then(|z| z.negative_soa())
        {
            a.authorities.push(soa);
        }
    }
    // RFC 7871 §7.2.1: echo FAMILY, SOURCE PREFIX-LENGTH and ADDRESS, with
    // our SCOPE; §7.1.2: a source prefix of 0 gets scope 0.
    if let Some(ecs) = &ctx.client_subnet {
        let scope = if ecs.source_prefix() == 0 { 0 } else { g.scope };
        a.ecs = Some(ClientSubnet::new(ecs.addr(), ecs.source_prefix(), scope));
    }
    tracing::debug!(peer = %ctx.src, client = %client, name = %ctx.qname, scope = g.scope,
        answers = a.answers.len(), "gslb answer");
    Flow::Answer(a)
}

#[cfg(test)]
mod tests;
