//! The transfer state machines: one read (RRQ) or write (WRQ) transfer with
//! one client, with no sockets and no clock inside.
//!
//! The server feeds each decoded packet to [`Transfer::on_packet`] and calls
//! [`Transfer::on_timeout`] once [`Transfer::deadline`] has passed; both
//! return what to send ([`Out`]). Time is an argument, so tests drive loss,
//! back-off and give-up without sleeping. File data comes through `Read` and
//! goes out through `Write` (a file, a generated file in memory, or a test
//! buffer).
//!
//! A read transfer keeps the current window (RFC 7440; one block in
//! lockstep) as encoded DATA packets in reused slots, so a retransmission
//! re-sends the same bytes and the steady state allocates nothing per block.
//! Block numbers are counted in `u64` internally and wrap on the wire
//! (65535 -> 0), as tftp-hpa and atftp expect for files over 65535 blocks.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::packet::{self, ErrorCode, Mode, Packet, Request};

/// Largest window, in bytes, a transfer may hold (windowsize x blksize).
/// Bounds memory per transfer whatever the client asks for; the server
/// lowers it further when its memory budget for all transfers runs short
/// ([`Limits::max_window_bytes`]).
pub const MAX_WINDOW_BYTES: usize = 1 << 20;

/// Server-side bounds for negotiation and retransmission.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest blksize we grant (config, already capped by the path MTU).
    pub max_blksize: u16,
    /// Largest windowsize we grant (config).
    pub max_windowsize: u16,
    /// Retransmission timeout before back-off, unless the client negotiates one.
    pub timeout: Duration,
    /// Retransmissions of one packet or window before giving up.
    pub retries: u32,
    /// Largest window in bytes this transfer may hold (at most
    /// [`MAX_WINDOW_BYTES`]; at least one block is always granted).
    pub max_window_bytes: usize,
    /// Longest time without progress (no new ACK or DATA) before giving up,
    /// whatever timeout the client negotiated and however the back-off
    /// grows. A client timeout longer than half of it is not acknowledged.
    pub max_stall: Duration,
    /// Longest life of a transfer from its request to its end, so a client
    /// that ACKs one block just before each give-up cannot hold a slot
    /// for hours.
    pub max_life: Duration,
}

/// What negotiation settled (RFC 2347 and the option RFCs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    pub timeout: Duration,
    /// Options to acknowledge; empty means no OACK (plain RFC 1350).
    pub oack: Vec<(&'static str, String)>,
    /// The client asked for tsize (an EDK2 size probe asks for it, then aborts).
    pub tsize_asked: bool,
}

/// RFC 2347 negotiation. `size` is the transfer size for a read (None when
/// unknown, e.g. netascii, whose converted size is not known in advance).
/// Invalid option values are ignored (not acknowledged), never an error.
pub fn negotiate(req: &Request<'_>, limits: &Limits, size: Option<u64>) -> Negotiated {
    let mut n = Negotiated {
        blksize: 512,
        windowsize: 1,
        timeout: limits.timeout,
        oack: Vec::new(),
        tsize_asked: false,
    };
    // RFC 2348: 8..=65464; the server may answer with a smaller value.
    if let Some(v) = req.option("blksize").and_then(|v| v.parse::<u32>().ok()) {
        if (8..=65464).contains(&v) {
            n.blksize = (v as u16).min(limits.max_blksize).max(8);
            n.oack.push(("blksize", n.blksize.to_string()));
        }
    }
    // RFC 2349 §3: 1..=255 seconds, echoed as is, or not acknowledged (the
    // server's own timeout applies) when it is longer than our stall limit
    // leaves room for: a client must not buy itself hours of a slot.
    if let Some(v) = req.option("timeout").and_then(|v| v.parse::<u64>().ok()) {
        if (1..=255).contains(&v) && Duration::from_secs(v) * 2 <= limits.max_stall {
            n.timeout = Duration::from_secs(v);
            n.oack.push(("timeout", v.to_string()));
        }
    }
    // RFC 2349 §4: a reader sends 0 and gets the size; a writer announces it.
    if let Some(v) = req.option("tsize").and_then(|v| v.parse::<u64>().ok()) {
        n.tsize_asked = true;
        if req.write {
            n.oack.push(("tsize", v.to_string()));
        } else if let Some(size) = size {
            n.oack.push(("tsize", size.to_string()));
        }
    }
    // RFC 7440: 1..=65535; only for reads here (uploads stay lockstep).
    if !req.write {
        if let Some(v) = req.option("windowsize").and_then(|v| v.parse::<u32>().ok()) {
            if (1..=65535).contains(&v) {
                let by_bytes =
                    (limits.max_window_bytes.min(MAX_WINDOW_BYTES) / usize::from(n.blksize)).max(1);
                let w = (v as usize)
                    .min(usize::from(limits.max_windowsize))
                    .min(by_bytes)
                    .max(1);
                n.windowsize = w as u16;
                n.oack.push(("windowsize", w.to_string()));
            }
        }
    }
    n
}

