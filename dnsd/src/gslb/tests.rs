//! The selection core on a small problem: two ISPs, three regions.

use super::*;
use labnet_store::{GslbMember, GslbPool, GslbPrefix, GslbRegion};

fn pfx(c: &str, n: &str) -> GslbPrefix {
    GslbPrefix {
        cidr: c.parse().expect("cidr"),
        name: n.into(),
    }
}

fn member(ip: &str, isp: &str, region: &str, check: Option<&str>) -> GslbMember {
    GslbMember {
        pool: "abc.gslb.lab.test.".into(),
        ip: ip.parse().expect("ip"),
        isp: isp.into(),
        region: region.into(),
        weight: 1,
        check: check.map(Into::into),
    }
}

fn data(when: WhenAllDown) -> GslbData {
    GslbData {
        isp_map: vec![
            pfx("10.1.0.0/16", "red"),
            pfx("10.2.0.0/16", "blue"),
            pfx("10.2.9.0/24", "red"),
        ],
        region_map: vec![
            pfx("10.1.1.0/24", "north"),
            pfx("10.1.2.0/24", "south"),
            pfx("10.2.0.0/16", "north"),
        ],
        regions: vec![
            GslbRegion {
                name: "north".into(),
                lat: 60.0,
                lon: 10.0,
            },
            GslbRegion {
                name: "middle".into(),
                lat: 50.0,
                lon: 10.0,
            },
            GslbRegion {
                name: "south".into(),
                lat: 40.0,
                lon: 10.0,
            },
        ],
        pools: vec![GslbPool {
            name: "abc.gslb.lab.test.".into(),
            answers: 2,
            ttl: 30,
            when_all_down: when,
        }],
        members: vec![
            member("192.0.2.1", "red", "north", Some("tcp:80")),
            member("192.0.2.2", "red", "middle", None),
            member("192.0.2.3", "red", "south", None),
            member("192.0.2.4", "blue", "south", Some("tcp:81")),
            member("2001:db8::1", "red", "north", None),
        ],
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

fn ips(a: &GslbAnswer) -> Vec<String> {
    a.records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn cname(a: &GslbAnswer) -> Option<String> {
    a.records.iter().find_map(|r| match &r.data {
        RData::CNAME(c) => Some(c.0.to_string()),
        _ => None,
    })
}

fn ask(t: &GslbTable, q: &str, qtype: RecordType, client: &str, source: u8) -> GslbAnswer {
    t.answer(
        &name(q),
        &name(q),
        qtype,
        client.parse().expect("ip"),
        source,
        false,
    )
    .expect("ours")
}

#[test]
fn level1_by_isp_with_scope_and_level2_nearest_first() {
    let book = HealthBook::default();
    let (t, w) = GslbTable::build(&data(WhenAllDown::Any), &GslbConfig::default(), &book);
    assert!(w.is_empty(), "{w:?}");
    let a = ask(&t, "abc.gslb.lab.test.", RecordType::A, "10.1.1.7", 24);
    assert_eq!(cname(&a).as_deref(), Some("abc.red.gslb.lab.test."));
    // North client: north, then middle.
    assert_eq!(ips(&a), ["192.0.2.1", "192.0.2.2"]);
    // ISP /16 and region /24 decided: the reply's scope is the longer.
    assert_eq!(a.scope, 24);
    let a = ask(&t, "abc.red.gslb.lab.test.", RecordType::A, "10.1.2.7", 24);
    assert_eq!(
        ips(&a),
        ["192.0.2.3", "192.0.2.2"],
        "south client: south, then middle"
    );
    // The /16 of `blue` holds a more specific `red` /24: its answer does
    // not hold for the whole /16, so the scope is the client's own.
    let a = ask(&t, "abc.gslb.lab.test.", RecordType::CNAME, "10.2.1.1", 24);
    assert_eq!(cname(&a).as_deref(), Some("abc.blue.gslb.lab.test."));
    assert_eq!(a.scope, 24);
    let a = ask(&t, "abc.gslb.lab.test.", RecordType::CNAME, "10.2.9.1", 20);
    assert_eq!(cname(&a).as_deref(), Some("abc.red.gslb.lab.test."));
    // AAAA: only IPv6 members.
    let a = ask(
        &t,
        "abc.red.gslb.lab.test.",
        RecordType::AAAA,
        "10.1.2.7",
        24,
    );
    assert_eq!(ips(&a), ["2001:db8::1"]);
    // Not ours.
    assert!(t
        .answer(
            &name("www.lab.test."),
            &name("www.lab.test."),
            RecordType::A,
            "10.1.1.1".parse().expect("ip"),
            32,
            false
        )
        .is_none());
}

#[test]
fn unknown_isp_gets_any_or_the_default() {
    let book = HealthBook::default();
    let (t, _) = GslbTable::build(&data(WhenAllDown::Any), &GslbConfig::default(), &book);
    let a = ask(&t, "abc.gslb.lab.test.", RecordType::A, "203.0.113.9", 24);
    assert_eq!(cname(&a).as_deref(), Some("abc.any.gslb.lab.test."));
    // No region either: regions in the order added (north first).
    assert_eq!(ips(&a), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(a.scope, 24, "nothing matched: the client's own prefix");
    let cfg = GslbConfig {
        default_isp: Some("blue".into()),
        ..GslbConfig::default()
    };
    let (t, _) = GslbTable::build(&data(WhenAllDown::Any), &cfg, &book);
    let a = ask(&t, "abc.gslb.lab.test.", RecordType::A, "203.0.113.9", 24);
    assert_eq!(cname(&a).as_deref(), Some("abc.blue.gslb.lab.test."));
    assert_eq!(ips(&a), ["192.0.2.4"]);
}

#[test]
fn down_members_are_left_out_and_other_isps_fill_in() {
    let book = HealthBook::default();
    let (t, _) = GslbTable::build(&data(WhenAllDown::None), &GslbConfig::default(), &book);
    book.cell("192.0.2.1".parse().expect("ip"), Check::Tcp(80))
        .force(false);
    let a = ask(&t, "abc.red.gslb.lab.test.", RecordType::A, "10.1.1.7", 24);
    assert_eq!(
        ips(&a),
        ["192.0.2.2", "192.0.2.3"],
        "north down: middle and south"
    );
    // blue's only member down: the nearest healthy members of other ISPs.
    book.cell("192.0.2.4".parse().expect("ip"), Check::Tcp(81))
        .force(false);
    let a = ask(&t, "abc.blue.gslb.lab.test.", RecordType::A, "10.1.2.7", 24);
    assert_eq!(ips(&a), ["192.0.2.3", "192.0.2.2"]);
}

#[test]
fn when_all_down_any_or_none() {
    let mut d = data(WhenAllDown::None);
    d.members.retain(|m| m.check.is_some());
    let book = HealthBook::default();
    let (t, _) = GslbTable::build(&d, &GslbConfig::default(), &book);
    book.cell("192.0.2.1".parse().expect("ip"), Check::Tcp(80))
        .force(false);
    book.cell("192.0.2.4".parse().expect("ip"), Check::Tcp(81))
        .force(false);
    let a = ask(&t, "abc.red.gslb.lab.test.", RecordType::A, "10.1.1.7", 24);
    assert!(a.nodata && ips(&a).is_empty());
    d.pools[0].when_all_down = WhenAllDown::Any;
    let (t, _) = GslbTable::build(&d, &GslbConfig::default(), &book);
    let a = ask(&t, "abc.red.gslb.lab.test.", RecordType::A, "10.1.1.7", 24);
    assert_eq!(ips(&a), ["192.0.2.1"]);
}

#[test]
fn weights_spread_load_among_equals() {
    let mut d = data(WhenAllDown::Any);
    d.pools[0].answers = 1;
    d.members = vec![
        member("192.0.2.1", "red", "north", None),
        member("192.0.2.2", "red", "north", None),
    ];
    d.members[1].weight = 3;
    let (t, _) = GslbTable::build(&d, &GslbConfig::default(), &HealthBook::default());
    let mut heavy = 0;
    for _ in 0..4000 {
        let a = t
            .answer(
                &name("abc.red.gslb.lab.test."),
                &name("abc.red.gslb.lab.test."),
                RecordType::A,
                "10.1.1.1".parse().expect("ip"),
                32,
                true,
            )
            .expect("ours");
        if ips(&a) == ["192.0.2.2"] {
            heavy += 1;
        }
    }
    // Expect 3000 of 4000; far outside chance at 2800 / 3200.
    assert!((2800..3200).contains(&heavy), "{heavy}");
}

#[test]
fn great_circle_distances() {
    // Beijing–Shanghai is about 1,070 km.
    let d = distance_km(39.90, 116.41, 31.23, 121.47);
    assert!((1040.0..1100.0).contains(&d), "{d}");
    assert_eq!(distance_km(10.0, 20.0, 10.0, 20.0), 0.0);
}

#[test]
fn explain_says_why() {
    let book = HealthBook::default();
    let (t, _) = GslbTable::build(&data(WhenAllDown::Any), &GslbConfig::default(), &book);
    let e = t
        .explain(&name("abc.gslb.lab.test."), "10.1.2.7".parse().expect("ip"))
        .expect("pool");
    assert_eq!(e.isp, "red");
    assert_eq!(e.region.as_deref(), Some("south"));
    assert_eq!(e.level2, "abc.red.gslb.lab.test.");
    assert_eq!(
        e.answer,
        [
            "192.0.2.3".parse::<IpAddr>().expect("ip"),
            "192.0.2.2".parse().expect("ip")
        ]
    );
    assert!(
        e.why.iter().any(|w| w.contains("10.1.0.0/16")),
        "{:?}",
        e.why
    );
}
