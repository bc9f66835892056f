//! Every scenario runs on both backends: on SQLite in a temporary file, on
//! PostgreSQL in a database of its own on one throwaway server
//! ([`crate::testing::PgCluster`]).

use super::*;
use crate::testing::PgCluster;

/// One `#[tokio::test]` per scenario on SQLite, and one test that runs them
/// all on a PostgreSQL server it starts (one server, not one per scenario:
/// initdb is the slow part).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    super::$name(format!("sqlite://{}", dir.path().join("t.db").display())).await;
                }
            )*
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_backend() {
            let pg = PgCluster::start();
            $(
                eprintln!("postgres: {}", stringify!($name));
                $name(pg.url(stringify!($name))).await;
            )*
        }
    };
}

on_both_backends!(
    leases_round_trip_and_bump_generation,
    addresses_sort_as_numbers,
    admin_release_bumps_both_counters,
    reservations_refuse_duplicates,
    two_handles_share_one_store,
    zones_import_add_remove_move_serial_and_generation,
    profiles_add_replace_remove_bump_generation,
    assign_goes_to_the_reservation_when_there_is_one,
    a_watch_sees_another_handles_write,
    concurrent_writers_all_succeed,
    two_nodes_never_commit_one_address_to_two_clients,
    gslb_maps_pools_members_round_trip,
);

async fn open_store(url: &str) -> Arc<dyn Store> {
    open(url).await.expect("open")
}

fn lease(ip: &str, mac: &str, expires: i64) -> Lease {
    Lease {
        ip: ip.parse().expect("ip"),
        mac: mac.into(),
        client_id: None,
        hostname: Some("vm1".into()),
        state: LeaseState::Bound,
        starts: 100,
        expires,
    }
}

async fn leases_round_trip_and_bump_generation(url: String) {
    let s = open_store(&url).await;
    let g0 = s.generation(Topic::Leases).await.expect("gen");
    let a = lease("10.0.0.5", "52:54:00:00:00:01", 1000);
    s.commit_leases(&[a.clone(), lease("10.0.0.6", "52:54:00:00:00:02", 50)])
        .await
        .expect("commit");
    assert_eq!(s.generation(Topic::Leases).await.expect("gen"), g0 + 1);
    let mut all = s.load_leases().await.expect("load");
    all.sort_by_key(|l| l.ip);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], a);
    // Only the unexpired one is active at t=500.
    let active = s.active_leases(500).await.expect("active");
    assert_eq!(active, vec![a.clone()]);
    // The same client renews: written.
    let mut renewed = a.clone();
    renewed.expires = 2000;
    assert!(s
        .commit_leases(&[renewed.clone()])
        .await
        .expect("commit")
        .is_empty());
    // Another client may not take the address while it is held: refused,
    // and the holder's row comes back.
    let mut b = renewed.clone();
    b.mac = "52:54:00:00:00:09".into();
    b.starts = 1500;
    assert_eq!(
        s.commit_leases(&[b.clone()]).await.expect("commit"),
        vec![renewed.clone()]
    );
    assert!(s.load_leases().await.expect("load").contains(&renewed));
    // Once the lease has run out, it may.
    b.starts = 2000;
    assert!(s
        .commit_leases(&[b.clone()])
        .await
        .expect("commit")
        .is_empty());
    assert!(s.load_leases().await.expect("load").contains(&b));
}

