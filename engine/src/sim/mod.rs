//! Deterministic stand-ins for what makes a distributed run nondeterministic,
//! for simulating whole ensembles in one thread: a seeded random source and a
//! network of messages with delays, losses, duplicates and partitions. A
//! simulated run is a function of its seed, so a failing one replays exactly.

mod net;
mod rng;

pub use net::{Faults, Network};
pub use rng::Rng;

/// A setting of a seeded run (how many seeds, steps, ...) from the
/// environment variable `name`, or `default` when it is unset or not a value.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
