//! The file as serde sees it. Unknown keys are refused; values that can be
//! checked alone (addresses, networks, durations, ranges) are parsed here, so
//! the TOML parser reports a bad one with its line. Checks across keys are in
//! the `validate` methods, which know each value's span.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::types::*;
use crate::{Config, ConfigError, Ctx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    store: RawStore,
    dhcp: Option<RawDhcp>,
    tftp: Option<RawTftp>,
    http: Option<RawHttp>,
    pxe: Option<RawPxe>,
    dns: Option<RawDns>,
    metrics: Option<RawMetrics>,
}

/// `[metrics]`: `listen` is a table, one address per daemon, since the
/// three are separate processes reading the same file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: RawMetricsListen,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetricsListen {
    dhcpd: Option<Spanned<SocketAddr>>,
    dnsd: Option<Spanned<SocketAddr>>,
    tftpd: Option<Spanned<SocketAddr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDhcp {
    interfaces: Spanned<Vec<String>>,
    #[serde(default = "default_dhcp_port")]
    port: u16,
    #[serde(default = "yes")]
    ping_check: bool,
    #[serde(
        default = "default_ping_timeout",
        deserialize_with = "spanned_duration"
    )]
    ping_timeout: Spanned<Duration>,
    #[serde(default = "default_offer_hold", deserialize_with = "spanned_duration")]
    offer_hold: Spanned<Duration>,
    #[serde(default = "default_probation", deserialize_with = "spanned_duration")]
    decline_probation: Spanned<Duration>,
    #[serde(default = "yes")]
    authoritative: bool,
    #[serde(default = "default_max_packets")]
    max_packets_per_client: u32,
    max_leases_per_circuit: Option<Spanned<usize>>,
    #[serde(default = "default_commit_batch")]
    commit_batch: Spanned<usize>,
    #[serde(default)]
    subnets: Vec<RawSubnet>,
    #[serde(default)]
    options: Vec<RawOption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubnet {
    cidr: Spanned<Ipv4Net>,
    pools: Vec<Spanned<Range>>,
    #[serde(default)]
    exclude: Vec<Spanned<Range>>,
    #[serde(default)]
    routers: Vec<Ipv4Addr>,
    #[serde(default)]
    dns_servers: Vec<Ipv4Addr>,
    #[serde(default)]
    ntp_servers: Vec<Ipv4Addr>,
    domain: Option<Spanned<String>>,
    #[serde(default)]
    domain_search: Vec<Spanned<String>>,
    mtu: Option<Spanned<u16>>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default = "default_lease_time", deserialize_with = "spanned_duration")]
    lease_time: Spanned<Duration>,
    #[serde(default, deserialize_with = "opt_spanned_duration")]
    renew_time: Option<Spanned<Duration>>,
    #[serde(default, deserialize_with = "opt_spanned_duration")]
    rebind_time: Option<Spanned<Duration>>,
    #[serde(default)]
    options: Vec<RawOption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    destination: Ipv4Net,
    gateway: Ipv4Addr,
}

/// `{ code = 252, text = "..." }`: exactly one of the value keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    code: Spanned<u8>,
    text: Option<String>,
    hex: Option<Spanned<String>>,
    ips: Option<Vec<Ipv4Addr>>,
    u8: Option<u8>,
    u16: Option<u16>,
    u32: Option<u32>,
    bool: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTftp {
    listen: Spanned<Vec<SocketAddr>>,
    root: Spanned<PathBuf>,
    upload_dir: Option<Spanned<PathBuf>>,
    #[serde(default = "default_max_transfers")]
    max_transfers: Spanned<usize>,
    #[serde(default = "default_max_transfers_per_client")]
    max_transfers_per_client: Spanned<usize>,
    #[serde(default = "default_max_blksize")]
    max_blksize: Spanned<u16>,
    #[serde(default = "default_max_windowsize")]
    max_windowsize: Spanned<u16>,
    #[serde(
        default = "default_tftp_timeout",
        deserialize_with = "spanned_duration"
    )]
    timeout: Spanned<Duration>,
    #[serde(default = "default_tftp_retries")]
    retries: u32,
    #[serde(
        default = "default_tftp_max_stall",
        deserialize_with = "spanned_duration"
    )]
    max_stall: Spanned<Duration>,
    #[serde(
        default = "default_tftp_max_transfer_time",
        deserialize_with = "spanned_duration"
    )]
    max_transfer_time: Spanned<Duration>,
    #[serde(default = "default_tftp_file_cache_size")]
    file_cache_size: Spanned<ByteSize>,
}

