//! The pure parts of validation: anchors, signature times, NSEC/NSEC3
//! covering, and the chain walk over zones signed here with hickory's
//! Ed25519 keys, served by a scripted [`Fetch`].

use std::collections::HashMap;

use hickory_proto::dnssec::crypto::Ed25519SigningKey;
use hickory_proto::dnssec::rdata::SigInput;
use hickory_proto::dnssec::{
    Algorithm, DigestType, Nsec3HashAlgorithm, SigningKey, TrustAnchors, TBS,
};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::SerialNumber;

use super::*;

fn n(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

const NOW: u32 = 1_800_000_000;

// ---- anchors ----

#[test]
fn the_built_in_anchors_are_the_digests_of_the_iana_root_ksks() {
    // hickory-proto ships the KSK-2017 and KSK-2024 public keys; their
    // SHA-256 DS digests must be IANA's (root-anchors.xml, Debian root.ds).
    let shipped = TrustAnchors::default();
    let iana = Anchors::iana();
    let (ds, keys) = iana.at(&Name::root());
    assert!(keys.is_empty());
    assert_eq!(ds.len(), 2);
    for i in 0..2 {
        let key = DNSKEY::with_flags(257, shipped.get(i).expect("root key").clone());
        let tag = key.calculate_key_tag().expect("tag");
        let d = ds
            .iter()
            .find(|d| d.key_tag() == tag)
            .expect("a DS per KSK");
        assert!(d.covers(&Name::root(), &key).expect("digest"), "tag {tag}");
    }
    let mut tags: Vec<u16> = ds.iter().map(|d| d.key_tag()).collect();
    tags.sort();
    assert_eq!(tags, [20326, 38696]);
}

#[test]
fn anchor_files_read_as_unbound_reads_them() {
    let text = "; a comment\n\
        example. 3600 IN DNSKEY 257 3 15 ( l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4= ) ; KSK\n\
        . IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n";
    let a = Anchors::parse(text).expect("parses");
    assert_eq!(a.anchor_for(&n("www.example.")), Some(n("example.")));
    assert_eq!(a.anchor_for(&n("www.com.")), Some(Name::root()));
    assert_eq!(a.at(&n("example.")).1.len(), 1);
    let err = Anchors::parse(". IN DS 20326 8 2 E06D\nexample. IN A 192.0.2.1\n")
        .expect_err("an A record is no anchor");
    assert!(err.contains("line 2"), "{err}");
    assert!(Anchors::parse("; nothing\n").is_err());
    let none = Anchors::parse("com. DS 1 8 2 00").expect("parses");
    assert_eq!(none.anchor_for(&n("www.net.")), None);
}

// ---- times ----

#[test]
fn signature_times_use_serial_arithmetic() {
    assert!(sig_time(NOW - 10, NOW + 10, NOW).is_ok());
    assert_eq!(
        sig_time(NOW - 20, NOW - 10, NOW).expect_err("expired").code,
        Ede::SIGNATURE_EXPIRED
    );
    assert_eq!(
        sig_time(NOW + 10, NOW + 20, NOW).expect_err("early").code,
        Ede::SIGNATURE_NOT_YET_VALID
    );
    // RFC 1982: a signature spanning the 2106 wrap of 32-bit seconds.
    assert!(sig_time(u32::MAX - 100, 100, 5).is_ok());
    assert!(sig_time(u32::MAX - 100, 100, 200).is_err());
}

// ---- NSEC ----

fn nsec(owner: &str, next: &str, types: &[RecordType]) -> Record {
    Record::from_rdata(
        n(owner),
        300,
        RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(n(next), types.to_vec()))),
    )
}

#[test]
fn nsec_covering_follows_canonical_order_and_wraps_at_the_apex() {
    let (a, c) = (n("a.example."), n("c.example."));
    assert!(nsec_covers(&a, &c, &n("b.example.")));
    assert!(nsec_covers(&a, &c, &n("x.b.example.")));
    assert!(!nsec_covers(&a, &c, &a));
    assert!(!nsec_covers(&a, &c, &n("d.example.")));
    // The last NSEC points back at the apex.
    assert!(nsec_covers(
        &n("z.example."),
        &n("example."),
        &n("zz.example.")
    ));
    assert!(!nsec_covers(
        &n("z.example."),
        &n("example."),
        &n("b.example.")
    ));
}

