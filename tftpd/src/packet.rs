//! TFTP packet codec (RFC 1350 §5, options from RFC 2347).
//!
//! Decoding borrows from the datagram; nothing here allocates except the
//! option list of a request and the encoders that build a new packet.

use std::fmt;

pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// Largest datagram we ever expect: 4-byte header + the RFC 2348 maximum block.
pub const MAX_PACKET: usize = 4 + 65464;

/// Transfer mode of a request (RFC 1350 §5; "mail" is obsolete and refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
}

/// RFC 1350 §5 error codes, plus 8 from RFC 2347.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTid = 5,
    FileExists = 6,
    NoSuchUser = 7,
    OptionRefused = 8,
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> Option<ErrorCode> {
        Some(match v {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            _ => return None,
        })
    }
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub write: bool,
    pub filename: &'a str,
    pub mode: Mode,
    /// Options as sent (RFC 2347), names lower-cased by the decoder's caller
    /// via [`Request::option`].
    pub options: Vec<(&'a str, &'a str)>,
}

impl Request<'_> {
    /// Value of option `name` (case-insensitive, RFC 2347 §2).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// A decoded packet; borrows from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Request(Request<'a>),
    Data { block: u16, data: &'a [u8] },
    Ack { block: u16 },
    Error { code: u16, message: &'a str },
    Oack { options: Vec<(&'a str, &'a str)> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    TooShort,
    UnknownOpcode(u16),
    /// A request field without its terminating NUL, or not UTF-8.
    BadString,
    BadMode,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort => f.write_str("packet too short"),
            DecodeError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            DecodeError::BadString => f.write_str("malformed string field"),
            DecodeError::BadMode => f.write_str("unsupported transfer mode"),
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Split `buf` into NUL-terminated strings. Trailing bytes after the last NUL
/// are an error; so is invalid UTF-8 (filenames and options are ASCII).
fn strings(buf: &[u8]) -> Result<Vec<&str>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::BadString)?;
        out.push(std::str::from_utf8(&rest[..nul]).map_err(|_| DecodeError::BadString)?);
        rest = &rest[nul + 1..];
    }
    Ok(out)
}

fn options<'a>(fields: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    // RFC 2347: pairs; an odd trailing name is ignored.
    fields.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

impl<'a> Packet<'a> {
    pub fn decode(buf: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        if buf.len() < 4 {
            // The shortest valid packets (ACK, DATA of 0 bytes) have 4 bytes.
            return Err(DecodeError::TooShort);
        }
        let op = be16(buf);
        let body = &buf[2..];
        match op {
            OP_RRQ | OP_WRQ => {
                let f = strings(body)?;
                if f.len() < 2 {
                    return Err(DecodeError::BadString);
                }
                let mode = if f[1].eq_ignore_ascii_case("octet") {
                    Mode::Octet
                } else if f[1].eq_ignore_ascii_case("netascii") {
                    Mode::Netascii
                } else {
                    return Err(DecodeError::BadMode);
                };
                Ok(Packet::Request(Request {
                    write: op == OP_WRQ,
                    filename: f[0],
                    mode,
                    options: options(&f[2..]),
                }))
            }
            OP_DATA => Ok(Packet::Data {
                block: be16(body),
                data: &body[2..],
            }),
            OP_ACK => Ok(Packet::Ack { block: be16(body) }),
            OP_ERROR => {
                let msg = &body[2..];
                // Tolerate a missing NUL and non-UTF-8 text: the code matters.
                let end = msg.iter().position(|&b| b == 0).unwrap_or(msg.len());
                let message = std::str::from_utf8(&msg[..end]).unwrap_or("");
                Ok(Packet::Error {
                    code: be16(body),
                    message,
                })
            }
            OP_OACK => Ok(Packet::Oack {
                options: options(&strings(body)?),
            }),
            other => Err(DecodeError::UnknownOpcode(other)),
        }
    }
}

