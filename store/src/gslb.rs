//! GSLB data (labnet-dnsd's GSLB link, `labnetctl gslb`): the ISP map and
//! the region map (CIDR → name, longest prefix wins in dnsd), regions with
//! their coordinates, pools (a DNS name answered by client) and their
//! members, and the health of each member as the dnsd nodes last saw it.
//!
//! Every write bumps [`crate::Topic::Gslb`]; health reports do not (they
//! are dnsd's own observations, read only by `labnetctl gslb list`, and a
//! bump there would make every node reload its maps on every flap).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::Result;

/// One line of the ISP or region map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GslbPrefix {
    /// Normalised (host bits clear).
    pub cidr: IpNet,
    /// The ISP or region it maps to.
    pub name: String,
}

/// Which prefix map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GslbMap {
    Isp,
    Region,
}

/// A region and where it is, in decimal degrees (WGS 84).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GslbRegion {
    pub name: String,
    pub lat: f64,
    pub lon: f64,
}

/// What a pool answers when none of its members is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenAllDown {
    /// Answer with every candidate (PowerDNS's `backupSelector` default).
    Any,
    /// NODATA.
    None,
}

impl WhenAllDown {
    pub fn as_str(self) -> &'static str {
        match self {
            WhenAllDown::Any => "any",
            WhenAllDown::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<WhenAllDown> {
        match s {
            "any" => Some(WhenAllDown::Any),
            "none" => Some(WhenAllDown::None),
            _ => None,
        }
    }
}

/// A GSLB service name (`abc.gslb.lab.test.`, lowercase, absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GslbPool {
    pub name: String,
    /// At most this many addresses per answer.
    pub answers: u32,
    pub ttl: u32,
    pub when_all_down: WhenAllDown,
}

/// One address of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GslbMember {
    pub pool: String,
    pub ip: IpAddr,
    pub isp: String,
    pub region: String,
    pub weight: u32,
    /// `tcp:PORT` or `http:PORT/PATH`; none: always up.
    pub check: Option<String>,
}

/// Everything dnsd needs to answer GSLB names, read in one go.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GslbData {
    pub isp_map: Vec<GslbPrefix>,
    pub region_map: Vec<GslbPrefix>,
    /// In the order they were added (the order for clients no map places).
    pub regions: Vec<GslbRegion>,
    pub pools: Vec<GslbPool>,
    /// In the order they were added.
    pub members: Vec<GslbMember>,
}

/// A member's health as one dnsd node saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GslbHealth {
    pub ip: IpAddr,
    pub check: String,
    /// Which dnsd saw it (its host name).
    pub node: String,
    pub up: bool,
    /// Unix seconds of the observation.
    pub at: i64,
}

#[async_trait::async_trait]
pub trait GslbStore: Send + Sync {
    /// Add prefixes to a map. A prefix already in that map is a
    /// [`crate::StoreError::Conflict`] naming it, unless `replace` names the
    /// ISP/region whose prefixes are replaced wholesale first (an import).
    /// Returns the number of prefixes written.
    async fn gslb_map_add(
        &self,
        map: GslbMap,
        entries: &[GslbPrefix],
        replace: Option<&str>,
    ) -> Result<u64>;
    /// Remove one prefix from a map; false if it was not there.
    async fn gslb_map_remove(&self, map: GslbMap, cidr: IpNet) -> Result<bool>;
    /// Add a region or move it.
    async fn gslb_region_put(&self, region: &GslbRegion) -> Result<()>;
    /// Add a pool or change its settings.
    async fn gslb_pool_put(&self, pool: &GslbPool) -> Result<()>;
    /// Remove a pool and its members; false if there was none.
    async fn gslb_pool_remove(&self, name: &str) -> Result<bool>;
    /// Add a member (or change the one with this pool and address). An
    /// unknown pool or region is [`crate::StoreError::NotFound`].
    async fn gslb_member_put(&self, member: &GslbMember) -> Result<()>;
    /// Remove a member; false if there was none.
    async fn gslb_member_remove(&self, pool: &str, ip: IpAddr) -> Result<bool>;
    /// Everything, for dnsd's view and `labnetctl gslb list`.
    async fn gslb_data(&self) -> Result<GslbData>;
    /// Record health changes seen by one node (no generation bump).
    async fn gslb_health_report(&self, health: &[GslbHealth]) -> Result<()>;
    /// The last health report of every node for every checked member.
    async fn gslb_health(&self) -> Result<Vec<GslbHealth>>;
}

/// A prefix read back from the store.
pub(crate) fn cidr_from_db(s: &str) -> Result<IpNet> {
    s.parse()
        .map_err(|_| crate::StoreError::Corrupt(format!("GSLB prefix `{s}`")))
}

pub(crate) fn ipaddr_from_db(s: &str) -> Result<IpAddr> {
    s.parse()
        .map_err(|_| crate::StoreError::Corrupt(format!("GSLB member address `{s}`")))
}

/// A backend's statements for one prefix map.
pub(crate) struct MapSql {
    /// "isp" or "region", for messages.
    pub what: &'static str,
    pub delete_owner: &'static str,
    pub insert: &'static str,
    pub delete_cidr: &'static str,
    pub select: &'static str,
}