#[test]
fn nsec_proves_nxdomain_only_with_the_wildcard_denied() {
    use RecordType::*;
    let records = vec![
        nsec("example.", "a.example.", &[SOA, NS, NSEC, RRSIG]),
        nsec("a.example.", "c.example.", &[A, NSEC, RRSIG]),
    ];
    let set = nsecs(&records);
    // b.example: covered by a→c, and *.example covered by example→a.
    assert!(nsec_nxdomain(&n("b.example."), &set));
    // Without the apex NSEC the wildcard is not denied.
    let only = nsecs(&records[1..]);
    assert!(!nsec_nxdomain(&n("b.example."), &only));
    // A name that exists is not NXDOMAIN.
    assert!(!nsec_nxdomain(&n("a.example."), &set));
}

#[test]
fn nsec_proves_nodata_and_an_unsigned_delegation() {
    use RecordType::*;
    let records = vec![
        nsec("a.example.", "c.example.", &[A, NSEC, RRSIG]),
        nsec("c.example.", "example.", &[NS, NSEC, RRSIG]),
    ];
    let set = nsecs(&records);
    assert!(nsec_nodata(&n("a.example."), AAAA, &set));
    assert!(!nsec_nodata(&n("a.example."), A, &set));
    // The parent's NSEC at the cut: no DS there (insecure delegation) ...
    assert!(nsec_nodata(&n("c.example."), DS, &set));
    // ... but it says nothing about the child's own data.
    assert!(!nsec_nodata(&n("c.example."), TXT, &set));
    // A child apex NSEC (SOA) cannot deny the parent's DS.
    let apex = vec![nsec("c.example.", "x.c.example.", &[SOA, NS, NSEC, RRSIG])];
    assert!(!nsec_nodata(&n("c.example."), DS, &nsecs(&apex)));
}

// ---- NSEC3 ----

fn h(name: &str) -> Vec<u8> {
    Nsec3HashAlgorithm::SHA1
        .hash(&[0xab], &n(name), 1)
        .expect("hash")
        .as_ref()
        .to_vec()
}

/// An NSEC3 chain over `names` of zone `example.` (salt ab, 1 iteration).
fn nsec3_chain(names: &[(&str, &[RecordType])], opt_out: bool) -> Vec<Record> {
    let mut hashed: Vec<(Vec<u8>, Vec<RecordType>)> =
        names.iter().map(|(s, t)| (h(s), t.to_vec())).collect();
    hashed.sort();
    (0..hashed.len())
        .map(|i| {
            let next = hashed[(i + 1) % hashed.len()].0.clone();
            let label = data_encoding::BASE32HEX_NOPAD
                .encode(&hashed[i].0)
                .to_ascii_lowercase();
            Record::from_rdata(
                n(&format!("{label}.example.")),
                300,
                RData::DNSSEC(DNSSECRData::NSEC3(NSEC3::new(
                    Nsec3HashAlgorithm::SHA1,
                    opt_out,
                    1,
                    vec![0xab],
                    next,
                    hashed[i].1.clone(),
                ))),
            )
        })
        .collect()
}

#[test]
fn nsec3_proves_nxdomain_nodata_and_opt_out() {
    use RecordType::*;
    let zone = n("example.");
    let chain = nsec3_chain(
        &[
            ("example.", &[SOA, NS, DNSKEY, NSEC3PARAM, RRSIG]),
            ("a.example.", &[A, RRSIG]),
            ("sub.example.", &[NS, DS, RRSIG]),
        ],
        false,
    );
    assert_eq!(
        nsec3_nxdomain(&n("nope.example."), &zone, &chain),
        Nsec3Proof::Proven
    );
    assert_eq!(
        nsec3_nxdomain(&n("x.y.nope.example."), &zone, &chain),
        Nsec3Proof::Proven
    );
    assert_eq!(
        nsec3_nodata(&n("a.example."), AAAA, &zone, &chain),
        Nsec3Proof::Proven
    );
    assert_eq!(
        nsec3_nodata(&n("a.example."), A, &zone, &chain),
        Nsec3Proof::Missing
    );
    // A DS that exists cannot be denied.
    assert_eq!(
        nsec3_nodata(&n("sub.example."), DS, &zone, &chain),
        Nsec3Proof::Missing
    );
    // Half the chain proves nothing.
    assert_eq!(
        nsec3_nxdomain(&n("nope.example."), &zone, &chain[..1]),
        Nsec3Proof::Missing
    );
    // Opt-out: an unsigned delegation has no NSEC3 of its own; the span
    // covering it says it may exist, unsigned.
    let opt = nsec3_chain(
        &[
            ("example.", &[SOA, NS, DNSKEY, NSEC3PARAM, RRSIG]),
            ("a.example.", &[A, RRSIG]),
        ],
        true,
    );
    assert_eq!(
        nsec3_nodata(&n("unsigned.example."), DS, &zone, &opt),
        Nsec3Proof::OptOut
    );
}

