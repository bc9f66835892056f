//! Decoding a datagram into a [`Message`], defensively.
//!
//! `dhcproto` does the decoding. Before it sees a packet we walk the option
//! framing ourselves (RFC 2131 §3, RFC 2132 §2): a packet whose options run
//! past its end, or that carries option 80 (rapid commit) with a payload,
//! which trips an assertion inside dhcproto 0.15, is dropped here. The
//! decode itself runs under `catch_unwind`, so a decoder bug found by some
//! other hostile packet costs that packet, never the serving task.

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder};

/// Fixed BOOTP header (236 bytes) plus the magic cookie.
const HEADER: usize = 240;
const MAGIC: [u8; 4] = [99, 130, 83, 99];

/// Why a datagram was not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Short,
    NoMagicCookie,
    OptionOverrun,
    BadRapidCommit,
    Undecodable,
}

/// Decode one DHCP datagram, or say why not.
pub fn decode(buf: &[u8]) -> Result<Message, Malformed> {
    check_framing(buf)?;
    std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(buf)))
        .map_err(|_| Malformed::Undecodable)?
        .map_err(|_| Malformed::Undecodable)
}

fn check_framing(buf: &[u8]) -> Result<(), Malformed> {
    if buf.len() < HEADER {
        return Err(Malformed::Short);
    }
    if buf[236..240] != MAGIC {
        return Err(Malformed::NoMagicCookie);
    }
    let mut i = HEADER;
    while i < buf.len() {
        match buf[i] {
            0 => i += 1,
            255 => return Ok(()),
            code => {
                let len = usize::from(*buf.get(i + 1).ok_or(Malformed::OptionOverrun)?);
                if i + 2 + len > buf.len() {
                    return Err(Malformed::OptionOverrun);
                }
                if code == 80 && len != 0 {
                    return Err(Malformed::BadRapidCommit);
                }
                i += 2 + len;
            }
        }
    }
    Ok(())
}
