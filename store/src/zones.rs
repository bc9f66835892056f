//! Authoritative DNS zones and their records.
//!
//! The store keeps records as rows with both the presentation form (for
//! people and `labnetctl records list`) and the RFC 1035 wire form of the
//! RDATA (what labnet-dnsd decodes), so this crate needs no DNS codec. Names
//! are absolute with the final dot; zone names are lowercase.

use crate::Result;

/// A zone and its SOA serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase, absolute (`lab.test.`).
    pub name: String,
    /// The SOA serial dnsd serves; it moves on every write to the zone.
    pub serial: u32,
    /// Number of records.
    pub records: u64,
}

/// A record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Absolute owner name (`www.lab.test.`).
    pub name: String,
    /// Type mnemonic (`A`).
    pub rtype: String,
    pub ttl: u32,
    /// Presentation form of the RDATA.
    pub rdata: String,
    /// Wire form of the RDATA, names uncompressed.
    pub wire: Vec<u8>,
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    pub id: i64,
    /// The zone it belongs to (lowercase, absolute).
    pub zone: String,
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub rdata: String,
    pub wire: Vec<u8>,
}

/// Zone and record operations. Every write bumps the zone's serial and
/// [`Topic::Zones`] in its transaction.
#[async_trait::async_trait]
pub trait ZoneStore: Send + Sync {
    /// Every zone, by name.
    async fn zones(&self) -> Result<Vec<Zone>>;
    /// Create `zone` or replace all its records with `records`. The serial
    /// becomes `serial` when that is newer (RFC 1982) than the stored one,
    /// else the stored one plus one. Returns the zone as written.
    async fn import_zone(&self, zone: &str, serial: u32, records: &[NewRecord]) -> Result<Zone>;
    /// Remove a zone and its records; false when there was none.
    async fn remove_zone(&self, zone: &str) -> Result<bool>;
    /// Add one record to an existing zone; returns the new serial.
    async fn add_record(&self, zone: &str, record: &NewRecord) -> Result<u32>;
    /// Remove the records of `zone` owned by `name` (case-insensitive),
    /// optionally only of type `rtype` and with presentation RDATA `rdata`.
    /// Returns how many went (the serial moves only when some did).
    async fn remove_records(
        &self,
        zone: &str,
        name: &str,
        rtype: Option<&str>,
        rdata: Option<&str>,
    ) -> Result<u64>;
    /// The records of one zone, or of all zones, in zone then insertion order.
    async fn zone_records(&self, zone: Option<&str>) -> Result<Vec<ZoneRecord>>;
}

/// RFC 1982 §3.2: is `a` newer than `b`?
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// A serial as stored (both backends keep it in a 64-bit integer column).
pub(crate) fn serial_from_db(v: i64) -> u32 {
    (v & 0xffff_ffff) as u32
}
