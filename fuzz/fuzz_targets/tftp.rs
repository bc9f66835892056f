//! TFTP: bytes -> `Packet::decode` -> a `Transfer` (tftpd/src/transfer.rs)
//! fed a sequence of packets and timeouts, as the server's socket loop
//! would. `arbitrary`'s `Unstructured` splits the input, front to back,
//! byte by byte (so seeds are easy to write, see fuzz/seeds.py):
//!
//! - 2 bytes: file size (big-endian), 1 byte: server limits
//! - 2 bytes: request length L, L bytes: the RRQ/WRQ datagram
//! - then events until the input ends: 1 byte kind; an even kind is a
//!   packet (2 bytes length, then the datagram), an odd one a timeout
//!   (kind 1: at the deadline; others: `kind * 50` ms later).
//!
//! Asserts: no panic; everything sent decodes as TFTP, DATA fits the
//! negotiated block size; a finished transfer stays silent and has no
//! deadline; every DATA of a read carries its block of the file, and a
//! complete read sent the last block.
#![no_main]

use std::io::{Cursor, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arbitrary::{Result, Unstructured};
use labnet_tftpd::packet::{Mode, Packet};
use labnet_tftpd::transfer::{negotiate, Limits, NetasciiReader, Out, Outcome, Transfer};
use libfuzzer_sys::fuzz_target;

fn byte(u: &mut Unstructured<'_>) -> Result<u8> {
    u.arbitrary::<u8>()
}

fn len16(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(usize::from(byte(u)?) << 8 | usize::from(byte(u)?))
}

fn limits(sel: u8) -> Limits {
    Limits {
        max_blksize: [512, 1024, 1468, 8192, 65464][usize::from(sel % 5)],
        max_windowsize: [1, 4, 16, 64][usize::from(sel / 5 % 4)],
        timeout: Duration::from_secs(1),
        retries: u32::from(sel / 20 % 6),
        max_window_bytes: if sel & 0x80 != 0 { 4096 } else { 1 << 20 },
        max_stall: Duration::from_secs(10),
        max_life: Duration::from_secs(60),
    }
}

/// A sink the target can inspect after the transfer owns it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("sink").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Check {
    blksize: usize,
    read: bool,
    /// Highest block sent so far (files here stay under 65536 blocks: no
    /// rollover, so wire block numbers are absolute).
    highest: usize,
    expected: Vec<u8>,
}

impl Check {
    fn outs(&mut self, t: &Transfer, outs: &[Out]) {
        for (i, o) in outs.iter().enumerate() {
            match o {
                Out::Send(bytes) => {
                    assert!(Packet::decode(bytes).is_ok(), "sent garbage: {bytes:?}");
                }
                Out::Data(slot) => {
                    let d = t.data(*slot);
                    match Packet::decode(d) {
                        Ok(Packet::Data { block, data }) => {
                            assert!(data.len() <= self.blksize, "DATA over blksize");
                            // Every DATA, first send or resend, carries
                            // exactly its block of the file.
                            let block = usize::from(block);
                            assert!(block >= 1, "DATA 0");
                            let from = (block - 1) * self.blksize;
                            let to = (from + self.blksize).min(self.expected.len());
                            assert!(from <= to, "DATA {block} past the end of the file");
                            assert_eq!(data, &self.expected[from..to], "DATA {block} wrong");
                            self.highest = self.highest.max(block);
                        }
                        other => panic!("slot {slot} holds {other:?}"),
                    }
                }
                Out::Done(outcome) => {
                    assert_eq!(i, outs.len() - 1, "output after Done");
                    assert!(t.is_done() && t.deadline().is_none());
                    if self.read && *outcome == Outcome::Complete {
                        // The last block (short, possibly empty) was sent.
                        assert_eq!(self.highest, self.expected.len() / self.blksize + 1);
                    }
                }
            }
        }
    }
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let size = len16(&mut u)?;
    let limits = limits(byte(&mut u)?);
    let n = len16(&mut u)?;
    let req_bytes = u.bytes(n.min(u.len()))?;
    let Ok(Packet::Request(req)) = Packet::decode(req_bytes) else {
        return Ok(());
    };
    let file: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let start = Instant::now();
    let mut now = start;
    let sink = Shared::default();
    let (mut t, outs, expected) = if req.write {
        let neg = negotiate(&req, &limits, None);
        let (t, outs) = Transfer::write(Box::new(sink.clone()), req.mode, &neg, &limits, now);
        (t, outs, Vec::new())
    } else {
        let (source, size, expected): (Box<dyn Read + Send>, _, _) = match req.mode {
            Mode::Octet => (Box::new(Cursor::new(file.clone())), Some(size as u64), file),
            Mode::Netascii => {
                let mut conv = Vec::new();
                NetasciiReader::new(Cursor::new(file.clone()))
                    .read_to_end(&mut conv)
                    .expect("netascii");
                (Box::new(NetasciiReader::new(Cursor::new(file))), None, conv)
            }
        };
        let neg = negotiate(&req, &limits, size);
        assert!(usize::from(neg.blksize) <= usize::from(limits.max_blksize).max(8));
        let (t, outs) = Transfer::read(source, &neg, &limits, now);
        (t, outs, expected)
    };
    let mut check = Check {
        blksize: t.blksize(),
        read: !req.write,
        highest: 0,
        expected,
    };
    check.outs(&t, &outs);
    while !u.is_empty() {
        let kind = byte(&mut u)?;
        let outs = if kind % 2 == 0 {
            let n = len16(&mut u)?;
            let pkt = u.bytes(n.min(u.len()))?;
            let Ok(p) = Packet::decode(pkt) else {
                continue;
            };
            t.on_packet(&p, now)
        } else {
            now = match (kind, t.deadline()) {
                (1, Some(d)) => d.max(now),
                _ => now + Duration::from_millis(u64::from(kind) * 50),
            };
            t.on_timeout(now)
        };
        if t.is_done() && !outs.iter().any(|o| matches!(o, Out::Done(_))) {
            assert!(outs.is_empty(), "a finished transfer spoke: {outs:?}");
        }
        check.outs(&t, &outs);
        if let Some(d) = t.deadline() {
            assert!(d <= start + limits.max_life, "deadline past max_life");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
