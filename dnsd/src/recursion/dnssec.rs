//! DNSSEC validation for the iterator (RFC 4033, 4034, 4035; NSEC3 RFC
//! 5155): the chain of trust from a trust anchor through DS → DNSKEY →
//! RRSIG down to the zone that answered, and the NSEC/NSEC3 proofs of
//! NXDOMAIN, NODATA, wildcard expansion and unsigned delegations.
//!
//! ```text
//! iterate::step(name) ─▶ Fetched { zone that answered, records }
//!   ─▶ Validator::check: zone_keys(zone)
//!        zone is an anchor ─▶ its DNSKEY set must match the anchor (DS/DNSKEY)
//!        else DS of zone, asked of the parent (RFC 4035 §5.2), itself checked
//!             with zone_keys(parent) … up to the anchor
//!             signed "no DS" (NSEC/NSEC3, opt-out) ─▶ Insecure
//!        then zone's DNSKEY set: a key a DS points to signs it ─▶ Secure(keys)
//!      every RRset of the reply verified with those keys (§5.3), signature
//!      times against `now`, denial proofs for NXDOMAIN/NODATA (§5.4, RFC 5155 §8)
//!   ─▶ Secure | Insecure | Bogus(EDE)
//! ```
//!
//! Crypto, key tags and digests are hickory-proto's (`dnssec-ring`:
//! `Verifier::verify_rrsig`, `DS::covers`, `Nsec3HashAlgorithm::hash`). The
//! chain itself is written here because hickory's validator
//! (`DnssecDnsHandle` in hickory-resolver) wraps a `DnsHandle` that sends
//! whole questions to a resolver of its own: it cannot be told which zone's
//! servers answered (the iterator knows; that is what decides which keys must
//! sign a reply and whose DS to ask for), and it would resolve every DS and
//! DNSKEY through a second, separate cache and iteration engine.
//!
//! Zone verdicts (their verified keys, or insecure, or bogus) are cached by
//! zone, so a cold resolution pays for each zone's DS and DNSKEY once; cached
//! answers carry their verdict and are never verified again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS, NSEC, NSEC3, RRSIG};
use hickory_proto::dnssec::{Algorithm, PublicKeyBuf, Verifier};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use lru::LruCache;

use crate::query::Ede;

/// The IANA root trust anchors as DS records, as IANA publishes them in
/// <https://data.iana.org/root-anchors/root-anchors.xml> (checked against
/// Debian's dns-root-data `root.ds`): KSK-2017 (tag 20326) and KSK-2024
/// (tag 38696). A unit test checks that the DNSKEYs hickory-proto ships
/// hash to these digests.
pub const IANA_ROOT_ANCHORS: &str = "\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
";

/// RFC 9276 §3.2: NSEC3 with more iterations than this is treated as
/// insecure (Unbound's and BIND's limit).
pub const MAX_NSEC3_ITERATIONS: u16 = 150;
/// How long a bogus verdict is remembered (Unbound's `val-bogus-ttl`).
pub const BOGUS_TTL: u32 = 60;
/// Zones whose verdicts are remembered.
const ZONES: usize = 16_384;

/// What validation concluded about an answer (RFC 4033 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Signed all the way from a trust anchor.
    Secure,
    /// Provably unsigned (no DS above), or no trust anchor covers it.
    Insecure,
    /// Should be signed and is not, or the signatures fail.
    Bogus(Ede),
}

impl Security {
    /// The verdict over several parts: bogus wins, then insecure.
    pub fn and(self, other: Security) -> Security {
        match (self, other) {
            (Security::Bogus(e), _) | (_, Security::Bogus(e)) => Security::Bogus(e),
            (Security::Insecure, _) | (_, Security::Insecure) => Security::Insecure,
            _ => Security::Secure,
        }
    }
}

fn bogus(code: u16, text: impl Into<String>) -> Ede {
    Ede::new(code, text)
}

/// Trust anchors: DS or DNSKEY records, by owner.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    ds: Vec<(Name, DS)>,
    keys: Vec<(Name, DNSKEY)>,
}

impl Anchors {
    /// The built-in IANA root anchors.
    pub fn iana() -> Anchors {
        Anchors::parse(IANA_ROOT_ANCHORS).unwrap_or_default()
    }

