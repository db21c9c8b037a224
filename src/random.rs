//! Seeded random streams: every order the shards take, and the trainer's initial weights,
//! are pure functions of seeds.

/// What each seeded stream is for, so that no two uses of one seed draw the same numbers.
pub mod streams {
    pub const HOLD_OUT: u64 = 1;
    pub const DRAW: u64 = 2;
    pub const ORDER: u64 = 3;
    pub const VALIDATION: u64 = 4;
    pub const SHARD_ORDER: u64 = 5;
    pub const ROW_ORDER: u64 = 6;
    /// Initial model weights (the trainer).
    pub const INIT: u64 = 7;
    /// Which step retrospective enhancement moves, and where (synthesis).
    pub const RETROSPECTIVE: u64 = 8;
}

/// A seeded splitmix64 stream: every order the shards take is a pure function of seeds.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A stream for `seed` and the parts that make this use of it distinct.
    pub fn new(seed: u64, parts: &[u64]) -> SplitMix {
        let mut rng = SplitMix(seed);
        for &p in parts {
            rng.0 ^= p;
            rng.0 = rng.next_u64();
        }
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
