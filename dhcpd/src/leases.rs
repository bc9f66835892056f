//! The lease table: which address belongs to which client, held in memory.
//!
//! dhcpd is the only writer of leases, so the table is authoritative while
//! the daemon runs; the store is its durable copy (every binding is written
//! there before the ACK leaves, see `server.rs`). At start the table is
//! rebuilt from the store, so after a crash no address bound in the store is
//! handed to anyone else while its lease lives.
//!
//! Every pool address is in one of these states: untouched (never leased:
//! found by a cursor that walks the pools), or a [`Slot`]: offered (held for
//! one client for `offer_hold`), bound, declined (on probation), or free
//! with the memory of its last holder (so a returning client gets it back).
//! Time is injected (`now`, Unix seconds); deadlines sit in an ordered set
//! and [`LeaseTable::sweep`] applies those that have passed.
//!
//! Allocation order for a new offer, as dnsmasq and Kea do: the client's
//! reservation, the address it holds or held, the address it asks for,
//! a never-used address, then the address that has been free the longest.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use labnet_config::Subnet;
use labnet_store::{Lease, LeaseState, Reservation, ReservationKey};

/// How long after its binding began a client may DECLINE the address: it
/// checks the address (ARP) right after the ACK, which takes seconds.
pub const DECLINE_WINDOW: i64 = 60;

/// Who a client is (RFC 2131 §4.2: the client identifier when the client
/// sends one, else the hardware address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Id(Vec<u8>),
    Mac(String),
}

/// The client a request came from.
#[derive(Debug, Clone)]
pub struct Client {
    pub key: ClientKey,
    /// `aa:bb:cc:dd:ee:ff`
    pub mac: String,
    pub client_id: Option<Vec<u8>>,
}

impl Client {
    pub fn new(mac: String, client_id: Option<Vec<u8>>) -> Client {
        let key = match &client_id {
            Some(id) => ClientKey::Id(id.clone()),
            None => ClientKey::Mac(mac.clone()),
        };
        Client {
            key,
            mac,
            client_id,
        }
    }

    fn owns(&self, lease: &Lease) -> bool {
        match (&self.client_id, &lease.client_id) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.mac == lease.mac,
            // A client that starts or stops sending option 61 is still the
            // same machine if the hardware address matches.
            _ => self.mac == lease.mac,
        }
    }
}

#[derive(Debug, Clone)]
enum Slot {
    Offered {
        client: ClientKey,
        until: i64,
        /// What the address was before the offer, restored if it lapses.
        last: Option<Lease>,
    },
    Bound(Lease),
    Declined {
        until: i64,
    },
    Free {
        last: Option<Lease>,
        since: i64,
    },
}

/// Why an address cannot go to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not inside the client's subnet (RFC 2131 §4.3.2: NAK).
    WrongNetwork,
    /// In the subnet but not in a pool and not reserved for this client.
    NotOurs,
    /// Bound, offered or reserved to another client, or on probation.
    Taken,
}

/// The client a reply is for, with the table's view of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub ip: Ipv4Addr,
    /// The client held this address already (bound or its last lease), so
    /// nobody else can be using it: no ping check is needed.
    pub known: bool,
}

struct SubnetState {
    cidr: ipnet::Ipv4Net,
    subnet: Subnet,
    /// Next never-used address: (pool index, offset into the pool).
    cursor: (usize, u64),
    /// Free addresses with a past, oldest first; entries may be stale.
    free: BTreeSet<(i64, Ipv4Addr)>,
}

/// The in-memory lease table.
pub struct LeaseTable {
    subnets: Vec<SubnetState>,
    slots: HashMap<Ipv4Addr, Slot>,
    by_client: HashMap<ClientKey, Ipv4Addr>,
    deadlines: BTreeSet<(i64, Ipv4Addr)>,
    reservations: HashMap<ClientKey, Reservation>,
    reserved_ips: HashSet<Ipv4Addr>,
}

