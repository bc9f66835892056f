//! A query decoded once ([`QueryCtx`]) and the reply built from what the
//! pipeline answered ([`Answer`]). No I/O.

use std::net::SocketAddr;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, Record, RecordType};

use crate::handler::{header_error, Reply, Transport, MAX_UDP_PAYLOAD, PLAIN_UDP_LIMIT};
use crate::zone::Resolution;

/// Everything a link may look at, decoded once per query.
#[derive(Debug, Clone)]
pub struct QueryCtx {
    /// The header as it came (ID, opcode, RD, CD).
    pub meta: Metadata,
    /// The question as asked (case kept for the reply).
    pub query: Query,
    /// Lowercase QNAME, for lookups and cache keys.
    pub qname: Name,
    pub qtype: RecordType,
    pub src: SocketAddr,
    pub transport: Transport,
    /// The client sent an OPT record (RFC 6891).
    pub edns: bool,
    /// DNSSEC OK (RFC 3225).
    pub dnssec_ok: bool,
    /// EDNS Client Subnet (RFC 7871), for GSLB.
    pub client_subnet: Option<ClientSubnet>,
    /// The most we may send back in one message.
    pub limit: usize,
    /// The client is in `recursion_allowed`: RA is set for it, and only it
    /// may reach the recursion link.
    pub may_recurse: bool,
    /// When the query arrived (injected: tests pass their own).
    pub now: Instant,
}

impl QueryCtx {
    /// Decode `msg` (already checked to be one QUERY question of class IN
    /// or ANY with EDNS version 0).
    pub fn new(
        msg: &Message,
        src: SocketAddr,
        transport: Transport,
        may_recurse: bool,
        now: Instant,
    ) -> Option<QueryCtx> {
        let query = msg.queries.first()?.clone();
        let limit = match (transport, &msg.edns) {
            (Transport::Tcp, _) => u16::MAX as usize,
            (Transport::Udp, None) => PLAIN_UDP_LIMIT,
            (Transport::Udp, Some(e)) => e.max_payload().clamp(512, MAX_UDP_PAYLOAD) as usize,
        };
        let client_subnet = msg
            .edns
            .as_ref()
            .and_then(|e| e.options().get(EdnsCode::Subnet))
            .and_then(|o| match o {
                EdnsOption::Subnet(s) => Some(*s),
                _ => None,
            });
        Some(QueryCtx {
            meta: msg.metadata,
            qname: query.name().to_lowercase(),
            qtype: query.query_type(),
            query,
            src,
            transport,
            edns: msg.edns.is_some(),
            dnssec_ok: msg.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
            client_subnet,
            limit,
            may_recurse,
            now,
        })
    }

    /// The reply to send for `answer`: within the client's size limit; when
    /// larger, the additional section goes first (unless it is a referral's
    /// glue), else TC with no records (RFC 2181 §9) so the client retries
    /// over TCP.
    pub fn reply(&self, answer: &Answer) -> Reply {
        let mut meta = Metadata::new(self.meta.id, MessageType::Response, OpCode::Query);
        meta.recursion_desired = self.meta.recursion_desired;
        meta.checking_disabled = self.meta.checking_disabled;
        // RFC 1035 §4.1.1: RA says whether recursion is available to this
        // client, whatever answered.
        meta.recursion_available = self.may_recurse;
        meta.authoritative = answer.authoritative;
        meta.authentic_data = answer.authentic_data;
        meta.response_code = answer.rcode;
        let edns = self.edns.then(|| {
            let mut e = Edns::new();
            e.set_max_payload(MAX_UDP_PAYLOAD);
            e.set_version(0);
            if let Some(ede) = &answer.ede {
                e.options_mut().insert(ede.option());
            }
            if let Some(ecs) = &answer.ecs {
                e.options_mut().insert(EdnsOption::Subnet(*ecs));
            }
            e
        });
        match encode(&meta, &self.query, edns.as_ref(), answer, self.limit) {
            Some(v) => Reply::Message(v),
            None => {
                let mut m = Message::new(self.meta.id, MessageType::Response, OpCode::Query);
                m.metadata = meta;
                m.metadata.response_code = ResponseCode::ServFail;
                m.add_query(self.query.clone());
                if self.edns {
                    let mut e = Edns::new();
                    e.set_max_payload(MAX_UDP_PAYLOAD);
                    e.options_mut()
                        .insert(Ede::new(Ede::OTHER, "the answer cannot be encoded").option());
                    m.set_edns(e);
                }
                tracing::debug!(peer = %self.src, name = %self.qname, "SERVFAIL: cannot encode");
                match m.to_vec() {
                    Ok(v) => Reply::Message(v),
                    Err(_) => {
                        let mut h = [0u8; 12];
                        h[..2].copy_from_slice(&self.meta.id.to_be_bytes());
                        Reply::Message(header_error(&h, ResponseCode::ServFail.low()))
                    }
                }
            }
        }
    }
}