/// Two nodes (two handles) claim the same addresses for different clients
/// at once: each address ends with exactly one holder, each claim was
/// either written or refused with the other node's client as holder.
async fn two_nodes_never_commit_one_address_to_two_clients(url: String) {
    let a = open_store(&url).await;
    let b = open_store(&url).await;
    let claims = |mac: &'static str| -> Vec<Lease> {
        (0..200u32)
            .map(|i| {
                lease(
                    &std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string(),
                    mac,
                    1000,
                )
            })
            .collect()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (s, mac) in [
        (a.clone(), "52:54:00:00:00:0a"),
        (b.clone(), "52:54:00:00:00:0b"),
    ] {
        tasks.spawn(async move {
            let mut won = Vec::new();
            // Small batches, interleaving with the other node's.
            for batch in claims(mac).chunks(10) {
                let refused = s.commit_leases(batch).await.expect("commit");
                for l in batch {
                    match refused.iter().find(|h| h.ip == l.ip) {
                        Some(h) => assert_ne!(h.mac, mac, "refused in favour of itself"),
                        None => won.push(l.ip),
                    }
                }
            }
            (mac, won)
        });
    }
    let mut winner = std::collections::HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (mac, won) = r.expect("task");
        for ip in won {
            assert!(winner.insert(ip, mac).is_none(), "{ip} committed to both");
        }
    }
    let stored = a.load_leases().await.expect("load");
    assert_eq!(stored.len(), 200);
    // A node follows the other's writes: all rows since 0, then only what
    // was written after.
    let (all, last) = a.leases_since(0).await.expect("since");
    assert_eq!(all.len(), 200);
    let (none, same) = a.leases_since(last).await.expect("since");
    assert!(none.is_empty());
    assert_eq!(same, last);
    assert!(b
        .commit_leases(&[lease("10.9.9.9", "52:54:00:00:00:0b", 1000)])
        .await
        .expect("commit")
        .is_empty());
    let (new, newer) = a.leases_since(last).await.expect("since");
    assert_eq!(new, vec![lease("10.9.9.9", "52:54:00:00:00:0b", 1000)]);
    assert!(newer > last);
    for l in stored {
        assert_eq!(winner.get(&l.ip).copied(), Some(l.mac.as_str()), "{}", l.ip);
    }
}

async fn admin_release_bumps_both_counters(url: String) {
    let s = open_store(&url).await;
    s.commit_leases(&[lease("10.0.0.5", "52:54:00:00:00:01", 1000)])
        .await
        .expect("commit");
    let admin0 = s.generation(Topic::LeaseAdmin).await.expect("gen");
    assert!(s
        .release_lease("10.0.0.5".parse().expect("ip"), 200)
        .await
        .expect("release"));
    assert!(!s
        .release_lease("10.0.0.9".parse().expect("ip"), 200)
        .await
        .expect("release"));
    assert_eq!(
        s.generation(Topic::LeaseAdmin).await.expect("gen"),
        admin0 + 1
    );
    assert!(s.active_leases(150).await.expect("active").is_empty());
}

