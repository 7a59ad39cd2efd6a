//! Ids for orders, lines and checkouts, made by the app so a group commit can insert many rows in
//! one statement: time-ordered, unique per node (seconds since 2025-01-01 · node · sequence), and
//! at most 53 bits, so JavaScript clients read them exactly. Past 4,096 ids in a second a node
//! borrows the next second: under a flash sale its ids run ahead of the clock, still unique and
//! ordered, and the clock catches up afterwards.

use std::sync::Mutex;

const EPOCH_MS: i64 = 1_735_689_600_000;
const NODE_BITS: u32 = 8;
const SEQUENCE_BITS: u32 = 12;
/// Seconds get the remaining 33 bits: enough for 272 years.
const SECONDS_BITS: u32 = 53 - NODE_BITS - SEQUENCE_BITS;
const SEQUENCE_MAX: i64 = (1 << SEQUENCE_BITS) - 1;

#[derive(Debug)]
pub struct IdGenerator {
    node: i64,
    /// (last second used, sequence within it)
    state: Mutex<(i64, i64)>,
}

impl IdGenerator {
    /// `node` must be unique among processes writing to one database (0 to 255).
    pub fn new(node: u16) -> Self {
        Self { node: i64::from(node) & ((1 << NODE_BITS) - 1), state: Mutex::new((0, 0)) }
    }

    /// Continues after `max_id` (the largest id in the store), so a node restarted while its ids
    /// ran ahead of the clock does not hand out the same ids again.
    pub fn resume_after(&self, max_id: i64) {
        let second = max_id >> (NODE_BITS + SEQUENCE_BITS);
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if second >= state.0 {
            // The next id comes from the following second at the earliest.
            *state = (second, SEQUENCE_MAX);
        }
    }

    /// A fresh id, larger than every id this generator made before, whatever the clock does.
    pub fn next(&self, now_ms: i64) -> i64 {
        let now_s = (now_ms - EPOCH_MS).max(0) / 1000;
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last_s, sequence) = *state;
        let (second, sequence) = if now_s > last_s {
            (now_s, 0)
        } else if sequence < SEQUENCE_MAX {
            (last_s, sequence + 1)
        } else {
            // 4,096 ids in one second: borrow the next second.
            (last_s + 1, 0)
        };
        *state = (second, sequence);
        let second = second & ((1 << SECONDS_BITS) - 1);
        (second << (NODE_BITS + SEQUENCE_BITS)) | (self.node << SEQUENCE_BITS) | sequence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_even_within_a_millisecond_and_backwards_clocks() {
        let ids = IdGenerator::new(3);
        let mut last = 0;
        for now_ms in [EPOCH_MS + 10_000, EPOCH_MS + 10_000, EPOCH_MS + 5_000, EPOCH_MS + 11_000] {
            for _ in 0..5000 {
                let id = ids.next(now_ms);
                assert!(id > last);
                last = id;
            }
        }
        let id = ids.next(EPOCH_MS + 1_000_000_000);
        assert_eq!((id >> SEQUENCE_BITS) & 255, 3);
        // Within JavaScript's exact integers for the next 272 years.
        assert!(IdGenerator::new(255).next(EPOCH_MS + 270 * 365 * 86_400_000) < 1 << 53);
        let resumed = IdGenerator::new(3);
        resumed.resume_after(id);
        assert!(resumed.next(EPOCH_MS) > id, "after a restart, past the ids already stored");
    }
}