/// `[http]`: the TFTP root (and the generated PXE files) over HTTP, served
/// by labnet-tftpd beside TFTP.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Spanned<Vec<SocketAddr>>,
    url: Option<Spanned<String>>,
    #[serde(default = "default_http_max_connections")]
    max_connections: Spanned<usize>,
    #[serde(
        default = "default_http_timeout",
        deserialize_with = "spanned_duration"
    )]
    timeout: Spanned<Duration>,
    #[serde(
        default = "default_http_max_connection_time",
        deserialize_with = "spanned_duration"
    )]
    max_connection_time: Spanned<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPxe {
    tftp_server: Ipv4Addr,
    #[serde(default = "default_bios_boot_file")]
    bios_boot_file: String,
    #[serde(default = "default_uefi_boot_file")]
    uefi_boot_file: String,
    #[serde(default = "default_uefi32_boot_file")]
    uefi32_boot_file: String,
    #[serde(default = "default_ipxe_script")]
    ipxe_script: String,
    default_profile: Option<String>,
    http_boot_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    listen: Spanned<Vec<SocketAddr>>,
    #[serde(default)]
    recursion_allowed: Vec<IpNet>,
    root_hints: Option<Spanned<PathBuf>>,
    #[serde(default)]
    forwarders: Vec<SocketAddr>,
    #[serde(default)]
    forward: Vec<RawForward>,
    #[serde(default = "default_cache_size")]
    cache_size: Spanned<ByteSize>,
    #[serde(default)]
    min_ttl: u32,
    #[serde(default = "default_max_ttl")]
    max_ttl: Spanned<u32>,
    #[serde(default = "default_max_negative_ttl")]
    max_negative_ttl: u32,
    #[serde(default = "yes")]
    qname_minimisation: bool,
    dnssec: Option<Spanned<OnOff>>,
    trust_anchors: Option<Spanned<PathBuf>>,
    lease_zone: Option<Spanned<String>>,
    #[serde(default = "default_lease_ttl")]
    lease_ttl: u32,
    #[serde(default)]
    secondaries: Vec<SocketAddr>,
    #[serde(default)]
    allow_transfer: Vec<IpNet>,
    #[serde(default = "default_rate_limit")]
    rate_limit: u32,
    #[serde(default = "default_rate_limit_slip")]
    rate_limit_slip: Spanned<u32>,
    gslb: Option<RawGslb>,
}

/// `[dns.gslb]`: the GSLB link's knobs (its pools and maps live in the store).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGslb {
    default_isp: Option<Spanned<String>>,
    #[serde(
        default = "default_health_interval",
        deserialize_with = "spanned_duration"
    )]
    health_interval: Spanned<Duration>,
    #[serde(default = "default_rise")]
    rise: Spanned<u32>,
    #[serde(default = "default_fall")]
    fall: Spanned<u32>,
}

fn default_health_interval() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(5))
}

fn default_rise() -> Spanned<u32> {
    Spanned::new(0..0, 2)
}

fn default_fall() -> Spanned<u32> {
    Spanned::new(0..0, 2)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    zone: Spanned<String>,
    servers: Spanned<Vec<SocketAddr>>,
}

/// A size in bytes: a number, or text with a K/M/G suffix ("64M", "1G",
/// binary multiples, as Unbound reads them).
#[derive(Clone, Copy)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bytes(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Bytes(n) => Ok(ByteSize(n)),
            Either::Text(t) => {
                let t = t.trim();
                let (num, mult) = match t.char_indices().last() {
                    Some((i, c)) if c.is_ascii_alphabetic() => {
                        let m: u64 = match c.to_ascii_uppercase() {
                            'K' => 1 << 10,
                            'M' => 1 << 20,
                            'G' => 1 << 30,
                            _ => {
                                return Err(serde::de::Error::custom(format!(
                                    "`{t}`: use a number of bytes or a K, M or G suffix"
                                )))
                            }
                        };
                        (&t[..i], m)
                    }
                    _ => (t, 1),
                };
                num.trim()
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(mult))
                    .map(ByteSize)
                    .ok_or_else(|| serde::de::Error::custom(format!("`{t}` is not a size")))
            }
        }
    }
}

fn default_tftp_file_cache_size() -> Spanned<ByteSize> {
    Spanned::new(0..0, ByteSize(256 << 20))
}

fn default_cache_size() -> Spanned<ByteSize> {
    Spanned::new(0..0, ByteSize(64 << 20))
}

/// NSD's default (`rrl-ratelimit: 200`).
fn default_rate_limit() -> u32 {
    200
}

/// NSD's and Knot's default: every second limited answer goes out truncated.
fn default_rate_limit_slip() -> Spanned<u32> {
    Spanned::new(0..0, 2)
}

fn default_max_ttl() -> Spanned<u32> {
    Spanned::new(0..0, 86_400)
}

fn default_max_negative_ttl() -> u32 {
    3_600
}

/// Root server addresses from a hints file (the format of IANA's
/// `named.root`: `NAME TTL [IN] A|AAAA ADDRESS`, `;` comments); other
/// records (NS) are skipped. Err is the reason.
pub(crate) fn read_root_hints(path: &std::path::Path) -> Result<Vec<std::net::IpAddr>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut addrs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split(';').next().unwrap_or("");
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = f
            .iter()
            .position(|t| t.eq_ignore_ascii_case("A") || t.eq_ignore_ascii_case("AAAA"))
        else {
            continue;
        };
        let addr = f
            .get(pos + 1)
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            .ok_or_else(|| format!("{} line {}: not an address record", path.display(), i + 1))?;
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err(format!("{} holds no A or AAAA record", path.display()));
    }
    Ok(addrs)
}

