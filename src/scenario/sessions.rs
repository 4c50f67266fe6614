//! `[[sessions]]`: session streams. Each opens `count` sessions of one of the paper's workloads
//! (`examples/paper/`: face, ride, stress; [`super::paper`]) at t=0 and sends each its own requests, in order, at
//! the workload's pace: camera frames at `fps` (face), Poisson ride requests at `rate` (ride), stress windows
//! `every_s` (stress). The requests themselves come from [`Workload::requests`], seeded per session from the
//! scenario's seed, so the testbed knows what each session was sent and can run it again in plain CPython.
use super::paper::{Pace, Workload, WORKLOADS};
use super::{check, derive_seed, invalid, read_module, ScenarioError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most sessions one stream opens.
pub const MAX_SESSIONS: usize = 64;
/// Hex digits of a run's t=0 (Unix ms) in a session id, reserved when checking its length: 11 until the year
/// 2527, one more after.
const T0_HEX_DIGITS: usize = 12;

/// A validated `[[sessions]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStream {
    /// A token, unique among the streams; in every session id of the stream.
    pub name: String,
    /// Resolved path of the workload's module.
    pub file: PathBuf,
    /// The module's content, as submitted.
    pub source: String,
    /// Which of the paper's workloads the file is (by its name).
    pub workload: &'static Workload,
    /// Every session's opening input.
    pub opening: Value,
    /// Sessions opened.
    pub count: usize,
    /// The value of the workload's pace key ([`Workload::pace`]: `fps`, `rate` or `every_s`).
    pub pace: f64,
    /// At most this many requests per session (none: until the end of the load phase).
    pub requests: Option<usize>,
    /// Submitted with each session: every request runs in slices of at most this.
    pub r_limit_ms: Option<u64>,
}

impl SessionStream {
    /// The session's entry (fixed by its workload).
    pub fn entry(&self) -> &'static str {
        self.workload.entry
    }

    /// The job id of session `k` (1..=count) of this stream in a scenario run that started at `t0_unix_ms`:
    /// `<scenario>-<t0 in hex>-<stream>-<k>`, unique across runs, derivable by whoever knows t=0.
    pub fn session_id(&self, scenario: &str, t0_unix_ms: u64, k: usize) -> String {
        format!("{scenario}-{t0_unix_ms:x}-{}-{k}", self.name)
    }

    /// What session `k` is sent within `within` of t=0, in order, with when: its requests from the workload's
    /// generator, seeded from the scenario's `seed`, the stream and `k`.
    pub fn schedule(&self, seed: u64, k: usize, within: Duration) -> Vec<(Duration, Value)> {
        let seed = derive_seed(seed, &format!("sessions.{}.{k}", self.name));
        self.workload.schedule(seed, self.pace, within, self.requests)
    }
}

/// `[[sessions]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSessions {
    name: String,
    file: PathBuf,
    #[serde(default = "one")]
    count: usize,
    #[serde(default)]
    opening: Option<Value>,
    #[serde(default)]
    fps: Option<f64>,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    every_s: Option<f64>,
    #[serde(default)]
    requests: Option<usize>,
    #[serde(default)]
    r_limit_ms: Option<u64>,
}

fn one() -> usize {
    1
}

/// The names of the workload files a stream may name, for error messages.
fn known_files() -> String {
    WORKLOADS.iter().map(|w| w.file).collect::<Vec<_>>().join(", ")
}