/// Something to send, or the end of the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// An encoded packet (OACK, ACK, ERROR).
    Send(Vec<u8>),
    /// The DATA packet held in window slot `n`: send [`Transfer::data`]`(n)`.
    Data(usize),
    /// The transfer is over; nothing more will be sent or accepted.
    Done(Outcome),
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// The client sent an ERROR. `probe` marks the EDK2 size probe: tsize
    /// asked, OACK sent, ERROR before any data.
    ClientError {
        code: u16,
        message: String,
        probe: bool,
    },
    /// No answer after the last retransmission.
    TimedOut,
    /// The client broke the protocol (we sent ERROR 4).
    Protocol(&'static str),
    /// Reading or writing the file failed (we sent an ERROR).
    Local(String),
}

/// Counters for the log line at the end of a transfer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub bytes: u64,
    pub blocks: u64,
    pub retransmits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// OACK sent, waiting for ACK 0 (read) or DATA 1 (write).
    Oack,
    Running,
    Done,
}

/// One transfer, read or write.
pub struct Transfer {
    kind: Kind,
    phase: Phase,
    blksize: usize,
    timeout: Duration,
    max_retries: u32,
    retries: u32,
    deadline: Option<Instant>,
    /// Give up at this instant if nothing moved since (see `Limits::max_stall`).
    stall_end: Instant,
    max_stall: Duration,
    /// Give up at this instant whatever happens (`Limits::max_life`).
    life_end: Instant,
    /// The OACK, kept for retransmission.
    oack: Option<Vec<u8>>,
    tsize_asked: bool,
    stats: Stats,
}

enum Kind {
    Read(ReadSide),
    Write(WriteSide),
}

struct ReadSide {
    source: Box<dyn Read + Send>,
    windowsize: usize,
    /// Encoded DATA packets; block `i` lives in slot `i % windowsize`.
    slots: Vec<Vec<u8>>,
    slot_len: Vec<usize>,
    /// First block not yet acknowledged (blocks count from 1).
    base: u64,
    /// Blocks read into the window, from `base`.
    filled: u64,
    /// The final (short) block, once read.
    last: Option<u64>,
}

struct WriteSide {
    sink: Box<dyn Write + Send>,
    netascii: Option<NetasciiDecoder>,
    /// The next block we expect.
    next: u64,
    /// Our last ACK (or OACK), re-sent on timeout or a duplicate DATA.
    last_sent: Vec<u8>,
    scratch: Vec<u8>,
}

fn wire(block: u64) -> u16 {
    // Rollover: block 65536 goes out as 0 (tftp-hpa and atftp expect this).
    (block & 0xffff) as u16
}

impl Transfer {
    /// A read transfer of `source` (already netascii-encoded if the mode
    /// asks for it). Returns the transfer and the first packets to send.
    pub fn read(
        source: Box<dyn Read + Send>,
        neg: &Negotiated,
        limits: &Limits,
        now: Instant,
    ) -> (Transfer, Vec<Out>) {
        let blksize = usize::from(neg.blksize);
        let ws = usize::from(neg.windowsize.max(1));
        let mut t = Transfer {
            kind: Kind::Read(ReadSide {
                source,
                windowsize: ws,
                slots: (0..ws).map(|_| vec![0u8; 4 + blksize]).collect(),
                slot_len: vec![0; ws],
                base: 1,
                filled: 0,
                last: None,
            }),
            phase: Phase::Running,
            blksize,
            timeout: neg.timeout,
            max_retries: limits.retries,
            retries: 0,
            deadline: None,
            stall_end: now + limits.max_stall,
            max_stall: limits.max_stall,
            life_end: now + limits.max_life,
            oack: None,
            tsize_asked: neg.tsize_asked,
            stats: Stats::default(),
        };
        let mut out = Vec::new();
        if neg.oack.is_empty() {
            t.send_window(now, &mut out);
        } else {
            let o = packet::encode_oack(&neg.oack);
            out.push(Out::Send(o.clone()));
            t.oack = Some(o);
            t.phase = Phase::Oack;
            t.arm(now, t.timeout);
        }
        (t, out)
    }

    /// A write transfer into `sink`. Returns the transfer and the OACK or
    /// ACK 0 to send.
    pub fn write(
        sink: Box<dyn Write + Send>,
        mode: Mode,
        neg: &Negotiated,
        limits: &Limits,
        now: Instant,
    ) -> (Transfer, Vec<Out>) {
        let first = if neg.oack.is_empty() {
            packet::encode_ack(0)
        } else {
            packet::encode_oack(&neg.oack)
        };
        let mut t = Transfer {
            kind: Kind::Write(WriteSide {
                sink,
                netascii: (mode == Mode::Netascii).then(NetasciiDecoder::default),
                next: 1,
                last_sent: first.clone(),
                scratch: Vec::new(),
            }),
            phase: if neg.oack.is_empty() {
                Phase::Running
            } else {
                Phase::Oack
            },
            blksize: usize::from(neg.blksize),
            timeout: neg.timeout,
            max_retries: limits.retries,
            retries: 0,
            deadline: None,
            stall_end: now + limits.max_stall,
            max_stall: limits.max_stall,
            life_end: now + limits.max_life,
            oack: None,
            tsize_asked: neg.tsize_asked,
            stats: Stats::default(),
        };
        t.arm(now, neg.timeout);
        (t, vec![Out::Send(first)])
    }

