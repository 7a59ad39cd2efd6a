//! Ids for orders, lines and checkouts, made by the app so a group commit can insert many rows in
//! one statement: time-ordered, unique per node (ms since 2025-01-01 · node · sequence).

use std::sync::Mutex;

const EPOCH_MS: i64 = 1_735_689_600_000;
const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const SEQUENCE_MAX: i64 = (1 << SEQUENCE_BITS) - 1;

#[derive(Debug)]
pub struct IdGenerator {
    node: i64,
    /// (last millisecond used, sequence within it)
    state: Mutex<(i64, i64)>,
}

impl IdGenerator {
    /// `node` must be unique among processes writing to one database (0 to 1023).
    pub fn new(node: u16) -> Self {
        Self { node: i64::from(node) & ((1 << NODE_BITS) - 1), state: Mutex::new((0, 0)) }
    }

    /// A fresh id, larger than every id this generator made before, whatever the clock does.
    pub fn next(&self, now_ms: i64) -> i64 {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last_ms, sequence) = *state;
        let (ms, sequence) = if now_ms > last_ms {
            (now_ms, 0)
        } else if sequence < SEQUENCE_MAX {
            (last_ms, sequence + 1)
        } else {
            // 4,096 ids in one millisecond: borrow the next millisecond.
            (last_ms + 1, 0)
        };
        *state = (ms, sequence);
        ((ms - EPOCH_MS).max(0) << (NODE_BITS + SEQUENCE_BITS)) | (self.node << SEQUENCE_BITS) | sequence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_even_within_a_millisecond_and_backwards_clocks() {
        let ids = IdGenerator::new(3);
        let mut last = 0;
        for now_ms in [EPOCH_MS + 10, EPOCH_MS + 10, EPOCH_MS + 5, EPOCH_MS + 11] {
            for _ in 0..5000 {
                let id = ids.next(now_ms);
                assert!(id > last);
                last = id;
            }
        }
        assert_eq!((ids.next(EPOCH_MS + 1_000_000) >> SEQUENCE_BITS) & 1023, 3);
    }
}
