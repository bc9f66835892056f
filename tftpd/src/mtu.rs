//! The largest blksize that fits one unfragmented datagram on the interface
//! a transfer uses (RFC 2348 leaves the cap to the server).
//!
//! A DATA packet is blksize + 4 (TFTP) + 8 (UDP) + 20 (IPv4) or 40 (IPv6)
//! bytes, so blksize <= MTU - 32 (IPv4) or MTU - 52 (IPv6): 1468 on a
//! 1500-byte Ethernet, the value PXE clients ask for.
//!
//! The interface is found without netlink: for IPv6, the local address in
//! `/proc/net/if_inet6`; for IPv4, the longest-prefix route to the peer in
//! `/proc/net/route`; loopback is `lo`. Its MTU is `/sys/class/net/IF/mtu`.
//! When nothing matches, 1500 is assumed (the safe common case).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const FALLBACK_MTU: u32 = 1500;

/// The blksize cap for a transfer from `local` to `peer`.
pub fn blksize_cap(local: IpAddr, peer: IpAddr) -> u16 {
    let mtu = iface_for(local, peer)
        .and_then(|i| read_mtu(&i))
        .unwrap_or(FALLBACK_MTU);
    cap_for_mtu(mtu, local.is_ipv6() && !is_mapped(local))
}

fn is_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

pub fn cap_for_mtu(mtu: u32, ipv6: bool) -> u16 {
    let overhead = if ipv6 { 52 } else { 32 };
    mtu.saturating_sub(overhead).clamp(8, 65464) as u16
}

fn read_mtu(iface: &str) -> Option<u32> {
    if iface.contains('/') || iface.contains("..") {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn iface_for(local: IpAddr, peer: IpAddr) -> Option<String> {
    if local.is_loopback() || peer.is_loopback() {
        return Some("lo".into());
    }
    match (local, peer) {
        (IpAddr::V6(l), _) if !is_mapped(local) => {
            iface_v6(&std::fs::read_to_string("/proc/net/if_inet6").ok()?, l)
        }
        (_, IpAddr::V4(p)) => route_v4(&std::fs::read_to_string("/proc/net/route").ok()?, p),
        (_, IpAddr::V6(p)) => route_v4(
            &std::fs::read_to_string("/proc/net/route").ok()?,
            p.to_ipv4_mapped()?,
        ),
    }
}

/// `/proc/net/if_inet6`: "ADDR32HEX IFINDEX PREFIX SCOPE FLAGS NAME".
fn iface_v6(text: &str, addr: Ipv6Addr) -> Option<String> {
    let want = addr
        .octets()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 6 && f[0].eq_ignore_ascii_case(&want)).then(|| f[5].to_owned())
    })
}

/// `/proc/net/route`: "Iface Destination Gateway Flags RefCnt Use Metric
/// Mask ..." with addresses as the kernel's native-endian hex of the
/// network-order bytes. Longest prefix wins, then the lowest metric.
fn route_v4(text: &str, peer: Ipv4Addr) -> Option<String> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(|v| v.to_ne_bytes());
    let peer = u32::from_be_bytes(peer.octets());
    let mut best: Option<(u32, u32, String)> = None;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Some(dst), Some(mask), Ok(metric)) = (hex(f[1]), hex(f[7]), f[6].parse::<u32>())
        else {
            continue;
        };
        let (dst, mask) = (u32::from_be_bytes(dst), u32::from_be_bytes(mask));
        if peer & mask != dst {
            continue;
        }
        let plen = mask.count_ones();
        let better = match &best {
            None => true,
            Some((bl, bm, _)) => plen > *bl || (plen == *bl && metric < *bm),
        };
        if better {
            best = Some((plen, metric, f[0].to_owned()));
        }
    }
    best.map(|b| b.2)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        assert_eq!(cap_for_mtu(1500, false), 1468);
        assert_eq!(cap_for_mtu(1500, true), 1448);
        assert_eq!(cap_for_mtu(65536, false), 65464);
        assert_eq!(cap_for_mtu(9000, false), 8968);
    }

    #[test]
    fn route_lookup() {
        // Native-endian hex as the kernel prints it.
        let h = |a: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(a));
        let text = format!(
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
             eth0\t{}\t{}\t0003\t0\t0\t0\t{}\t0\t0\t0\n\
             veth1\t{}\t{}\t0001\t0\t0\t0\t{}\t0\t0\t0\n",
            h([0, 0, 0, 0]),
            h([192, 168, 1, 1]),
            h([0, 0, 0, 0]),
            h([10, 79, 0, 0]),
            h([0, 0, 0, 0]),
            h([255, 255, 255, 0]),
        );
        assert_eq!(
            route_v4(&text, Ipv4Addr::new(10, 79, 0, 2)).unwrap(),
            "veth1"
        );
        assert_eq!(route_v4(&text, Ipv4Addr::new(8, 8, 8, 8)).unwrap(), "eth0");
    }

    #[test]
    fn if_inet6_lookup() {
        let text = "fe800000000000000000000000000001 02 40 20 80     eth0\n\
                    fd000000000000000000000000000005 03 40 00 80   veth7\n";
        assert_eq!(iface_v6(text, "fd00::5".parse().unwrap()).unwrap(), "veth7");
        assert!(iface_v6(text, "fd00::6".parse().unwrap()).is_none());
    }

    #[test]
    fn loopback_is_lo() {
        assert_eq!(
            iface_for("127.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()).unwrap(),
            "lo"
        );
    }
}