impl LeaseTable {
    pub fn new(subnets: &[Subnet]) -> LeaseTable {
        LeaseTable {
            subnets: subnets
                .iter()
                .map(|s| SubnetState {
                    cidr: s.cidr,
                    subnet: s.clone(),
                    cursor: (0, 0),
                    free: BTreeSet::new(),
                })
                .collect(),
            slots: HashMap::new(),
            by_client: HashMap::new(),
            deadlines: BTreeSet::new(),
            reservations: HashMap::new(),
            reserved_ips: HashSet::new(),
        }
    }

    /// Rebuild from the store's rows (at start).
    pub fn load(&mut self, leases: Vec<Lease>, now: i64) {
        for l in leases {
            let ip = l.ip;
            self.by_client.insert(key_of(&l), ip);
            let slot = match l.state {
                LeaseState::Bound if l.expires > now => {
                    self.deadlines.insert((l.expires, ip));
                    Slot::Bound(l)
                }
                LeaseState::Declined if l.expires > now => {
                    self.deadlines.insert((l.expires, ip));
                    Slot::Declined { until: l.expires }
                }
                _ => {
                    let since = l.expires;
                    if let Some(s) = self.subnet_of_mut(ip) {
                        s.free.insert((since, ip));
                    }
                    let mut last = l;
                    if last.state == LeaseState::Bound {
                        last.state = LeaseState::Expired;
                    }
                    Slot::Free {
                        last: Some(last),
                        since,
                    }
                }
            };
            self.slots.insert(ip, slot);
        }
    }

    /// Take in leases another node wrote to a shared store: an address the
    /// store shows held (bound or declined, unexpired) is held here too,
    /// replacing an offer or a stale binding of ours. Our own binding of
    /// the same client that runs at least as long is kept.
    pub fn merge_stored(&mut self, leases: Vec<Lease>, now: i64) {
        let held: Vec<Lease> = leases
            .into_iter()
            .filter(|l| {
                matches!(l.state, LeaseState::Bound | LeaseState::Declined) && l.expires > now
            })
            .filter(|l| match self.slots.get(&l.ip) {
                Some(Slot::Bound(ours)) => {
                    !(key_of(ours) == key_of(l) && ours.expires >= l.expires)
                }
                _ => true,
            })
            .collect();
        self.load(held, now);
    }

    /// Replace the reservations (at start and whenever the store's change).
    pub fn set_reservations(&mut self, rs: Vec<Reservation>) {
        self.reserved_ips = rs.iter().map(|r| r.ip).collect();
        self.reservations = rs
            .into_iter()
            .map(|r| {
                let key = match &r.key {
                    ReservationKey::Mac(m) => ClientKey::Mac(m.clone()),
                    ReservationKey::ClientId(c) => ClientKey::Id(c.clone()),
                };
                (key, r)
            })
            .collect();
    }

    /// The reservation for this client (by client-id, then by MAC).
    pub fn reservation(&self, client: &Client) -> Option<&Reservation> {
        self.reservations
            .get(&client.key)
            .or_else(|| self.reservations.get(&ClientKey::Mac(client.mac.clone())))
    }

    /// Which configured subnet contains `ip`.
    pub fn subnet_index(&self, ip: Ipv4Addr) -> Option<usize> {
        self.subnets.iter().position(|s| s.cidr.contains(&ip))
    }

    pub fn subnet(&self, idx: usize) -> &Subnet {
        &self.subnets[idx].subnet
    }

    /// Apply every deadline that has passed: lapsed offers, expired leases,
    /// finished probations become free.
    pub fn sweep(&mut self, now: i64) {
        while let Some(&(t, ip)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            let freed = match self.slots.get(&ip) {
                Some(Slot::Offered { until, last, .. }) if *until <= now => {
                    // A lapsed offer of a never-used address goes to the
                    // front of the free list (since = 0): it has no history.
                    let since = last.as_ref().map(|l| l.expires).unwrap_or(0);
                    Some(Slot::Free {
                        last: last.clone(),
                        since,
                    })
                }
                Some(Slot::Bound(l)) if l.expires <= now => {
                    let mut last = l.clone();
                    last.state = LeaseState::Expired;
                    Some(Slot::Free {
                        since: last.expires,
                        last: Some(last),
                    })
                }
                Some(Slot::Declined { until }) if *until <= now => Some(Slot::Free {
                    last: None,
                    since: now,
                }),
                _ => None,
            };
            if let Some(slot) = freed {
                if let Slot::Free { since, .. } = slot {
                    if let Some(s) = self.subnet_of_mut(ip) {
                        s.free.insert((since, ip));
                    }
                }
                self.slots.insert(ip, slot);
            }
        }
    }

