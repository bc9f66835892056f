//! What labnet-dnsd records for Prometheus, through the `metrics` facade
//! (labnet-daemon serves it when `[metrics.listen] dnsd` is set): one
//! counter, `labnet_dns_queries_total{transport, rcode}`, bumped in the
//! socket loops for every reply sent, from the reply's header (RFC 1035
//! §4.1.1: RCODE is the low 4 bits of byte 3), so it holds whatever the
//! query pipeline behind the loops becomes. Queries dropped without a reply
//! count as `rcode="dropped"`. Replies that response rate limiting cut
//! count in `labnet_dns_rate_limited_total{action="slip"|"drop"}` (a
//! dropped one is not in the first counter; a slipped one is, as sent).

use std::sync::OnceLock;

use metrics::{counter, describe_counter, Counter};

const QUERIES: &str = "labnet_dns_queries_total";
const RATE_LIMITED: &str = "labnet_dns_rate_limited_total";
/// Labels for RCODE 0..=5 (RFC 1035 §4.1.1); anything else is `other`.
const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other", "dropped",
];
const OTHER: usize = 6;
const DROPPED: usize = 7;

/// The transport a query came over.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    Udp = 0,
    Tcp = 1,
}

/// HELP line for the exporter; call once at start, before serving.
pub fn describe() {
    describe_counter!(QUERIES, "DNS replies sent, by transport and RCODE");
    describe_counter!(
        RATE_LIMITED,
        "UDP replies cut by response rate limiting: sent truncated (slip) or dropped"
    );
}

/// The counters, looked up once: a per-query label lookup would cost more
/// than the rest of a cached answer. Built on first use, which is after
/// `main` installed the exporter.
fn counters() -> &'static [[Counter; 8]; 2] {
    static C: OnceLock<[[Counter; 8]; 2]> = OnceLock::new();
    C.get_or_init(|| {
        ["udp", "tcp"].map(|t| RCODES.map(|r| counter!(QUERIES, "transport" => t, "rcode" => r)))
    })
}

/// A reply `msg` (wire bytes) sent over `via`.
pub(crate) fn reply(via: Via, msg: &[u8]) {
    let rcode = msg
        .get(3)
        .map_or(OTHER, |b| usize::from(b & 0x0f).min(OTHER));
    counters()[via as usize][rcode].increment(1);
}

/// A query dropped without a reply.
pub(crate) fn dropped(via: Via) {
    counters()[via as usize][DROPPED].increment(1);
}

/// A UDP reply cut by response rate limiting: dropped, or sent truncated.
pub(crate) fn rate_limited(dropped: bool) {
    static C: OnceLock<[Counter; 2]> = OnceLock::new();
    let c = C.get_or_init(|| ["slip", "drop"].map(|a| counter!(RATE_LIMITED, "action" => a)));
    c[usize::from(dropped)].increment(1);
}
