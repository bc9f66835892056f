//! Log lines a packet flood cannot turn into a disk flood.
//!
//! A line written for each hostile packet (a refused zone transfer over
//! UDP, a TFTP request for a missing file, a DISCOVER when the pool is
//! empty) would let anyone on the segment fill the journal: 26 bytes in,
//! 114 bytes of log out. Each such place owns a [`LogLimit`]: at most
//! `per_second` lines a second; the lines left out are counted and the next
//! line written says how many (`suppressed = N`), so nothing is hidden, only
//! aggregated.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One log site's budget. `const`, so it can be a `static` at the site.
#[derive(Debug)]
pub struct LogLimit {
    per_second: u32,
    /// (start of the current second, lines written in it, lines left out
    /// since the last written one).
    state: Mutex<Option<(Instant, u32, u64)>>,
}

impl LogLimit {
    pub const fn new(per_second: u32) -> LogLimit {
        LogLimit {
            per_second,
            state: Mutex::new(None),
        }
    }

    /// Whether to write the line now: `Some(n)` to write it, saying `n`
    /// lines were left out before it; `None` to leave it out.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`LogLimit::allow`] at an injected time.
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (start, written, left_out) = s.get_or_insert((now, 0, 0));
        if now.saturating_duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *written = 0;
        }
        if *written < self.per_second {
            *written += 1;
            Some(std::mem::take(left_out))
        } else {
            *left_out += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_the_rest_counted() {
        let l = LogLimit::new(3);
        let t0 = Instant::now();
        let written = (0..1000).filter(|_| l.allow_at(t0).is_some()).count();
        assert_eq!(written, 3);
        assert_eq!(l.allow_at(t0 + Duration::from_millis(999)), None);
        assert_eq!(l.allow_at(t0 + Duration::from_secs(1)), Some(998));
        assert_eq!(l.allow_at(t0 + Duration::from_secs(1)), Some(0));
    }
}
