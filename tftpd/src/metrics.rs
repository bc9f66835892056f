//! What labnet-tftpd records for Prometheus, through the `metrics` facade
//! (labnet-daemon serves it when `[metrics.listen] tftpd` is set; without
//! it every call here is a no-op).
//!
//! - `labnet_tftp_transfers_total{direction, outcome}`: finished transfers
//!   (`read`/`write`; `complete`, `size_probe` for the EDK2 tsize probe,
//!   `client_error`, `timed_out`, `protocol_error`, `local_error`).
//! - `labnet_tftp_transfers_active`: transfers running now.
//! - `labnet_tftp_bytes_total{direction}`: file bytes sent (read) or
//!   received (write), counted when a transfer ends.
//! - `labnet_tftp_retransmits_total`: DATA/OACK/ACK sent again on timeout.
//! - `labnet_tftp_errors_total{reason}`: requests answered with an ERROR
//!   before any transfer (file not found, access violation, busy, ...).
//! - `labnet_tftp_transfer_seconds{direction}`: how long complete transfers took.
//! - `labnet_http_requests_total{method, status}`: HTTP responses (`[http]`),
//!   by method (`GET`, `HEAD`, `other`) and status code.
//! - `labnet_http_response_bytes_total`: body bytes of GET responses, as
//!   announced in their Content-Length (a client that hangs up early
//!   receives fewer).
//! - `labnet_http_connections_active`: HTTP connections open now.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::packet::ErrorCode;
use crate::transfer::{Outcome, Stats};

const TRANSFERS: &str = "labnet_tftp_transfers_total";
const ACTIVE: &str = "labnet_tftp_transfers_active";
const BYTES: &str = "labnet_tftp_bytes_total";
const RETRANSMITS: &str = "labnet_tftp_retransmits_total";
const ERRORS: &str = "labnet_tftp_errors_total";
const SECONDS: &str = "labnet_tftp_transfer_seconds";
const HTTP_REQUESTS: &str = "labnet_http_requests_total";
const HTTP_BYTES: &str = "labnet_http_response_bytes_total";
const HTTP_CONNECTIONS: &str = "labnet_http_connections_active";

/// HELP lines for the exporter; call once at start.
pub fn describe() {
    describe_counter!(
        TRANSFERS,
        "Finished TFTP transfers, by direction and outcome"
    );
    describe_gauge!(ACTIVE, "TFTP transfers running now");
    describe_counter!(
        BYTES,
        metrics::Unit::Bytes,
        "File bytes sent (read) or received (write)"
    );
    describe_counter!(RETRANSMITS, "Packets sent again after a timeout");
    describe_counter!(ERRORS, "Requests refused with a TFTP ERROR, by reason");
    describe_histogram!(
        SECONDS,
        metrics::Unit::Seconds,
        "Duration of complete transfers"
    );
    describe_counter!(HTTP_REQUESTS, "HTTP responses, by method and status");
    describe_counter!(
        HTTP_BYTES,
        metrics::Unit::Bytes,
        "Body bytes of HTTP GET responses (Content-Length)"
    );
    describe_gauge!(HTTP_CONNECTIONS, "HTTP connections open now");
}

fn direction(write: bool) -> &'static str {
    if write {
        "write"
    } else {
        "read"
    }
}

/// A transfer started (after its file was found and options negotiated).
pub fn started() {
    gauge!(ACTIVE).increment(1.0);
}

/// A started transfer ended.
pub fn finished(write: bool, outcome: &Outcome, stats: &Stats, took: Duration) {
    gauge!(ACTIVE).decrement(1.0);
    let label = match outcome {
        Outcome::Complete => "complete",
        Outcome::ClientError { probe: true, .. } => "size_probe",
        Outcome::ClientError { .. } => "client_error",
        Outcome::TimedOut => "timed_out",
        Outcome::Protocol(_) => "protocol_error",
        Outcome::Local(_) => "local_error",
    };
    let dir = direction(write);
    counter!(TRANSFERS, "direction" => dir, "outcome" => label).increment(1);
    counter!(BYTES, "direction" => dir).increment(stats.bytes);
    counter!(RETRANSMITS).increment(stats.retransmits);
    if *outcome == Outcome::Complete {
        histogram!(SECONDS, "direction" => dir).record(took.as_secs_f64());
    }
}

/// A request refused with ERROR `code` before any transfer began.
pub fn refused(code: ErrorCode) {
    let reason = match code {
        ErrorCode::NotDefined => "other",
        ErrorCode::FileNotFound => "file_not_found",
        ErrorCode::AccessViolation => "access_violation",
        ErrorCode::DiskFull => "disk_full",
        ErrorCode::IllegalOperation => "illegal_operation",
        ErrorCode::UnknownTid => "unknown_tid",
        ErrorCode::FileExists => "file_exists",
        ErrorCode::NoSuchUser => "no_such_user",
        ErrorCode::OptionRefused => "option_refused",
    };
    counter!(ERRORS, "reason" => reason).increment(1);
}

/// A request refused for a cap or as malformed (`busy`, `client_limit`,
/// `malformed`).
pub fn refused_because(reason: &'static str) {
    counter!(ERRORS, "reason" => reason).increment(1);
}

/// An HTTP connection opened (`true`) or closed.
pub fn http_connection(open: bool) {
    gauge!(HTTP_CONNECTIONS).increment(if open { 1.0 } else { -1.0 });
}

/// An HTTP response was sent with `status`, announcing `bytes` of body.
pub fn http_response(method: &str, status: u16, bytes: u64) {
    let method = match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        _ => "other",
    };
    counter!(HTTP_REQUESTS, "method" => method, "status" => status.to_string()).increment(1);
    counter!(HTTP_BYTES).increment(bytes);
}
