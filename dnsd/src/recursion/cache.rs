//! The recursion cache: whole answers keyed by question, bounded in bytes,
//! positive and negative (RFC 2308), served with TTLs counted down; expired
//! answers are kept for [`STALE_WINDOW`] more so they can be served stale
//! when the authorities cannot be reached (RFC 8767), and popular answers
//! close to expiry are flagged for prefetch. Pure: the caller passes `now`.
//!
//! Entries are only ever stored under the question that was asked, so a
//! record an upstream server adds for another name cannot land in the cache
//! and poison it (the bailiwick rule holds here by construction; the
//! iterator applies its own to its delegation cache).

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use lru::LruCache;

/// A question: lowercase name and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub name: Name,
    pub qtype: RecordType,
}

impl Key {
    pub fn new(name: &Name, qtype: RecordType) -> Key {
        Key {
            name: name.to_lowercase(),
            qtype,
        }
    }
}

/// What an upstream answered for one question.
#[derive(Debug, Clone)]
pub struct Upstreamed {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    /// Validated (AD) by the upstream.
    pub authentic: bool,
}

/// TTL clamps from the config.
#[derive(Debug, Clone, Copy)]
pub struct TtlPolicy {
    pub min_ttl: u32,
    pub max_ttl: u32,
    pub max_negative_ttl: u32,
}

impl TtlPolicy {
    /// How long `u` may be cached: positive answers by their lowest TTL,
    /// clamped; negative ones (NXDOMAIN, NODATA) by the SOA's TTL and
    /// MINIMUM, whichever is lower (RFC 2308 §5), at most
    /// `max_negative_ttl`; a negative answer without a SOA is not cached
    /// (RFC 2308 §5: "SHOULD NOT be cached"), nor is any other rcode.
    pub fn ttl(&self, u: &Upstreamed) -> Option<u32> {
        match u.rcode {
            ResponseCode::NoError if !u.answers.is_empty() => {
                let min = u.answers.iter().map(|r| r.ttl).min()?;
                Some(min.clamp(self.min_ttl, self.max_ttl))
            }
            ResponseCode::NoError | ResponseCode::NXDomain => {
                let soa = u.authorities.iter().find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                    _ => None,
                })?;
                Some(soa.min(self.max_negative_ttl))
            }
            _ => None,
        }
    }
}

/// How long past its TTL an answer may still be served stale (RFC 8767
/// §5 suggests 1 to 3 days; the byte budget bounds it too).
pub const STALE_WINDOW: Duration = Duration::from_secs(86_400);
/// RFC 8767 §4: the TTL of a stale answer.
pub const STALE_TTL: u32 = 30;
/// Prefetch when less than a tenth of the TTL is left, for answers asked
/// at least this often and living at least [`PREFETCH_MIN_TTL`] seconds
/// (Unbound's `prefetch` uses the same tenth).
const PREFETCH_HITS: u32 = 2;
const PREFETCH_MIN_TTL: u32 = 10;

#[derive(Debug)]
struct Entry {
    answer: Upstreamed,
    stored: Instant,
    ttl: u32,
    bytes: usize,
    hits: u32,
}

/// What the cache holds for a question.
#[derive(Debug)]
pub enum Lookup {
    /// Fresh, TTLs counted down; `prefetch` when it is popular and about
    /// to expire.
    Fresh {
        answer: Upstreamed,
        prefetch: bool,
    },
    /// Expired but within the stale window, TTLs set to [`STALE_TTL`].
    Stale(Upstreamed),
    Miss,
}

/// Least recently used entries go first when the byte budget is reached.
pub struct Cache {
    map: LruCache<Key, Entry>,
    bytes: usize,
    max_bytes: usize,
}

/// Fixed cost per entry besides its records: key, LRU links, the entry.
const ENTRY_OVERHEAD: usize = 160;

fn record_bytes(r: &Record) -> usize {
    // Owner name + type/class/TTL/length + RDATA, as in memory (roughly).
    r.name.len() + 10 + 64 + std::mem::size_of::<Record>()
}

impl Cache {
    pub fn new(max_bytes: u64) -> Cache {
        Cache {
            map: LruCache::unbounded(),
            bytes: 0,
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        }
    }