/// `a-b` or a single address, parsed where it stands.
struct Range(Ipv4Range);

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Range).map_err(serde::de::Error::custom)
    }
}

/// A switch written `true`/`false` or, as Unbound's and BIND's users write
/// it, `"on"`/`"off"`.
#[derive(Debug, Clone, Copy)]
struct OnOff(bool);

impl<'de> Deserialize<'de> for OnOff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bool(bool),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Bool(b) => Ok(OnOff(b)),
            Either::Text(t) => match t.as_str() {
                "on" => Ok(OnOff(true)),
                "off" => Ok(OnOff(false)),
                _ => Err(serde::de::Error::custom(format!(
                    "`{t}` is not a switch: write \"on\", \"off\", true or false"
                ))),
            },
        }
    }
}

/// "12h", "90s", "1h 30m" (humantime), or a number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Secs(u64),
        Text(String),
    }
    let d = match Either::deserialize(d)? {
        Either::Secs(s) => Duration::from_secs(s),
        Either::Text(t) => humantime::parse_duration(&t).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{t}` is not a duration ({e}); write it like \"12h\", \"90s\" or a number of seconds"
            ))
        })?,
    };
    // No duration in labnet means more than a year; refusing here keeps
    // every later sum with a clock or a 32-bit wire field from overflowing
    // or wrapping (a u64 lease_time once panicked every binary).
    if d > MAX_DURATION {
        return Err(serde::de::Error::custom(format!(
            "{}s is too long: at most 366 days",
            d.as_secs()
        )));
    }
    Ok(d)
}

/// The longest duration any key takes.
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// `Err` naming `key` unless `min <= value <= max`.
fn in_range(
    ctx: &Ctx<'_>,
    v: &Spanned<Duration>,
    key: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let d = *v.get_ref();
    if d < min || d > max {
        return Err(ctx.invalid(
            v.span(),
            key,
            format!(
                "must be within {}..={}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

fn spanned_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "duration")] Duration);
    let s = Spanned::<W>::deserialize(d)?;
    let span = s.span();
    Ok(Spanned::new(span, s.into_inner().0))
}

fn opt_spanned_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Spanned<Duration>>, D::Error> {
    spanned_duration(d).map(Some)
}

fn yes() -> bool {
    true
}
fn default_dhcp_port() -> u16 {
    67
}
fn default_ping_timeout() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_millis(500))
}
fn default_offer_hold() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(30))
}
fn default_probation() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(3600))
}
fn default_max_packets() -> u32 {
    20
}
fn default_commit_batch() -> Spanned<usize> {
    Spanned::new(0..0, 512)
}
fn default_lease_time() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(12 * 3600))
}
fn default_max_transfers() -> Spanned<usize> {
    Spanned::new(0..0, 512)
}
// 16 addresses are needed to fill the default global cap, and a PXE client
// needs two at most (the size probe and the transfer); 32 leaves room for a
// machine fetching many files at once (or a benchmark's 20).
fn default_max_transfers_per_client() -> Spanned<usize> {
    Spanned::new(0..0, 32)
}
fn default_max_blksize() -> Spanned<u16> {
    Spanned::new(0..0, 65464)
}
fn default_max_windowsize() -> Spanned<u16> {
    Spanned::new(0..0, 64)
}
fn default_tftp_timeout() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(1))
}
fn default_tftp_retries() -> u32 {
    5
}
fn default_tftp_max_stall() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(30))
}
fn default_tftp_max_transfer_time() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(600))
}
fn default_http_max_connections() -> Spanned<usize> {
    Spanned::new(0..0, 256)
}
fn default_http_timeout() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(10))
}
fn default_http_max_connection_time() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(600))
}
fn default_bios_boot_file() -> String {
    "pxelinux.0".into()
}
fn default_uefi_boot_file() -> String {
    "ipxe.efi".into()
}
fn default_uefi32_boot_file() -> String {
    "ipxe-i386.efi".into()
}
fn default_ipxe_script() -> String {
    "boot.ipxe".into()
}
fn default_lease_ttl() -> u32 {
    60
}

impl RawConfig {
    pub(crate) fn validate(self, ctx: &Ctx<'_>) -> Result<Config, ConfigError> {
        let url = self.store.url;
        let known = ["sqlite://", "sqlite:", "postgres://", "postgresql://"];
        if !known.iter().any(|p| url.get_ref().starts_with(p)) {
            return Err(ctx.invalid(
                url.span(),
                "store.url",
                format!(
                    "`{}` is not a store URL this build supports; write sqlite:///path/to/labnet.db or postgres://user:password@host/database",
                    url.get_ref()
                ),
            ));
        }
        let mut own: Vec<(Ipv4Addr, &'static str)> = Vec::new();
        if let Some(p) = &self.pxe {
            own.push((p.tftp_server, "pxe.tftp_server"));
        }
        let listens = [
            self.tftp
                .as_ref()
                .map(|t| (t.listen.get_ref(), "a tftp.listen address")),
            self.http
                .as_ref()
                .map(|h| (h.listen.get_ref(), "an http.listen address")),
            self.dns
                .as_ref()
                .map(|d| (d.listen.get_ref(), "a dns.listen address")),
        ];
        for (addrs, what) in listens.into_iter().flatten() {
            for a in addrs {
                if let std::net::IpAddr::V4(ip) = a.ip() {
                    if !ip.is_unspecified() && !ip.is_loopback() {
                        own.push((ip, what));
                    }
                }
            }
        }
        let mut lines = std::collections::HashMap::new();
        if let Some(h) = self.dns.as_ref().and_then(|d| d.root_hints.as_ref()) {
            lines.insert("dns.root_hints", ctx.line_of(h.span().start));
        }
        if let Some(t) = self.dns.as_ref().and_then(|d| d.trust_anchors.as_ref()) {
            lines.insert("dns.trust_anchors", ctx.line_of(t.span().start));
        }
        if let Some(t) = &self.tftp {
            lines.insert("tftp.root", ctx.line_of(t.root.span().start));
            if let Some(u) = &t.upload_dir {
                lines.insert("tftp.upload_dir", ctx.line_of(u.span().start));
            }
        }
        let http = match self.http {
            Some(h) => {
                // The HTTP server is labnet-tftpd's: it serves the TFTP root.
                if self.tftp.is_none() {
                    return Err(ctx.invalid(
                        h.listen.span(),
                        "http.listen",
                        "[http] serves the [tftp] root: add a [tftp] section",
                    ));
                }
                Some(h.validate(ctx, self.pxe.as_ref().map(|p| p.tftp_server))?)
            }
            None => None,
        };
        let mut pxe = self.pxe.map(|p| p.validate(ctx)).transpose()?;
        if let (Some(p), Some(h)) = (pxe.as_mut(), http.as_ref()) {
            p.http_base = Some(h.url.clone());
        }
        Ok(Config {
            lines,
            path: ctx.path.to_owned(),
            store: StoreConfig {
                url: url.into_inner(),
            },
            dhcp: self.dhcp.map(|d| d.validate(ctx, &own)).transpose()?,
            tftp: self.tftp.map(|t| t.validate(ctx)).transpose()?,
            http,
            pxe,
            dns: self.dns.map(|d| d.validate(ctx)).transpose()?,
            metrics: self.metrics.map(|m| m.validate(ctx)).transpose()?,
        })
    }
}

impl RawMetrics {
    fn validate(self, ctx: &Ctx<'_>) -> Result<MetricsConfig, ConfigError> {
        let l = self.listen;
        let named = [("dhcpd", &l.dhcpd), ("dnsd", &l.dnsd), ("tftpd", &l.tftpd)];
        // Two daemons cannot both bind one address; say so before either
        // starts, rather than let the second fail at bind.
        for (i, (name, addr)) in named.iter().enumerate() {
            let Some(addr) = addr else { continue };
            for (other, o) in &named[..i] {
                if o.as_ref().is_some_and(|o| o.get_ref() == addr.get_ref()) {
                    return Err(ctx.invalid(
                        addr.span(),
                        format!("metrics.listen.{name}"),
                        format!("{} is already metrics.listen.{other}", addr.get_ref()),
                    ));
                }
            }
        }
        Ok(MetricsConfig {
            dhcpd: l.dhcpd.map(Spanned::into_inner),
            dnsd: l.dnsd.map(Spanned::into_inner),
            tftpd: l.tftpd.map(Spanned::into_inner),
        })
    }
}

impl RawDhcp {
    fn validate(
        self,
        ctx: &Ctx<'_>,
        own: &[(Ipv4Addr, &'static str)],
    ) -> Result<DhcpConfig, ConfigError> {
        if self.interfaces.get_ref().is_empty() {
            return Err(ctx.invalid(
                self.interfaces.span(),
                "dhcp.interfaces",
                "name at least one interface to serve on",
            ));
        }
        if *self.commit_batch.get_ref() == 0 {
            return Err(ctx.invalid(
                self.commit_batch.span(),
                "dhcp.commit_batch",
                "must be at least 1",
            ));
        }
        let mut subnets: Vec<Subnet> = Vec::new();
        for (i, s) in self.subnets.into_iter().enumerate() {
            let cidr_span = s.cidr.span();
            let subnet = s.validate(ctx, i, own)?;
            if let Some(other) = subnets.iter().find(|o| {
                o.cidr.contains(&subnet.cidr.network()) || subnet.cidr.contains(&o.cidr.network())
            }) {
                return Err(ctx.invalid(
                    cidr_span,
                    format!("dhcp.subnets[{i}].cidr"),
                    format!("{} overlaps subnet {}", subnet.cidr, other.cidr),
                ));
            }
            subnets.push(subnet);
        }
        let options = validate_options(ctx, self.options, "dhcp.options")?;
        Ok(DhcpConfig {
            interfaces: self.interfaces.into_inner(),
            port: self.port,
            ping_check: self.ping_check,
            // A ping answer comes within milliseconds on a LAN; a long wait
            // stalls every OFFER behind it (ISC dhcpd waits 1 s).
            ping_timeout: in_range(
                ctx,
                &self.ping_timeout,
                "dhcp.ping_timeout",
                Duration::from_millis(10),
                Duration::from_secs(5),
            )?,
            // An offer must be held long enough for the REQUEST to come
            // (RFC 2131 §4.3.1 leaves the time to the server).
            offer_hold: in_range(
                ctx,
                &self.offer_hold,
                "dhcp.offer_hold",
                Duration::from_secs(1),
                Duration::from_secs(600),
            )?,
            decline_probation: in_range(
                ctx,
                &self.decline_probation,
                "dhcp.decline_probation",
                Duration::from_secs(1),
                Duration::from_secs(7 * 86_400),
            )?,
            authoritative: self.authoritative,
            max_packets_per_client: self.max_packets_per_client,
            max_leases_per_circuit: match self.max_leases_per_circuit {
                Some(v) if *v.get_ref() == 0 => {
                    return Err(ctx.invalid(
                        v.span(),
                        "dhcp.max_leases_per_circuit",
                        "must be at least 1 (leave it out for no limit)",
                    ))
                }
                v => v.map(Spanned::into_inner),
            },
            commit_batch: self.commit_batch.into_inner(),
            subnets,
            options,
        })
    }
}

impl RawSubnet {
    /// `own`: addresses labnet's own servers listen on (another section's
    /// `listen`, `pxe.tftp_server`), which no pool may hand out.
    fn validate(
        self,
        ctx: &Ctx<'_>,
        i: usize,
        own: &[(Ipv4Addr, &'static str)],
    ) -> Result<Subnet, ConfigError> {
        let key = |k: &str| format!("dhcp.subnets[{i}].{k}");
        let cidr = self.cidr.get_ref().trunc();
        let inside = |r: &Ipv4Range| cidr.contains(&r.start) && cidr.contains(&r.end);
        let mut pools: Vec<Ipv4Range> = Vec::new();
        for p in &self.pools {
            let r = p.get_ref().0;
            if !inside(&r) {
                return Err(ctx.invalid(
                    p.span(),
                    key("pools"),
                    format!("pool {r} is not inside {cidr}"),
                ));
            }
            if let Some(o) = pools.iter().find(|o| o.overlaps(&r)) {
                return Err(ctx.invalid(
                    p.span(),
                    key("pools"),
                    format!("pool {r} overlaps pool {o}"),
                ));
            }
            pools.push(r);
        }
        for e in &self.exclude {
            let r = e.get_ref().0;
            if !inside(&r) {
                return Err(ctx.invalid(
                    e.span(),
                    key("exclude"),
                    format!("exclude {r} is not inside {cidr}"),
                ));
            }
        }
        // A pool must not hand out an address the lab's own servers use.
        let excluded = |ip: Ipv4Addr| self.exclude.iter().any(|e| e.get_ref().0.contains(ip));
        let servers = self
            .routers
            .iter()
            .map(|&ip| (ip, "this subnet's router"))
            .chain(
                self.dns_servers
                    .iter()
                    .map(|&ip| (ip, "this subnet's DNS server")),
            )
            .chain(own.iter().copied());
        for (ip, what) in servers {
            if let Some(p) = self
                .pools
                .iter()
                .find(|p| p.get_ref().0.contains(ip) && !excluded(ip))
            {
                return Err(ctx.invalid(
                    p.span(),
                    key("pools"),
                    format!(
                        "pool {} holds {ip}, {what}: exclude it or shrink the pool",
                        p.get_ref().0
                    ),
                ));
            }
        }
        let lease_time = *self.lease_time.get_ref();
        if lease_time < Duration::from_secs(10) {
            return Err(ctx.invalid(
                self.lease_time.span(),
                key("lease_time"),
                "a lease shorter than 10s is not useful",
            ));
        }
        // RFC 2131 §4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease; T1 < T2 < lease.
        let renew_time = self
            .renew_time
            .as_ref()
            .map(|t| *t.get_ref())
            .unwrap_or(lease_time / 2);
        let rebind_time = self
            .rebind_time
            .as_ref()
            .map(|t| *t.get_ref())
            .unwrap_or(lease_time * 7 / 8);
        if renew_time >= rebind_time || rebind_time >= lease_time {
            let span = self
                .renew_time
                .as_ref()
                .or(self.rebind_time.as_ref())
                .map(|t| t.span())
                .unwrap_or(self.lease_time.span());
            return Err(ctx.invalid(
                span,
                key("renew_time"),
                "need renew_time < rebind_time < lease_time (RFC 2131 §4.4.5)",
            ));
        }
        if let Some(mtu) = &self.mtu {
            // RFC 2132 §5.1: the minimum legal MTU is 68.
            if *mtu.get_ref() < 68 {
                return Err(ctx.invalid(mtu.span(), key("mtu"), "the smallest MTU is 68"));
            }
        }
        for name in self.domain.iter().chain(self.domain_search.iter()) {
            check_domain(ctx, name, &key("domain"))?;
        }
        Ok(Subnet {
            cidr,
            pools,
            exclude: self.exclude.iter().map(|r| r.get_ref().0).collect(),
            routers: self.routers,
            dns_servers: self.dns_servers,
            ntp_servers: self.ntp_servers,
            domain: self.domain.map(|d| d.into_inner()),
            domain_search: self
                .domain_search
                .into_iter()
                .map(|d| d.into_inner())
                .collect(),
            mtu: self.mtu.map(|m| m.into_inner()),
            routes: self
                .routes
                .into_iter()
                .map(|r| StaticRoute {
                    destination: r.destination.trunc(),
                    gateway: r.gateway,
                })
                .collect(),
            lease_time,
            renew_time,
            rebind_time,
            options: validate_options(ctx, self.options, &key("options"))?,
        })
    }
}

/// A socket address listed twice would fail to bind at run time.
fn no_duplicates(
    ctx: &Ctx<'_>,
    list: &Spanned<Vec<SocketAddr>>,
    key: &str,
) -> Result<(), ConfigError> {
    let v = list.get_ref();
    for (i, a) in v.iter().enumerate() {
        if v[..i].contains(a) {
            return Err(ctx.invalid(list.span(), key, format!("{a} is listed twice")));
        }
    }
    Ok(())
}

fn check_domain(ctx: &Ctx<'_>, name: &Spanned<String>, key: &str) -> Result<(), ConfigError> {
    let n = name.get_ref().trim_end_matches('.');
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(ctx.invalid(
            name.span(),
            key,
            format!("`{}` is not a domain name", name.get_ref()),
        ))
    }
}

fn validate_options(
    ctx: &Ctx<'_>,
    raw: Vec<RawOption>,
    key: &str,
) -> Result<Vec<ExtraOption>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for o in raw {
        let code = *o.code.get_ref();
        // Codes 0 (pad) and 255 (end) are framing, not options (RFC 2132 §3.1, §3.2).
        if code == 0 || code == 255 {
            return Err(ctx.invalid(
                o.code.span(),
                format!("{key}.code"),
                "codes 0 and 255 are pad and end",
            ));
        }
        let mut values: Vec<Vec<u8>> = Vec::new();
        if let Some(t) = o.text {
            values.push(t.into_bytes());
        }
        if let Some(h) = &o.hex {
            values.push(parse_hex(h.get_ref()).ok_or_else(|| {
                ctx.invalid(
                    h.span(),
                    format!("{key}.hex"),
                    "hex must be pairs of hex digits, optionally separated by ':' or spaces",
                )
            })?);
        }
        if let Some(ips) = o.ips {
            values.push(ips.iter().flat_map(|ip| ip.octets()).collect());
        }
        if let Some(v) = o.u8 {
            values.push(vec![v]);
        }
        if let Some(v) = o.u16 {
            values.push(v.to_be_bytes().to_vec());
        }
        if let Some(v) = o.u32 {
            values.push(v.to_be_bytes().to_vec());
        }
        if let Some(v) = o.bool {
            values.push(vec![u8::from(v)]);
        }
        if values.len() != 1 {
            return Err(ctx.invalid(
                o.code.span(),
                key,
                "give exactly one of text, hex, ips, u8, u16, u32, bool",
            ));
        }
        let data = values.remove(0);
        if data.len() > 255 {
            return Err(ctx.invalid(o.code.span(), key, "an option carries at most 255 bytes"));
        }
        out.push(ExtraOption { code, data });
    }
    Ok(out)
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !matches!(b, b':' | b' ' | b'-'))
        .collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

impl RawTftp {
    fn validate(self, ctx: &Ctx<'_>) -> Result<TftpConfig, ConfigError> {
        if self.listen.get_ref().is_empty() {
            return Err(ctx.invalid(
                self.listen.span(),
                "tftp.listen",
                "name at least one address:port",
            ));
        }
        // RFC 2348: blksize is 8..=65464; RFC 7440: windowsize 1..=65535.
        let bs = *self.max_blksize.get_ref();
        if !(512..=65464).contains(&bs) {
            return Err(ctx.invalid(
                self.max_blksize.span(),
                "tftp.max_blksize",
                "must be within 512..=65464 (RFC 2348)",
            ));
        }
        if *self.max_windowsize.get_ref() == 0 {
            return Err(ctx.invalid(
                self.max_windowsize.span(),
                "tftp.max_windowsize",
                "must be at least 1 (RFC 7440)",
            ));
        }
        for (v, k) in [
            (&self.max_transfers, "tftp.max_transfers"),
            (
                &self.max_transfers_per_client,
                "tftp.max_transfers_per_client",
            ),
        ] {
            if *v.get_ref() == 0 {
                return Err(ctx.invalid(v.span(), k, "must be at least 1"));
            }
        }
        no_duplicates(ctx, &self.listen, "tftp.listen")?;
        if self.max_transfers_per_client.get_ref() > self.max_transfers.get_ref() {
            return Err(ctx.invalid(
                self.max_transfers_per_client.span(),
                "tftp.max_transfers_per_client",
                "must not exceed tftp.max_transfers (a few clients would fill the server)",
            ));
        }
        let stall = *self.max_stall.get_ref();
        if !(Duration::from_secs(2)..=Duration::from_secs(600)).contains(&stall) {
            return Err(ctx.invalid(
                self.max_stall.span(),
                "tftp.max_stall",
                "must be within 2s..=10m",
            ));
        }
        let life = *self.max_transfer_time.get_ref();
        if !(Duration::from_secs(10)..=Duration::from_secs(86_400)).contains(&life) {
            return Err(ctx.invalid(
                self.max_transfer_time.span(),
                "tftp.max_transfer_time",
                "must be within 10s..=24h",
            ));
        }
        let file_cache_size = self.file_cache_size.get_ref().0;
        if file_cache_size > 16 << 30 {
            return Err(ctx.invalid(
                self.file_cache_size.span(),
                "tftp.file_cache_size",
                "must be at most 16 GiB (0 turns the cache off)",
            ));
        }
        Ok(TftpConfig {
            listen: self.listen.into_inner(),
            root: self.root.into_inner(),
            upload_dir: self.upload_dir.map(Spanned::into_inner),
            max_transfers: self.max_transfers.into_inner(),
            max_transfers_per_client: self.max_transfers_per_client.into_inner(),
            max_blksize: bs,
            max_windowsize: self.max_windowsize.into_inner(),
            // RFC 2349 §3: 1..=255 seconds.
            timeout: in_range(
                ctx,
                &self.timeout,
                "tftp.timeout",
                Duration::from_secs(1),
                Duration::from_secs(255),
            )?,
            retries: self.retries,
            max_stall: stall,
            max_transfer_time: life,
            file_cache_size,
        })
    }
}

impl RawHttp {
    /// `tftp_server`: `[pxe] tftp_server`, the address clients are told
    /// when every listen address is a wildcard and `url` is not set.
    fn validate(
        self,
        ctx: &Ctx<'_>,
        tftp_server: Option<Ipv4Addr>,
    ) -> Result<HttpConfig, ConfigError> {
        let listen = self.listen.get_ref();
        let Some(first) = listen.first() else {
            return Err(ctx.invalid(
                self.listen.span(),
                "http.listen",
                "name at least one address:port",
            ));
        };
        no_duplicates(ctx, &self.listen, "http.listen")?;
        if *self.max_connections.get_ref() == 0 {
            return Err(ctx.invalid(
                self.max_connections.span(),
                "http.max_connections",
                "must be at least 1",
            ));
        }
        let url = match &self.url {
            Some(u) => {
                let text = u.get_ref().trim_end_matches('/');
                // Loaders (iPXE, UEFI HTTP boot) are handed `<url>/<path>`;
                // TLS would need certificates they trust, so plain http only.
                let rest = text.strip_prefix("http://").unwrap_or_default();
                if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
                    return Err(ctx.invalid(
                        u.span(),
                        "http.url",
                        "must be http://HOST[:PORT] (no path): what loaders are told to fetch from",
                    ));
                }
                text.to_owned()
            }
            None => {
                let ip = listen
                    .iter()
                    .find(|a| !a.ip().is_unspecified())
                    .map(|a| (a.ip(), a.port()))
                    .or_else(|| tftp_server.map(|t| (t.into(), first.port())));
                let Some((ip, port)) = ip else {
                    return Err(ctx.invalid(
                        self.listen.span(),
                        "http.listen",
                        "every address is a wildcard: set http.url to the address clients reach",
                    ));
                };
                let host = match ip {
                    std::net::IpAddr::V4(v4) => v4.to_string(),
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                };
                if port == 80 {
                    format!("http://{host}")
                } else {
                    format!("http://{host}:{port}")
                }
            }
        };
        Ok(HttpConfig {
            listen: self.listen.into_inner(),
            url,
            max_connections: self.max_connections.into_inner(),
            // Slow-header clients hold a connection slot; loaders send
            // their request at once.
            timeout: in_range(
                ctx,
                &self.timeout,
                "http.timeout",
                Duration::from_secs(1),
                Duration::from_secs(300),
            )?,
            max_connection_time: in_range(
                ctx,
                &self.max_connection_time,
                "http.max_connection_time",
                Duration::from_secs(10),
                Duration::from_secs(86_400),
            )?,
        })
    }
}

impl RawPxe {
    fn validate(self, ctx: &Ctx<'_>) -> Result<PxeConfig, ConfigError> {
        if let Some(u) = &self.http_boot_url {
            // UEFI HTTP boot fetches its boot file by URI (UEFI 2.x §24.7).
            if !(u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://")) {
                return Err(ctx.invalid(
                    u.span(),
                    "pxe.http_boot_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        Ok(PxeConfig {
            tftp_server: self.tftp_server,
            bios_boot_file: self.bios_boot_file,
            uefi_boot_file: self.uefi_boot_file,
            uefi32_boot_file: self.uefi32_boot_file,
            ipxe_script: self.ipxe_script,
            default_profile: self.default_profile,
            http_boot_url: self.http_boot_url.map(Spanned::into_inner),
            // Filled in from [http] by RawConfig::validate.
            http_base: None,
        })
    }
}

impl RawGslb {
    fn validate(self, ctx: &Ctx<'_>) -> Result<GslbConfig, ConfigError> {
        if let Some(isp) = &self.default_isp {
            let l = isp.get_ref();
            // It becomes a label of the level-1 CNAME target.
            if l.is_empty()
                || l.len() > 63
                || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(ctx.invalid(
                    isp.span(),
                    "dns.gslb.default_isp",
                    format!("`{l}` is not one DNS label (letters, digits, `-`)"),
                ));
            }
        }
        let health_interval = in_range(
            ctx,
            &self.health_interval,
            "dns.gslb.health_interval",
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        for (v, key) in [(&self.rise, "dns.gslb.rise"), (&self.fall, "dns.gslb.fall")] {
            if !(1..=100).contains(v.get_ref()) {
                return Err(ctx.invalid(v.span(), key, "must be within 1..=100"));
            }
        }
        Ok(GslbConfig {
            default_isp: self
                .default_isp
                .map(|i| i.into_inner().to_ascii_lowercase()),
            health_interval,
            rise: self.rise.into_inner(),
            fall: self.fall.into_inner(),
        })
    }
}

impl RawDns {
    fn validate(self, ctx: &Ctx<'_>) -> Result<DnsConfig, ConfigError> {
        if self.listen.get_ref().is_empty() {
            return Err(ctx.invalid(
                self.listen.span(),
                "dns.listen",
                "name at least one address:port",
            ));
        }
        no_duplicates(ctx, &self.listen, "dns.listen")?;
        if let Some(z) = &self.lease_zone {
            check_domain(ctx, z, "dns.lease_zone")?;
        }
        let mut forward = Vec::with_capacity(self.forward.len());
        for f in self.forward {
            check_domain(ctx, &f.zone, "dns.forward.zone")?;
            if f.servers.get_ref().is_empty() {
                return Err(ctx.invalid(
                    f.servers.span(),
                    "dns.forward.servers",
                    "name at least one address:port",
                ));
            }
            let zone = f.zone.get_ref().trim_end_matches('.').to_ascii_lowercase();
            if forward.iter().any(|x: &ForwardZone| x.zone == zone) {
                return Err(ctx.invalid(
                    f.zone.span(),
                    "dns.forward.zone",
                    format!("`{zone}` is forwarded twice"),
                ));
            }
            forward.push(ForwardZone {
                zone,
                servers: f.servers.into_inner(),
            });
        }
        let cache_size = self.cache_size.get_ref().0;
        if cache_size < 1 << 20 {
            return Err(ctx.invalid(
                self.cache_size.span(),
                "dns.cache_size",
                "at least 1M: a smaller cache only thrashes",
            ));
        }
        if let Some(on) = self.dnssec.as_ref().filter(|d| d.get_ref().0) {
            // Validation runs in the iterator; a forwarder's answers come
            // without the zone cuts the chain of trust needs.
            if !self.forwarders.is_empty() {
                return Err(ctx.invalid(
                    on.span(),
                    "dns.dnssec",
                    "validation is done when iterating, not behind `forwarders`; remove one of them",
                ));
            }
            if self.root_hints.is_some() && self.trust_anchors.is_none() {
                return Err(ctx.invalid(
                    on.span(),
                    "dns.dnssec",
                    "with `root_hints` (another root) validation needs `trust_anchors`: the built-in anchors are the IANA root's",
                ));
            }
        }
        if *self.max_ttl.get_ref() < self.min_ttl {
            return Err(ctx.invalid(self.max_ttl.span(), "dns.max_ttl", "below dns.min_ttl"));
        }
        if *self.rate_limit_slip.get_ref() > 10 {
            // Past 10 a limited client waits too long for its TC=1 hint.
            return Err(ctx.invalid(
                self.rate_limit_slip.span(),
                "dns.rate_limit_slip",
                "0 (drop every limited answer) to 10",
            ));
        }
        let gslb = match self.gslb {
            Some(g) => g.validate(ctx)?,
            None => GslbConfig::default(),
        };
        Ok(DnsConfig {
            gslb,
            listen: self.listen.into_inner(),
            recursion_allowed: self.recursion_allowed,
            root_hints: self.root_hints.map(Spanned::into_inner),
            forwarders: self.forwarders,
            forward,
            cache_size,
            min_ttl: self.min_ttl,
            max_ttl: self.max_ttl.into_inner(),
            max_negative_ttl: self.max_negative_ttl,
            qname_minimisation: self.qname_minimisation,
            dnssec: self.dnssec.map(|d| d.into_inner().0),
            trust_anchors: self.trust_anchors.map(Spanned::into_inner),
            lease_zone: self.lease_zone.map(|z| z.into_inner()),
            lease_ttl: self.lease_ttl,
            secondaries: self.secondaries,
            allow_transfer: self.allow_transfer,
            rate_limit: self.rate_limit,
            rate_limit_slip: self.rate_limit_slip.into_inner(),
        })
    }
}