    /// Whether `ip` may go to `client` in subnet `idx` now.
    pub fn check(
        &self,
        idx: usize,
        client: &Client,
        ip: Ipv4Addr,
        now: i64,
    ) -> Result<(), Refusal> {
        let s = &self.subnets[idx];
        if !s.cidr.contains(&ip) || ip == s.cidr.network() || ip == s.cidr.broadcast() {
            return Err(Refusal::WrongNetwork);
        }
        let reserved_for_client = self.reservation(client).is_some_and(|r| r.ip == ip);
        if !reserved_for_client {
            if self.reserved_ips.contains(&ip) {
                return Err(Refusal::Taken);
            }
            if !s.subnet.in_pool(ip) {
                return Err(Refusal::NotOurs);
            }
        }
        match self.slots.get(&ip) {
            Some(Slot::Bound(l)) if l.expires > now && !client.owns(l) => Err(Refusal::Taken),
            Some(Slot::Offered {
                client: c, until, ..
            }) if *until > now && *c != client.key => Err(Refusal::Taken),
            Some(Slot::Declined { until }) if *until > now => Err(Refusal::Taken),
            _ => Ok(()),
        }
    }

    /// Pick an address for a DISCOVER and hold it for the client until
    /// `now + hold`. `None` when the subnet has nothing left.
    pub fn offer(
        &mut self,
        idx: usize,
        client: &Client,
        requested: Option<Ipv4Addr>,
        now: i64,
        hold: i64,
    ) -> Option<Offer> {
        self.sweep(now);
        let (ip, known) = self.choose(idx, client, requested, now)?;
        match self.slots.get(&ip) {
            // Already bound to this client: nothing to hold.
            Some(Slot::Bound(l)) if client.owns(l) && l.expires > now => {}
            other => {
                let last = match other {
                    Some(Slot::Free { last, .. }) => last.clone(),
                    Some(Slot::Offered { last, .. }) => last.clone(),
                    Some(Slot::Bound(l)) => Some(l.clone()),
                    _ => None,
                };
                let until = now + hold;
                self.slots.insert(
                    ip,
                    Slot::Offered {
                        client: client.key.clone(),
                        until,
                        last,
                    },
                );
                self.deadlines.insert((until, ip));
            }
        }
        self.by_client.insert(client.key.clone(), ip);
        Some(Offer { ip, known })
    }

    fn choose(
        &mut self,
        idx: usize,
        client: &Client,
        requested: Option<Ipv4Addr>,
        now: i64,
    ) -> Option<(Ipv4Addr, bool)> {
        // 1. The client's reservation, when it lies in this subnet.
        if let Some(r) = self.reservation(client) {
            let ip = r.ip;
            if self.check(idx, client, ip, now).is_ok() {
                return Some((ip, self.held_by(client, ip)));
            }
        }
        // 2. What it holds or held (RFC 2131 §4.3.1: the client's current or
        //    previous address, if available).
        if let Some(&ip) = self.by_client.get(&client.key) {
            if self.check(idx, client, ip, now).is_ok() && self.was_held_by(client, ip) {
                return Some((ip, true));
            }
        }
        // 3. What it asks for (option 50).
        if let Some(ip) = requested {
            if self.check(idx, client, ip, now).is_ok() && self.is_unclaimed(ip) {
                return Some((ip, self.held_by(client, ip)));
            }
        }
        // 4. A never-used address.
        if let Some(ip) = self.next_untouched(idx) {
            return Some((ip, false));
        }
        // 5. The address free the longest.
        while let Some((since, ip)) = self.subnets[idx].free.pop_first() {
            let current =
                matches!(self.slots.get(&ip), Some(Slot::Free { since: s, .. }) if *s == since);
            if current && self.check(idx, client, ip, now).is_ok() {
                return Some((ip, self.was_held_by(client, ip)));
            }
        }
        None
    }

