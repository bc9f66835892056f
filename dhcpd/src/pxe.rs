//! Network boot: labnet-pxe decides, this module reads the request and
//! writes the decision into the reply.
//!
//! The boot fields go into every reply to a boot client, whether or not it
//! listed options 66/67 in its parameter request list: PXE ROMs and iPXE read
//! `siaddr` and `file`, and some firmware reads only options 66/67.

use dhcproto::v4::{DhcpOption, DhcpOptions, Message, OptionCode};
use labnet_pxe::{BootDecision, BootRequest};

/// iPXE's encapsulated options (iPXE's `dhcp.h`; not in RFC 2132).
const IPXE_ENCAP: u8 = 175;
/// The BOOTP `file` field is 128 bytes, NUL-terminated (RFC 951).
const FILE_FIELD: usize = 128;

/// The options of `req` that the boot decision reads.
pub fn boot_request(req: &Message) -> BootRequest {
    let opts = req.opts();
    BootRequest {
        arch: match opts.get(OptionCode::ClientSystemArchitecture) {
            Some(DhcpOption::ClientSystemArchitecture(a)) => Some(u16::from(*a)),
            _ => None,
        },
        vendor_class: match opts.get(OptionCode::ClassIdentifier) {
            Some(DhcpOption::ClassIdentifier(v)) => Some(v.clone()),
            _ => None,
        },
        user_class: match opts.get(OptionCode::UserClass) {
            Some(DhcpOption::UserClass(v)) => Some(v.clone()),
            _ => None,
        },
        ipxe_encap: opts.get(OptionCode::Unknown(IPXE_ENCAP)).is_some(),
    }
}

/// Write `d` into a reply: `siaddr` and option 66 (the TFTP server), `file`
/// and option 67 (the boot file), and option 60 when the client's class must
/// be echoed.
pub fn apply(d: &BootDecision, msg: &mut Message, opts: &mut DhcpOptions) {
    msg.set_siaddr(d.next_server);
    // RFC 2132 §9.5: a name too long for `file` travels in option 67 only.
    if d.boot_file.len() < FILE_FIELD {
        msg.set_fname_str(&d.boot_file);
    }
    opts.insert(DhcpOption::TFTPServerName(
        d.tftp_server.clone().into_bytes(),
    ));
    opts.insert(DhcpOption::BootfileName(d.boot_file.clone().into_bytes()));
    if let Some(vc) = d.vendor_class {
        opts.insert(DhcpOption::ClassIdentifier(vc.as_bytes().to_vec()));
    }
}
