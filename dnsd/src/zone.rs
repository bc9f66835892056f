//! Zones in memory and the authoritative lookup (RFC 1034 §4.3.2, RFC 2308,
//! RFC 4592). Pure: no I/O, no clock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Number of labels, counting a leading `*` (hickory's `num_labels` does
/// not, RFC 4592 does).
pub fn labels(name: &Name) -> usize {
    name.iter().len()
}

/// Longest CNAME chain we follow inside our zones.
pub const MAX_CNAME_HOPS: usize = 8;

/// The records of one type at one owner name.
#[derive(Debug, Clone)]
pub struct RrSet {
    pub rtype: RecordType,
    pub ttl: u32,
    pub rdatas: Vec<RData>,
}

impl RrSet {
    fn records(&self, owner: &Name) -> impl Iterator<Item = Record> + '_ {
        let owner = owner.clone();
        self.rdatas.iter().map(move |rd| {
            let mut r = Record::from_rdata(owner.clone(), self.ttl, rd.clone());
            r.dns_class = DNSClass::IN;
            r
        })
    }
}

/// One owner name: its RRsets, or none for an empty non-terminal.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub rrsets: Vec<RrSet>,
}

impl Node {
    pub fn get(&self, rtype: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.rtype == rtype)
    }
}

/// One authoritative zone.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Lowercase apex.
    pub origin: Name,
    pub serial: u32,
    /// Owner names (lowercase; `Name` compares and hashes case-insensitively)
    /// including empty non-terminals.
    pub nodes: HashMap<Name, Node>,
}

/// What a zone says about one name and type.
#[derive(Debug)]
pub enum ZoneAnswer {
    Records(Vec<Record>),
    Cname(Box<Record>, Name),
    NoData,
    NxDomain,
    Referral { ns: Vec<Record>, glue: Vec<Record> },
}

impl Zone {
    /// A zone with only an apex; add records with [`Zone::insert`].
    pub fn new(origin: &Name) -> Zone {
        let origin = origin.to_lowercase();
        let mut nodes = HashMap::new();
        nodes.insert(origin.clone(), Node::default());
        Zone {
            origin,
            serial: 0,
            nodes,
        }
    }

    /// Add one record (its owner must be at or below the apex; others are
    /// ignored and false returned). Creates empty non-terminals on the way.
    pub fn insert(&mut self, owner: &Name, ttl: u32, rdata: RData) -> bool {
        let owner = owner.to_lowercase();
        if !self.origin.zone_of(&owner) {
            return false;
        }
        let rtype = rdata.record_type();
        // RFC 1035 §3.2.1 / RFC 2181 §5.2: one TTL per RRset; keep the lowest.
        let node = self.nodes.entry(owner.clone()).or_default();
        match node.rrsets.iter_mut().find(|s| s.rtype == rtype) {
            Some(set) => {
                if !set.rdatas.contains(&rdata) {
                    set.rdatas.push(rdata);
                }
                set.ttl = set.ttl.min(ttl);
            }
            None => node.rrsets.push(RrSet {
                rtype,
                ttl,
                rdatas: vec![rdata],
            }),
        }
        let olabels = labels(&self.origin);
        let mut n = labels(&owner);
        while n > olabels + 1 {
            n -= 1;
            self.nodes.entry(owner.trim_to(n)).or_default();
        }
        true
    }

    /// Set the serial we serve, in the SOA record too.
    pub fn set_serial(&mut self, serial: u32) {
        self.serial = serial;
        if let Some(node) = self.nodes.get_mut(&self.origin) {
            for set in node
                .rrsets
                .iter_mut()
                .filter(|s| s.rtype == RecordType::SOA)
            {
                for rd in set.rdatas.iter_mut() {
                    if let RData::SOA(soa) = rd {
                        soa.serial = serial;
                    }
                }
            }
        }
    }

    /// The SOA RRset's first record, with the zone's serial.
    pub fn soa(&self) -> Option<(u32, SOA)> {
        let set = self.nodes.get(&self.origin)?.get(RecordType::SOA)?;
        match set.rdatas.first()? {
            RData::SOA(soa) => {
                let mut soa = soa.clone();
                soa.serial = self.serial;
                Some((set.ttl, soa))
            }
            _ => None,
        }
    }

