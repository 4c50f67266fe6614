//! The MicroLambda paper's three workloads (`examples/paper/`: face, ride, stress) as a client drives them: the
//! module and entry of each, its opening input, and the requests a client sends it and when. The requests are
//! made here and only here: a scenario's session streams (the loadgen sends them), `microlambda-bench paper`, and
//! the reference run in plain CPython (`examples/paper/local.py`, given the same requests as JSON) all take them
//! from [`Workload::requests`].
use super::pattern::exponential;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// How a workload's requests are spaced in time: the key a scenario's `[[sessions]]` entry gives it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Camera frames at a fixed rate: `fps`, frames per second.
    Fps,
    /// Poisson arrivals: `rate`, requests per second on average.
    Rate,
    /// A fixed period: `every_s`, seconds between two requests.
    EveryS,
}

impl Pace {
    /// The scenario key.
    pub fn key(self) -> &'static str {
        match self {
            Pace::Fps => "fps",
            Pace::Rate => "rate",
            Pace::EveryS => "every_s",
        }
    }

    /// What the key means, for error messages.
    pub fn meaning(self) -> &'static str {
        match self {
            Pace::Fps => "camera frames per second",
            Pace::Rate => "Poisson requests per second",
            Pace::EveryS => "seconds of wall time between two windows",
        }
    }
}

/// One of the paper's workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub name: &'static str,
    /// Its module's file name, in `examples/paper/`.
    pub file: &'static str,
    /// The session's entry: a generator function or a class with `handle`.
    pub entry: &'static str,
    pub pace: Pace,
}

/// Mean time between two ride requests in the ride's own clock (the `t` of a request), seconds.
pub const RIDE_MEAN_GAP_S: f64 = 10.0;

pub const WORKLOADS: [Workload; 3] = [
    Workload { name: "face", file: "face.py", entry: "faces", pace: Pace::Fps },
    Workload { name: "ride", file: "ride.py", entry: "Dispatch", pace: Pace::Rate },
    Workload { name: "stress", file: "stress.py", entry: "stress", pace: Pace::EveryS },
];

