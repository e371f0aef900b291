//! Seeded random streams for trials and initial weights.
//!
//! Every random draw in psychrnn goes through a [`TrialRng`] that the caller creates from an
//! explicit seed, so the same seed gives the same numbers. Two streams exist:
//!
//! * [`TrialRng::seeded`]: xoshiro256++ with a ziggurat normal sampler (fast; the default).
//! * [`TrialRng::numpy`]: NumPy's legacy `RandomState` (MT19937 seeded with `init_genrand`,
//!   53-bit doubles, polar Box–Muller with a cached second value, masked rejection for
//!   `choice`). `TrialRng::numpy(s)` followed by the draws PsychRNN makes reproduces
//!   `np.random.seed(s)` in PsychRNN bit for bit.
//!
//! ```
//! use psychrnn::rng::TrialRng;
//! let mut rng = TrialRng::numpy(0);
//! // np.random.seed(0); np.random.random_sample() == 0.5488135039273248
//! assert_eq!(rng.uniform(), 0.5488135039273248);
//! ```

use rand::Rng as _;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_mt::Mt;
use rand_xoshiro::Xoshiro256PlusPlus;

/// NumPy's legacy `RandomState` stream.
#[derive(Clone, Debug)]
pub struct NumpyRandomState {
    mt: Mt,
    cached_gauss: Option<f64>,
}

impl NumpyRandomState {
    /// `np.random.seed(seed)` (seeds must fit in 32 bits, as in NumPy).
    pub fn new(seed: u32) -> Self {
        Self {
            mt: Mt::new(seed),
            cached_gauss: None,
        }
    }

    /// One raw 32-bit MT19937 output.
    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// `np.random.random_sample()`: `((a >> 5)·2^26 + (b >> 6)) / 2^53`.
    pub fn random_sample(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67108864.0 + b) / 9007199254740992.0
    }

    /// `np.random.randn()`: legacy polar Box–Muller, caching the second value.
    pub fn gauss(&mut self) -> f64 {
        if let Some(g) = self.cached_gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `np.random.choice(n)` / `np.random.choice(seq)` with `len(seq) == n`, no weights:
    /// masked rejection sampling on 32-bit outputs.
    pub fn choice(&mut self, n: usize) -> usize {
        assert!(n > 0, "choice from an empty set");
        let max = (n - 1) as u64;
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        if max <= u32::MAX as u64 {
            loop {
                let v = (self.next_u32() as u64) & mask;
                if v <= max {
                    return v as usize;
                }
            }
        } else {
            loop {
                let v = (((self.next_u32() as u64) << 32) | self.next_u32() as u64) & mask;
                if v <= max {
                    return v as usize;
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Stream {
    Seeded(Xoshiro256PlusPlus),
    // Boxed: the MT19937 state is 2.5 kB.
    Numpy(Box<NumpyRandomState>),
}

/// A seeded random stream: the only source of randomness psychrnn uses.
#[derive(Clone, Debug)]
pub struct TrialRng(Stream);

impl TrialRng {
    /// The default fast stream (xoshiro256++), seeded by a 64-bit integer.
    pub fn seeded(seed: u64) -> Self {
        TrialRng(Stream::Seeded(Xoshiro256PlusPlus::seed_from_u64(seed)))
    }

    /// NumPy's legacy global stream after `np.random.seed(seed)`.
    pub fn numpy(seed: u32) -> Self {
        TrialRng(Stream::Numpy(Box::new(NumpyRandomState::new(seed))))
    }

    /// True for the NumPy-compatible stream.
    pub fn is_numpy(&self) -> bool {
        matches!(self.0, Stream::Numpy(_))
    }

    /// Uniform on `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        match &mut self.0 {
            Stream::Seeded(r) => (r.next_u64() >> 11) as f64 * (1.0 / 9007199254740992.0),
            Stream::Numpy(r) => r.random_sample(),
        }
    }

    /// Uniform on `[lo, hi)`, computed as NumPy does: `lo + (hi - lo)·u`.
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        match &mut self.0 {
            Stream::Seeded(r) => StandardNormal.sample(r),
            Stream::Numpy(r) => r.gauss(),
        }
    }

    /// Uniform index in `0..n` (`n > 0`).
    pub fn choice(&mut self, n: usize) -> usize {
        match &mut self.0 {
            Stream::Seeded(r) => {
                assert!(n > 0, "choice from an empty set");
                // Lemire's nearly-divisionless method would be faster; rejection keeps it exact.
                let zone = u64::MAX - (u64::MAX % n as u64 + 1) % n as u64;
                loop {
                    let v = r.next_u64();
                    if v <= zone {
                        return (v % n as u64) as usize;
                    }
                }
            }
            Stream::Numpy(r) => r.choice(n),
        }
    }

    /// A fresh independent seed drawn from this stream (for per-trial or per-step substreams).
    pub fn next_seed(&mut self) -> u64 {
        match &mut self.0 {
            Stream::Seeded(r) => r.next_u64(),
            Stream::Numpy(r) => ((r.next_u32() as u64) << 32) | r.next_u32() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values printed by NumPy 2.x: np.random.seed(0); [np.random.random_sample() for _ in 3]
    // and np.random.seed(0); np.random.randn(3).
    #[test]
    fn numpy_seed_zero_known_values() {
        let mut r = NumpyRandomState::new(0);
        assert_eq!(r.random_sample(), 0.5488135039273248);
        assert_eq!(r.random_sample(), 0.7151893663724195);
        assert_eq!(r.random_sample(), 0.6027633760716439);
        let mut r = NumpyRandomState::new(0);
        assert_eq!(r.gauss(), 1.764052345967664);
        assert_eq!(r.gauss(), 0.4001572083672233);
        assert_eq!(r.gauss(), 0.9787379841057392);
    }

    #[test]
    fn seeded_stream_is_reproducible_and_in_range() {
        let mut a = TrialRng::seeded(7);
        let mut b = TrialRng::seeded(7);
        for _ in 0..1000 {
            let u = a.uniform();
            assert_eq!(u, b.uniform());
            assert!((0.0..1.0).contains(&u));
            let c = a.choice(5);
            assert_eq!(c, b.choice(5));
            assert!(c < 5);
            assert_eq!(a.normal(), b.normal());
        }
    }

    #[test]
    fn seeded_normal_has_unit_moments() {
        let mut r = TrialRng::seeded(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // 5 standard errors.
        assert!(mean.abs() < 5.0 / (n as f64).sqrt(), "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(), "var {var}");
    }
}