    /// Free (or never used), not held for anyone.
    fn is_unclaimed(&self, ip: Ipv4Addr) -> bool {
        matches!(self.slots.get(&ip), None | Some(Slot::Free { .. }))
    }

    fn held_by(&self, client: &Client, ip: Ipv4Addr) -> bool {
        matches!(self.slots.get(&ip), Some(Slot::Bound(l)) if client.owns(l))
    }

    fn was_held_by(&self, client: &Client, ip: Ipv4Addr) -> bool {
        match self.slots.get(&ip) {
            Some(Slot::Bound(l)) | Some(Slot::Free { last: Some(l), .. }) => client.owns(l),
            Some(Slot::Offered { client: c, .. }) => *c == client.key,
            _ => false,
        }
    }

    fn next_untouched(&mut self, idx: usize) -> Option<Ipv4Addr> {
        let LeaseTable {
            subnets,
            slots,
            reserved_ips,
            ..
        } = self;
        let s = &mut subnets[idx];
        while let Some(pool) = s.subnet.pools.get(s.cursor.0) {
            if s.cursor.1 >= pool.len() {
                s.cursor = (s.cursor.0 + 1, 0);
                continue;
            }
            // pool.len() fits the range, so the offset fits a u32.
            let ip = Ipv4Addr::from(u32::from(pool.start) + s.cursor.1 as u32);
            s.cursor.1 += 1;
            let usable = !slots.contains_key(&ip)
                && !reserved_ips.contains(&ip)
                && s.subnet.in_pool(ip)
                && ip != s.cidr.network()
                && ip != s.cidr.broadcast();
            if usable {
                return Some(ip);
            }
        }
        None
    }

    /// Bind `ip` to `client` until `expires` (a REQUEST that passed
    /// [`check`](Self::check)). Returns the lease to commit.
    pub fn bind(
        &mut self,
        client: &Client,
        ip: Ipv4Addr,
        hostname: Option<String>,
        now: i64,
        expires: i64,
    ) -> Lease {
        // A renewal of the same binding keeps its start: lease names go to
        // the first holder (`labnet_store::names`), which must not lose its
        // name to a newer claimant just because it renewed.
        let starts = match self.slots.get(&ip) {
            Some(Slot::Bound(l)) if client.owns(l) && l.hostname == hostname && l.expires > now => {
                l.starts
            }
            _ => now,
        };
        let lease = Lease {
            ip,
            mac: client.mac.clone(),
            client_id: client.client_id.clone(),
            hostname,
            state: LeaseState::Bound,
            starts,
            expires,
        };
        // The client's previous address, if another, is free again.
        if let Some(&old) = self.by_client.get(&client.key) {
            if old != ip {
                if let Some(Slot::Bound(l)) = self.slots.get(&old) {
                    if client.owns(l) {
                        let mut last = l.clone();
                        last.state = LeaseState::Released;
                        last.expires = now;
                        self.free_slot(old, Some(last), now);
                    }
                }
            }
        }
        self.slots.insert(ip, Slot::Bound(lease.clone()));
        self.deadlines.insert((expires, ip));
        self.by_client.insert(client.key.clone(), ip);
        lease
    }

    /// The client's bound lease on `ip`, if it has one.
    pub fn bound(&self, client: &Client, ip: Ipv4Addr, now: i64) -> Option<&Lease> {
        match self.slots.get(&ip) {
            Some(Slot::Bound(l)) if client.owns(l) && l.expires > now => Some(l),
            _ => None,
        }
    }

    /// The address the client is bound to, if any.
    pub fn binding_of(&self, client: &Client, now: i64) -> Option<Ipv4Addr> {
        let ip = *self.by_client.get(&client.key)?;
        self.bound(client, ip, now).map(|l| l.ip)
    }