    pub fn soa_record(&self) -> Option<Record> {
        let (ttl, soa) = self.soa()?;
        Some(Record::from_rdata(
            self.origin.clone(),
            ttl,
            RData::SOA(soa),
        ))
    }

    /// RFC 2308 §3: the SOA for a negative answer, TTL = min(SOA TTL, MINIMUM).
    pub fn negative_soa(&self) -> Option<Record> {
        let (ttl, soa) = self.soa()?;
        let ttl = ttl.min(soa.minimum);
        Some(Record::from_rdata(
            self.origin.clone(),
            ttl,
            RData::SOA(soa),
        ))
    }

    /// Every record, SOA first (for AXFR).
    pub fn all_records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(soa) = self.soa_record() {
            out.push(soa);
        }
        let mut names: Vec<&Name> = self.nodes.keys().collect();
        names.sort();
        for name in names {
            for set in &self.nodes[name].rrsets {
                if set.rtype == RecordType::SOA {
                    continue;
                }
                out.extend(set.records(name));
            }
        }
        out
    }

    /// RFC 1034 §4.3.2 step 3, inside this zone. `qname` must be at or
    /// below the apex; records come back owned by `qname` as given (so the
    /// query's case is kept and the encoder can point at the question).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> ZoneAnswer {
        let olabels = labels(&self.origin);
        let qlabels = labels(qname);
        // Walk down from just below the apex: a zone cut (NS below the apex)
        // on the way means a referral (step 3b); a missing name means the
        // name does not exist, the last existing one is the closest encloser.
        for n in olabels + 1..=qlabels {
            let anc = qname.trim_to(n);
            match self.nodes.get(&anc) {
                Some(node) => {
                    if let Some(ns) = node.get(RecordType::NS) {
                        return self.referral(&anc, ns);
                    }
                }
                None => return self.wildcard(qname, &qname.trim_to(n - 1), qtype),
            }
        }
        match self.nodes.get(qname) {
            Some(node) => answer_node(node, qname, qtype),
            None => ZoneAnswer::NxDomain,
        }
    }

    fn referral(&self, cut: &Name, ns: &RrSet) -> ZoneAnswer {
        let ns_records: Vec<Record> = ns.records(cut).collect();
        let mut glue = Vec::new();
        for rd in &ns.rdatas {
            if let RData::NS(target) = rd {
                if !self.origin.zone_of(&target.0) {
                    continue;
                }
                if let Some(node) = self.nodes.get(&target.0) {
                    for t in [RecordType::A, RecordType::AAAA] {
                        if let Some(set) = node.get(t) {
                            glue.extend(set.records(&target.0));
                        }
                    }
                }
            }
        }
        ZoneAnswer::Referral {
            ns: ns_records,
            glue,
        }
    }

    /// RFC 4592 §3.3.1: the source of synthesis is `*.<closest encloser>`.
    fn wildcard(&self, qname: &Name, closest: &Name, qtype: RecordType) -> ZoneAnswer {
        let Ok(wild) = closest.prepend_label("*") else {
            return ZoneAnswer::NxDomain;
        };
        match self.nodes.get(&wild) {
            Some(node) => answer_node(node, qname, qtype),
            None => ZoneAnswer::NxDomain,
        }
    }

    /// A and AAAA records at `name` when it is an in-zone name with data.
    fn addresses(&self, name: &Name, out: &mut Vec<Record>) {
        if let Some(node) = self.nodes.get(name) {
            for t in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = node.get(t) {
                    out.extend(set.records(name));
                }
            }
        }
    }
}

fn answer_node(node: &Node, owner: &Name, qtype: RecordType) -> ZoneAnswer {
    if qtype == RecordType::ANY {
        if node.rrsets.is_empty() {
            return ZoneAnswer::NoData;
        }
        return ZoneAnswer::Records(node.rrsets.iter().flat_map(|s| s.records(owner)).collect());
    }
    if let Some(set) = node.get(qtype) {
        return ZoneAnswer::Records(set.records(owner).collect());
    }
    if let Some(set) = node.get(RecordType::CNAME) {
        if let Some(RData::CNAME(target)) = set.rdatas.first() {
            let rec = set.records(owner).next();
            if let Some(rec) = rec {
                return ZoneAnswer::Cname(Box::new(rec), target.0.clone());
            }
        }
    }
    ZoneAnswer::NoData
}

