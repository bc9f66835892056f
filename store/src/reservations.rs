//! Reservations: a fixed address (and hostname, boot profile) for a client
//! known by hardware address or client identifier.

use std::net::Ipv4Addr;

use crate::Result;
use serde::Serialize;

/// How a reserved client is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationKey {
    /// `aa:bb:cc:dd:ee:ff`
    Mac(String),
    /// Option 61 bytes.
    ClientId(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub key: ReservationKey,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    /// Boot profile assigned to this host (labnet-pxe).
    pub profile: Option<String>,
}

#[async_trait::async_trait]
pub trait ReservationStore: Send + Sync {
    async fn reservations(&self) -> Result<Vec<Reservation>>;
    /// Add a reservation; a clash on key or address is a [`crate::StoreError::Conflict`].
    async fn add_reservation(&self, r: &Reservation) -> Result<()>;
    /// Remove the reservation with this key; false if there was none.
    async fn remove_reservation(&self, key: &ReservationKey) -> Result<bool>;
}
