//! The validated configuration the daemons use. Every field here has been
//! checked; defaults are filled in.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};

/// `[store]`: where the shared store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite:///var/lib/labnet/labnet.db` (or `postgres://...` in a later release).
    pub url: String,
}

/// An inclusive IPv4 range, written `a-b` (or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Range {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl Ipv4Range {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end)) - u64::from(u32::from(self.start)) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn overlaps(&self, other: &Ipv4Range) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl std::str::FromStr for Ipv4Range {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s.trim(), s.trim()),
        };
        let start: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        let end: Ipv4Addr = b
            .parse()
            .map_err(|_| format!("`{b}` is not an IPv4 address"))?;
        if start > end {
            return Err(format!("range {start}-{end} ends before it starts"));
        }
        Ok(Ipv4Range { start, end })
    }
}

impl std::fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// `[dhcp]`: the DHCPv4 server.
#[derive(Debug, Clone)]
pub struct DhcpConfig {
    /// Interfaces to serve on; each gets its own socket bound to the device,
    /// so the receiving interface is known and replies leave through it.
    pub interfaces: Vec<String>,
    /// Server port (67); clients are answered on `port + 1`. Only tests change it.
    pub port: u16,
    /// ICMP echo check before an OFFER (like dnsmasq: on by default).
    pub ping_check: bool,
    pub ping_timeout: Duration,
    /// How long an offered address is held for the client that was offered it.
    pub offer_hold: Duration,
    /// How long a DECLINEd address stays out of the pool (RFC 2131 §3.1.5).
    pub decline_probation: Duration,
    /// NAK requests for addresses we do not know in subnets we serve
    /// (RFC 2131 §4.3.2: an authoritative server NAKs, others stay silent).
    pub authoritative: bool,
    /// Packets per second accepted from one client hardware address; more is dropped.
    pub max_packets_per_client: u32,
    /// Addresses one relay circuit (giaddr + option 82 circuit-id, RFC 3046)
    /// may hold or be offered at once; `None`: no limit.
    pub max_leases_per_circuit: Option<usize>,
    /// Most leases written to the store in one transaction (group commit).
    pub commit_batch: usize,
    pub subnets: Vec<Subnet>,
    /// Options for every subnet; a subnet's own options with the same code win.
    pub options: Vec<ExtraOption>,
}

/// `[[dhcp.subnets]]`.
#[derive(Debug, Clone)]
pub struct Subnet {
    pub cidr: Ipv4Net,
    pub pools: Vec<Ipv4Range>,
    pub exclude: Vec<Ipv4Range>,
    pub routers: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub ntp_servers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub domain_search: Vec<String>,
    pub mtu: Option<u16>,
    /// Classless static routes, option 121 (RFC 3442).
    pub routes: Vec<StaticRoute>,
    pub lease_time: Duration,
    /// T1; RFC 2131 §4.4.5 default 0.5 × lease time.
    pub renew_time: Duration,
    /// T2; RFC 2131 §4.4.5 default 0.875 × lease time.
    pub rebind_time: Duration,
    pub options: Vec<ExtraOption>,
}

