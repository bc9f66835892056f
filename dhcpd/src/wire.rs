//! Decoding a datagram into a [`Message`], defensively.
//!
//! `dhcproto` does the decoding. Before it sees a packet we walk the option
//! framing ourselves (RFC 2131 §3, RFC 2132 §2): a packet whose options run
//! past its end is dropped here, and so is one carrying an option whose
//! length is not the fixed length dhcproto 0.15 reads for it: 80 (rapid
//! commit, RFC 4039: empty), 81 (client FQDN, RFC 4702: at least 3), 94
//! (client NDI, RFC 4578: 3), 152-155 (bulk leasequery times, RFC 6926: 4).
//! dhcproto only `debug_assert`s those lengths: a release build reads the
//! fixed count whatever the length says (a value made up from the wrong
//! bytes), a debug build panics (found by fuzz/fuzz_targets/dhcp.rs). The
//! length checked is that of each run of consecutive same-code options,
//! because dhcproto joins those (RFC 3396 §7) before it reads them. The
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
    /// An option whose length is not the one dhcproto reads for it.
    BadOptionLength,
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
    let overload = walk(&buf[HEADER..])?;
    // RFC 2132 §9.3: option 52 moves more options into `file` (1), `sname`
    // (2) or both (3); dhcproto decodes those too, so they get the same check.
    if overload & 1 != 0 {
        walk(&buf[108..236])?;
    }
    if overload & 2 != 0 {
        walk(&buf[44..108])?;
    }
    Ok(())
}

/// Walk one options area; returns the option overload value (52), if any.
///
/// dhcproto joins consecutive options with the same code into one (RFC 3396
/// §7: a long option split in pieces) before it decodes them, so the length
/// checked is that of each run of same-code options, not of each piece.
fn walk(area: &[u8]) -> Result<u8, Malformed> {
    let mut overload = 0;
    let mut run: Option<(u8, usize)> = None;
    let mut i = 0;
    while i < area.len() {
        match area[i] {
            0 | 255 => {
                end_run(run.take())?;
                if area[i] == 255 {
                    break;
                }
                i += 1;
            }
            code => {
                let len = usize::from(*area.get(i + 1).ok_or(Malformed::OptionOverrun)?);
                if i + 2 + len > area.len() {
                    return Err(Malformed::OptionOverrun);
                }
                run = match run {
                    Some((c, total)) if c == code => Some((c, total + len)),
                    other => {
                        end_run(other)?;
                        Some((code, len))
                    }
                };
                if code == 52 && len == 1 {
                    overload = area[i + 2];
                }
                i += 2 + len;
            }
        }
    }
    end_run(run)?;
    Ok(overload)
}

fn end_run(run: Option<(u8, usize)>) -> Result<(), Malformed> {
    match run {
        Some((code, len)) if !length_fits(code, len) => Err(Malformed::BadOptionLength),
        _ => Ok(()),
    }
}

/// Whether option `code` may have payload length `len` for dhcproto 0.15,
/// which reads a fixed count for these codes (see the module doc).
fn length_fits(code: u8, len: usize) -> bool {
    match code {
        80 => len == 0,
        81 => len >= 3,
        94 => len == 3,
        152..=155 => len == 4,
        _ => true,
    }
}