    /// RFC 2131 §4.3.4: the client gives the address up. Returns the lease
    /// row to write.
    pub fn release(&mut self, client: &Client, ip: Ipv4Addr, now: i64) -> Option<Lease> {
        let mut l = self.bound(client, ip, now)?.clone();
        l.state = LeaseState::Released;
        l.expires = now;
        self.free_slot(ip, Some(l.clone()), now);
        Some(l)
    }

    /// RFC 2131 §4.3.3: the client found the address in use. It goes on
    /// probation; the returned row records that. A client checks an address
    /// right after its DHCPACK (RFC 2131 §4.4.1), so only a binding younger
    /// than [`DECLINE_WINDOW`] may be declined: a DECLINE for a mere offer,
    /// or for somebody's old lease (a forged chaddr), changes nothing.
    pub fn decline(
        &mut self,
        client: &Client,
        ip: Ipv4Addr,
        now: i64,
        probation: i64,
    ) -> Option<Lease> {
        let mut l = match self.slots.get(&ip) {
            Some(Slot::Bound(l))
                if client.owns(l) && l.expires > now && now - l.starts <= DECLINE_WINDOW =>
            {
                l.clone()
            }
            _ => return None,
        };
        l.state = LeaseState::Declined;
        l.hostname = None;
        l.expires = now + probation;
        self.set_probation(ip, now + probation);
        Some(l)
    }

    /// Whether `ip` is offered to, or bound to, the client `key` at `now`.
    pub fn holds(&self, key: &ClientKey, ip: Ipv4Addr, now: i64) -> bool {
        match self.slots.get(&ip) {
            Some(Slot::Offered { client, until, .. }) => client == key && *until > now,
            Some(Slot::Bound(l)) => key_of(l) == *key && l.expires > now,
            _ => false,
        }
    }

    /// Addresses of subnet `idx` on probation at `now`, and how many the
    /// subnet allows at once: an eighth of its pools, at least 8, so a flood
    /// of DECLINEs cannot take the pool out of use.
    pub fn probation(&self, idx: usize, now: i64) -> (usize, usize) {
        let s = &self.subnets[idx];
        let on = self
            .slots
            .iter()
            .filter(|(ip, slot)| {
                matches!(slot, Slot::Declined { until } if *until > now) && s.cidr.contains(*ip)
            })
            .count();
        let size: u64 = s.subnet.pools.iter().map(|p| p.len()).sum();
        (on, usize::try_from(size / 8).unwrap_or(usize::MAX).max(8))
    }

    /// Someone answered our ping for `ip`: take it out of use for a while.
    pub fn set_probation(&mut self, ip: Ipv4Addr, until: i64) {
        self.slots.insert(ip, Slot::Declined { until });
        self.deadlines.insert((until, ip));
    }

    /// An admin released `ip` in the store (`labnetctl leases release`):
    /// apply it unless the client has bound the address anew since (a renewal
    /// keeps `starts`, so a release the admin asked for is not lost to it).
    pub fn admin_release(&mut self, stored: &Lease, now: i64) {
        if let Some(Slot::Bound(l)) = self.slots.get(&stored.ip) {
            if l.mac == stored.mac && l.starts <= stored.expires {
                let mut last = l.clone();
                last.state = LeaseState::Released;
                last.expires = stored.expires.min(now);
                let ip = stored.ip;
                self.free_slot(ip, Some(last), now);
            }
        }
    }

    fn free_slot(&mut self, ip: Ipv4Addr, last: Option<Lease>, now: i64) {
        self.slots.insert(ip, Slot::Free { last, since: now });
        if let Some(s) = self.subnet_of_mut(ip) {
            s.free.insert((now, ip));
        }
    }

    fn subnet_of_mut(&mut self, ip: Ipv4Addr) -> Option<&mut SubnetState> {
        self.subnets.iter_mut().find(|s| s.cidr.contains(&ip))
    }

    /// Number of addresses bound at `now` (for logs and tests).
    pub fn bound_count(&self, now: i64) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s, Slot::Bound(l) if l.expires > now))
            .count()
    }
}

fn key_of(l: &Lease) -> ClientKey {
    match &l.client_id {
        Some(id) => ClientKey::Id(id.clone()),
        None => ClientKey::Mac(l.mac.clone()),
    }
}