/// Append a DATA header for `block` to `buf` (the payload follows).
pub fn data_header(buf: &mut Vec<u8>, block: u16) {
    buf.extend_from_slice(&OP_DATA.to_be_bytes());
    buf.extend_from_slice(&block.to_be_bytes());
}

pub fn encode_ack(block: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(4);
    b.extend_from_slice(&OP_ACK.to_be_bytes());
    b.extend_from_slice(&block.to_be_bytes());
    b
}

pub fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(5 + message.len());
    b.extend_from_slice(&OP_ERROR.to_be_bytes());
    b.extend_from_slice(&(code as u16).to_be_bytes());
    b.extend(message.bytes().filter(|&c| c != 0));
    b.push(0);
    b
}

pub fn encode_oack(options: &[(&str, String)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&OP_OACK.to_be_bytes());
    for (k, v) in options {
        b.extend_from_slice(k.as_bytes());
        b.push(0);
        b.extend_from_slice(v.as_bytes());
        b.push(0);
    }
    b
}

/// Encode a request (used by tests and tools; the server never sends one).
pub fn encode_request(write: bool, filename: &str, mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(if write { OP_WRQ } else { OP_RRQ }).to_be_bytes());
    for s in [filename, mode]
        .into_iter()
        .chain(opts.iter().flat_map(|(k, v)| [*k, *v]))
    {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }
    b
}

pub fn encode_data(block: u16, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + data.len());
    data_header(&mut b, block);
    b.extend_from_slice(data);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rrq_with_options() {
        let b = encode_request(
            false,
            "pxelinux.0",
            "OCTET",
            &[("BlkSize", "1468"), ("tsize", "0")],
        );
        let Packet::Request(r) = Packet::decode(&b).expect("decodes") else {
            panic!("not a request")
        };
        assert!(!r.write);
        assert_eq!(r.filename, "pxelinux.0");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(r.option("blksize"), Some("1468"));
        assert_eq!(r.option("TSIZE"), Some("0"));
        assert_eq!(r.option("windowsize"), None);
    }

    #[test]
    fn rejects_mail_mode_and_unterminated() {
        let b = encode_request(false, "x", "mail", &[]);
        assert_eq!(Packet::decode(&b), Err(DecodeError::BadMode));
        let mut b = encode_request(false, "x", "octet", &[]);
        b.pop();
        assert_eq!(Packet::decode(&b), Err(DecodeError::BadString));
    }

    #[test]
    fn data_ack_error_roundtrip() {
        assert_eq!(
            Packet::decode(&encode_data(65535, b"abc")),
            Ok(Packet::Data {
                block: 65535,
                data: b"abc"
            })
        );
        assert_eq!(Packet::decode(&encode_ack(0)), Ok(Packet::Ack { block: 0 }));
        assert_eq!(
            Packet::decode(&encode_error(ErrorCode::FileNotFound, "nope")),
            Ok(Packet::Error {
                code: 1,
                message: "nope"
            })
        );
        let o = encode_oack(&[("blksize", "1468".into())]);
        assert_eq!(
            Packet::decode(&o),
            Ok(Packet::Oack {
                options: vec![("blksize", "1468")]
            })
        );
    }

    #[test]
    fn short_and_unknown() {
        assert_eq!(Packet::decode(&[0, 4, 0]), Err(DecodeError::TooShort));
        assert_eq!(
            Packet::decode(&[0, 9, 0, 0]),
            Err(DecodeError::UnknownOpcode(9))
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn request_roundtrip(name in "[a-zA-Z0-9/._-]{1,40}", bs in 8u16..=65464) {
            let bs = bs.to_string();
            let b = encode_request(true, &name, "netascii", &[("blksize", &bs)]);
            let Ok(Packet::Request(r)) = Packet::decode(&b) else { panic!("decode") };
            prop_assert!(r.write);
            prop_assert_eq!(r.filename, name.as_str());
            prop_assert_eq!(r.mode, Mode::Netascii);
            prop_assert_eq!(r.option("BLKSIZE"), Some(bs.as_str()));
        }
    }
}