// ---- the chain of trust ----

/// A zone with one Ed25519 key (KSK and ZSK in one, as `dnssec-keygen`
/// with `-f KSK` and no ZSK would make).
struct Signer {
    name: Name,
    key: Ed25519SigningKey,
    dnskey: DNSKEY,
}

impl Signer {
    fn new(name: &str) -> Signer {
        let der = Ed25519SigningKey::generate_pkcs8().expect("key");
        let key = Ed25519SigningKey::from_pkcs8(&der).expect("key");
        let dnskey = DNSKEY::with_flags(257, key.to_public_key().expect("public"));
        Signer {
            name: n(name),
            key,
            dnskey,
        }
    }

    fn ds(&self) -> DS {
        DS::new(
            self.dnskey.calculate_key_tag().expect("tag"),
            Algorithm::ED25519,
            DigestType::SHA256,
            self.dnskey
                .to_digest(&self.name, DigestType::SHA256)
                .expect("digest")
                .as_ref()
                .to_vec(),
        )
    }

    /// `set` (one RRset) and its RRSIG valid over [from, until].
    fn sign(&self, set: Vec<Record>, from: u32, until: u32) -> Vec<Record> {
        let first = set[0].clone();
        let input = SigInput {
            type_covered: first.record_type(),
            algorithm: Algorithm::ED25519,
            num_labels: first.name.num_labels(),
            original_ttl: first.ttl,
            sig_expiration: SerialNumber::new(until),
            sig_inception: SerialNumber::new(from),
            key_tag: self.dnskey.calculate_key_tag().expect("tag"),
            signer_name: self.name.clone(),
        };
        let tbs = TBS::from_input(&first.name, DNSClass::IN, &input, set.iter()).expect("tbs");
        let sig = self.key.sign(&tbs).expect("sign");
        let mut out = set;
        out.push(Record::from_rdata(
            first.name.clone(),
            first.ttl,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig))),
        ));
        out
    }

    fn signed(&self, set: Vec<Record>) -> Vec<Record> {
        self.sign(set, NOW - 3600, NOW + 3600)
    }

    fn keys(&self) -> Fetched {
        let set = vec![Record::from_rdata(
            self.name.clone(),
            3600,
            RData::DNSSEC(DNSSECRData::DNSKEY(self.dnskey.clone())),
        )];
        reply(&self.name, self.signed(set), vec![])
    }
}

fn reply(zone: &Name, answers: Vec<Record>, authorities: Vec<Record>) -> Fetched {
    Fetched {
        zone: zone.clone(),
        rcode: ResponseCode::NoError,
        answers,
        authorities,
    }
}

fn ds_record(owner: &Name, ds: DS) -> Record {
    Record::from_rdata(owner.clone(), 3600, RData::DNSSEC(DNSSECRData::DS(ds)))
}

fn a(owner: &str, last: u8) -> Record {
    Record::from_rdata(n(owner), 300, RData::A(A::new(192, 0, 2, last)))
}

/// DS and DNSKEY answers by question, as the iterator would fetch them.
struct Script(HashMap<(Name, RecordType), Fetched>);

#[async_trait]
impl Fetch for Script {
    async fn fetch(&self, name: &Name, qtype: RecordType) -> Result<Fetched, Ede> {
        self.0
            .get(&(name.clone(), qtype))
            .cloned()
            .ok_or_else(|| Ede::new(Ede::OTHER, format!("not scripted: {name} {qtype}")))
    }
}

