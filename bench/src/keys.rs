//! Seeded randomness: a small PRNG and the key choosers (`uniform`, `zipfian`).
//! Each worker gets its own generator seeded from `--seed` and its index, so
//! a run's sequence of keys is reproducible.

/// SplitMix64: tiny, fast, statistically fine for picking keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// How keys are drawn (`--dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    Uniform,
    /// YCSB's zipfian with constant 0.99: key 0 is the hottest.
    Zipfian,
}

/// Draws key indices in [0, n).
#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform(u64),
    Zipfian(Zipf),
}

impl KeyChooser {
    pub fn new(dist: Dist, n: u64) -> KeyChooser {
        match dist {
            Dist::Uniform => KeyChooser::Uniform(n),
            Dist::Zipfian => KeyChooser::Zipfian(Zipf::new(n, ZIPF_THETA)),
        }
    }

    pub fn next(&self, rng: &mut Rng) -> u64 {
        match self {
            KeyChooser::Uniform(n) => rng.below(*n),
            KeyChooser::Zipfian(z) => z.next(rng),
        }
    }
}

/// YCSB's default skew.
pub const ZIPF_THETA: f64 = 0.99;

/// Gray et al.'s zipfian generator ("Quickly generating billion-record
/// synthetic databases"), as in YCSB: O(n) set-up, O(1) per draw.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    pub fn new(n: u64, theta: f64) -> Zipf {
        let n = n.max(1);
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2.min(n));
        let alpha = 1.0 / (1.0 - theta);
        let eta = if n > 1 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            1.0
        };
        Zipf {
            n,
            theta,
            alpha,
            zetan,
            eta,
        }
    }

    pub fn next(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let v = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_keys() {
        let chooser = KeyChooser::new(Dist::Uniform, 1000);
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(chooser.next(&mut a), chooser.next(&mut b));
        }
    }

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let chooser = KeyChooser::new(Dist::Zipfian, 1000);
        let mut rng = Rng::new(1);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[chooser.next(&mut rng) as usize] += 1;
        }
        // Key 0 takes about 1/zeta(1000) ~ 13% of draws; the median key far less.
        assert!(counts[0] > 8_000, "{}", counts[0]);
        assert!(counts[500] < 200, "{}", counts[500]);
        let uniform = KeyChooser::new(Dist::Uniform, 10);
        assert!((0..1000).all(|_| uniform.next(&mut rng) < 10));
    }
}
