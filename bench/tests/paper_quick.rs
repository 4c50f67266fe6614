//! `microlambda-bench paper --quick` end to end (the third phase of `make test`): the real command on the
//! paper's three workloads with their real libraries, a real worker per checkpoint run and a real mesh (a
//! nats-server with its monitoring endpoint, placement, two nodes) for the batches and sessions. It asserts what
//! the run must produce, not how fast: every figure's table and plot, checkpoints at the instants asked for,
//! the lower bound measured, every batch's replies equal to plain CPython's, the server's counters read.
use std::path::Path;
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn paper_quick_writes_every_figure_with_exact_replies() {
    let python = Path::new(ROOT).join(".venv/bin/python");
    let probe = Command::new(&python).args(["-c", "import face_recognition, osmnx, neurokit2, sklearn"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: the venv lacks the workloads' libraries (run `make setup-libs`)");
        return;
    }
    let out_dir = std::env::temp_dir().join(format!("paper-quick-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_microlambda-bench"))
        .args(["paper", "--quick", "--root", ROOT, "--out"])
        .arg(&out_dir)
        .env("MICROLAMBDA_PYTHON", &python)
        .output()
        .expect("microlambda-bench runs");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");
    let md = std::fs::read_to_string(out_dir.join("EVALUATION.md")).expect("EVALUATION.md written");
    for heading in ["## Figs. 4 and 5", "## Fig. 6", "## Fig. 7", "`microlambda-bench paper --quick`"] {
        assert!(md.contains(heading), "no {heading} in\n{md}");
    }
    for svg in ["fig4_checkpoint_time.svg", "fig5_checkpoint_size.svg", "fig6_execution_time.svg", "fig7_network.svg"] {
        let s = std::fs::read_to_string(out_dir.join("evaluation").join(svg)).expect(svg);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>") && s.contains("<rect"), "{svg}: {s}");
        assert!(md.contains(&format!("](evaluation/{svg})")), "{svg} not linked");
    }
    let rows = |prefix: &str| md.lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect::<Vec<_>>();
    for w in ["face", "ride", "stress"] {
        let r = rows(&format!("| {w} |"));
        // Figs. 4/5: one row, checkpoints taken, pickle.dumps measured. Fig. 6: the long-running run and r_limit 2 s,
        // replies exact. Fig. 7: those two, the session's opening and its requests.
        assert_eq!(r.len(), 1 + 2 + 4, "{w}: {r:#?}");
        assert!(r[5].contains("| session opening") && r[6].contains("| session requests"), "{w}: {r:#?}");
        // A request may wait out its 2 s deadline inside one long call into C (dlib's detector) on a loaded machine.
        let taken = r[0].split('|').nth(2).unwrap_or_default().trim().to_string();
        let (got, asked) = taken.split_once(" / ").expect("taken / asked");
        assert!(asked == "4" && got.parse::<u32>().is_ok_and(|n| n >= 1), "{w}: {}", r[0]);
        let pickle = r[0].split('|').nth(6).unwrap_or_default().trim().to_string();
        assert!(!pickle.starts_with('—'), "{w}: no lower bound: {}", r[0]);
        assert!(r[1].contains("none (long-running)") && r[2].contains("| 2 s |"), "{r:#?}");
        assert!(r[1..3].iter().all(|l| l.contains("| exact |")), "{w}: replies differ: {r:#?}");
        for l in &r[3..] {
            let kb: f64 = l.split('|').nth(5).unwrap().trim().parse().expect("in KB");
            assert!(kb > 0.0, "{w}: the server's counters did not move: {l}");
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