    /// The answer for `key` with TTLs counted down, if still fresh.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Upstreamed> {
        match self.lookup(key, now) {
            Lookup::Fresh { answer, .. } => Some(answer),
            _ => None,
        }
    }

    /// Fresh, stale or nothing for `key` at `now`.
    pub fn lookup(&mut self, key: &Key, now: Instant) -> Lookup {
        let Some(e) = self.map.get_mut(key) else {
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(e.stored);
        let ttl = Duration::from_secs(u64::from(e.ttl));
        if age >= ttl + STALE_WINDOW {
            if let Some(old) = self.map.pop(key) {
                self.bytes -= old.bytes;
            }
            return Lookup::Miss;
        }
        let mut a = e.answer.clone();
        if age >= ttl {
            for r in a.answers.iter_mut().chain(a.authorities.iter_mut()) {
                r.ttl = STALE_TTL;
            }
            return Lookup::Stale(a);
        }
        e.hits = e.hits.saturating_add(1);
        let left = e.ttl - age.as_secs() as u32;
        for r in a.answers.iter_mut().chain(a.authorities.iter_mut()) {
            r.ttl = r.ttl.min(left);
        }
        let prefetch = e.hits >= PREFETCH_HITS && e.ttl >= PREFETCH_MIN_TTL && left <= e.ttl / 10;
        Lookup::Fresh {
            answer: a,
            prefetch,
        }
    }

    /// Store `answer` for `ttl` seconds (0: not at all).
    pub fn insert(&mut self, key: Key, answer: Upstreamed, ttl: u32, now: Instant) {
        if ttl == 0 {
            return;
        }
        let bytes = ENTRY_OVERHEAD
            + key.name.len()
            + answer
                .answers
                .iter()
                .chain(answer.authorities.iter())
                .map(record_bytes)
                .sum::<usize>();
        if bytes > self.max_bytes / 4 {
            return;
        }
        if let Some(old) = self.map.put(
            key,
            Entry {
                answer,
                stored: now,
                ttl,
                bytes,
                hits: 0,
            },
        ) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        while self.bytes > self.max_bytes {
            match self.map.pop_lru() {
                Some((_, e)) => self.bytes -= e.bytes,
                None => break,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes accounted for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn policy() -> TtlPolicy {
        TtlPolicy {
            min_ttl: 5,
            max_ttl: 3600,
            max_negative_ttl: 900,
        }
    }

    fn positive(ttl: u32) -> Upstreamed {
        Upstreamed {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                n("a.example."),
                ttl,
                RData::A(A::new(192, 0, 2, 1)),
            )],
            authorities: vec![],
            authentic: false,
        }
    }

    fn negative(soa_ttl: u32, minimum: u32) -> Upstreamed {
        let soa = SOA::new(
            n("ns.example."),
            n("h.example."),
            1,
            3600,
            600,
            86400,
            minimum,
        );
        Upstreamed {
            rcode: ResponseCode::NXDomain,
            answers: vec![],
            authorities: vec![Record::from_rdata(n("example."), soa_ttl, RData::SOA(soa))],
            authentic: false,
        }
    }

    #[test]
    fn ttls_are_clamped_and_negative_follows_rfc2308() {
        let p = policy();
        assert_eq!(p.ttl(&positive(1)), Some(5));
        assert_eq!(p.ttl(&positive(999_999)), Some(3600));
        assert_eq!(p.ttl(&negative(300, 60)), Some(60));
        assert_eq!(p.ttl(&negative(30, 600)), Some(30));
        assert_eq!(p.ttl(&negative(86400, 86400)), Some(900));
        let mut no_soa = negative(1, 1);
        no_soa.authorities.clear();
        assert_eq!(p.ttl(&no_soa), None);
        let mut sf = positive(60);
        sf.rcode = ResponseCode::ServFail;
        assert_eq!(p.ttl(&sf), None);
    }

    #[test]
    fn entries_count_down_and_expire() {
        let t0 = Instant::now();
        let mut c = Cache::new(1 << 20);
        let k = Key::new(&n("A.Example."), RecordType::A);
        c.insert(k.clone(), positive(60), 60, t0);
        let got = c.get(
            &Key::new(&n("a.example."), RecordType::A),
            t0 + Duration::from_secs(25),
        );
        assert_eq!(got.map(|a| a.answers[0].ttl), Some(35));
        assert!(c.get(&k, t0 + Duration::from_secs(60)).is_none());
        // Expired: stale, with RFC 8767's TTL, until the window closes.
        match c.lookup(&k, t0 + Duration::from_secs(600)) {
            Lookup::Stale(a) => assert_eq!(a.answers[0].ttl, STALE_TTL),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.lookup(&k, t0 + Duration::from_secs(60) + STALE_WINDOW),
            Lookup::Miss
        ));
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn popular_entries_near_expiry_are_flagged_for_prefetch() {
        let t0 = Instant::now();
        let mut c = Cache::new(1 << 20);
        let k = Key::new(&n("a.example."), RecordType::A);
        c.insert(k.clone(), positive(100), 100, t0);
        let pf = |c: &mut Cache, s| match c.lookup(&k, t0 + Duration::from_secs(s)) {
            Lookup::Fresh { prefetch, .. } => prefetch,
            other => panic!("{other:?}"),
        };
        assert!(!pf(&mut c, 10));
        assert!(!pf(&mut c, 50));
        assert!(pf(&mut c, 95));
    }

    #[test]
    fn the_byte_budget_holds() {
        let t0 = Instant::now();
        let budget = 64 * 1024;
        let mut c = Cache::new(budget);
        for i in 0..10_000 {
            let name = n(&format!("h{i}.example."));
            c.insert(Key::new(&name, RecordType::A), positive(60), 60, t0);
            assert!(c.bytes() <= budget as usize);
        }
        assert!(c.len() > 50, "{}", c.len());
        // The most recent survive, the oldest went first.
        assert!(c
            .get(&Key::new(&n("h9999.example."), RecordType::A), t0)
            .is_some());
        assert!(c
            .get(&Key::new(&n("h0.example."), RecordType::A), t0)
            .is_none());
    }
}

#[cfg(test)]
mod memory {
    use super::*;
    use hickory_proto::rr::rdata::A;

    /// Resident memory of this process, from /proc (Linux).
    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("rss field");
        pages * 4096
    }

    fn fill(c: &mut Cache, n: usize, t0: Instant) {
        for i in 0..n {
            let name = Name::from_ascii(format!("h{i:07}.example.com.")).expect("name");
            let a = Upstreamed {
                rcode: ResponseCode::NoError,
                answers: vec![Record::from_rdata(
                    name.clone(),
                    300,
                    RData::A(A::new(192, 0, 2, 1)),
                )],
                authorities: vec![],
                authentic: false,
            };
            c.insert(Key::new(&name, RecordType::A), a, 300, t0);
        }
    }

    /// RSS is the whole process's: measured in a test process of its own
    /// ([`measured_alone`] run by name), so that tests running beside it
    /// in this one cannot count.
    #[test]
    fn the_byte_budget_matches_resident_memory() {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "recursion::cache::memory::measured_alone",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .output()
            .expect("run the test binary");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    /// What the cache counts is what it holds: a million names cost about
    /// what the accounting says, and a small budget keeps memory small.
    #[test]
    #[ignore = "run alone by the_byte_budget_matches_resident_memory"]
    fn measured_alone() {
        let t0 = Instant::now();
        // A small budget first (freed memory is not given back, so the
        // other order would measure nothing): memory stays near it.
        let budget: u64 = 16 << 20;
        let before = rss_bytes();
        let mut small = Cache::new(budget);
        fill(&mut small, 1_000_000, t0);
        assert!(small.bytes() as u64 <= budget);
        let grown = rss_bytes().saturating_sub(before);
        eprintln!(
            "1,000,000 names into a 16 MB budget: RSS grew {} MB",
            grown >> 20
        );
        assert!(
            (grown as u64) < budget * 2,
            "RSS grew {grown} for a {budget} budget"
        );
        drop(small);

        let before = rss_bytes();
        let mut big = Cache::new(4 << 30);
        fill(&mut big, 1_000_000, t0);
        let grown = rss_bytes().saturating_sub(before);
        let counted = big.bytes();
        eprintln!(
            "1,000,000 names cached: counted {} MB, RSS grew {} MB ({} B/name)",
            counted >> 20,
            grown >> 20,
            grown / 1_000_000
        );
        assert_eq!(big.len(), 1_000_000);
        // The accounting must not undercount by much (it would let the
        // cache outgrow `cache_size`).
        assert!(
            grown < counted * 3 / 2,
            "RSS grew {grown}, counted {counted}"
        );
    }
}
