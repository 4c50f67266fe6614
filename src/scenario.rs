//! Scenarios for the testbed: radio load patterns and job streams, shared by the loadgen and the testbed so
//! both read them the same way.
mod pattern;
mod stream;

pub use pattern::{derive_seed, Bursty, Pattern, PatternError, Replay};
pub use stream::{Arrival, JobStream};
