//! What `labnetctl` refuses before it writes to the store: values the
//! daemons would otherwise take and then misbehave on (issue 12, finding 8).

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{bail, Context};
use labnet_config::Config;
use labnet_store::{format_mac, lease_label, parse_mac, Store};

/// An Ethernet hardware address (htype 1, hlen 6: RFC 1700 / RFC 2131 §2),
/// normalised to `aa:bb:cc:dd:ee:ff`. Other link types are matched by
/// client identifier (`--client-id`).
pub fn ethernet_mac(s: &str) -> anyhow::Result<String> {
    let bytes = parse_mac(s).with_context(|| format!("`{s}` is not a MAC address"))?;
    if bytes.len() != 6 {
        bail!(
            "`{s}` has {} bytes; an Ethernet MAC has 6 (use --client-id for other link types)",
            bytes.len()
        );
    }
    Ok(format_mac(&bytes))
}

/// A host name as DHCP hands it out and DNS publishes it: dot-separated
/// labels of letters, digits and hyphens (RFC 952, RFC 1123 §2.1).
pub fn host_name(s: &str) -> anyhow::Result<()> {
    // Each label by the same rule that decides which lease names dnsd
    // publishes (`labnet_store::lease_label`), so a reserved name is one it
    // can serve.
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.')
            .split('.')
            .all(|l| lease_label(l).is_some_and(|ok| ok.eq_ignore_ascii_case(l)));
    if !ok {
        bail!("`{s}` is not a host name (letters, digits and hyphens, RFC 1123 §2.1)");
    }
    Ok(())
}

/// An address a reservation may hand out: inside a configured DHCP subnet,
/// not its network or broadcast address, and not an address labnet's own
/// servers or the subnet's router or DNS server use.
pub fn reservable(config: &Config, ip: Ipv4Addr) -> anyhow::Result<()> {
    let Some(dhcp) = &config.dhcp else {
        bail!("the config has no [dhcp] section: no subnet to reserve {ip} in");
    };
    let Some(subnet) = dhcp.subnets.iter().find(|s| s.cidr.contains(&ip)) else {
        let nets: Vec<String> = dhcp.subnets.iter().map(|s| s.cidr.to_string()).collect();
        bail!("{ip} is outside every DHCP subnet ({})", nets.join(", "));
    };
    if ip == subnet.cidr.network() || ip == subnet.cidr.broadcast() {
        bail!(
            "{ip} is the network or broadcast address of {}",
            subnet.cidr
        );
    }
    let mut own: Vec<(Ipv4Addr, &str)> = subnet
        .routers
        .iter()
        .map(|&r| (r, "the subnet's router"))
        .chain(
            subnet
                .dns_servers
                .iter()
                .map(|&d| (d, "the subnet's DNS server")),
        )
        .collect();
    if let Some(p) = &config.pxe {
        own.push((p.tftp_server, "pxe.tftp_server"));
    }
    let listens = config
        .dns
        .iter()
        .flat_map(|d| d.listen.iter())
        .chain(config.tftp.iter().flat_map(|t| t.listen.iter()));
    for a in listens {
        if let IpAddr::V4(v4) = a.ip() {
            own.push((v4, "an address labnet listens on"));
        }
    }
    if let Some((_, what)) = own.iter().find(|(a, _)| *a == ip) {
        bail!("{ip} is {what}");
    }
    Ok(())
}

/// The boot profile must exist.
pub async fn profile_exists(store: &dyn Store, name: &str) -> anyhow::Result<()> {
    if !store.profiles().await?.iter().any(|p| p.name == name) {
        bail!("no boot profile named `{name}` (labnetctl profiles add {name} ...)");
    }
    Ok(())
}

/// RFC 1034 §3.6.2 (and RFC 2181 §10.1): a name with a CNAME has no other
/// data, and one CNAME at most. `existing` are the types already at the name.
pub fn cname_rule(name: &str, adding: &str, existing: &[String]) -> anyhow::Result<()> {
    // DNSSEC records may sit beside a CNAME (RFC 4035 §2.5).
    let other = |t: &String| !matches!(t.as_str(), "RRSIG" | "NSEC" | "NSEC3");
    let adding = adding.to_ascii_uppercase();
    if adding == "CNAME" {
        if let Some(t) = existing.iter().find(|t| other(t)) {
            bail!("{name} already has {t} data: a CNAME cannot stand beside other records (RFC 1034 §3.6.2)");
        }
    } else if !matches!(adding.as_str(), "RRSIG" | "NSEC" | "NSEC3")
        && existing.iter().any(|t| t == "CNAME")
    {
        bail!("{name} is a CNAME: it cannot also have {adding} records (RFC 1034 §3.6.2)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_must_be_ethernet() {
        assert_eq!(
            ethernet_mac("52-54-00-AA-bb-01").expect("a MAC"),
            "52:54:00:aa:bb:01"
        );
        for bad in [
            "52:54",
            "52:54:00:aa:bb",
            &["aa"; 16].join(":"),
            "zz:54:00:aa:bb:01",
        ] {
            assert!(ethernet_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names() {
        assert!(host_name("vm1").is_ok());
        assert!(host_name("vm-1.lab.test").is_ok());
        for bad in ["bad host!name", "-x", "a..b", "", "x_y"] {
            assert!(host_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cname_stands_alone() {
        let a = vec!["A".to_owned()];
        let c = vec!["CNAME".to_owned()];
        assert!(cname_rule("x", "CNAME", &a).is_err());
        assert!(cname_rule("x", "A", &c).is_err());
        assert!(cname_rule("x", "CNAME", &c).is_err());
        assert!(cname_rule("x", "A", &a).is_ok());
        assert!(cname_rule("x", "CNAME", &[]).is_ok());
    }
}