    /// DS or DNSKEY records in zone-file form (as Unbound's
    /// `trust-anchor-file` or a `dnssec-keygen` `.key` file): `OWNER [TTL]
    /// [IN] DS|DNSKEY RDATA`, `;` comments, parentheses across lines. Other
    /// record types are refused. Err is the reason, with the line.
    pub fn parse(text: &str) -> Result<Anchors, String> {
        let mut a = Anchors::default();
        let mut pending = String::new();
        let mut start = 0;
        let mut depth = 0i32;
        for (i, line) in text.lines().enumerate() {
            let line = line.split(';').next().unwrap_or("");
            if pending.is_empty() {
                start = i + 1;
            }
            depth += line.matches('(').count() as i32 - line.matches(')').count() as i32;
            pending.push(' ');
            pending.push_str(&line.replace(['(', ')'], " "));
            if depth > 0 {
                continue;
            }
            let entry = std::mem::take(&mut pending);
            depth = 0;
            let f: Vec<&str> = entry.split_whitespace().collect();
            if f.is_empty() {
                continue;
            }
            let at = |why: &str| format!("line {start}: {why}");
            let Some(pos) = f
                .iter()
                .position(|t| t.eq_ignore_ascii_case("DS") || t.eq_ignore_ascii_case("DNSKEY"))
            else {
                return Err(at("not a DS or DNSKEY record"));
            };
            let mut owner = Name::from_ascii(f[0]).map_err(|e| at(&format!("owner: {e}")))?;
            owner.set_fqdn(true);
            let owner = owner.to_lowercase();
            let rtype = if f[pos].eq_ignore_ascii_case("DS") {
                RecordType::DS
            } else {
                RecordType::DNSKEY
            };
            if rtype == RecordType::DNSKEY {
                // hickory's text parser refuses DNSKEY ("dynamically
                // generated"): RFC 4034 §2.2 presentation form by hand.
                let k = parse_dnskey(&f[pos + 1..]).map_err(|e| at(&e))?;
                a.keys.push((owner, k));
                continue;
            }
            let rdata = RData::try_from_str(rtype, &f[pos + 1..].join(" "))
                .map_err(|e| at(&format!("{rtype}: {e}")))?;
            match rdata {
                RData::DNSSEC(DNSSECRData::DS(ds)) => a.ds.push((owner, ds)),
                RData::DNSSEC(DNSSECRData::DNSKEY(k)) => a.keys.push((owner, k)),
                _ => return Err(at("not a DS or DNSKEY record")),
            }
        }
        if a.is_empty() {
            return Err("no DS or DNSKEY record".into());
        }
        Ok(a)
    }

    pub fn is_empty(&self) -> bool {
        self.ds.is_empty() && self.keys.is_empty()
    }

    /// The closest anchor at or above `name`.
    pub fn anchor_for(&self, name: &Name) -> Option<Name> {
        self.ds
            .iter()
            .map(|(n, _)| n)
            .chain(self.keys.iter().map(|(n, _)| n))
            .filter(|n| n.zone_of(name))
            .max_by_key(|n| n.num_labels())
            .cloned()
    }

    fn at(&self, zone: &Name) -> (Vec<DS>, Vec<DNSKEY>) {
        (
            self.ds
                .iter()
                .filter(|(n, _)| n == zone)
                .map(|(_, d)| d.clone())
                .collect(),
            self.keys
                .iter()
                .filter(|(n, _)| n == zone)
                .map(|(_, k)| k.clone())
                .collect(),
        )
    }
}

/// DNSKEY RDATA in presentation form (RFC 4034 §2.2): flags, protocol 3,
/// algorithm number, base64 key (spaces allowed).
fn parse_dnskey(f: &[&str]) -> Result<DNSKEY, String> {
    let [flags, protocol, algorithm, key @ ..] = f else {
        return Err("DNSKEY: flags protocol algorithm key".into());
    };
    let flags: u16 = flags
        .parse()
        .map_err(|_| format!("DNSKEY flags `{flags}`"))?;
    if *protocol != "3" {
        return Err(format!("DNSKEY protocol `{protocol}` (must be 3)"));
    }
    let algorithm: u8 = algorithm
        .parse()
        .map_err(|_| format!("DNSKEY algorithm `{algorithm}` (a number)"))?;
    let key = data_encoding::BASE64
        .decode(key.concat().as_bytes())
        .map_err(|e| format!("DNSKEY key: {e}"))?;
    Ok(DNSKEY::with_flags(
        flags,
        PublicKeyBuf::new(key, Algorithm::from_u8(algorithm)),
    ))
}

/// One RRset of a section, with the RRSIGs that cover it.
#[derive(Debug)]
pub struct RrSet<'a> {
    pub name: Name,
    pub rtype: RecordType,
    pub records: Vec<&'a Record>,
    pub sigs: Vec<&'a RRSIG>,
}

pub fn rrsig(r: &Record) -> Option<&RRSIG> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

fn dnskey(r: &Record) -> Option<&DNSKEY> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
        _ => None,
    }
}