async fn reservations_refuse_duplicates(url: String) {
    let s = open_store(&url).await;
    let r = Reservation {
        key: ReservationKey::Mac("52:54:00:aa:bb:cc".into()),
        ip: "10.0.0.50".parse().expect("ip"),
        hostname: Some("pinned".into()),
        profile: None,
    };
    s.add_reservation(&r).await.expect("add");
    let dup_ip = Reservation {
        key: ReservationKey::Mac("52:54:00:aa:bb:cd".into()),
        ..r.clone()
    };
    assert!(matches!(
        s.add_reservation(&dup_ip).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.reservations().await.expect("list"), vec![r.clone()]);
    assert!(s.remove_reservation(&r.key).await.expect("remove"));
    assert!(s.reservations().await.expect("list").is_empty());
}

async fn two_handles_share_one_store(url: String) {
    let a = open_store(&url).await;
    let b = open_store(&url).await;
    a.commit_leases(&[lease("10.0.0.5", "52:54:00:00:00:01", 1000)])
        .await
        .expect("commit");
    assert_eq!(b.load_leases().await.expect("load").len(), 1);
}

#[test]
fn macs_format_and_parse() {
    assert_eq!(
        format_mac(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        "52:54:00:12:34:56"
    );
    assert_eq!(
        parse_mac("52-54-00-12-34-56"),
        Some(vec![0x52, 0x54, 0, 0x12, 0x34, 0x56])
    );
    assert_eq!(parse_mac("5254.0012.3456"), None);
}

fn rec(name: &str, rtype: &str, rdata: &str) -> NewRecord {
    NewRecord {
        name: name.into(),
        rtype: rtype.into(),
        ttl: 300,
        rdata: rdata.into(),
        wire: vec![10, 0, 0, 1],
    }
}

async fn zones_import_add_remove_move_serial_and_generation(url: String) {
    let s = open_store(&url).await;
    let g0 = s.generation(Topic::Zones).await.expect("gen");
    let z = s
        .import_zone("lab.test.", 7, &[rec("www.lab.test.", "A", "10.0.0.1")])
        .await
        .expect("import");
    assert_eq!((z.serial, z.records), (7, 1));
    assert_eq!(s.generation(Topic::Zones).await.expect("gen"), g0 + 1);
    // Re-import with an older serial: the stored one still moves forward.
    let z = s.import_zone("lab.test.", 3, &[]).await.expect("import");
    assert_eq!(z.serial, 8);
    let serial = s
        .add_record("lab.test.", &rec("WWW.lab.test.", "A", "10.0.0.2"))
        .await
        .expect("add");
    assert_eq!(serial, 9);
    assert!(s
        .add_record("nope.test.", &rec("a.nope.test.", "A", "1"))
        .await
        .is_err());
    assert_eq!(
        s.zone_records(Some("lab.test.")).await.expect("list").len(),
        1
    );
    assert_eq!(
        s.remove_records("lab.test.", "www.LAB.test.", Some("a"), None)
            .await
            .expect("rm"),
        1
    );
    let zones = s.zones().await.expect("zones");
    assert_eq!(zones[0].serial, 10);
    assert_eq!(zones[0].records, 0);
    // Nothing removed: serial stays.
    assert_eq!(
        s.remove_records("lab.test.", "x.lab.test.", None, None)
            .await
            .expect("rm"),
        0
    );
    assert_eq!(s.zones().await.expect("zones")[0].serial, 10);
    assert!(s.remove_zone("lab.test.").await.expect("rm zone"));
    assert!(s.zones().await.expect("zones").is_empty());
    assert!(serial_newer(1, u32::MAX));
    assert!(!serial_newer(u32::MAX, 1));
}

fn profile(name: &str, cmdline: &str) -> BootProfile {
    BootProfile {
        name: name.into(),
        kernel: "vmlinuz".into(),
        initrd: Some("initrd.img".into()),
        cmdline: cmdline.into(),
        bios_loader: None,
        uefi_loader: None,
        uefi32_loader: None,
    }
}

async fn profiles_add_replace_remove_bump_generation(url: String) {
    let s = open_store(&url).await;
    let g0 = s.generation(Topic::Profiles).await.expect("gen");
    s.put_profile(&profile("rescue", "quiet"), false)
        .await
        .expect("add");
    assert!(matches!(
        s.put_profile(&profile("rescue", "other"), false).await,
        Err(StoreError::Conflict(_))
    ));
    s.put_profile(&profile("rescue", "loud"), true)
        .await
        .expect("replace");
    assert_eq!(
        s.profiles().await.expect("list"),
        vec![profile("rescue", "loud")]
    );
    assert_eq!(s.generation(Topic::Profiles).await.expect("gen"), g0 + 2);
    assert!(s.remove_profile("rescue").await.expect("remove"));
    assert!(!s.remove_profile("rescue").await.expect("remove"));
    assert!(s.profiles().await.expect("list").is_empty());
}

async fn assign_goes_to_the_reservation_when_there_is_one(url: String) {
    let s = open_store(&url).await;
    s.put_profile(&profile("a", ""), false).await.expect("add");
    s.put_profile(&profile("b", ""), false).await.expect("add");
    assert!(matches!(
        s.assign_profile("52:54:00:00:00:01", "nope").await,
        Err(StoreError::NotFound(_))
    ));
    // No reservation: the host mapping holds it.
    assert_eq!(
        s.assign_profile("52:54:00:00:00:01", "a")
            .await
            .expect("assign"),
        Assignment::Host
    );
    assert_eq!(
        s.host_profiles().await.expect("hosts"),
        vec![HostProfile {
            mac: "52:54:00:00:00:01".into(),
            profile: "a".into()
        }]
    );
    // An assigned profile cannot be removed.
    assert!(matches!(
        s.remove_profile("a").await,
        Err(StoreError::Conflict(_))
    ));
    // Once the host has a reservation, assigning writes there and drops the
    // stale mapping.
    s.add_reservation(&Reservation {
        key: ReservationKey::Mac("52:54:00:00:00:01".into()),
        ip: "10.0.0.9".parse().expect("ip"),
        hostname: None,
        profile: None,
    })
    .await
    .expect("reserve");
    let r0 = s.generation(Topic::Reservations).await.expect("gen");
    assert_eq!(
        s.assign_profile("52:54:00:00:00:01", "b")
            .await
            .expect("assign"),
        Assignment::Reservation
    );
    assert_eq!(
        s.generation(Topic::Reservations).await.expect("gen"),
        r0 + 1
    );
    assert!(s.host_profiles().await.expect("hosts").is_empty());
    assert_eq!(
        s.reservations().await.expect("list")[0].profile.as_deref(),
        Some("b")
    );
    assert!(s
        .unassign_profile("52:54:00:00:00:01")
        .await
        .expect("unassign"));
    assert!(!s
        .unassign_profile("52:54:00:00:00:01")
        .await
        .expect("unassign"));
    assert_eq!(s.reservations().await.expect("list")[0].profile, None);
    assert!(s.remove_profile("b").await.expect("remove"));
}

async fn addresses_sort_as_numbers(url: String) {
    let s = open_store(&url).await;
    // As text, 10.0.0.10 sorts before 10.0.0.9.
    s.commit_leases(&[
        lease("10.0.0.10", "52:54:00:00:00:10", 1000),
        lease("10.0.0.9", "52:54:00:00:00:09", 1000),
        lease("255.255.255.254", "52:54:00:00:00:ff", 1000),
    ])
    .await
    .expect("commit");
    let ips: Vec<String> = s
        .active_leases(0)
        .await
        .expect("active")
        .iter()
        .map(|l| l.ip.to_string())
        .collect();
    assert_eq!(ips, ["10.0.0.9", "10.0.0.10", "255.255.255.254"]);
}

async fn a_watch_sees_another_handles_write(url: String) {
    let a = open_store(&url).await;
    let b = open_store(&url).await;
    let mut w = watch(a.clone(), &[Topic::Zones, Topic::Reservations])
        .await
        .expect("watch");
    b.import_zone("lab.test.", 1, &[]).await.expect("import");
    let moved = tokio::time::timeout(std::time::Duration::from_secs(3), w.changed())
        .await
        .expect("a change within 3 s")
        .expect("no store error");
    assert_eq!(moved, vec![Topic::Zones]);
    // A topic not watched does not wake it.
    b.put_profile(&profile("p", ""), false).await.expect("put");
    assert!(w.check().await.expect("check").is_empty());
}

/// Many writers at once on one store (the CLI beside a busy dhcpd): none
/// fails. On SQLite this needs writers that begin IMMEDIATE: a deferred
/// read-then-write transaction fails with SQLITE_BUSY_SNAPSHOT (517).
async fn concurrent_writers_all_succeed(url: String) {
    let handles: Vec<Arc<dyn Store>> = vec![open_store(&url).await, open_store(&url).await];
    handles[0]
        .import_zone("lab.test.", 1, &[])
        .await
        .expect("import");
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4u8 {
        let s = handles[usize::from(w % 2)].clone();
        tasks.spawn(async move {
            for i in 0..40u8 {
                if w % 2 == 0 {
                    let ip = format!("10.0.{w}.{i}");
                    s.commit_leases(&[lease(&ip, "52:54:00:00:00:01", 1000)])
                        .await
                        .map(|_| ())?;
                } else {
                    s.add_record(
                        "lab.test.",
                        &rec(&format!("h{w}-{i}.lab.test."), "A", "10.0.0.1"),
                    )
                    .await
                    .map(|_| ())?;
                }
            }
            Ok::<(), StoreError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("every write succeeds");
    }
    assert_eq!(handles[1].load_leases().await.expect("load").len(), 80);
    let zones = handles[1].zones().await.expect("zones");
    assert_eq!((zones[0].records, zones[0].serial), (80, 81));
}

#[tokio::test]
async fn sqlite_file_replaced_or_deleted_is_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let url = format!("sqlite://{}", path.display());
    let s = open_store(&url).await;
    let mut w = watch(s.clone(), &[Topic::Leases]).await.expect("watch");
    // Replaced: another database now has the name.
    std::fs::rename(&path, dir.path().join("old.db")).expect("rename");
    let other = open_store(&url).await;
    drop(other);
    let e = s
        .commit_leases(&[lease("10.0.0.5", "52:54:00:00:00:01", 1000)])
        .await
        .expect_err("commit into a replaced file");
    assert!(e.is_fatal(), "{e}");
    assert!(e.to_string().contains("replaced or removed"), "{e}");
    assert!(w.changed().await.expect_err("watch").is_fatal());
    // Deleted.
    let t = open_store(&url).await;
    std::fs::remove_file(&path).expect("rm");
    let e = t.generation(Topic::Leases).await.expect_err("deleted");
    assert!(e.to_string().contains("deleted"), "{e}");
}

#[tokio::test]
async fn sqlite_text_addresses_migrate_to_integers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let url = format!("sqlite://{}", path.display());
    {
        // A store as the releases before integer addresses left it.
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.expect("pool");
        let mut old = sqlx::migrate!("./src/sqlite/migrations");
        old.migrations = std::borrow::Cow::Owned(
            old.migrations
                .iter()
                .filter(|m| m.version < 4)
                .cloned()
                .collect(),
        );
        old.run(&pool).await.expect("old migrations");
        sqlx::query(
            "INSERT INTO leases VALUES ('10.0.0.10', 'm1', NULL, 'a', 'bound', 1, 9999), \
             ('192.168.255.9', 'm2', NULL, NULL, 'bound', 1, 9999)",
        )
        .execute(&pool)
        .await
        .expect("old lease");
        sqlx::query("INSERT INTO reservations (mac, ip) VALUES ('52:54:00:00:00:01', '10.1.2.3')")
            .execute(&pool)
            .await
            .expect("old reservation");
        pool.close().await;
    }
    let s = open_store(&url).await;
    let ips: Vec<String> = s
        .active_leases(0)
        .await
        .expect("active")
        .iter()
        .map(|l| l.ip.to_string())
        .collect();
    assert_eq!(ips, ["10.0.0.10", "192.168.255.9"]);
    assert_eq!(
        s.reservations().await.expect("res")[0].ip,
        "10.1.2.3".parse::<std::net::Ipv4Addr>().expect("ip")
    );
}

async fn gslb_maps_pools_members_round_trip(url: String) {
    let s = open_store(&url).await;
    let g0 = s.generation(Topic::Gslb).await.expect("gen");
    let pfx = |c: &str, n: &str| GslbPrefix {
        cidr: c.parse().expect("cidr"),
        name: n.into(),
    };
    let n = s
        .gslb_map_add(
            GslbMap::Isp,
            &[
                pfx("1.0.1.0/24", "telecom"),
                pfx("2001:db8::/32", "telecom"),
            ],
            None,
        )
        .await
        .expect("isp add");
    assert_eq!(n, 2);
    // The same prefix again is refused, naming it.
    let e = s
        .gslb_map_add(GslbMap::Isp, &[pfx("1.0.1.0/24", "cmcc")], None)
        .await
        .expect_err("duplicate prefix");
    assert!(e.to_string().contains("1.0.1.0/24"), "{e}");
    // An import replaces that ISP's list wholesale.
    s.gslb_map_add(
        GslbMap::Isp,
        &[pfx("1.0.2.0/23", "telecom")],
        Some("telecom"),
    )
    .await
    .expect("import");
    // A region map entry needs its region.
    let e = s
        .gslb_map_add(GslbMap::Region, &[pfx("1.0.2.0/24", "beijing")], None)
        .await
        .expect_err("unknown region");
    assert!(e.to_string().contains("beijing"), "{e}");
    for (name, lat, lon) in [("beijing", 39.9, 116.4), ("shanghai", 31.2, 121.5)] {
        s.gslb_region_put(&GslbRegion {
            name: name.into(),
            lat,
            lon,
        })
        .await
        .expect("region");
    }
    s.gslb_map_add(GslbMap::Region, &[pfx("1.0.2.0/24", "beijing")], None)
        .await
        .expect("region map");
    let pool = GslbPool {
        name: "abc.gslb.lab.test.".into(),
        answers: 2,
        ttl: 30,
        when_all_down: WhenAllDown::None,
    };
    let member = |ip: &str, region: &str| GslbMember {
        pool: pool.name.clone(),
        ip: ip.parse().expect("ip"),
        isp: "telecom".into(),
        region: region.into(),
        weight: 1,
        check: Some("tcp:80".into()),
    };
    let e = s
        .gslb_member_put(&member("198.18.0.1", "beijing"))
        .await
        .expect_err("unknown pool");
    assert!(e.to_string().contains("abc.gslb.lab.test."), "{e}");
    s.gslb_pool_put(&pool).await.expect("pool");
    s.gslb_member_put(&member("198.18.0.2", "shanghai"))
        .await
        .expect("member");
    s.gslb_member_put(&member("198.18.0.1", "beijing"))
        .await
        .expect("member");
    let e = s
        .gslb_member_put(&member("198.18.0.3", "nowhere"))
        .await
        .expect_err("unknown region");
    assert!(e.to_string().contains("nowhere"), "{e}");
    let d = s.gslb_data().await.expect("data");
    assert_eq!(d.isp_map, vec![pfx("1.0.2.0/23", "telecom")]);
    assert_eq!(d.region_map, vec![pfx("1.0.2.0/24", "beijing")]);
    assert_eq!(
        d.regions
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["beijing", "shanghai"]
    );
    assert_eq!(d.pools, vec![pool.clone()]);
    // Members in the order they were added.
    assert_eq!(
        d.members,
        vec![
            member("198.18.0.2", "shanghai"),
            member("198.18.0.1", "beijing")
        ]
    );
    assert!(s
        .gslb_member_remove(&pool.name, "198.18.0.2".parse().expect("ip"))
        .await
        .expect("remove"));
    assert!(!s
        .gslb_member_remove(&pool.name, "198.18.0.2".parse().expect("ip"))
        .await
        .expect("remove again"));
    assert!(s
        .gslb_map_remove(GslbMap::Region, "1.0.2.0/24".parse().expect("cidr"))
        .await
        .expect("map remove"));
    let moved = s.generation(Topic::Gslb).await.expect("gen") - g0;
    assert_eq!(moved, 10, "every write bumps the gslb counter");
    // Health reports: upserted per node, no bump.
    let h = GslbHealth {
        ip: "198.18.0.1".parse().expect("ip"),
        check: "tcp:80".into(),
        node: "ns1".into(),
        up: false,
        at: 5,
    };
    s.gslb_health_report(std::slice::from_ref(&h))
        .await
        .expect("health");
    let h2 = GslbHealth {
        up: true,
        at: 6,
        ..h
    };
    s.gslb_health_report(std::slice::from_ref(&h2))
        .await
        .expect("health");
    assert_eq!(s.gslb_health().await.expect("health"), vec![h2]);
    assert_eq!(s.generation(Topic::Gslb).await.expect("gen") - g0, 10);
    assert!(s.gslb_pool_remove(&pool.name).await.expect("pool remove"));
    assert!(s.gslb_data().await.expect("data").members.is_empty());
}
