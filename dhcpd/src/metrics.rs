//! What labnet-dhcpd records for Prometheus, through the `metrics` facade
//! (labnet-daemon serves it when `[metrics.listen] dhcpd` is set; without
//! it every call here is a no-op).
//!
//! - `labnet_dhcp_packets_total{type, outcome}`: every datagram received, by
//!   its DHCP message type (`malformed` when it did not decode) and what
//!   became of it: the reply's type (`offer`, `ack`, `nak`), `ping_check`
//!   (an OFFER waiting for its ping), `committed` (RELEASE/DECLINE written
//!   to the store) or the reason it got no reply.
//! - `labnet_dhcp_pool_size|used|free{subnet}`: each subnet's pools, and
//!   how many of those addresses are held (bound, offered, on probation).
//! - `labnet_dhcp_commit_batch_size`, `labnet_dhcp_commit_seconds`: each
//!   group commit's lease count and duration; `labnet_dhcp_commit_failures_total`.

use std::time::Duration;

use dhcproto::v4::MessageType;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::core::{Action, Silence};
use crate::leases::PoolUsage;

const PACKETS: &str = "labnet_dhcp_packets_total";
const POOL_SIZE: &str = "labnet_dhcp_pool_size";
const POOL_USED: &str = "labnet_dhcp_pool_used";
const POOL_FREE: &str = "labnet_dhcp_pool_free";
const BATCH_SIZE: &str = "labnet_dhcp_commit_batch_size";
const COMMIT_SECONDS: &str = "labnet_dhcp_commit_seconds";
const COMMIT_FAILURES: &str = "labnet_dhcp_commit_failures_total";

/// HELP lines for the exporter; call once at start.
pub fn describe() {
    describe_counter!(
        PACKETS,
        "DHCP packets received, by message type and outcome"
    );
    describe_gauge!(
        POOL_SIZE,
        "Addresses in the subnet's pools, exclusions taken out"
    );
    describe_gauge!(POOL_USED, "Pool addresses bound, offered or on probation");
    describe_gauge!(POOL_FREE, "Pool addresses free to offer");
    describe_histogram!(BATCH_SIZE, "Leases written per group commit");
    describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one group commit to the store"
    );
    describe_counter!(
        COMMIT_FAILURES,
        "Group commits that failed (their ACKs withheld)"
    );
}

fn type_label(t: Option<MessageType>) -> &'static str {
    match t {
        Some(MessageType::Discover) => "discover",
        Some(MessageType::Request) => "request",
        Some(MessageType::Decline) => "decline",
        Some(MessageType::Release) => "release",
        Some(MessageType::Inform) => "inform",
        Some(MessageType::Offer) => "offer",
        Some(MessageType::Ack) => "ack",
        Some(MessageType::Nak) => "nak",
        Some(_) => "other",
        None => "none",
    }
}

fn silence_label(s: &Silence) -> &'static str {
    match s {
        Silence::NotARequest => "not_a_request",
        Silence::BadHardwareAddress => "bad_hardware_address",
        Silence::NoMessageType => "no_message_type",
        Silence::UnsupportedMessageType => "unsupported_message_type",
        Silence::RateLimited => "rate_limited",
        Silence::NoSubnet => "no_subnet",
        Silence::PoolExhausted => "pool_exhausted",
        Silence::OtherServerChosen => "other_server_chosen",
        Silence::MissingRequestedAddress => "missing_requested_address",
        Silence::UnknownLease => "unknown_lease",
        Silence::NotAuthoritative => "not_authoritative",
        Silence::CircuitLimit => "circuit_limit",
        Silence::NotFromHolder => "not_from_holder",
    }
}

/// One request of type `t` and what the core decided for it.
pub fn packet(t: Option<MessageType>, action: &Action) {
    let outcome = match action {
        Action::Silent(why) => silence_label(why),
        Action::Send(r) => type_label(r.msg.opts().msg_type()),
        Action::PingThenSend { .. } => "ping_check",
        Action::Commit { reply: Some(r), .. } => type_label(r.msg.opts().msg_type()),
        Action::Commit { reply: None, .. } => "committed",
    };
    counter!(PACKETS, "type" => type_label(t), "outcome" => outcome).increment(1);
}

/// A datagram that did not decode as DHCP.
pub fn malformed() {
    counter!(PACKETS, "type" => "malformed", "outcome" => "dropped").increment(1);
}

/// The pools as the lease table counts them now.
pub fn pools(usage: &[PoolUsage]) {
    for u in usage {
        let subnet = u.cidr.to_string();
        // f64 is exact for counts below 2^53; a pool is at most 2^32.
        gauge!(POOL_SIZE, "subnet" => subnet.clone()).set(u.size as f64);
        gauge!(POOL_USED, "subnet" => subnet.clone()).set(u.used as f64);
        gauge!(POOL_FREE, "subnet" => subnet).set(u.size.saturating_sub(u.used) as f64);
    }
}

/// One group commit of `leases` that took `took`.
pub fn commit(leases: usize, took: Duration, ok: bool) {
    histogram!(BATCH_SIZE).record(leases as f64);
    histogram!(COMMIT_SECONDS).record(took.as_secs_f64());
    // Added to even when zero, so the series exists before the first failure.
    counter!(COMMIT_FAILURES).increment(u64::from(!ok));
}