fn ds(r: &Record) -> Option<&DS> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::DS(d)) => Some(d),
        _ => None,
    }
}

/// The RRsets in `records` (RRSIGs attached, not sets of their own).
pub fn rrsets(records: &[Record]) -> Vec<RrSet<'_>> {
    let mut sets: Vec<RrSet<'_>> = Vec::new();
    for r in records.iter().filter(|r| rrsig(r).is_none()) {
        match sets
            .iter_mut()
            .find(|s| s.rtype == r.record_type() && s.name == r.name)
        {
            Some(s) => s.records.push(r),
            None => sets.push(RrSet {
                name: r.name.clone(),
                rtype: r.record_type(),
                records: vec![r],
                sigs: Vec::new(),
            }),
        }
    }
    for r in records {
        if let Some(sig) = rrsig(r) {
            if let Some(s) = sets
                .iter_mut()
                .find(|s| s.rtype == sig.input().type_covered && s.name == r.name)
            {
                s.sigs.push(sig);
            }
        }
    }
    sets
}

/// RFC 4035 §5.3.1 and RFC 4034 §3.1.5: `now` between inception and
/// expiration, in serial number arithmetic (RFC 1982), so the 2106 wrap of
/// 32-bit times is handled.
pub fn sig_time(inception: u32, expiration: u32, now: u32) -> Result<(), Ede> {
    if (now.wrapping_sub(inception) as i32) < 0 {
        return Err(bogus(
            Ede::SIGNATURE_NOT_YET_VALID,
            format!("signature valid from {inception}, now {now}"),
        ));
    }
    if (expiration.wrapping_sub(now) as i32) < 0 {
        return Err(bogus(
            Ede::SIGNATURE_EXPIRED,
            format!("signature expired at {expiration}, now {now}"),
        ));
    }
    Ok(())
}

/// RFC 4035 §5.3: one of `set`'s RRSIGs, by `zone`, valid at `now`, made by
/// one of `keys`, verifies.
pub fn verify_rrset(set: &RrSet<'_>, zone: &Name, keys: &[DNSKEY], now: u32) -> Result<(), Ede> {
    let what = format!("{} {}", set.name, set.rtype);
    if set.sigs.is_empty() {
        return Err(bogus(Ede::RRSIGS_MISSING, format!("no RRSIG for {what}")));
    }
    let mut why = bogus(Ede::DNSSEC_BOGUS, format!("no usable RRSIG for {what}"));
    for sig in &set.sigs {
        let i = sig.input();
        // §5.3.1: the signer is the zone that holds the RRset, and the
        // labels field no more than the owner's labels.
        if i.signer_name != *zone || !zone.zone_of(&set.name) {
            why = bogus(
                Ede::DNSSEC_BOGUS,
                format!("{what} signed by {} instead of {zone}", i.signer_name),
            );
            continue;
        }
        if i.num_labels > set.name.num_labels() {
            continue;
        }
        if let Err(e) = sig_time(i.sig_inception.get(), i.sig_expiration.get(), now) {
            why = Ede::new(e.code, format!("{what}: {}", e.text));
            continue;
        }
        let mut tagged = false;
        for key in keys {
            // RFC 4034 §2.1.1 zone key bit; RFC 5011 §7 revoked keys.
            if !key.zone_key() || key.revoke() || key.algorithm() != i.algorithm {
                continue;
            }
            if key.calculate_key_tag().ok() != Some(i.key_tag) {
                continue;
            }
            tagged = true;
            if key
                .verify_rrsig(&set.name, DNSClass::IN, sig, set.records.iter().copied())
                .is_ok()
            {
                return Ok(());
            }
        }
        why = if tagged {
            bogus(
                Ede::DNSSEC_BOGUS,
                format!("RRSIG over {what} does not verify"),
            )
        } else {
            bogus(
                Ede::DNSKEY_MISSING,
                format!("no DNSKEY {} of {zone} for {what}", i.key_tag),
            )
        };
    }
    Err(why)
}

/// RFC 4035 §5.2: `zone`'s DNSKEY set holds a key that a DS (or an anchor
/// key) points to, and that key signs the set. Ok: all the zone's keys.
pub fn verify_dnskeys(
    zone: &Name,
    set: &RrSet<'_>,
    ds: &[DS],
    anchor_keys: &[DNSKEY],
    now: u32,
) -> Result<Vec<DNSKEY>, Ede> {
    let keys: Vec<DNSKEY> = set
        .records
        .iter()
        .filter_map(|r| dnskey(r))
        .cloned()
        .collect();
    let entry: Vec<DNSKEY> = keys
        .iter()
        .filter(|k| {
            anchor_keys.contains(k)
                || ds.iter().any(|d| {
                    d.algorithm() == k.algorithm()
                        && k.calculate_key_tag().ok() == Some(d.key_tag())
                        && d.covers(zone, k).unwrap_or(false)
                })
        })
        .cloned()
        .collect();
    if entry.is_empty() {
        return Err(bogus(
            Ede::DNSKEY_MISSING,
            format!("no DNSKEY of {zone} matches its DS"),
        ));
    }
    verify_rrset(set, zone, &entry, now)?;
    Ok(keys)
}