/// The answer to one question, before it becomes a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// A referral: the additional section (glue) is needed, so the reply
    /// must be truncated rather than lose it.
    pub referral: bool,
    /// The CNAME chain ends at this name, outside every zone of ours: a
    /// resolver goes on from there (RFC 1034 §4.3.2 step 3a, §5.3.3).
    pub leaves_zones: Option<Name>,
    /// `leaves_zones` is a GSLB name: the GSLB link answers it, for every
    /// client (the answer depends on the client, so it is never pre-encoded).
    pub to_gslb: bool,
}

impl Resolution {
    fn new(rcode: ResponseCode) -> Resolution {
        Resolution {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            referral: false,
            leaves_zones: None,
            to_gslb: false,
        }
    }
}

/// The zones we are authoritative for.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub zones: HashMap<Name, Arc<Zone>>,
    /// Names the GSLB link owns (pools and their level-2 names): not ours
    /// to answer even inside our zones, and a CNAME into them is handed on.
    pub gslb_names: Arc<HashSet<Name>>,
}

impl Catalog {
    pub fn insert(&mut self, zone: Zone) {
        self.zones.insert(zone.origin.clone(), Arc::new(zone));
    }

    /// The closest enclosing zone of `name` (longest match).
    pub fn find_zone(&self, name: &Name) -> Option<&Arc<Zone>> {
        let n_labels = labels(name);
        (0..=n_labels)
            .rev()
            .find_map(|n| self.zones.get(&name.trim_to(n)))
    }

    /// The zone whose apex is exactly `name`.
    pub fn zone_at(&self, name: &Name) -> Option<&Arc<Zone>> {
        self.zones.get(name)
    }

    /// Answer one question from our zones; `None` when no zone of ours
    /// encloses `qname` (the next handler, or REFUSED, decides).
    pub fn resolve(&self, qname: &Name, qtype: RecordType) -> Option<Resolution> {
        if self.gslb_names.contains(qname) {
            return None;
        }
        let mut zone = self.find_zone(qname)?;
        let mut res = Resolution::new(ResponseCode::NoError);
        res.authoritative = true;
        let mut name = qname.clone();
        let mut seen: Vec<Name> = Vec::new();
        for hop in 0..=MAX_CNAME_HOPS {
            match zone.lookup(&name, qtype) {
                ZoneAnswer::Records(recs) => {
                    let mut extra = Vec::new();
                    for r in &recs {
                        let target = match &r.data {
                            RData::MX(mx) => Some(mx.exchange.clone()),
                            RData::SRV(srv) => Some(srv.target.clone()),
                            RData::NS(ns) => Some(ns.0.clone()),
                            _ => None,
                        };
                        if let Some(t) = target {
                            if let Some(z) = self.find_zone(&t) {
                                z.addresses(&t, &mut extra);
                            }
                        }
                    }
                    res.answers.extend(recs);
                    res.additionals = extra;
                    break;
                }
                ZoneAnswer::Cname(rec, target) => {
                    res.answers.push(*rec);
                    seen.push(name.clone());
                    // RFC 1034 §4.3.2 step 3a: restart at the target, when
                    // the target is ours and not a loop.
                    if hop == MAX_CNAME_HOPS || seen.contains(&target) {
                        break;
                    }
                    if self.gslb_names.contains(&target) {
                        res.leaves_zones = Some(target);
                        res.to_gslb = true;
                        break;
                    }
                    match self.find_zone(&target) {
                        Some(z) => {
                            zone = z;
                            name = target;
                        }
                        None => {
                            res.leaves_zones = Some(target);
                            break;
                        }
                    }
                }
                ZoneAnswer::NoData => {
                    res.authorities.extend(zone.negative_soa());
                    break;
                }
                ZoneAnswer::NxDomain => {
                    // RFC 6604 §3: the RCODE is that of the last name.
                    res.rcode = ResponseCode::NXDomain;
                    res.authorities.extend(zone.negative_soa());
                    break;
                }
                ZoneAnswer::Referral { ns, glue } => {
                    // RFC 1034 §4.3.2 step 3b: not authoritative for the
                    // delegated name (unless a CNAME of ours led here).
                    if hop == 0 {
                        res.authoritative = false;
                    }
                    res.authorities = ns;
                    res.additionals = glue;
                    res.referral = true;
                    break;
                }
            }
        }
        Some(res)
    }
}
