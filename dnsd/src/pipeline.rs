//! The query pipeline: an ordered list of async links, each of which answers
//! or passes (as hickory's catalog and `LookupControlFlow`), and REFUSED when
//! every link passed.
//!
//! ```text
//! QueryCtx ─▶ local (zones, lease names) ─Continue/Chase─▶ GSLB (pools by ISP and region)
//!          ─Continue─▶ recursion (ACL, RFC 6303, forwarding, cache, iteration)
//!          ─Continue─▶ REFUSED
//! ```
//!
//! Links see the whole [`QueryCtx`] (client, transport, RD/CD/DO, ECS,
//! time) and the current [`View`]. A link that can answer at once returns a
//! future that is ready on its first poll, so the socket loops answer local
//! names and cache hits without leaving their thread (see `server`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use crate::handler::{Transport, View};
use crate::query::{Answer, Ede, QueryCtx};

/// A boxed future borrowing the query and the view.
pub type LinkFuture<'a> = Pin<Box<dyn Future<Output = Flow> + Send + 'a>>;

/// What a link decided.
#[derive(Debug)]
pub enum Flow {
    /// This link answers.
    Answer(Answer),
    /// This link answered part: a CNAME chain (`prefix`) that leads to
    /// `target`, which the next links resolve; their answer is appended
    /// (RFC 1034 §4.3.2 step 3a across links).
    Chase { prefix: Answer, target: Name },
    /// Not this link's: ask the next one.
    Continue,
}

/// One link of the pipeline.
pub trait Link: Send + Sync {
    /// For logs.
    fn name(&self) -> &'static str;
    fn answer<'a>(&'a self, ctx: &'a QueryCtx, view: &'a View) -> LinkFuture<'a>;
}

/// The links in order.
pub struct Pipeline {
    links: Vec<Arc<dyn Link>>,
}

impl Pipeline {
    /// Local zones, then `more` in order (GSLB, then recursion).
    pub fn new(more: Vec<Arc<dyn Link>>) -> Pipeline {
        let mut links: Vec<Arc<dyn Link>> = vec![Arc::new(Local)];
        links.extend(more);
        Pipeline { links }
    }

    /// Local zones only: an authoritative-only server.
    pub fn local() -> Pipeline {
        Pipeline::new(Vec::new())
    }

    /// Run the links until one answers; REFUSED when none does (RFC 8914
    /// §4.19 Prohibited for a client that may not recurse).
    pub async fn run(&self, ctx: &QueryCtx, view: &View) -> Answer {
        let mut chased: Option<(Answer, QueryCtx)> = None;
        for link in &self.links {
            let c = chased.as_ref().map(|(_, c)| c).unwrap_or(ctx);
            match link.answer(c, view).await {
                Flow::Answer(a) => {
                    tracing::trace!(link = link.name(), name = %c.qname, "answered");
                    return match chased {
                        Some((prefix, _)) => join(prefix, a),
                        None => a,
                    };
                }
                Flow::Chase { prefix, target } => {
                    let next = ctx.retarget(&target);
                    chased = Some(match chased {
                        Some((p, _)) => (join(p, prefix), next),
                        None => (prefix, next),
                    });
                }
                Flow::Continue => {}
            }
        }
        if let Some((prefix, _)) = chased {
            // Nobody could follow the chain: the part we have, as an
            // authoritative server would answer it.
            return prefix;
        }
        tracing::debug!(peer = %ctx.src, name = %ctx.qname, rd = ctx.meta.recursion_desired,
            may_recurse = ctx.may_recurse, "refused: no link answers");
        let mut a = Answer::rcode(ResponseCode::Refused);
        if !ctx.may_recurse {
            a.ede = Some(Ede::new(
                Ede::PROHIBITED,
                "recursion not allowed for this client",
            ));
        }
        a
    }
}

/// A chain's first part and what its target resolved to: the records in
/// order, the RCODE of the last name (RFC 6604 §3).
fn join(prefix: Answer, rest: Answer) -> Answer {
    let mut a = rest;
    let mut answers = prefix.answers;
    answers.append(&mut a.answers);
    a.answers = answers;
    // Authoritative only when both parts are ours (a local CNAME into a
    // GSLB pool); never for what recursion found.
    a.authoritative = prefix.authoritative && a.authoritative;
    a
}

/// Local zones and lease names: answered from the in-memory view; passes for
/// names outside every local zone.
struct Local;

impl Link for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn answer<'a>(&'a self, ctx: &'a QueryCtx, view: &'a View) -> LinkFuture<'a> {
        let flow = match view.catalog.resolve(ctx.query.name(), ctx.qtype) {
            Some(mut r) => match r.leaves_zones.take() {
                // A CNAME out of our zones, for a client that may recurse:
                // the next links resolve the target.
                // A CNAME into a GSLB pool: the GSLB link goes on, for
                // every client.
                Some(target) if r.to_gslb || (ctx.may_recurse && ctx.meta.recursion_desired) => {
                    Flow::Chase {
                        prefix: r.into(),
                        target,
                    }
                }
                _ => Flow::Answer(minimal_any(ctx, r.into())),
            },
            None => Flow::Continue,
        };
        Box::pin(std::future::ready(flow))
    }
}

/// RFC 8482 §4.1: ANY over UDP gets one RRset of the name, not all of them
/// (ANY is the classic amplification query). Over TCP the client has proved
/// its address, so it gets everything (§4.4 leaves that to the server).
fn minimal_any(ctx: &QueryCtx, mut a: Answer) -> Answer {
    if ctx.qtype == RecordType::ANY && ctx.transport == Transport::Udp {
        if let Some(first) = a.answers.first().map(|r| r.record_type()) {
            a.answers.retain(|r| r.record_type() == first);
            a.additionals.clear();
        }
    }
    a
}