/// Whether a supported algorithm and digest appear among `ds` (RFC 4035
/// §5.2: otherwise the zone is treated as unsigned).
fn supported(ds: &[DS], keys: &[DNSKEY]) -> bool {
    ds.iter()
        .any(|d| d.algorithm().is_supported() && d.digest_type().is_supported())
        || keys.iter().any(|k| k.algorithm().is_supported())
}

// ---- NSEC (RFC 4035 §5.4, RFC 4034 §4) ----

/// NSEC owner/next covers `name` (strictly between, in canonical order,
/// RFC 4034 §6.1); the last NSEC of a zone points back at the apex.
pub fn nsec_covers(owner: &Name, next: &Name, name: &Name) -> bool {
    if owner < next {
        owner < name && name < next
    } else {
        owner < name || name < next
    }
}

fn common_ancestor(a: &Name, b: &Name) -> Name {
    let mut n = a.num_labels().min(b.num_labels()) as usize;
    while n > 0 {
        if a.trim_to(n) == b.trim_to(n) {
            return a.trim_to(n);
        }
        n -= 1;
    }
    Name::root()
}

fn wildcard_of(name: &Name) -> Option<Name> {
    Name::from_ascii("*").ok()?.append_name(name).ok()
}

fn nsecs(records: &[Record]) -> Vec<(&Name, &NSEC)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((&r.name, n)),
            _ => None,
        })
        .collect()
}

/// An NSEC at a delegation (NS without SOA) comes from the parent side and
/// proves nothing about names below it (RFC 4035 §5.4 last paragraph).
fn nsec_is_cut(n: &NSEC) -> bool {
    let t = n.type_set();
    t.contains(RecordType::NS) && !t.contains(RecordType::SOA)
}

/// RFC 4035 §5.4: `qname` does not exist, and no wildcard at its closest
/// encloser could have produced it.
pub fn nsec_nxdomain(qname: &Name, nsec: &[(&Name, &NSEC)]) -> bool {
    let Some((owner, n)) = nsec
        .iter()
        .find(|(o, n)| nsec_covers(o, n.next_domain_name(), qname))
    else {
        return false;
    };
    if owner.zone_of(qname) && nsec_is_cut(n) {
        return false;
    }
    let a = common_ancestor(qname, owner);
    let b = common_ancestor(qname, n.next_domain_name());
    let ce = if a.num_labels() >= b.num_labels() {
        a
    } else {
        b
    };
    let Some(wild) = wildcard_of(&ce) else {
        return false;
    };
    nsec.iter()
        .any(|(o, n)| nsec_covers(o, n.next_domain_name(), &wild))
}

/// RFC 4035 §5.4 (NODATA): an NSEC at `qname` without `qtype` or CNAME;
/// for DS, the parent-side NSEC of the delegation; or a wildcard NODATA.
pub fn nsec_nodata(qname: &Name, qtype: RecordType, nsec: &[(&Name, &NSEC)]) -> bool {
    let lacks = |n: &NSEC| {
        let t = n.type_set();
        !t.contains(qtype) && !t.contains(RecordType::CNAME)
    };
    if let Some((_, n)) = nsec.iter().find(|(o, _)| *o == qname) {
        if qtype == RecordType::DS {
            // The parent's NSEC: no DS, and not the child apex (SOA).
            return lacks(n) && !n.type_set().contains(RecordType::SOA);
        }
        return lacks(n) && !nsec_is_cut(n);
    }
    // Wildcard NODATA (RFC 4035 §3.1.3.4): qname covered, *.ce lacks qtype.
    nsec.iter().any(|(o, n)| {
        let next = n.next_domain_name();
        if !nsec_covers(o, next, qname) {
            return false;
        }
        let a = common_ancestor(qname, o);
        let b = common_ancestor(qname, next);
        let ce = if a.num_labels() >= b.num_labels() {
            a
        } else {
            b
        };
        let Some(wild) = wildcard_of(&ce) else {
            return false;
        };
        nsec.iter().any(|(wo, wn)| *wo == &wild && lacks(wn))
    })
}

// ---- NSEC3 (RFC 5155 §8) ----

