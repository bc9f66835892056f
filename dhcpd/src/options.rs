//! The options a subnet's replies carry, built once at start (RFC 2132).
//!
//! Per reply only the message type, server identifier and lease times are
//! added (see `core.rs`); everything configured per subnet is encoded here.

use dhcproto::v4::{DhcpOption, DhcpOptions, UnknownOption};
use dhcproto::Name;
use labnet_config::{ExtraOption, Subnet};

/// A subnet's options, ready to clone into each reply.
pub struct SubnetOptions {
    pub template: DhcpOptions,
}

impl SubnetOptions {
    /// `global` options apply to every subnet; the subnet's own win.
    pub fn new(subnet: &Subnet, global: &[ExtraOption]) -> SubnetOptions {
        let mut o = DhcpOptions::new();
        o.insert(DhcpOption::SubnetMask(subnet.cidr.netmask()));
        o.insert(DhcpOption::BroadcastAddr(subnet.cidr.broadcast()));
        if !subnet.routers.is_empty() {
            o.insert(DhcpOption::Router(subnet.routers.clone()));
        }
        if !subnet.dns_servers.is_empty() {
            o.insert(DhcpOption::DomainNameServer(subnet.dns_servers.clone()));
        }
        if !subnet.ntp_servers.is_empty() {
            o.insert(DhcpOption::NtpServers(subnet.ntp_servers.clone()));
        }
        if let Some(d) = &subnet.domain {
            o.insert(DhcpOption::DomainName(d.trim_end_matches('.').to_owned()));
        }
        // RFC 3397: option 119 in DNS wire format (compressed by dhcproto).
        let search: Vec<Name> = subnet
            .domain_search
            .iter()
            .filter_map(|d| Name::from_ascii(format!("{}.", d.trim_end_matches('.'))).ok())
            .collect();
        if !search.is_empty() {
            o.insert(DhcpOption::DomainSearch(search));
        }
        if let Some(mtu) = subnet.mtu {
            o.insert(DhcpOption::InterfaceMtu(mtu));
        }
        if !subnet.routes.is_empty() {
            // RFC 3442: a client that gets option 121 ignores option 3, so the
            // default route has to be among the classless routes too.
            let mut routes: Vec<_> = subnet
                .routes
                .iter()
                .map(|r| (r.destination, r.gateway))
                .collect();
            if let Some(gw) = subnet.routers.first() {
                if !routes.iter().any(|(d, _)| d.prefix_len() == 0) {
                    routes.push((ipnet::Ipv4Net::default(), *gw));
                }
            }
            o.insert(DhcpOption::ClasslessStaticRoute(routes));
        }
        for extra in global.iter().chain(subnet.options.iter()) {
            o.insert(DhcpOption::Unknown(UnknownOption::new(
                extra.code.into(),
                extra.data.clone(),
            )));
        }
        SubnetOptions { template: o }
    }
}
