use super::*;

async fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = open_sqlite(&url).await.expect("open");
    (dir, s)
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

#[tokio::test]
async fn leases_round_trip_and_bump_generation() {
    let (_d, s) = temp_store().await;
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
    // Upsert replaces.
    let mut b = a.clone();
    b.mac = "52:54:00:00:00:09".into();
    s.commit_leases(&[b.clone()]).await.expect("commit");
    assert!(s.load_leases().await.expect("load").contains(&b));
}

#[tokio::test]
async fn admin_release_bumps_both_counters() {
    let (_d, s) = temp_store().await;
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

#[tokio::test]
async fn reservations_refuse_duplicates() {
    let (_d, s) = temp_store().await;
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

#[tokio::test]
async fn two_handles_share_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let a = open_sqlite(&url).await.expect("a");
    let b = open_sqlite(&url).await.expect("b");
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

#[tokio::test]
async fn zones_import_add_remove_move_serial_and_generation() {
    let (_d, s) = temp_store().await;
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

#[tokio::test]
async fn profiles_add_replace_remove_bump_generation() {
    let (_d, s) = temp_store().await;
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

#[tokio::test]
async fn assign_goes_to_the_reservation_when_there_is_one() {
    let (_d, s) = temp_store().await;
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