struct Nsec3<'a> {
    /// Hash in the owner's first label, raw.
    owner: Vec<u8>,
    rd: &'a NSEC3,
}

/// The NSEC3 records of `records` that belong to `zone` and share the
/// first one's parameters.
fn nsec3s<'a>(records: &'a [Record], zone: &Name) -> Vec<Nsec3<'a>> {
    let mut v: Vec<Nsec3<'a>> = Vec::new();
    for r in records {
        let RData::DNSSEC(DNSSECRData::NSEC3(rd)) = &r.data else {
            continue;
        };
        if r.name.base_name() != *zone || r.name.num_labels() != zone.num_labels() + 1 {
            continue;
        }
        let Some(label) = r.name.iter().next() else {
            continue;
        };
        let Ok(owner) = data_encoding::BASE32HEX_NOPAD.decode(&label.to_ascii_uppercase()) else {
            continue;
        };
        if let Some(first) = v.first() {
            if first.rd.salt() != rd.salt() || first.rd.iterations() != rd.iterations() {
                continue;
            }
        }
        v.push(Nsec3 { owner, rd });
    }
    v
}

fn nsec3_hash(set: &[Nsec3<'_>], name: &Name) -> Option<Vec<u8>> {
    let rd = set.first()?.rd;
    rd.hash_algorithm()
        .hash(rd.salt(), name, rd.iterations())
        .ok()
        .map(|d| d.as_ref().to_vec())
}

fn nsec3_match<'a>(set: &'a [Nsec3<'a>], hash: &[u8]) -> Option<&'a Nsec3<'a>> {
    set.iter().find(|n| n.owner == hash)
}

fn nsec3_cover<'a>(set: &'a [Nsec3<'a>], hash: &[u8]) -> Option<&'a Nsec3<'a>> {
    set.iter().find(|n| {
        let (o, next) = (n.owner.as_slice(), n.rd.next_hashed_owner_name());
        if o < next {
            o < hash && hash < next
        } else {
            o < hash || hash < next
        }
    })
}

/// What NSEC3 records prove about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nsec3Proof {
    /// The denial holds.
    Proven,
    /// An opt-out span covers the name (RFC 5155 §6): an unsigned
    /// delegation may exist there, so the answer is insecure.
    OptOut,
    /// Too many iterations to check (RFC 9276 §3.2): insecure.
    TooCostly,
    /// No proof.
    Missing,
}

/// RFC 5155 §8.3: the closest encloser of `qname` (an NSEC3 matches it)
/// and the NSEC3 that covers the next closer name.
fn closest_encloser<'a>(
    set: &'a [Nsec3<'a>],
    qname: &Name,
    zone: &Name,
) -> Option<(Name, &'a Nsec3<'a>)> {
    let labels = qname.num_labels();
    for n in (zone.num_labels()..labels).rev() {
        let ce = qname.trim_to(n as usize);
        let h = nsec3_hash(set, &ce)?;
        let Some(m) = nsec3_match(set, &h) else {
            continue;
        };
        // §8.3: a matching NSEC3 with NS but no SOA (a delegation) or DNAME
        // cannot be the closest encloser.
        if m.rd.is_ancestor_delegation() && ce != *zone {
            return None;
        }
        let next_closer = qname.trim_to(n as usize + 1);
        let nh = nsec3_hash(set, &next_closer)?;
        return nsec3_cover(set, &nh).map(|c| (ce, c));
    }
    None
}

