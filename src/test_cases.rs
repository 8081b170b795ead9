//! Deterministic pseudo-random cases for property tests: the same cases every run, so a failure
//! reproduces, without a dependency for it.

/// A stream of pseudo-random numbers from a 64-bit linear congruential generator (Knuth's
/// MMIX constants), seeded by the test; the low bits, which cycle quickly, are dropped.
pub(crate) struct Cases(pub(crate) u64);

impl Cases {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
}