    /// The DATA packet in window slot `slot` (see [`Out::Data`]).
    pub fn data(&self, slot: usize) -> &[u8] {
        match &self.kind {
            Kind::Read(r) => &r.slots[slot][..4 + r.slot_len[slot]],
            Kind::Write(_) => &[],
        }
    }

    /// When [`Transfer::on_timeout`] should next be called; None once done.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The negotiated block size.
    pub fn blksize(&self) -> usize {
        self.blksize
    }

    /// Blocks sent before an ACK is awaited (1: lockstep, and every write).
    pub fn windowsize(&self) -> usize {
        match &self.kind {
            Kind::Read(r) => r.windowsize,
            Kind::Write(_) => 1,
        }
    }

    /// Bytes this transfer holds for its window (what it costs the
    /// server's memory budget besides the read-ahead).
    pub fn window_bytes(&self) -> usize {
        match &self.kind {
            Kind::Read(r) => r.slots.iter().map(Vec::len).sum(),
            Kind::Write(_) => self.blksize + 4,
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn finish(&mut self, outcome: Outcome, out: &mut Vec<Out>) {
        self.phase = Phase::Done;
        self.deadline = None;
        out.push(Out::Done(outcome));
    }

    fn fail(&mut self, code: ErrorCode, msg: &str, outcome: Outcome, out: &mut Vec<Out>) {
        out.push(Out::Send(packet::encode_error(code, msg)));
        self.finish(outcome, out);
    }

    /// Back-off: the base timeout doubles with each retry, up to 8x.
    fn backoff(&self) -> Duration {
        self.timeout.saturating_mul(1 << self.retries.min(3))
    }

    /// Wake up after `wait`, but never later than the stall or life limit.
    fn arm(&mut self, now: Instant, wait: Duration) {
        self.deadline = Some((now + wait).min(self.stall_end).min(self.life_end));
    }

    /// The client moved the transfer forward: the stall clock restarts.
    fn progress(&mut self, now: Instant) {
        self.retries = 0;
        self.stall_end = now + self.max_stall;
    }

    /// A packet from the client (already matched to this transfer's TID).
    pub fn on_packet(&mut self, pkt: &Packet<'_>, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        if self.phase == Phase::Done {
            return out;
        }
        if let Packet::Error { code, message } = pkt {
            // RFC 1350 §7: an ERROR ends the transfer; no reply, no resend.
            let probe = self.phase == Phase::Oack && self.tsize_asked;
            self.finish(
                Outcome::ClientError {
                    code: *code,
                    message: (*message).to_owned(),
                    probe,
                },
                &mut out,
            );
            return out;
        }
        match (&mut self.kind, pkt) {
            (Kind::Read(_), Packet::Ack { block }) => self.read_ack(*block, now, &mut out),
            (Kind::Write(_), Packet::Data { block, data }) => {
                self.write_data(*block, data, now, &mut out)
            }
            _ => self.fail(
                ErrorCode::IllegalOperation,
                "unexpected packet",
                Outcome::Protocol("unexpected packet"),
                &mut out,
            ),
        }
        out
    }

    /// Call when [`Transfer::deadline`] has passed: retransmit or give up.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        match self.deadline {
            Some(d) if d <= now && self.phase != Phase::Done => {}
            _ => return out,
        }
        if self.retries >= self.max_retries || now >= self.stall_end || now >= self.life_end {
            self.fail(
                ErrorCode::NotDefined,
                "timed out",
                Outcome::TimedOut,
                &mut out,
            );
            return out;
        }
        self.retries += 1;
        self.stats.retransmits += 1;
        match (&self.kind, self.phase) {
            (Kind::Read(_), Phase::Oack) => {
                if let Some(o) = &self.oack {
                    out.push(Out::Send(o.clone()));
                }
            }
            (Kind::Read(r), _) => {
                for i in r.base..r.base + r.filled {
                    out.push(Out::Data((i % r.windowsize as u64) as usize));
                }
            }
            (Kind::Write(w), _) => out.push(Out::Send(w.last_sent.clone())),
        }
        self.arm(now, self.backoff());
        out
    }

    fn read_ack(&mut self, block: u16, now: Instant, out: &mut Vec<Out>) {
        let Kind::Read(r) = &mut self.kind else {
            return;
        };
        if self.phase == Phase::Oack {
            // RFC 2347: the client accepts the OACK with ACK 0.
            if block == 0 {
                self.phase = Phase::Running;
                self.progress(now);
                self.send_window(now, out);
            }
            return;
        }
        // Which block does this ACK name? Only [base - 1, base + filled - 1]
        // make sense; anything else is stale or bogus and ignored.
        let prev = r.base - 1;
        let ahead = u64::from(block.wrapping_sub(wire(prev)));
        if ahead > r.filled {
            return;
        }
        if ahead == 0 {
            // A duplicate ACK of what we already moved past: ignore it and
            // let the timer retransmit. Answering duplicates with DATA is the
            // Sorcerer's Apprentice bug (RFC 1123 §4.2.3.1).
            return;
        }
        let acked = prev + ahead;
        if r.last == Some(acked) {
            self.finish(Outcome::Complete, out);
            return;
        }
        // RFC 7440 §4: an ACK inside the window means the rest was lost; the
        // next window starts after it.
        r.base = acked + 1;
        r.filled -= ahead;
        self.progress(now);
        self.send_window(now, out);
    }

    /// Fill the window from the source and emit every block in it.
    fn send_window(&mut self, now: Instant, out: &mut Vec<Out>) {
        let Kind::Read(r) = &mut self.kind else {
            return;
        };
        let ws = r.windowsize as u64;
        while r.filled < ws && r.last.is_none_or(|l| r.base + r.filled <= l) {
            let i = r.base + r.filled;
            let slot = (i % ws) as usize;
            let buf = &mut r.slots[slot];
            buf[..2].copy_from_slice(&packet::OP_DATA.to_be_bytes());
            buf[2..4].copy_from_slice(&wire(i).to_be_bytes());
            let n = match read_full(&mut r.source, &mut buf[4..]) {
                Ok(n) => n,
                Err(e) => {
                    let msg = e.to_string();
                    self.fail(
                        ErrorCode::NotDefined,
                        "read error",
                        Outcome::Local(msg),
                        out,
                    );
                    return;
                }
            };
            r.slot_len[slot] = n;
            if n < self.blksize {
                r.last = Some(i);
            }
            r.filled += 1;
            self.stats.blocks += 1;
            self.stats.bytes += n as u64;
        }
        for i in r.base..r.base + r.filled {
            out.push(Out::Data((i % ws) as usize));
        }
        self.arm(now, self.timeout);
    }

    fn write_data(&mut self, block: u16, data: &[u8], now: Instant, out: &mut Vec<Out>) {
        let Kind::Write(w) = &mut self.kind else {
            return;
        };
        if block == wire(w.next) {
            if data.len() > self.blksize {
                self.fail(
                    ErrorCode::IllegalOperation,
                    "block larger than blksize",
                    Outcome::Protocol("block larger than blksize"),
                    out,
                );
                return;
            }
            let res = match &mut w.netascii {
                Some(dec) => {
                    w.scratch.clear();
                    dec.decode(data, &mut w.scratch);
                    w.sink.write_all(&w.scratch)
                }
                None => w.sink.write_all(data),
            };
            let last = data.len() < self.blksize;
            let res = res.and_then(|()| {
                if last {
                    if let Some(dec) = &mut w.netascii {
                        w.scratch.clear();
                        dec.finish(&mut w.scratch);
                        w.sink.write_all(&w.scratch)?;
                    }
                    w.sink.flush()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = res {
                let code = if e.raw_os_error() == Some(libc::ENOSPC)
                    || e.raw_os_error() == Some(libc::EDQUOT)
                    || e.kind() == io::ErrorKind::FileTooLarge
                {
                    ErrorCode::DiskFull
                } else {
                    ErrorCode::NotDefined
                };
                self.fail(code, "write error", Outcome::Local(e.to_string()), out);
                return;
            }
            self.stats.blocks += 1;
            self.stats.bytes += data.len() as u64;
            w.last_sent = packet::encode_ack(block);
            out.push(Out::Send(w.last_sent.clone()));
            w.next += 1;
            self.phase = Phase::Running;
            self.progress(now);
            if last {
                self.finish(Outcome::Complete, out);
            } else {
                self.arm(now, self.timeout);
            }
        } else if w.next > 1 && block == wire(w.next - 1) {
            // Our ACK was lost and the client re-sent: ACK again.
            out.push(Out::Send(w.last_sent.clone()));
        }
    }
}

/// Read until `buf` is full or the source ends.
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Netascii encoding of a byte stream (RFC 764 via RFC 1350): LF -> CR LF,
/// CR -> CR NUL.
pub struct NetasciiReader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    pending: Option<u8>,
}

impl<R: Read> NetasciiReader<R> {
    pub fn new(inner: R) -> Self {
        NetasciiReader {
            inner,
            buf: vec![0; 16 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            pending: None,
        }
    }
}

impl<R: Read> Read for NetasciiReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            if let Some(p) = self.pending.take() {
                out[n] = p;
                n += 1;
                continue;
            }
            if self.pos == self.len {
                if n > 0 {
                    break;
                }
                self.len = self.inner.read(&mut self.buf)?;
                self.pos = 0;
                if self.len == 0 {
                    break;
                }
            }
            let c = self.buf[self.pos];
            self.pos += 1;
            out[n] = match c {
                b'\n' => {
                    self.pending = Some(b'\n');
                    b'\r'
                }
                b'\r' => {
                    self.pending = Some(0);
                    b'\r'
                }
                c => c,
            };
            n += 1;
        }
        Ok(n)
    }
}

