//! Which active lease publishes which DNS name.
//!
//! A DHCP client chooses its own hostname (option 12 / 81), so a lease name
//! is a claim made by whoever is on the segment. The rule here keeps the
//! admin in charge (RFC 4703 §5 states the same spirit for DHCID: the first
//! holder keeps a name, and a name someone else put in DNS is not taken):
//!
//! 1. a name that holds admin data (any record, or an empty non-terminal
//!    above one) is never shadowed, joined or replaced by a lease;
//! 2. a hostname a reservation gives its host is published only for that
//!    host (the lease on the reserved address);
//! 3. between clients, the first holder keeps the name: the lease whose
//!    binding began first (`Lease::starts`, which dhcpd keeps while the same
//!    client renews the same address with the same name).
//!
//! Pure: dnsd applies it when it builds its view, `labnetctl leases list`
//! applies it to show why a lease has no name, so both always agree.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use crate::{Lease, Reservation, ZoneRecord};

/// Why a lease's hostname is not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRefusal {
    /// Not a usable host label (RFC 952 / RFC 1123 §2.1).
    Invalid,
    /// An admin record (or a name below one) lives at that name.
    AdminRecord,
    /// A reservation gives this name to the host on this address.
    Reserved(Ipv4Addr),
    /// Another client's lease held the name first.
    HeldBy(Ipv4Addr),
}

impl fmt::Display for NameRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameRefusal::Invalid => f.write_str("not a valid host name"),
            NameRefusal::AdminRecord => f.write_str("an admin record has this name"),
            NameRefusal::Reserved(ip) => write!(f, "reserved for the host on {ip}"),
            NameRefusal::HeldBy(ip) => write!(f, "held first by the lease on {ip}"),
        }
    }
}

/// The outcome for one active lease that asked for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseName {
    pub ip: Ipv4Addr,
    /// The fully qualified name asked for (lowercase, trailing dot), or the
    /// raw hostname when it is not a usable label.
    pub name: String,
    pub outcome: Result<(), NameRefusal>,
}

/// The hostname label a lease asks for, if usable (RFC 952/1123 letters,
/// digits, hyphen; the first label of a FQDN), lowercased.
pub fn lease_label(hostname: &str) -> Option<String> {
    let label = hostname.split('.').next()?.to_ascii_lowercase();
    let ok = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    ok.then_some(label)
}

/// A usable label made from what a client sent (option 12 or the first
/// label of option 81): lowercased, `_` and spaces turned into hyphens,
/// other characters dropped, at most 63 octets, no leading or trailing
/// hyphen. What it returns always passes [`lease_label`]: one rule, two
/// directions (dhcpd cleans what it stores, dnsd and labnetctl check what
/// they publish or accept).
pub fn clean_label(raw: &str) -> Option<String> {
    let first = raw.split('.').next().unwrap_or("");
    let clean: String = first
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            '_' | ' ' => Some('-'),
            _ => None,
        })
        .take(63)
        .collect();
    lease_label(clean.trim_matches('-'))
}

/// `name` lowercased with exactly one trailing dot.
pub fn fqdn(name: &str) -> String {
    let mut s = name.trim_end_matches('.').to_ascii_lowercase();
    s.push('.');
    s
}

/// The names that hold admin data under `zone`: each record's owner and
/// every name between it and the apex (empty non-terminals, RFC 4592 §2.2.2),
/// lowercase with a trailing dot. `labnetctl` and dnsd build the same set.
pub fn admin_names<'a>(
    zone: &str,
    records: impl IntoIterator<Item = &'a ZoneRecord>,
) -> HashSet<String> {
    let apex = fqdn(zone);
    let mut out = HashSet::new();
    for r in records {
        if fqdn(&r.zone) != apex {
            continue;
        }
        let mut name = fqdn(&r.name);
        while name.len() > apex.len() && name.ends_with(&apex) {
            out.insert(name.clone());
            match name.split_once('.') {
                Some((_, rest)) => name = rest.to_owned(),
                None => break,
            }
        }
    }
    out
}

/// The name a dnsd synthesizes for a lease zone that is not in the store
/// (`ns.<zone>`); it is admin data too.
pub fn synthesized_ns(zone: &str) -> String {
    format!("ns.{}", fqdn(zone))
}