/// Validate the `[[sessions]]` entries of scenario `scenario`, reading each workload's module from `base_dir`.
pub(super) fn validate(
    scenario: &str,
    entries: Vec<FileSessions>,
    base_dir: &Path,
) -> Result<Vec<SessionStream>, ScenarioError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, s) in entries.into_iter().enumerate() {
        let at = |k: &str| format!("sessions[{i}].{k}");
        check(crate::wire::is_valid_token(&s.name), &at("name"), || {
            format!("{:?} must be 1..64 characters of A-Z a-z 0-9 _ -", s.name)
        })?;
        check(names.insert(s.name.clone()), &at("name"), || format!("{:?} is used by another stream", s.name))?;
        check((1..=MAX_SESSIONS).contains(&s.count), &at("count"), || {
            format!("{} must be 1..{MAX_SESSIONS}", s.count)
        })?;
        // `<scenario>-<t0>-<stream>-<k>` must stay a token of at most 64 characters.
        let longest = scenario.len() + T0_HEX_DIGITS + s.name.len() + s.count.to_string().len() + 3;
        check(longest <= 64, &at("name"), || {
            format!(
                "{:?} makes session ids of {longest} characters (<scenario>-<t0>-<stream>-<k>, at most 64): \
                 shorten the scenario's or the stream's name",
                s.name
            )
        })?;
        let workload = Workload::of_file(&s.file).ok_or_else(|| {
            invalid(
                at("file"),
                format!(
                    "unknown workload file {}: a session stream drives one of the paper's workloads of \
                     examples/paper/ ({}), whose requests microlambda knows how to make",
                    s.file.display(),
                    known_files()
                ),
            )
        })?;
        let given = [(Pace::Fps, s.fps), (Pace::Rate, s.rate), (Pace::EveryS, s.every_s)];
        let key = workload.pace.key();
        if let Some((other, _)) = given.iter().find(|(p, v)| *p != workload.pace && v.is_some()) {
            return Err(invalid(
                at(other.key()),
                format!(
                    "a {} stream is paced by {key} ({}), not {}",
                    workload.name,
                    workload.pace.meaning(),
                    other.key()
                ),
            ));
        }
        let pace = given.iter().find(|(p, _)| *p == workload.pace).and_then(|(_, v)| *v).ok_or_else(|| {
            invalid(at(key), format!("a {} stream needs {key} ({})", workload.name, workload.pace.meaning()))
        })?;
        let (lo, hi) = match workload.pace {
            Pace::Fps | Pace::Rate => (0.0, 1000.0),
            Pace::EveryS => (0.0, 86_400.0),
        };
        check(pace.is_finite() && pace > lo && pace <= hi, &at(key), || {
            format!("{pace} must be above {lo} and at most {hi}")
        })?;
        check(s.requests != Some(0), &at("requests"), || "must be at least 1 (or absent: no limit)".into())?;
        check(s.r_limit_ms != Some(0), &at("r_limit_ms"), || "must be above 0 (or absent)".into())?;
        let (file, source) = read_module(base_dir, &s.file, at("file"))?;
        // Known by its name, the module must still be that workload's: it defines the entry a session opens.
        let defines = |kw: &str| source.lines().any(|l| l.starts_with(&format!("{kw} {}", workload.entry)));
        check(defines("def") || defines("class"), &at("file"), || {
            format!(
                "{} is not the paper's {} workload: it defines no {} (examples/paper/{})",
                file.display(),
                workload.name,
                workload.entry,
                workload.file
            )
        })?;
        out.push(SessionStream {
            name: s.name,
            file,
            source,
            workload,
            opening: s.opening.unwrap_or_else(|| workload.opening()),
            count: s.count,
            pace,
            requests: s.requests,
            r_limit_ms: s.r_limit_ms,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Scenario;
    use super::*;
    use serde_json::json;

    const BASE: &str = r#"
name = "p"
duration_s = 30
seed = 3

[[sessions]]
name = "cam"
file = "face.py"
count = 2
fps = 0.5

[[sessions]]
name = "taxi"
file = "ride.py"
rate = 1.5
opening = { taxis = 4, seed = 9 }
requests = 10
r_limit_ms = 2000

[[sessions]]
name = "ecg"
file = "stress.py"
every_s = 5
"#;

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, text) in [
            ("face.py", "def faces(tolerance):\n    yield 1\n"),
            ("ride.py", "class Dispatch:\n    pass\n"),
            ("stress.py", "def stress(_):\n    yield 1\n"),
            ("other.py", "def main(x):\n    return x\n"),
        ] {
            std::fs::write(d.path().join(f), text).unwrap();
        }
        std::fs::create_dir(d.path().join("jobs")).unwrap();
        std::fs::write(d.path().join("jobs/ride.py"), "def main(x):\n    return x\n").unwrap();
        d
    }

    #[test]
    fn session_streams_parse_with_their_workloads_defaults() {
        let d = dir();
        let s = Scenario::from_str(BASE, d.path()).unwrap();
        assert!(s.jobs.is_empty() && s.stream.is_none());
        let names: Vec<_> = s.sessions.iter().map(|x| (x.name.as_str(), x.workload.name, x.entry())).collect();
        assert_eq!(names, [("cam", "face", "faces"), ("taxi", "ride", "Dispatch"), ("ecg", "stress", "stress")]);
        let cam = &s.sessions[0];
        assert_eq!((cam.count, cam.pace, cam.requests, cam.r_limit_ms), (2, 0.5, None, None));
        assert_eq!((cam.opening.clone(), cam.source.as_str()), (Value::Null, "def faces(tolerance):\n    yield 1\n"));
        assert_eq!(cam.file, d.path().join("face.py"));
        let taxi = &s.sessions[1];
        assert_eq!((taxi.count, taxi.pace, taxi.requests, taxi.r_limit_ms), (1, 1.5, Some(10), Some(2000)));
        assert_eq!(taxi.opening, json!({"taxis": 4, "seed": 9}));
        assert_eq!(s.sessions[2].opening, Value::Null);
        assert_eq!(s.job_stream().count(), 0, "no [[jobs]]: no job stream");

        assert_eq!(cam.session_id("p", 0x18f_0000_0000, 2), "p-18f00000000-cam-2");
        // Each session its own requests, the same for the same scenario seed.
        let within = s.duration();
        assert_eq!(taxi.schedule(3, 1, within).len(), 10, "the limit");
        assert_eq!(taxi.schedule(3, 1, within), taxi.schedule(3, 1, within));
        assert_ne!(taxi.schedule(3, 1, within), taxi.schedule(3, 2, within));
        assert_ne!(taxi.schedule(3, 1, within), taxi.schedule(4, 1, within));
        assert_eq!(cam.schedule(3, 1, within).len(), 14, "frames at 2, 4, ..., 28 s");
        assert_eq!(s.sessions[2].schedule(3, 1, within).len(), 5, "windows at 5, 10, ..., 25 s");
    }

    #[test]
    fn bad_session_streams_name_their_key() {
        let d = dir();
        let long_name = format!("name = \"{}\"", "c".repeat(50));
        // (what to replace in BASE, by what, the key the error names, a word of the message)
        let cases: Vec<(&str, &str, &str, &str)> = vec![
            ("file = \"face.py\"", "file = \"other.py\"", "sessions[0].file", "unknown workload file other.py"),
            ("file = \"face.py\"", "file = \"local.py\"", "sessions[0].file", "face.py, ride.py, stress.py"),
            ("file = \"face.py\"", "file = \"sub/face.py\"", "sessions[0].file", "cannot read"),
            ("file = \"ride.py\"", "file = \"jobs/ride.py\"", "sessions[1].file", "not the paper's ride workload"),
            ("name = \"cam\"", "name = \"a b\"", "sessions[0].name", "characters"),
            ("name = \"taxi\"", "name = \"cam\"", "sessions[1].name", "another stream"),
            ("name = \"cam\"", &long_name, "sessions[0].name", "shorten"),
            ("count = 2", "count = 0", "sessions[0].count", "1..64"),
            ("count = 2", "count = 65", "sessions[0].count", "1..64"),
            ("fps = 0.5", "fps = 0", "sessions[0].fps", "above 0"),
            ("fps = 0.5", "fps = nan", "sessions[0].fps", "above 0"),
            ("fps = 0.5", "", "sessions[0].fps", "needs fps"),
            ("fps = 0.5", "fps = 0.5\nrate = 2", "sessions[0].rate", "paced by fps"),
            ("rate = 1.5", "every_s = 3", "sessions[1].every_s", "paced by rate"),
            ("every_s = 5", "fps = 1", "sessions[2].fps", "paced by every_s"),
            ("every_s = 5", "every_s = -5", "sessions[2].every_s", "above 0"),
            ("requests = 10", "requests = 0", "sessions[1].requests", "at least 1"),
            ("r_limit_ms = 2000", "r_limit_ms = 0", "sessions[1].r_limit_ms", "above 0"),
        ];
        for (old, new, field, word) in cases {
            assert!(BASE.contains(old), "{old:?} not in the base scenario");
            let text = BASE.replacen(old, new, 1);
            match Scenario::from_str(&text, d.path()) {
                Err(e) => {
                    assert_eq!(e.field(), Some(field), "{old:?} -> {new:?}: {e}");
                    assert!(e.to_string().contains(word), "{old:?} -> {new:?}: {e}");
                }
                Ok(_) => panic!("{old:?} -> {new:?}: accepted"),
            }
        }
        // Malformed entries: an unknown key, a wrong type, a missing key (TOML errors naming the key).
        for (old, new, word) in [
            ("count = 2", "count = 2\nfrequency = 3", "frequency"),
            ("count = 2", "count = \"two\"", "count"),
            ("file = \"face.py\"\n", "", "file"),
            ("requests = 10", "requests = -1", "requests"),
        ] {
            let text = BASE.replacen(old, new, 1);
            match Scenario::from_str(&text, d.path()) {
                Err(ScenarioError::Toml(e)) => assert!(e.to_string().contains(word), "{old:?} -> {new:?}: {e}"),
                other => panic!("{old:?} -> {new:?}: want a TOML error, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_scenario_needs_jobs_or_sessions_and_jobs_need_a_stream() {
        let d = dir();
        let head = "name = \"m\"\nduration_s = 5\n";
        let jobs = "[[jobs]]\nname = \"a\"\nfile = \"other.py\"\n";
        let stream = "[stream]\nrate = 1\n";
        let field = |text: String| Scenario::from_str(&text, d.path()).err().and_then(|e| e.field().map(String::from));
        assert_eq!(field(head.to_string()).as_deref(), Some("jobs"));
        assert_eq!(field(format!("{head}{jobs}")).as_deref(), Some("stream"));
        let sessions = "[[sessions]]\nname = \"s\"\nfile = \"stress.py\"\nevery_s = 1\n";
        assert_eq!(field(format!("{head}{stream}")).as_deref(), Some("jobs"));
        assert_eq!(field(format!("{head}{stream}{sessions}")).as_deref(), Some("stream"));
        assert_eq!(field(format!("{head}{stream}{jobs}")), None);
        assert_eq!(field(format!("{head}{sessions}")), None);
        let s = Scenario::from_str(&format!("{head}{stream}{jobs}{sessions}"), d.path()).unwrap();
        assert_eq!((s.jobs.len(), s.sessions.len()), (1, 1));
    }
}