fn costly(set: &[Nsec3<'_>]) -> bool {
    set.iter().any(|n| n.rd.iterations() > MAX_NSEC3_ITERATIONS)
}

/// RFC 5155 §8.4: NXDOMAIN.
pub fn nsec3_nxdomain(qname: &Name, zone: &Name, records: &[Record]) -> Nsec3Proof {
    let set = nsec3s(records, zone);
    if costly(&set) {
        return Nsec3Proof::TooCostly;
    }
    let Some((ce, next_closer)) = closest_encloser(&set, qname, zone) else {
        return Nsec3Proof::Missing;
    };
    let Some(wild) = wildcard_of(&ce) else {
        return Nsec3Proof::Missing;
    };
    match nsec3_hash(&set, &wild) {
        Some(h) if nsec3_cover(&set, &h).is_some() => {
            if next_closer.rd.opt_out() {
                Nsec3Proof::OptOut
            } else {
                Nsec3Proof::Proven
            }
        }
        _ => Nsec3Proof::Missing,
    }
}

/// RFC 5155 §8.5–8.7: NODATA (and DS NODATA, with opt-out).
pub fn nsec3_nodata(
    qname: &Name,
    qtype: RecordType,
    zone: &Name,
    records: &[Record],
) -> Nsec3Proof {
    let set = nsec3s(records, zone);
    if costly(&set) {
        return Nsec3Proof::TooCostly;
    }
    let lacks = |n: &NSEC3| {
        let t = n.type_set();
        !t.contains(qtype) && !t.contains(RecordType::CNAME)
    };
    let Some(h) = nsec3_hash(&set, qname) else {
        return Nsec3Proof::Missing;
    };
    if let Some(m) = nsec3_match(&set, &h) {
        let ok = if qtype == RecordType::DS {
            lacks(m.rd) && !m.rd.type_set().contains(RecordType::SOA)
        } else {
            lacks(m.rd) && !(m.rd.is_ancestor_delegation() && qname != zone)
        };
        return if ok {
            Nsec3Proof::Proven
        } else {
            Nsec3Proof::Missing
        };
    }
    let Some((ce, next_closer)) = closest_encloser(&set, qname, zone) else {
        return Nsec3Proof::Missing;
    };
    // §8.6: DS with no matching NSEC3: an opt-out span covers it.
    if qtype == RecordType::DS && next_closer.rd.opt_out() {
        return Nsec3Proof::OptOut;
    }
    // §8.7: wildcard NODATA.
    let Some(wild) = wildcard_of(&ce) else {
        return Nsec3Proof::Missing;
    };
    match nsec3_hash(&set, &wild).and_then(|h| nsec3_match(&set, &h).map(|m| lacks(m.rd))) {
        Some(true) => Nsec3Proof::Proven,
        _ => Nsec3Proof::Missing,
    }
}

/// RFC 5155 §8.8 / RFC 4035 §5.3.4: an answer expanded from a wildcard
/// (`labels` in its RRSIG fewer than its owner's) needs proof that the
/// owner itself does not exist.
pub fn wildcard_proven(owner: &Name, labels: u8, zone: &Name, authorities: &[Record]) -> bool {
    let ns = nsecs(authorities);
    if ns
        .iter()
        .any(|(o, n)| nsec_covers(o, n.next_domain_name(), owner))
    {
        return true;
    }
    let set = nsec3s(authorities, zone);
    let next_closer = owner.trim_to(labels as usize + 1);
    nsec3_hash(&set, &next_closer).is_some_and(|h| nsec3_cover(&set, &h).is_some())
}

// ---- One reply, checked with its zone's keys ----

/// What one zone's servers said about a name, as the iterator saw it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The zone whose servers answered.
    pub zone: Name,
    pub rcode: ResponseCode,
    /// In-zone records of the answer section (RRSIGs included).
    pub answers: Vec<Record>,
    /// In-zone SOA, NSEC, NSEC3 and their RRSIGs.
    pub authorities: Vec<Record>,
}

/// The name a CNAME chain inside `answers` leads to from `qname`.
fn chain_end(qname: &Name, answers: &[Record]) -> Name {
    let mut cur = qname.clone();
    for _ in 0..answers.len() {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(t) if r.name == cur => Some(t.0.clone()),
            _ => None,
        });
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    cur
}

/// RFC 4035 §5.3–5.4: every RRset of `f` signed by `zone`'s `keys` at
/// `now`, and a negative answer proven.
pub fn check_reply(
    f: &Fetched,
    qname: &Name,
    qtype: RecordType,
    keys: &[DNSKEY],
    now: u32,
) -> Security {
    let zone = &f.zone;
    for set in rrsets(&f.answers) {
        if let Err(e) = verify_rrset(&set, zone, keys, now) {
            return Security::Bogus(e);
        }
        // A wildcard expansion: the verified RRSIG says fewer labels.
        let labels = set.sigs.iter().map(|s| s.input().num_labels).min();
        if let Some(l) = labels.filter(|l| *l < set.name.num_labels()) {
            if set
                .sigs
                .iter()
                .all(|s| s.input().num_labels < set.name.num_labels())
                && !wildcard_proven(&set.name, l, zone, &f.authorities)
            {
                return Security::Bogus(bogus(
                    Ede::NSEC_MISSING,
                    format!("wildcard answer for {} without proof", set.name),
                ));
            }
        }
    }
    for set in rrsets(&f.authorities) {
        if matches!(
            set.rtype,
            RecordType::SOA | RecordType::NSEC | RecordType::NSEC3
        ) {
            if let Err(e) = verify_rrset(&set, zone, keys, now) {
                return Security::Bogus(e);
            }
        }
    }
    let name = chain_end(qname, &f.answers);
    let has_answer = f
        .answers
        .iter()
        .any(|r| r.name == name && (r.record_type() == qtype || qtype == RecordType::CNAME));
    let nsec = nsecs(&f.authorities);
    let proof = match f.rcode {
        ResponseCode::NXDomain => {
            if nsec_nxdomain(&name, &nsec) {
                Nsec3Proof::Proven
            } else {
                nsec3_nxdomain(&name, zone, &f.authorities)
            }
        }
        ResponseCode::NoError if !has_answer => {
            if nsec_nodata(&name, qtype, &nsec) {
                Nsec3Proof::Proven
            } else {
                nsec3_nodata(&name, qtype, zone, &f.authorities)
            }
        }
        _ => Nsec3Proof::Proven,
    };
    match proof {
        Nsec3Proof::Proven => Security::Secure,
        Nsec3Proof::OptOut | Nsec3Proof::TooCostly => Security::Insecure,
        Nsec3Proof::Missing => Security::Bogus(bogus(
            Ede::NSEC_MISSING,
            format!("no NSEC/NSEC3 proof for {name} {qtype} ({})", f.rcode),
        )),
    }
}

