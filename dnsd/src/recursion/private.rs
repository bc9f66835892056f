//! RFC 6303: reverse zones of private and special addresses answered
//! locally, so that a lab's PTR lookups for 10/8 or 192.168/16 never go to
//! the Internet's servers. Each zone exists with the SOA and NS of §3; every
//! name below its apex does not. A local zone of the same name (a lab's
//! `0.77.10.in-addr.arpa`) is answered before this by the local link.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::query::Answer;

/// RFC 6303 §4 (IPv4 and IPv6), with RFC 6598's 100.64/10 left out as the
/// RFC says a CGN operator may serve it.
fn zones() -> Vec<String> {
    let mut z: Vec<String> = vec![
        "10.in-addr.arpa.".into(),
        "168.192.in-addr.arpa.".into(),
        "0.in-addr.arpa.".into(),
        "127.in-addr.arpa.".into(),
        "254.169.in-addr.arpa.".into(),
        "2.0.192.in-addr.arpa.".into(),
        "100.51.198.in-addr.arpa.".into(),
        "113.0.203.in-addr.arpa.".into(),
        "255.255.255.255.in-addr.arpa.".into(),
        // ::/128 and ::1/128
        format!("{}ip6.arpa.", "0.".repeat(32)),
        format!("1.{}ip6.arpa.", "0.".repeat(31)),
        "d.f.ip6.arpa.".into(),
        "8.e.f.ip6.arpa.".into(),
        "9.e.f.ip6.arpa.".into(),
        "a.e.f.ip6.arpa.".into(),
        "b.e.f.ip6.arpa.".into(),
        "8.b.d.0.1.0.0.2.ip6.arpa.".into(),
    ];
    for i in 16..32 {
        z.push(format!("{i}.172.in-addr.arpa."));
    }
    z
}

/// The RFC 6303 zones.
pub struct PrivateZones {
    zones: Vec<Name>,
}

impl Default for PrivateZones {
    fn default() -> Self {
        PrivateZones {
            zones: zones()
                .iter()
                .filter_map(|z| Name::from_ascii(z).ok())
                .collect(),
        }
    }
}

/// RFC 6303 §3: TTL and negative TTL 10800.
const TTL: u32 = 10800;

impl PrivateZones {
    /// The answer for `qname` (lowercase) when it is in one of the zones.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Option<Answer> {
        let apex = self.zones.iter().find(|z| z.zone_of(qname))?;
        let soa = SOA::new(
            apex.clone(),
            Name::from_ascii("nobody.invalid.").unwrap_or_else(|_| Name::root()),
            1,
            604800,
            86400,
            2419200,
            TTL,
        );
        let rec = |rd: RData| {
            let mut r = Record::from_rdata(apex.clone(), TTL, rd);
            r.dns_class = DNSClass::IN;
            r
        };
        let soa_rec = rec(RData::SOA(soa));
        let mut a = Answer::rcode(ResponseCode::NoError);
        a.authoritative = true;
        if qname == apex {
            match qtype {
                RecordType::SOA => a.answers.push(soa_rec),
                RecordType::NS => a.answers.push(rec(RData::NS(NS(apex.clone())))),
                _ => a.authorities.push(soa_rec),
            }
        } else {
            a.rcode = ResponseCode::NXDomain;
            a.authorities.push(soa_rec);
        }
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_reverse_names_are_nxdomain_with_the_soa() {
        let p = PrivateZones::default();
        let n = |s: &str| Name::from_ascii(s).expect("name");
        let a = p
            .answer(&n("5.4.168.192.in-addr.arpa."), RecordType::PTR)
            .expect("ours");
        assert_eq!(a.rcode, ResponseCode::NXDomain);
        assert_eq!(a.authorities[0].name, n("168.192.in-addr.arpa."));
        let a = p
            .answer(&n("20.172.in-addr.arpa."), RecordType::SOA)
            .expect("ours");
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(a.answers.len(), 1);
        assert!(p
            .answer(&n("1.1.1.1.in-addr.arpa."), RecordType::PTR)
            .is_none());
        assert!(p
            .answer(&n("32.172.in-addr.arpa."), RecordType::PTR)
            .is_none());
    }
}