/// An Extended DNS Error (RFC 8914): an INFO-CODE and a text for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ede {
    pub code: u16,
    pub text: String,
}

impl Ede {
    /// RFC 8914 §4.1: Other.
    pub const OTHER: u16 = 0;
    /// §4.4: Stale Answer (RFC 8767).
    pub const STALE_ANSWER: u16 = 3;
    /// §4.7: DNSSEC Bogus.
    pub const DNSSEC_BOGUS: u16 = 6;
    /// §4.8: Signature Expired.
    pub const SIGNATURE_EXPIRED: u16 = 7;
    /// §4.9: Signature Not Yet Valid.
    pub const SIGNATURE_NOT_YET_VALID: u16 = 8;
    /// §4.10: DNSKEY Missing.
    pub const DNSKEY_MISSING: u16 = 9;
    /// §4.11: RRSIGs Missing.
    pub const RRSIGS_MISSING: u16 = 10;
    /// §4.13: NSEC Missing.
    pub const NSEC_MISSING: u16 = 12;
    /// §4.19: Prohibited (an ACL said no).
    pub const PROHIBITED: u16 = 18;
    /// §4.22: No Reachable Authority.
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    /// §4.23: Network Error.
    pub const NETWORK_ERROR: u16 = 23;

    pub fn new(code: u16, text: impl Into<String>) -> Ede {
        Ede {
            code,
            text: text.into(),
        }
    }

    /// OPTION-CODE 15; INFO-CODE then UTF-8 EXTRA-TEXT (§2).
    fn option(&self) -> EdnsOption {
        let mut data = self.code.to_be_bytes().to_vec();
        data.extend_from_slice(self.text.as_bytes());
        EdnsOption::Unknown(15, data)
    }
}

/// What a link answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub authentic_data: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// A referral: its glue must not be dropped to fit (TC instead).
    pub referral: bool,
    pub ede: Option<Ede>,
    /// EDNS Client Subnet for the reply (RFC 7871 §7.2.1): set only by a
    /// link whose answer depended on the client subnet the query sent.
    pub ecs: Option<ClientSubnet>,
}

impl Answer {
    /// An answer with no records.
    pub fn rcode(rcode: ResponseCode) -> Answer {
        Answer {
            rcode,
            authoritative: false,
            authentic_data: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            referral: false,
            ede: None,
            ecs: None,
        }
    }

    /// SERVFAIL, always with the reason (issue 7: no SERVFAIL without one).
    pub fn servfail(ede: Ede) -> Answer {
        let mut a = Answer::rcode(ResponseCode::ServFail);
        a.ede = Some(ede);
        a
    }
}

impl QueryCtx {
    /// The same query, asked about `name` instead (a CNAME target).
    pub fn retarget(&self, name: &Name) -> QueryCtx {
        let mut q = self.clone();
        q.query.set_name(name.clone());
        q.qname = name.to_lowercase();
        q
    }
}

impl From<Resolution> for Answer {
    fn from(r: Resolution) -> Answer {
        Answer {
            rcode: r.rcode,
            authoritative: r.authoritative,
            authentic_data: false,
            answers: r.answers,
            authorities: r.authorities,
            additionals: r.additionals,
            referral: r.referral,
            ede: None,
            ecs: None,
        }
    }
}

/// Encode `answer` for `query` within `limit` bytes (see [`QueryCtx::reply`]).
pub fn encode(
    meta: &Metadata,
    query: &Query,
    edns: Option<&Edns>,
    answer: &Answer,
    limit: usize,
) -> Option<Vec<u8>> {
    let build = |answers: &[Record], auth: &[Record], add: &[Record], tc: bool| {
        let mut m = Message::new(meta.id, MessageType::Response, OpCode::Query);
        m.metadata = *meta;
        m.metadata.truncation = tc;
        m.add_query(query.clone());
        m.answers = answers.to_vec();
        m.authorities = auth.to_vec();
        m.additionals = add.to_vec();
        if let Some(e) = edns {
            m.set_edns(e.clone());
        }
        m.to_vec().ok()
    };
    let full = build(
        &answer.answers,
        &answer.authorities,
        &answer.additionals,
        false,
    )?;
    if full.len() <= limit {
        return Some(full);
    }
    if !answer.referral && !answer.additionals.is_empty() {
        let less = build(&answer.answers, &answer.authorities, &[], false)?;
        if less.len() <= limit {
            return Some(less);
        }
    }
    build(&[], &[], &[], true)
}