// ---- The chain of trust ----

/// The zone whose keys must have signed `f`: the zone the iterator asked,
/// or a zone below it that the RRSIGs name (RFC 4035 §5.3.1: the signer
/// encloses the records), for servers that serve a parent and a child
/// alike and answer from the child without a referral. Naming a deeper
/// signer gains an attacker nothing: its keys are checked from the anchor
/// down like any other. `proper`: the signer must be above `name` (a DS).
fn signer_of(f: &Fetched, name: &Name, proper: bool) -> Name {
    f.answers
        .iter()
        .chain(f.authorities.iter())
        .filter_map(rrsig)
        .map(|s| s.input().signer_name.to_lowercase())
        .filter(|s| f.zone.zone_of(s) && s.zone_of(name) && !(proper && s == name))
        .max_by_key(|s| s.num_labels())
        .unwrap_or_else(|| f.zone.clone())
}

/// After a proven "no DS" for `zone`: the proof must show a delegation
/// there (NS in the NSEC/NSEC3 bitmap), else `zone` is no zone cut and an
/// unsigned answer "from" it is a forged referral, not an insecure zone.
fn delegation_proven(f: &Fetched, zone: &Name) -> bool {
    let cut = |t: &hickory_proto::rr::RecordTypeSet| t.contains(RecordType::NS);
    if nsecs(&f.authorities)
        .iter()
        .any(|(o, n)| *o == zone && cut(n.type_set()))
    {
        return true;
    }
    let set = nsec3s(&f.authorities, &f.zone);
    nsec3_hash(&set, zone)
        .and_then(|h| nsec3_match(&set, &h).map(|m| cut(m.rd.type_set())))
        .unwrap_or(false)
}

/// How the validator asks for DS and DNSKEY records: the iterator, which
/// routes DS to the parent's servers (RFC 4035 §4.2).
#[async_trait]
pub trait Fetch: Send + Sync {
    async fn fetch(&self, name: &Name, qtype: RecordType) -> Result<Fetched, Ede>;
}

/// A zone's keys, as far as validation goes.
#[derive(Debug, Clone)]
pub enum ZoneKeys {
    Secure(Arc<Vec<DNSKEY>>),
    Insecure,
    Bogus(Ede),
}