/// Netascii decoding for uploads: CR LF -> LF, CR NUL -> CR; a CR may end one
/// block and its partner begin the next.
#[derive(Debug, Default)]
pub struct NetasciiDecoder {
    cr: bool,
}

impl NetasciiDecoder {
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &c in data {
            if self.cr {
                self.cr = false;
                match c {
                    b'\n' => {
                        out.push(b'\n');
                        continue;
                    }
                    0 => {
                        out.push(b'\r');
                        continue;
                    }
                    _ => out.push(b'\r'),
                }
            }
            if c == b'\r' {
                self.cr = true;
            } else {
                out.push(c);
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::packet::encode_request;
    use proptest::prelude::*;
    use std::io::Cursor;
    use std::sync::{Arc, Mutex};

    const T: Duration = Duration::from_secs(1);

    fn limits() -> Limits {
        Limits {
            max_blksize: 1468,
            max_windowsize: 16,
            timeout: T,
            retries: 3,
            max_window_bytes: MAX_WINDOW_BYTES,
            max_stall: 30 * T,
            max_life: 600 * T,
        }
    }

    fn neg(opts: &[(&str, &str)], size: u64) -> Negotiated {
        let b = encode_request(false, "f", "octet", opts);
        let Ok(Packet::Request(r)) = Packet::decode(&b) else {
            panic!("request")
        };
        negotiate(&r, &limits(), Some(size))
    }

    fn file(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn reader(data: &[u8], opts: &[(&str, &str)], now: Instant) -> (Transfer, Vec<Out>) {
        let n = neg(opts, data.len() as u64);
        Transfer::read(Box::new(Cursor::new(data.to_vec())), &n, &limits(), now)
    }

    /// Decoded DATA (block, payload) for every `Out::Data`.
    fn datas(t: &Transfer, outs: &[Out]) -> Vec<(u16, Vec<u8>)> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Data(s) => match Packet::decode(t.data(*s)).unwrap() {
                    Packet::Data { block, data } => Some((block, data.to_vec())),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn ack(b: u16) -> Vec<u8> {
        packet::encode_ack(b)
    }

    /// Issue 12, finding 2: `timeout 255` once held a slot for 2.2 hours.
    #[test]
    fn a_long_client_timeout_is_not_acknowledged() {
        let n = neg(&[("timeout", "255")], 10);
        assert_eq!(n.timeout, T);
        assert!(n.oack.is_empty(), "{:?}", n.oack);
        let n = neg(&[("timeout", "15")], 10);
        assert_eq!(n.timeout, 15 * T);
    }

    #[test]
    fn a_stalled_transfer_ends_at_the_stall_limit_whatever_the_backoff() {
        let t0 = Instant::now();
        let mut l = limits();
        l.retries = 100;
        l.timeout = 10 * T;
        let n = negotiate_plain(&l);
        let (mut t, _) = Transfer::read(Box::new(Cursor::new(file(5000))), &n, &l, t0);
        let mut now;
        loop {
            now = t.deadline().expect("a deadline while running");
            assert!(now <= t0 + l.max_stall, "waited past the stall limit");
            let outs = t.on_timeout(now);
            if t.is_done() {
                assert!(outs.contains(&Out::Done(Outcome::TimedOut)));
                break;
            }
        }
        assert_eq!(now, t0 + l.max_stall);
    }

    #[test]
    fn a_trickling_client_is_cut_at_the_life_limit() {
        let t0 = Instant::now();
        let l = limits();
        let n = negotiate_plain(&l);
        let (mut t, _) = Transfer::read(Box::new(Cursor::new(file(512 * 2000))), &n, &l, t0);
        // The client ACKs one block every 5 s: always in time for the
        // retransmissions, never fast enough to finish 2000 blocks.
        let mut now = t0;
        let mut block = 1u16;
        let mut end = None;
        while end.is_none() {
            let next_ack = now + 5 * T;
            while let Some(d) = t.deadline().filter(|&d| d <= next_ack) {
                if let Some(o) = done(&t.on_timeout(d)) {
                    end = Some((d, o.clone()));
                    break;
                }
            }
            if end.is_some() {
                break;
            }
            now = next_ack;
            let _ = feed(&mut t, &ack(block), now);
            block = block.wrapping_add(1);
        }
        let (at, outcome) = end.expect("ended");
        assert_eq!(outcome, Outcome::TimedOut);
        assert_eq!(at, t0 + l.max_life);
    }

    #[test]
    fn the_window_fits_the_memory_granted() {
        let mut l = limits();
        l.max_window_bytes = 4 * 1024;
        let b = encode_request(
            false,
            "f",
            "octet",
            &[("blksize", "1024"), ("windowsize", "16")],
        );
        let Ok(Packet::Request(r)) = Packet::decode(&b) else {
            panic!("request")
        };
        let n = negotiate(&r, &l, Some(100_000));
        assert_eq!((n.blksize, n.windowsize), (1024, 4));
    }

    fn negotiate_plain(l: &Limits) -> Negotiated {
        let b = encode_request(false, "f", "octet", &[]);
        let Ok(Packet::Request(r)) = Packet::decode(&b) else {
            panic!("request")
        };
        negotiate(&r, l, Some(0))
    }

    fn feed(t: &mut Transfer, bytes: &[u8], now: Instant) -> Vec<Out> {
        t.on_packet(&Packet::decode(bytes).unwrap(), now)
    }

    fn done(outs: &[Out]) -> Option<&Outcome> {
        outs.iter().find_map(|o| match o {
            Out::Done(x) => Some(x),
            _ => None,
        })
    }

    #[test]
    fn lockstep_whole_file_no_options() {
        let data = file(512 * 3 + 100);
        let now = Instant::now();
        let (mut t, outs) = reader(&data, &[], now);
        let mut got = Vec::new();
        let mut pending = datas(&t, &outs);
        loop {
            assert_eq!(pending.len(), 1);
            let (b, d) = pending.pop().unwrap();
            got.extend_from_slice(&d);
            let outs = feed(&mut t, &ack(b), now);
            if let Some(o) = done(&outs) {
                assert_eq!(o, &Outcome::Complete);
                break;
            }
            pending = datas(&t, &outs);
        }
        assert_eq!(got, data);
        assert_eq!(t.stats().blocks, 4);
    }

    #[test]
    fn exact_multiple_ends_with_empty_block() {
        let data = file(1024);
        let now = Instant::now();
        let (mut t, outs) = reader(&data, &[], now);
        assert_eq!(datas(&t, &outs)[0].1.len(), 512);
        let outs = feed(&mut t, &ack(1), now);
        assert_eq!(datas(&t, &outs)[0].1.len(), 512);
        let outs = feed(&mut t, &ack(2), now);
        assert_eq!(datas(&t, &outs), vec![(3, vec![])]);
        let outs = feed(&mut t, &ack(3), now);
        assert_eq!(done(&outs), Some(&Outcome::Complete));
    }

    #[test]
    fn loss_retransmits_with_backoff_then_gives_up() {
        let data = file(2000);
        let t0 = Instant::now();
        let (mut t, outs) = reader(&data, &[], t0);
        assert_eq!(datas(&t, &outs).len(), 1);
        // Nothing before the deadline.
        assert!(t.on_timeout(t0 + T / 2).is_empty());
        // First retransmission after 1 s, then 2 s, then 4 s (back-off).
        let mut now = t0 + T;
        let mut gaps = Vec::new();
        for _ in 0..3 {
            let outs = t.on_timeout(now);
            assert_eq!(datas(&t, &outs), vec![(1, data[..512].to_vec())]);
            let d = t.deadline().unwrap();
            gaps.push(d - now);
            now = d;
        }
        assert_eq!(gaps, vec![2 * T, 4 * T, 8 * T]);
        // retries = 3: the next deadline gives up with an ERROR.
        let outs = t.on_timeout(now);
        assert!(matches!(&outs[0], Out::Send(p) if p[..4] == [0, 5, 0, 0]));
        assert_eq!(done(&outs), Some(&Outcome::TimedOut));
        assert!(t.deadline().is_none());
        assert_eq!(t.stats().retransmits, 3);
    }

    #[test]
    fn progress_resets_retries() {
        let data = file(5000);
        let t0 = Instant::now();
        let (mut t, _) = reader(&data, &[], t0);
        t.on_timeout(t0 + T);
        t.on_timeout(t0 + 3 * T);
        let outs = feed(&mut t, &ack(1), t0 + 4 * T);
        assert_eq!(datas(&t, &outs)[0].0, 2);
        assert_eq!(t.deadline(), Some(t0 + 5 * T));
        // Back to the base timeout for the new block.
        let outs = t.on_timeout(t0 + 5 * T);
        assert_eq!(datas(&t, &outs)[0].0, 2);
        assert_eq!(t.deadline(), Some(t0 + 7 * T));
    }

    #[test]
    fn duplicate_acks_do_not_trigger_data() {
        let data = file(3000);
        let now = Instant::now();
        let (mut t, _) = reader(&data, &[], now);
        let outs = feed(&mut t, &ack(1), now);
        assert_eq!(datas(&t, &outs)[0].0, 2);
        // The ACK of block 1 arrives again (delayed duplicate): no DATA.
        for _ in 0..5 {
            assert!(feed(&mut t, &ack(1), now).is_empty());
        }
        // An ACK from the future or the distant past is ignored too.
        assert!(feed(&mut t, &ack(9), now).is_empty());
        assert!(feed(&mut t, &ack(60000), now).is_empty());
        let outs = feed(&mut t, &ack(2), now);
        assert_eq!(datas(&t, &outs)[0].0, 3);
    }

    #[test]
    fn block_numbers_roll_over_to_zero() {
        // blksize 8 so that 65536 + a few blocks stay small.
        let data = file(8 * 65540 + 3);
        let now = Instant::now();
        let (mut t, outs) = reader(&data, &[("blksize", "8")], now);
        assert!(matches!(&outs[0], Out::Send(_)));
        let mut outs = feed(&mut t, &ack(0), now);
        let mut got = Vec::new();
        let mut seen = Vec::new();
        loop {
            let ds = datas(&t, &outs);
            assert_eq!(ds.len(), 1);
            let (b, d) = &ds[0];
            got.extend_from_slice(d);
            if seen.len() < 65540 {
                seen.push(*b);
            }
            outs = feed(&mut t, &ack(*b), now);
            if done(&outs).is_some() {
                assert_eq!(done(&outs), Some(&Outcome::Complete));
                break;
            }
        }
        assert_eq!(got, data);
        assert_eq!(seen[65534], 65535);
        assert_eq!(seen[65535], 0);
        assert_eq!(seen[65536], 1);
    }

    #[test]
    fn client_error_mid_transfer_ends_at_once() {
        let data = file(10_000);
        let now = Instant::now();
        let (mut t, _) = reader(&data, &[], now);
        feed(&mut t, &ack(1), now);
        let outs = feed(
            &mut t,
            &packet::encode_error(ErrorCode::DiskFull, "full"),
            now,
        );
        assert_eq!(
            outs,
            vec![Out::Done(Outcome::ClientError {
                code: 3,
                message: "full".into(),
                probe: false
            })]
        );
        assert!(t.is_done());
        assert!(t.on_timeout(now + 100 * T).is_empty());
        assert!(feed(&mut t, &ack(2), now).is_empty());
    }

    #[test]
    fn edk2_size_probe() {
        let data = file(100_000);
        let now = Instant::now();
        let (mut t, outs) = reader(
            &data,
            &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
            now,
        );
        let Out::Send(o) = &outs[0] else {
            panic!("oack")
        };
        assert_eq!(
            Packet::decode(o).unwrap(),
            Packet::Oack {
                options: vec![
                    ("blksize", "1468"),
                    ("tsize", "100000"),
                    ("windowsize", "4")
                ]
            }
        );
        let outs = feed(
            &mut t,
            &packet::encode_error(ErrorCode::NotDefined, "abort"),
            now,
        );
        assert!(matches!(
            done(&outs),
            Some(Outcome::ClientError { probe: true, .. })
        ));
    }

    #[test]
    fn oack_retransmitted_until_ack0() {
        let data = file(3000);
        let t0 = Instant::now();
        let (mut t, outs) = reader(&data, &[("blksize", "1024")], t0);
        let Out::Send(o) = &outs[0] else {
            panic!("oack")
        };
        let o = o.clone();
        assert_eq!(t.on_timeout(t0 + T), vec![Out::Send(o)]);
        // A stray ACK 1 before ACK 0 is ignored.
        assert!(feed(&mut t, &ack(1), t0 + T).is_empty());
        let outs = feed(&mut t, &ack(0), t0 + T);
        assert_eq!(datas(&t, &outs), vec![(1, data[..1024].to_vec())]);
    }

    #[test]
    fn negotiation_caps_and_ignores_bad_values() {
        let n = neg(
            &[
                ("blksize", "65464"),
                ("windowsize", "1000"),
                ("timeout", "3"),
            ],
            10,
        );
        assert_eq!(n.blksize, 1468);
        assert_eq!(n.windowsize, 16);
        assert_eq!(n.timeout, 3 * T);
        assert_eq!(
            n.oack,
            vec![
                ("blksize", "1468".to_string()),
                ("timeout", "3".into()),
                ("windowsize", "16".into())
            ]
        );
        let n = neg(
            &[
                ("blksize", "7"),
                ("windowsize", "0"),
                ("timeout", "0"),
                ("tsize", "x"),
                ("foo", "1"),
            ],
            10,
        );
        assert_eq!((n.blksize, n.windowsize, n.timeout), (512, 1, T));
        assert!(n.oack.is_empty());
        // The window byte cap wins over a large max_windowsize.
        let b = encode_request(
            false,
            "f",
            "octet",
            &[("blksize", "65464"), ("windowsize", "64")],
        );
        let Ok(Packet::Request(r)) = Packet::decode(&b) else {
            panic!()
        };
        let l = Limits {
            max_blksize: 65464,
            max_windowsize: 64,
            ..limits()
        };
        assert_eq!(negotiate(&r, &l, None).windowsize, 16);
    }

    #[test]
    fn window_sends_all_and_slides_on_partial_ack() {
        let data = file(1468 * 40 + 5);
        let now = Instant::now();
        let (mut t, _) = reader(&data, &[("blksize", "1468"), ("windowsize", "16")], now);
        let outs = feed(&mut t, &ack(0), now);
        let ds = datas(&t, &outs);
        assert_eq!(
            ds.iter().map(|d| d.0).collect::<Vec<_>>(),
            (1..=16).collect::<Vec<_>>()
        );
        // Blocks 6.. were lost: the client ACKs 5, the next window starts at 6.
        let outs = feed(&mut t, &ack(5), now);
        let ds = datas(&t, &outs);
        assert_eq!(ds.first().unwrap().0, 6);
        assert_eq!(ds.len(), 16);
        assert_eq!(ds[0].1, data[5 * 1468..6 * 1468].to_vec());
        // A late ACK 3 is stale: ignored.
        assert!(feed(&mut t, &ack(3), now).is_empty());
        // A timeout re-sends the whole current window.
        let outs = t.on_timeout(now + T);
        assert_eq!(datas(&t, &outs).len(), 16);
        // Drive to completion by ACKing window ends.
        let mut got = data[..5 * 1468].to_vec();
        let mut ds = datas(&t, &outs);
        loop {
            for d in &ds {
                got.extend_from_slice(&d.1);
            }
            let outs = feed(&mut t, &ack(ds.last().unwrap().0), now);
            if done(&outs).is_some() {
                break;
            }
            ds = datas(&t, &outs);
        }
        assert_eq!(got, data);
    }

    #[test]
    fn netascii_roundtrip() {
        let text = b"line one\nline\rtwo\r\n\n";
        let mut enc = Vec::new();
        NetasciiReader::new(&text[..])
            .read_to_end(&mut enc)
            .unwrap();
        assert_eq!(enc, b"line one\r\nline\r\0two\r\0\r\n\r\n");
        // Decode it split at every position (a CR at a block boundary).
        for split in 0..enc.len() {
            let mut d = NetasciiDecoder::default();
            let mut out = Vec::new();
            d.decode(&enc[..split], &mut out);
            d.decode(&enc[split..], &mut out);
            d.finish(&mut out);
            assert_eq!(out, text);
        }
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn upload_acks_duplicates_and_completes() {
        let sink = Sink::default();
        let b = encode_request(true, "up", "octet", &[]);
        let Ok(Packet::Request(r)) = Packet::decode(&b) else {
            panic!()
        };
        let n = negotiate(&r, &limits(), None);
        let now = Instant::now();
        let (mut t, outs) =
            Transfer::write(Box::new(sink.clone()), Mode::Octet, &n, &limits(), now);
        assert_eq!(outs, vec![Out::Send(ack(0))]);
        let d1 = vec![1u8; 512];
        let outs = feed(&mut t, &packet::encode_data(1, &d1), now);
        assert_eq!(outs, vec![Out::Send(ack(1))]);
        // Duplicate DATA 1 (our ACK was lost): ACK 1 again, no double write.
        let outs = feed(&mut t, &packet::encode_data(1, &d1), now);
        assert_eq!(outs, vec![Out::Send(ack(1))]);
        let outs = feed(&mut t, &packet::encode_data(2, b"end"), now);
        assert_eq!(outs[0], Out::Send(ack(2)));
        assert_eq!(done(&outs), Some(&Outcome::Complete));
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(got.len(), 515);
    }

    #[test]
    fn wrong_packet_kind_is_illegal_operation() {
        let now = Instant::now();
        let (mut t, _) = reader(&file(10), &[], now);
        let outs = feed(&mut t, &packet::encode_data(1, b"x"), now);
        assert!(matches!(&outs[0], Out::Send(p) if p[..4] == [0, 5, 0, 4]));
        assert!(t.is_done());
    }

    proptest! {
        #[test]
        fn arbitrary_packets_never_panic(
            pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..40),
            ws in 1u16..8,
        ) {
            let now = Instant::now();
            let ws = ws.to_string();
            let (mut t, _) = reader(&file(3000), &[("blksize", "8"), ("windowsize", &ws)], now);
            for (i, p) in pkts.iter().enumerate() {
                if let Ok(pkt) = Packet::decode(p) {
                    let outs = t.on_packet(&pkt, now);
                    for o in outs {
                        if let Out::Data(s) = o { let _ = t.data(s); }
                    }
                }
                let _ = t.on_timeout(now + T * (i as u32));
            }
        }

        #[test]
        fn arbitrary_acks_never_panic(acks in proptest::collection::vec(any::<u16>(), 0..200)) {
            let now = Instant::now();
            let (mut t, _) = reader(&file(700), &[("blksize", "8"), ("windowsize", "4")], now);
            for a in acks {
                let _ = feed(&mut t, &ack(a), now);
            }
        }
    }
}