/// Decide, for every active lease with a hostname, whether `<label>.<zone>`
/// is published. `is_admin` says whether a name (lowercase, trailing dot)
/// holds admin data. Results come in first-holder order.
pub fn lease_names(
    leases: &[Lease],
    reservations: &[Reservation],
    zone: &str,
    now: i64,
    is_admin: impl Fn(&str) -> bool,
) -> Vec<LeaseName> {
    let apex = fqdn(zone);
    let reserved: HashMap<String, Ipv4Addr> = reservations
        .iter()
        .filter_map(|r| Some((lease_label(r.hostname.as_deref()?)?, r.ip)))
        .collect();
    let mut active: Vec<&Lease> = leases
        .iter()
        .filter(|l| l.is_active(now) && l.hostname.is_some())
        .collect();
    active.sort_by_key(|l| (l.starts, l.ip));
    let mut holders: HashMap<String, Ipv4Addr> = HashMap::new();
    let mut out = Vec::with_capacity(active.len());
    for l in active {
        let raw = l.hostname.as_deref().unwrap_or_default();
        let Some(label) = lease_label(raw) else {
            out.push(LeaseName {
                ip: l.ip,
                name: raw.to_owned(),
                outcome: Err(NameRefusal::Invalid),
            });
            continue;
        };
        let name = format!("{label}.{apex}");
        let outcome = if is_admin(&name) {
            Err(NameRefusal::AdminRecord)
        } else if let Some(&ip) = reserved.get(&label).filter(|&&ip| ip != l.ip) {
            Err(NameRefusal::Reserved(ip))
        } else if let Some(&ip) = holders.get(&name) {
            Err(NameRefusal::HeldBy(ip))
        } else {
            holders.insert(name.clone(), l.ip);
            Ok(())
        };
        out.push(LeaseName {
            ip: l.ip,
            name,
            outcome,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LeaseState, ReservationKey};

    #[test]
    fn a_cleaned_label_is_always_a_lease_label() {
        for (raw, want) in [
            ("My_Host", Some("my-host")),
            ("web.example.com", Some("web")),
            ("-edge-", Some("edge")),
            ("été", Some("t")),
            ("__", None),
            ("", None),
        ] {
            assert_eq!(clean_label(raw).as_deref(), want, "{raw:?}");
        }
        let long = "a".repeat(80);
        assert_eq!(clean_label(&long).map(|l| l.len()), Some(63));
        for raw in ["a b", "x_-_y", "UPPER", "-", "a.b", "ü-ä"] {
            if let Some(l) = clean_label(raw) {
                assert_eq!(lease_label(&l).as_deref(), Some(l.as_str()), "{raw:?}");
            }
        }
    }

    fn lease(ip: [u8; 4], mac: &str, host: &str, starts: i64) -> Lease {
        Lease {
            ip: Ipv4Addr::from(ip),
            mac: mac.to_owned(),
            client_id: None,
            hostname: Some(host.to_owned()),
            state: LeaseState::Bound,
            starts,
            expires: 1_000,
        }
    }

    fn record(zone: &str, name: &str) -> ZoneRecord {
        ZoneRecord {
            id: 0,
            zone: zone.to_owned(),
            name: name.to_owned(),
            rtype: "CNAME".to_owned(),
            ttl: 60,
            rdata: "x.".to_owned(),
            wire: Vec::new(),
        }
    }

    #[test]
    fn admin_names_include_empty_non_terminals_and_skip_other_zones() {
        let recs = [
            record("lab.test", "www.lab.test."),
            record("lab.test", "_sip._tcp.Lab.Test"),
            record("other.test", "mail.other.test."),
        ];
        let names = admin_names("lab.test.", recs.iter());
        let mut v: Vec<_> = names.into_iter().collect();
        v.sort();
        assert_eq!(
            v,
            ["_sip._tcp.lab.test.", "_tcp.lab.test.", "www.lab.test."]
        );
    }

    #[test]
    fn admin_data_wins_then_reservations_then_first_holder() {
        let admin = admin_names("lab.test", [record("lab.test", "www.lab.test")].iter());
        let leases = [
            lease([10, 0, 0, 3], "03", "vm1", 30),
            lease([10, 0, 0, 2], "02", "www", 10),
            lease([10, 0, 0, 4], "04", "vm1.other.example", 20),
            lease([10, 0, 0, 5], "05", "db", 5),
            lease([10, 0, 0, 6], "06", "bad name!", 5),
            lease([10, 0, 0, 50], "50", "db", 50),
        ];
        let res = [Reservation {
            key: ReservationKey::Mac("50".to_owned()),
            ip: Ipv4Addr::new(10, 0, 0, 50),
            hostname: Some("db".to_owned()),
            profile: None,
        }];
        let got = lease_names(&leases, &res, "lab.test", 0, |n| admin.contains(n));
        let by_ip = |last: u8| {
            got.iter()
                .find(|n| n.ip == Ipv4Addr::new(10, 0, 0, last))
                .map(|n| n.outcome.clone())
        };
        assert_eq!(by_ip(2), Some(Err(NameRefusal::AdminRecord)));
        assert_eq!(by_ip(4), Some(Ok(())), "earlier binding keeps vm1");
        assert_eq!(
            by_ip(3),
            Some(Err(NameRefusal::HeldBy(Ipv4Addr::new(10, 0, 0, 4))))
        );
        assert_eq!(
            by_ip(5),
            Some(Err(NameRefusal::Reserved(Ipv4Addr::new(10, 0, 0, 50))))
        );
        assert_eq!(by_ip(50), Some(Ok(())));
        assert_eq!(by_ip(6), Some(Err(NameRefusal::Invalid)));
    }

    #[test]
    fn inactive_leases_hold_no_name() {
        let mut old = lease([10, 0, 0, 2], "02", "vm1", 1);
        old.expires = 5;
        let new = lease([10, 0, 0, 3], "03", "vm1", 10);
        let got = lease_names(&[old, new], &[], "lab.test", 6, |_| false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ip, Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(got[0].outcome, Ok(()));
    }
}