/// The validator: anchors, the zone verdict cache and the clock.
pub struct Validator {
    anchors: Anchors,
    zones: Mutex<LruCache<Name, (ZoneKeys, Instant)>>,
    /// Seconds since the epoch (injected: tests move it).
    clock: Box<dyn Fn() -> u32 + Send + Sync>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn system_clock() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl Validator {
    pub fn new(anchors: Anchors) -> Validator {
        Validator::with_clock(anchors, Box::new(system_clock))
    }

    pub fn with_clock(anchors: Anchors, clock: Box<dyn Fn() -> u32 + Send + Sync>) -> Validator {
        Validator {
            anchors,
            zones: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(ZONES).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            clock,
        }
    }

    /// The verdict on a reply from `f.zone` about `qname`/`qtype`.
    pub async fn check(
        &self,
        fetch: &dyn Fetch,
        f: &Fetched,
        qname: &Name,
        qtype: RecordType,
    ) -> Security {
        let signer = signer_of(f, qname, false);
        let shifted;
        let f = if signer == f.zone {
            f
        } else {
            shifted = Fetched {
                zone: signer,
                ..f.clone()
            };
            &shifted
        };
        match self.zone_keys(&f.zone, fetch).await {
            ZoneKeys::Insecure => Security::Insecure,
            ZoneKeys::Bogus(e) => Security::Bogus(e),
            ZoneKeys::Secure(keys) => check_reply(f, qname, qtype, &keys, (self.clock)()),
        }
    }

    /// `zone`'s verified keys, from the cache or by walking up to the
    /// anchor.
    pub async fn zone_keys(&self, zone: &Name, fetch: &dyn Fetch) -> ZoneKeys {
        let zone = zone.to_lowercase();
        let now = Instant::now();
        if let Some((k, until)) = lock(&self.zones).get(&zone) {
            if *until > now {
                return k.clone();
            }
        }
        let (keys, ttl) = Box::pin(self.walk(&zone, fetch)).await;
        if let Some(ttl) = ttl {
            let ttl = match keys {
                ZoneKeys::Bogus(_) => BOGUS_TTL,
                _ => ttl.clamp(BOGUS_TTL, 86_400),
            };
            lock(&self.zones).put(
                zone.clone(),
                (keys.clone(), now + Duration::from_secs(u64::from(ttl))),
            );
        }
        if let ZoneKeys::Bogus(e) = &keys {
            tracing::debug!(zone = %zone, code = e.code, reason = %e.text, "zone keys bogus");
        }
        keys
    }

    /// The verdict for `zone` and how long it may be kept (`None`: not at
    /// all, a network failure).
    async fn walk(&self, zone: &Name, fetch: &dyn Fetch) -> (ZoneKeys, Option<u32>) {
        let Some(anchor) = self.anchors.anchor_for(zone) else {
            return (ZoneKeys::Insecure, Some(86_400));
        };
        let now = (self.clock)();
        let mut ttl = u32::MAX;
        let (ds, anchor_keys) = if anchor == *zone {
            self.anchors.at(zone)
        } else {
            // RFC 4035 §5.2: the DS RRset comes from the parent zone, and
            // is checked with the parent's keys.
            let mut r = match fetch.fetch(zone, RecordType::DS).await {
                Ok(r) => r,
                Err(e) => return (ZoneKeys::Bogus(e), None),
            };
            r.zone = signer_of(&r, zone, true);
            if !(r.zone.zone_of(zone) && r.zone != *zone) {
                return (
                    ZoneKeys::Bogus(bogus(
                        Ede::DNSSEC_BOGUS,
                        format!("DS of {zone} answered by {}", r.zone),
                    )),
                    Some(BOGUS_TTL),
                );
            }
            let parent = match self.zone_keys(&r.zone, fetch).await {
                ZoneKeys::Secure(k) => k,
                other => return (other, Some(3_600)),
            };
            match check_reply(&r, zone, RecordType::DS, &parent, now) {
                Security::Secure => {}
                Security::Insecure => return (ZoneKeys::Insecure, Some(3_600)),
                Security::Bogus(e) => return (ZoneKeys::Bogus(e), Some(BOGUS_TTL)),
            }
            let ds: Vec<DS> = r
                .answers
                .iter()
                .filter(|x| x.name == *zone)
                .filter_map(|x| {
                    ttl = ttl.min(x.ttl);
                    ds(x).cloned()
                })
                .collect();
            if ds.is_empty() {
                if !delegation_proven(&r, zone) {
                    return (
                        ZoneKeys::Bogus(bogus(
                            Ede::DNSSEC_BOGUS,
                            format!("{zone} has no DS and is no delegation of {}", r.zone),
                        )),
                        Some(BOGUS_TTL),
                    );
                }
                // Proven: no DS, an unsigned delegation.
                return (ZoneKeys::Insecure, Some(3_600));
            }
            (ds, Vec::new())
        };
        if !supported(&ds, &anchor_keys) {
            return (ZoneKeys::Insecure, Some(3_600));
        }
        let r = match fetch.fetch(zone, RecordType::DNSKEY).await {
            Ok(r) => r,
            Err(e) => return (ZoneKeys::Bogus(e), None),
        };
        let sets = rrsets(&r.answers);
        let Some(set) = sets
            .iter()
            // Whoever served it: the set is checked against the DS.
            .find(|s| s.rtype == RecordType::DNSKEY && s.name == *zone)
        else {
            return (
                ZoneKeys::Bogus(bogus(
                    Ede::DNSKEY_MISSING,
                    format!("{zone} has no DNSKEY set"),
                )),
                Some(BOGUS_TTL),
            );
        };
        ttl = set.records.iter().map(|x| x.ttl).fold(ttl, u32::min);
        match verify_dnskeys(zone, set, &ds, &anchor_keys, now) {
            Ok(keys) => (ZoneKeys::Secure(Arc::new(keys)), Some(ttl)),
            Err(e) => (ZoneKeys::Bogus(e), Some(BOGUS_TTL)),
        }
    }
}

#[cfg(test)]
#[path = "dnssec_tests.rs"]
mod tests;
