//! One way for a daemon to follow the store: [`watch`] some topics, then
//! await [`Watch::changed`], which returns the topics whose counters moved.
//!
//! The counters are read every [`POLL`] (every [`POLL_NOTIFIED`] when the
//! backend pushes notifications, which wake the watcher at once). A read
//! that fails is logged once, not at every poll, and retried until the store
//! answers again; an error after which the process must stop
//! ([`StoreError::is_fatal`], e.g. the SQLite file was replaced) is returned.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::{Result, Store, StoreError, Topic};

/// How often counters are read when only polling tells of changes: changes
/// reach the daemons well within a second.
pub const POLL: Duration = Duration::from_millis(250);
/// How often counters are read beside notifications (a fallback for
/// notifications lost while the LISTEN connection was down).
pub const POLL_NOTIFIED: Duration = Duration::from_secs(1);

/// A follower of some topics; see the module doc.
pub struct Watch {
    store: Arc<dyn Store>,
    seen: Vec<(Topic, i64)>,
    notes: Option<broadcast::Receiver<Topic>>,
    failing: bool,
}

/// Start following `topics`; their counters as of now are the baseline, so
/// call this before loading the data it guards.
pub async fn watch(store: Arc<dyn Store>, topics: &[Topic]) -> Result<Watch> {
    let notes = store.subscribe();
    let mut seen = Vec::with_capacity(topics.len());
    for &t in topics {
        seen.push((t, store.generation(t).await?));
    }
    Ok(Watch {
        store,
        seen,
        notes,
        failing: false,
    })
}

impl Watch {
    /// Wait until at least one topic moves and return those that moved.
    /// Cancel-safe: dropping the future loses no change.
    pub async fn changed(&mut self) -> Result<Vec<Topic>> {
        loop {
            let every = if self.notes.is_some() {
                POLL_NOTIFIED
            } else {
                POLL
            };
            match self.notes.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        r = rx.recv() => if let Err(broadcast::error::RecvError::Closed) = r {
                            self.notes = None;
                        },
                    }
                }
                None => tokio::time::sleep(every).await,
            }
            let moved = self.check().await?;
            if !moved.is_empty() {
                return Ok(moved);
            }
        }
    }

    /// Read the counters now; the topics that moved since last seen.
    /// Transient errors count as "nothing moved" (logged once).
    pub async fn check(&mut self) -> Result<Vec<Topic>> {
        let mut now = Vec::with_capacity(self.seen.len());
        for &(t, _) in &self.seen {
            match self.store.generation(t).await {
                Ok(g) => now.push(g),
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    self.fail(&e);
                    return Ok(Vec::new());
                }
            }
        }
        if self.failing {
            info!("the store answers again");
            self.failing = false;
        }
        let mut moved = Vec::new();
        for ((t, seen), g) in self.seen.iter_mut().zip(now) {
            if *seen != g {
                *seen = g;
                moved.push(*t);
            }
        }
        Ok(moved)
    }

    fn fail(&mut self, e: &StoreError) {
        if !self.failing {
            warn!(error = %e, "cannot read the store; serving from memory until it answers");
            self.failing = true;
        }
    }
}

/// What a daemon built from the store (dnsd's view, the PXE profile book),
/// swapped whole when its [`Watch`] reports a change: a reload never makes
/// a reader wait, and a reader on a hot path keeps its own `Arc` with the
/// version it saw ([`Current::load`]) and only takes the lock when the
/// version moved ([`Current::refresh`]).
pub struct Current<T> {
    value: std::sync::RwLock<Arc<T>>,
    version: std::sync::atomic::AtomicU64,
}

impl<T> Current<T> {
    pub fn new(value: T) -> Current<T> {
        Current {
            value: std::sync::RwLock::new(Arc::new(value)),
            version: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The value now.
    pub fn get(&self) -> Arc<T> {
        match self.value.read() {
            Ok(g) => g.clone(),
            // Poisoned only by a panic around a pointer swap: the value is
            // whole either way.
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The value now, with its version for [`Current::refresh`].
    pub fn load(&self) -> (u64, Arc<T>) {
        let v = self.version.load(std::sync::atomic::Ordering::Acquire);
        (v, self.get())
    }

    /// Put `value` in place; returns the one it replaced.
    pub fn replace(&self, value: T) -> Arc<T> {
        let new = Arc::new(value);
        let old = match self.value.write() {
            Ok(mut g) => std::mem::replace(&mut *g, new),
            Err(p) => std::mem::replace(&mut *p.into_inner(), new),
        };
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        old
    }

    /// Bring a reader's `cached` copy up to date if a newer value exists.
    pub fn refresh(&self, cached: &mut (u64, Arc<T>)) {
        if self.version.load(std::sync::atomic::Ordering::Acquire) != cached.0 {
            *cached = self.load();
        }
    }
}