impl Workload {
    /// The workload of a module file, by its file name (`examples/paper/ride.py`: ride).
    pub fn of_file(path: &Path) -> Option<&'static Workload> {
        let name = path.file_name()?.to_str()?;
        WORKLOADS.iter().find(|w| w.file == name)
    }

    /// The workload named `name`.
    pub fn named(name: &str) -> Option<&'static Workload> {
        WORKLOADS.iter().find(|w| w.name == name)
    }

    /// The session's opening input: twelve taxis (ride), the default tolerance (face), nothing (stress).
    pub fn opening(&self) -> Value {
        match self.name {
            "ride" => json!({"taxis": 12, "seed": 5}),
            _ => Value::Null,
        }
    }

    /// `n` requests, from a generator seeded with `seed` (a prefix of any longer list from the same seed):
    /// camera frames in turn (face); Poisson ride requests, one every [`RIDE_MEAN_GAP_S`] of the ride's clock on
    /// average, between random nodes (ride); 30 s windows at changing heart and breathing rates (stress).
    pub fn requests(&self, n: usize, seed: u64) -> Vec<Value> {
        let mut rnd = StdRng::seed_from_u64(seed);
        let mut t = 0.0f64;
        (0..n)
            .map(|i| match self.name {
                "face" => json!(i % 5),
                "ride" => {
                    t += exponential(&mut rnd, RIDE_MEAN_GAP_S);
                    json!({"pickup": rnd.random_range(0..4000), "dropoff": rnd.random_range(0..4000),
                           "t": (t * 1000.0).round() / 1000.0})
                }
                _ => json!({"hr": rnd.random_range(60..115), "rr": rnd.random_range(11..26), "seed": i + 1}),
            })
            .collect()
    }

    /// When each of `requests` (from [`Workload::requests`]) is sent, after the session's t=0 (its opening), at
    /// `pace` in this workload's unit ([`Workload::pace`]): frame `i` (from 0) at `(i + 1) / fps`; window `i`
    /// at `(i + 1) * every_s`; a ride request at its own `t` scaled so that requests arrive at `rate` per second
    /// (the ride's clock runs `RIDE_MEAN_GAP_S * rate` times as fast as the wall's: Poisson arrivals either way).
    pub fn times(&self, requests: &[Value], pace: f64) -> Vec<Duration> {
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let s = match self.pace {
                    Pace::Fps => (i + 1) as f64 / pace,
                    Pace::EveryS => (i + 1) as f64 * pace,
                    Pace::Rate => r["t"].as_f64().unwrap_or_default() / (RIDE_MEAN_GAP_S * pace),
                };
                Duration::from_secs_f64(s.max(0.0))
            })
            .collect()
    }

    /// The requests sent within `within` of the session's t=0 at `pace`, at most `limit`, with their times.
    pub fn schedule(&self, seed: u64, pace: f64, within: Duration, limit: Option<usize>) -> Vec<(Duration, Value)> {
        // Requests come in time order, so the first that falls outside ends the list; grow until one does.
        let mut n = 16;
        loop {
            let want = limit.map_or(n, |l| n.min(l));
            let requests = self.requests(want, seed);
            let times = self.times(&requests, pace);
            let past = times.last().is_some_and(|t| *t >= within);
            if past || Some(want) == limit || want == 0 {
                return times.into_iter().zip(requests).take_while(|(t, _)| *t < within).collect();
            }
            n *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_found_by_file_name_only_among_the_three() {
        assert_eq!(Workload::of_file(Path::new("../../examples/paper/ride.py")).map(|w| w.entry), Some("Dispatch"));
        assert_eq!(Workload::of_file(Path::new("face.py")).map(|w| w.name), Some("face"));
        assert_eq!(Workload::of_file(Path::new("examples/paper/local.py")), None);
        assert_eq!(Workload::of_file(Path::new("loadgen/jobs/counter.py")), None);
        assert_eq!(Workload::named("stress").map(|w| w.pace), Some(Pace::EveryS));
    }

    #[test]
    fn requests_are_seeded_and_a_longer_list_extends_a_shorter_one() {
        for w in &WORKLOADS {
            let (a, b) = (w.requests(20, 3), w.requests(7, 3));
            assert_eq!(&a[..7], &b[..], "{}", w.name);
            if w.name != "face" {
                assert_ne!(a, w.requests(20, 4), "{}: another seed, other requests", w.name);
            }
        }
        // The shapes examples/paper's modules take.
        assert_eq!(WORKLOADS[0].requests(6, 1), [0, 1, 2, 3, 4, 0].map(|i| json!(i)));
        let ride = WORKLOADS[1].requests(50, 1);
        assert!(ride.windows(2).all(|w| w[0]["t"].as_f64() < w[1]["t"].as_f64()), "{ride:?}");
        assert!(ride.iter().all(|r| r["pickup"].as_u64() < Some(4000) && r["dropoff"].as_u64() < Some(4000)));
        let stress = WORKLOADS[2].requests(3, 1);
        assert_eq!(stress.iter().map(|r| r["seed"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn schedules_follow_the_pace_and_stop_at_the_window_or_the_limit() {
        let s = |w: usize, pace: f64, within_s: f64, limit: Option<usize>| {
            WORKLOADS[w].schedule(9, pace, Duration::from_secs_f64(within_s), limit)
        };
        let secs = |v: &[(Duration, Value)]| v.iter().map(|(t, _)| t.as_secs_f64()).collect::<Vec<_>>();
        // Face at 2 fps for 3 s: frames at 0.5, 1, ..., 2.5 s.
        assert_eq!(secs(&s(0, 2.0, 3.0, None)), [0.5, 1.0, 1.5, 2.0, 2.5]);
        // Stress every 4 s for 10 s: two windows; with a limit of one, one.
        assert_eq!(secs(&s(2, 4.0, 10.0, None)), [4.0, 8.0]);
        assert_eq!(s(2, 4.0, 10.0, Some(1)).len(), 1);
        // Ride at 2 per second for 200 s: about 400 Poisson arrivals, in order, each at its own t / 20.
        let ride = s(1, 2.0, 200.0, None);
        assert!((340..460).contains(&ride.len()), "{}", ride.len());
        assert!(ride.windows(2).all(|w| w[0].0 <= w[1].0));
        for (at, r) in &ride {
            assert!((at.as_secs_f64() - r["t"].as_f64().unwrap() / 20.0).abs() < 1e-9);
        }
        // The schedule's requests are the workload's requests, from the same seed.
        let want = WORKLOADS[1].requests(ride.len(), 9);
        assert_eq!(ride.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), want);
        assert!(s(0, 1.0, 0.5, None).is_empty());
    }
}