/// root (anchored by DS) → example. (DS in the root) → signed.example.
/// (DS in example.), and unsigned.example. with a signed "no DS".
fn hierarchy() -> (Validator, Script, Signer) {
    let root = Signer::new(".");
    let example = Signer::new("example.");
    let leaf = Signer::new("signed.example.");
    let anchors = Anchors {
        ds: vec![(Name::root(), root.ds())],
        keys: Vec::new(),
    };
    let mut m = HashMap::new();
    m.insert((Name::root(), RecordType::DNSKEY), root.keys());
    m.insert(
        (example.name.clone(), RecordType::DS),
        reply(
            &Name::root(),
            root.signed(vec![ds_record(&example.name, example.ds())]),
            vec![],
        ),
    );
    m.insert((example.name.clone(), RecordType::DNSKEY), example.keys());
    m.insert(
        (leaf.name.clone(), RecordType::DS),
        reply(
            &example.name,
            example.signed(vec![ds_record(&leaf.name, leaf.ds())]),
            vec![],
        ),
    );
    m.insert((leaf.name.clone(), RecordType::DNSKEY), leaf.keys());
    // unsigned.example.: the parent's NSEC at the cut has NS, no DS.
    let no_ds = example.signed(vec![nsec(
        "unsigned.example.",
        "example.",
        &[RecordType::NS, RecordType::NSEC, RecordType::RRSIG],
    )]);
    let mut nodata = reply(&example.name, vec![], no_ds);
    nodata
        .authorities
        .extend(example.signed(vec![Record::from_rdata(
            n("example."),
            300,
            RData::SOA(SOA::new(n("ns.example."), n("h.example."), 1, 1, 1, 1, 300)),
        )]));
    m.insert((n("unsigned.example."), RecordType::DS), nodata);
    let v = Validator::with_clock(anchors, Box::new(|| NOW));
    (v, Script(m), leaf)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn the_chain_of_trust_makes_a_signed_answer_secure() {
    let (v, fetch, leaf) = hierarchy();
    let www = n("www.signed.example.");
    let good = reply(
        &leaf.name,
        leaf.signed(vec![a("www.signed.example.", 1)]),
        vec![],
    );
    assert_eq!(
        block_on(v.check(&fetch, &good, &www, RecordType::A)),
        Security::Secure
    );
    // The zone's verdict is cached: no fetch is needed a second time.
    let empty = Script(HashMap::new());
    assert_eq!(
        block_on(v.check(&empty, &good, &www, RecordType::A)),
        Security::Secure
    );
}

#[test]
fn edited_expired_and_unsigned_answers_are_bogus() {
    let (v, fetch, leaf) = hierarchy();
    let www = n("www.signed.example.");
    let code = |f: &Fetched| match block_on(v.check(&fetch, f, &www, RecordType::A)) {
        Security::Bogus(e) => e.code,
        other => panic!("{other:?}"),
    };
    // A record edited after signing.
    let mut edited = leaf.signed(vec![a("www.signed.example.", 1)]);
    edited[0] = a("www.signed.example.", 66);
    assert_eq!(code(&reply(&leaf.name, edited, vec![])), Ede::DNSSEC_BOGUS);
    // A signature past its expiration.
    let old = leaf.sign(vec![a("www.signed.example.", 1)], NOW - 7200, NOW - 3600);
    assert_eq!(
        code(&reply(&leaf.name, old, vec![])),
        Ede::SIGNATURE_EXPIRED
    );
    // No signature at all in a signed zone.
    assert_eq!(
        code(&reply(
            &leaf.name,
            vec![a("www.signed.example.", 1)],
            vec![]
        )),
        Ede::RRSIGS_MISSING
    );
    // Signed by another key than the zone's DS points to.
    let stranger = Signer::new("signed.example.");
    let forged = stranger.signed(vec![a("www.signed.example.", 1)]);
    assert_eq!(
        code(&reply(&leaf.name, forged, vec![])),
        Ede::DNSKEY_MISSING
    );
    // A negative answer without its NSEC.
    let mut nx = reply(&leaf.name, vec![], vec![]);
    nx.rcode = ResponseCode::NXDomain;
    assert_eq!(code(&nx), Ede::NSEC_MISSING);
}

#[test]
fn a_proven_unsigned_delegation_is_insecure_and_a_missing_proof_bogus() {
    let (v, fetch, _) = hierarchy();
    let name = n("www.unsigned.example.");
    let plain = reply(
        &n("unsigned.example."),
        vec![a("www.unsigned.example.", 7)],
        vec![],
    );
    assert_eq!(
        block_on(v.check(&fetch, &plain, &name, RecordType::A)),
        Security::Insecure
    );
    // The same claim without the parent's signed NSEC: bogus, not insecure
    // (an attacker cannot strip a zone's signatures by hiding its DS).
    let (v, mut fetch, _) = hierarchy();
    if let Some(f) = fetch.0.get_mut(&(n("unsigned.example."), RecordType::DS)) {
        f.authorities.retain(|r| {
            r.record_type() == RecordType::SOA
                || rrsig(r).is_some_and(|s| s.input().type_covered == RecordType::SOA)
        });
    }
    match block_on(v.check(&fetch, &plain, &name, RecordType::A)) {
        Security::Bogus(e) => assert_eq!(e.code, Ede::NSEC_MISSING, "{e:?}"),
        other => panic!("{other:?}"),
    }
    // A forged referral to a name that is no zone cut (its "no DS" proof
    // has no NS bit): bogus, not insecure.
    let (v, fetch, leaf) = hierarchy();
    let mut fetch = fetch;
    let fake = n("www.signed.example.");
    let proof = leaf.signed(vec![nsec(
        "www.signed.example.",
        "signed.example.",
        &[RecordType::A, RecordType::NSEC, RecordType::RRSIG],
    )]);
    fetch.0.insert(
        (fake.clone(), RecordType::DS),
        reply(&leaf.name, vec![], proof),
    );
    let forged = reply(&fake, vec![a("www.signed.example.", 66)], vec![]);
    match block_on(v.check(&fetch, &forged, &fake, RecordType::A)) {
        Security::Bogus(e) => assert_eq!(e.code, Ede::DNSSEC_BOGUS, "{e:?}"),
        other => panic!("{other:?}"),
    }
    // A server of the parent that answers from a child it also serves
    // (no referral): the signer names the zone whose keys apply.
    let from_parent = reply(
        &n("example."),
        leaf.signed(vec![a("www.signed.example.", 1)]),
        vec![],
    );
    assert_eq!(
        block_on(v.check(&fetch, &from_parent, &fake, RecordType::A)),
        Security::Secure
    );
    // Outside every anchor: insecure without asking anyone.
    let v = Validator::with_clock(
        Anchors::parse("example. DS 1 15 2 00").expect("anchor"),
        Box::new(|| NOW),
    );
    let other = reply(&n("com."), vec![a("www.com.", 1)], vec![]);
    assert_eq!(
        block_on(v.check(
            &Script(HashMap::new()),
            &other,
            &n("www.com."),
            RecordType::A
        )),
        Security::Insecure
    );
}

#[test]
fn a_wildcard_answer_needs_the_proof_that_the_name_does_not_exist() {
    let (v, fetch, leaf) = hierarchy();
    let q = n("x.signed.example.");
    // Signed as *.signed.example (3 labels), served for x.signed.example.
    let wild = leaf.signed(vec![a("*.signed.example.", 9)]);
    let expanded: Vec<Record> = wild
        .into_iter()
        .map(|mut r| {
            r.name = q.clone();
            r
        })
        .collect();
    let proof = leaf.signed(vec![nsec(
        "signed.example.",
        "z.signed.example.",
        &[
            RecordType::SOA,
            RecordType::NS,
            RecordType::NSEC,
            RecordType::RRSIG,
            RecordType::DNSKEY,
        ],
    )]);
    let with = reply(&leaf.name, expanded.clone(), proof);
    assert_eq!(
        block_on(v.check(&fetch, &with, &q, RecordType::A)),
        Security::Secure
    );
    let without = reply(&leaf.name, expanded, vec![]);
    match block_on(v.check(&fetch, &without, &q, RecordType::A)) {
        Security::Bogus(e) => assert_eq!(e.code, Ede::NSEC_MISSING),
        other => panic!("{other:?}"),
    }
}