impl Subnet {
    pub fn in_pool(&self, ip: Ipv4Addr) -> bool {
        self.pools.iter().any(|p| p.contains(ip)) && !self.exclude.iter().any(|e| e.contains(ip))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute {
    pub destination: Ipv4Net,
    pub gateway: Ipv4Addr,
}

/// An option sent as given, by code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraOption {
    pub code: u8,
    /// The option's payload, already encoded.
    pub data: Vec<u8>,
}

/// `[tftp]`: the TFTP server.
#[derive(Debug, Clone)]
pub struct TftpConfig {
    pub listen: Vec<SocketAddr>,
    pub root: PathBuf,
    /// Write requests are refused unless this is set (RFC 1350 error 2).
    pub upload_dir: Option<PathBuf>,
    pub max_transfers: usize,
    pub max_transfers_per_client: usize,
    /// Upper bound for a negotiated blksize (RFC 2348); the interface MTU caps it too.
    pub max_blksize: u16,
    /// Upper bound for a negotiated windowsize (RFC 7440).
    pub max_windowsize: u16,
    /// Retransmission timeout before back-off (RFC 2349 lets the client ask for another).
    pub timeout: Duration,
    pub retries: u32,
    /// A transfer with no progress for this long ends, whatever the client's
    /// timeout and the back-off say.
    pub max_stall: Duration,
    /// No transfer lives longer than this.
    pub max_transfer_time: Duration,
    /// Bytes of files kept in memory and shared by transfers (files up to
    /// half of it); 0 streams every file from disk.
    pub file_cache_size: u64,
}

/// `[http]`: labnet-tftpd also serves the TFTP root and the generated PXE
/// files over HTTP (iPXE and UEFI HTTP boot fetch kernels many times faster
/// than over TFTP).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: Vec<SocketAddr>,
    /// `http://HOST[:PORT]`, no trailing `/`: the base of the URLs loaders
    /// are given. Defaults to the first non-wildcard `listen` address.
    pub url: String,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (also the
    /// idle time allowed between requests on a kept-alive connection).
    pub timeout: Duration,
    /// No connection lives longer than this.
    pub max_connection_time: Duration,
}

/// `[pxe]`: what DHCP tells a network-booting client.
#[derive(Debug, Clone)]
pub struct PxeConfig {
    /// next-server / option 66.
    pub tftp_server: Ipv4Addr,
    /// Loader for BIOS clients (arch 0).
    pub bios_boot_file: String,
    /// Loader for x64 UEFI clients (arch 7 and 9).
    pub uefi_boot_file: String,
    /// Loader for IA32 UEFI clients (arch 6).
    pub uefi32_boot_file: String,
    /// What a client already running iPXE gets when its host has no boot
    /// profile: a script in the TFTP root (never generated). Hosts with a
    /// profile get `<stem>-01-<mac>.ipxe` beside it, generated.
    pub ipxe_script: String,
    /// Boot profile for hosts that have none assigned.
    pub default_profile: Option<String>,
    /// Boot file URI for UEFI HTTP boot clients (vendor class `HTTPClient`,
    /// arch 16); without it they are not offered a boot file.
    pub http_boot_url: Option<String>,
    /// `[http] url` when `[http]` is set: generated iPXE scripts fetch the
    /// kernel and initrd from there, and UEFI HTTP boot clients without
    /// `http_boot_url` get `<http_base>/<uefi loader>`.
    pub http_base: Option<String>,
}

/// `[dns]`: the DNS server.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub listen: Vec<SocketAddr>,
    /// Clients allowed to recurse; everyone else gets REFUSED for names
    /// outside the local zones.
    pub recursion_allowed: Vec<IpNet>,
    /// `root_hints = FILE` (NS and A/AAAA records, as IANA's named.root);
    /// `None` means the built-in IANA root hints. Read on the DNS server's
    /// machine by [`crate::Config::dns_root_hints`].
    pub root_hints: Option<PathBuf>,
    /// Recursive servers to forward to instead of iterating from the root.
    pub forwarders: Vec<SocketAddr>,
    /// `[[dns.forward]]`: conditional forwarding per domain.
    pub forward: Vec<ForwardZone>,
    /// Bytes the recursion cache may hold.
    pub cache_size: u64,
    /// TTL clamps for cached answers (seconds).
    pub min_ttl: u32,
    pub max_ttl: u32,
    /// Longest time a negative answer is cached (RFC 2308 §5).
    pub max_negative_ttl: u32,
    /// Ask each zone's servers only about the next label (RFC 9156).
    pub qname_minimisation: bool,
    /// `dnssec = true|false`; unset: validate when trust anchors exist
    /// (`trust_anchors`, or the built-in IANA root anchors when iterating
    /// from the IANA root), as Unbound does when it has an anchor.
    pub dnssec: Option<bool>,
    /// `trust_anchors = FILE`: DS or DNSKEY records in zone-file form (as
    /// Unbound's `trust-anchor-file`), replacing the built-in IANA ones.
    /// Read by [`crate::Config::dns_trust_anchors`].
    pub trust_anchors: Option<PathBuf>,
    /// Zone the names of DHCP clients live in (`<hostname>.<lease_zone>`).
    pub lease_zone: Option<String>,
    /// TTL of the A/PTR records made from leases.
    pub lease_ttl: u32,
    /// Secondaries sent NOTIFY and allowed AXFR.
    pub secondaries: Vec<SocketAddr>,
    /// Extra sources allowed AXFR (besides the secondaries).
    pub allow_transfer: Vec<IpNet>,
    /// Response rate limiting over UDP: identical answers per second to one
    /// client prefix (/24, /56) outside `recursion_allowed`; 0 turns it off.
    pub rate_limit: u32,
    /// Every n-th answer over the limit goes out truncated (TC=1) so a real
    /// client retries over TCP; the others are dropped. 0: drop them all.
    pub rate_limit_slip: u32,
    /// `[dns.gslb]`.
    pub gslb: GslbConfig,
}

/// `[dns.gslb]`: how the GSLB link answers and checks members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GslbConfig {
    /// The ISP a client no ISP map covers is answered as; `None`: `any`
    /// (every member of the pool).
    pub default_isp: Option<String>,
    /// How often every dnsd probes each checked member.
    pub health_interval: std::time::Duration,
    /// Consecutive good probes that bring a down member back.
    pub rise: u32,
    /// Consecutive failed probes that take an up member out.
    pub fall: u32,
}

impl Default for GslbConfig {
    fn default() -> GslbConfig {
        GslbConfig {
            default_isp: None,
            health_interval: std::time::Duration::from_secs(5),
            rise: 2,
            fall: 2,
        }
    }
}

/// `[[dns.forward]] zone = "corp.example" servers = ["10.1.1.1:53"]`.
#[derive(Debug, Clone)]
pub struct ForwardZone {
    /// Lowercase, without the trailing dot.
    pub zone: String,
    pub servers: Vec<SocketAddr>,
}

/// `[metrics]`: where each daemon serves Prometheus text (`GET /metrics`).
/// A daemon without an address serves none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    pub dhcpd: Option<SocketAddr>,
    pub dnsd: Option<SocketAddr>,
    pub tftpd: Option<SocketAddr>,
}
