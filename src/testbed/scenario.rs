//! `microlambda testbed --scenario`: a scenario file run end to end on a [`Testbed`] (the load generator
//! playing its radio patterns, job stream and session streams, its faults performed on time, every event
//! recorded), then the scenario report (`report.json`, `report.md`, `timeline.svg`) written from what was
//! observed, outputs and session replies checked against runs without the mesh.
use super::{Testbed, TestbedError};
use crate::bus::Bus;
use crate::config::Settings;
use crate::wire::{now_ms, JobEvent};
use futures::StreamExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What `microlambda testbed --scenario` was asked.
#[derive(Debug, Clone)]
pub struct ScenarioArgs {
    pub file: PathBuf,
    /// Where the report goes (default `target/scenarios/<name>/`).
    pub out: Option<PathBuf>,
    pub nats: Option<String>,
}

/// The files a scenario run wrote, and its report.
#[derive(Debug)]
pub struct ScenarioOutcome {
    pub report: crate::report::Report,
    pub dir: PathBuf,
}

/// Run a scenario end to end: a testbed shaped by its `[mesh]`, the load generator playing its radio patterns,
/// job stream and session streams, its faults performed on time, every event and radio load recorded; then
/// wait for the jobs and the session replies (up to `drain_s`), check every completed output against an
/// uninterrupted run and every session reply against the session run in plain CPython, and write
/// `report.json`, `report.md` and `timeline.svg`.
pub async fn run_scenario(base: Settings, args: ScenarioArgs) -> Result<ScenarioOutcome, TestbedError> {
    use crate::scenario::{FaultAction, Scenario};
    let sc = Scenario::load(&args.file).map_err(|e| TestbedError::NotReady(e.to_string()))?;
    let mut settings = base;
    let m = &sc.mesh;
    settings.testbed.nodes = m.nodes;
    settings.testbed.placements = m.placements;
    settings.node.slots = m.slots;
    settings.node.report_interval_ms = m.report_interval_ms;
    settings.node.checkpoint_interval_ms = m.checkpoint_interval_ms;
    settings.placement.report_interval_ms = m.report_interval_ms;
    settings.placement.missed_reports = m.missed_reports;
    settings.placement.radio_threshold = m.radio_threshold;
    if let Some(z) = m.module_zygotes {
        settings.node.module_zygotes = z;
    }
    settings.testbed.nats_servers = m.nats_servers;
    let mut patterns = sc.radio.patterns.clone();
    settings.testbed.radio_loads = patterns.iter_mut().map(|(_, p)| p.at(Duration::ZERO)).collect();
    settings.validate().map_err(|e| TestbedError::NotReady(e.to_string()))?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("microlambda"));
    let tb = Testbed::start(&settings, args.nats.as_deref(), &exe)?;
    let url = tb.url.clone();
    let bus = tb.connect(&settings.client, "ops", "scenario").await?;
    tb.wait_ready(&bus, Duration::from_secs(60)).await?;
    let tb = std::sync::Arc::new(std::sync::Mutex::new(tb));
    println!("scenario {}: mesh up ({} nodes, NATS {url})", sc.name, sc.mesh.nodes);

    // Record everything, on the testbed's clock.
    type Log<T> = std::sync::Arc<std::sync::Mutex<Vec<T>>>;
    let events: Log<(u64, JobEvent)> = Default::default();
    let radio: Log<(u64, String, f64)> = Default::default();
    let mut ev_sub = bus.subscribe_all_events().await?;
    let mut radio_sub = bus.subscribe_all_radio().await?;
    let log = events.clone();
    let ev_task = tokio::spawn(async move {
        while let Some(m) = ev_sub.next().await {
            if let Ok(e) = serde_json::from_slice::<JobEvent>(&m.payload) {
                log.lock().map(|mut l| l.push((now_ms(), e))).ok();
            }
        }
    });
    let log = radio.clone();
    let radio_task = tokio::spawn(async move {
        while let Some(m) = radio_sub.next().await {
            if let Ok(r) = serde_json::from_slice::<crate::wire::RadioLoad>(&m.payload) {
                let node = Bus::node_of(&m).to_string();
                log.lock().map(|mut l| l.push((now_ms(), node, r.load))).ok();
            }
        }
    });

    // The load generator shares the run's t=0.
    let t0 = now_ms() + 1000;
    let loadgen_exe = exe.with_file_name("microlambda-loadgen");
    let mut std_cmd = Command::new(&loadgen_exe);
    std_cmd.arg("--scenario").arg(&args.file).arg(format!("--nats={url}")).arg(format!("--t0-unix-ms={t0}"));
    std_cmd.stdout(Stdio::piped()).stdin(Stdio::null());
    // The load generator drives every node's radio load and submits: it runs as ops.
    let ops = tb.lock().map(|t| t.auth("ops")).unwrap_or_default();
    for (var, path) in
        [("MICROLAMBDA_NKEY", &ops.nkey), ("MICROLAMBDA_CREDS", &ops.creds), ("MICROLAMBDA_TLS_CA", &ops.tls_ca)]
    {
        if let Some(p) = path {
            std_cmd.env(var, p);
        }
    }
    if std::env::var_os("MICROLAMBDA_LOG").is_none() {
        std_cmd.env("MICROLAMBDA_LOG", "warn");
    }
    crate::proc::die_with_parent(&mut std_cmd);
    let mut cmd = tokio::process::Command::from(std_cmd);
    cmd.kill_on_drop(true);
    let loadgen = cmd.spawn().map_err(|source| TestbedError::Spawn {
        what: format!("{} (cargo build --workspace)", loadgen_exe.display()),
        source,
    })?;

    // Faults, on time. They run on one thread that lives until the testbed has stopped: a process started by a
    // fault (the restarted nats-server) dies with the thread that started it (PR_SET_PDEATHSIG).
    let faults: Log<(u64, String)> = Default::default();
    let (fault_tx, fault_rx) = std::sync::mpsc::channel::<crate::scenario::Fault>();
    let (f_tb, f_log) = (tb.clone(), faults.clone());
    let fault_thread = std::thread::spawn(move || {
        for f in fault_rx {
            let target = f.target.clone().unwrap_or_default();
            let label = match f.action {
                FaultAction::KillPlacement => "kill placement".to_string(),
                FaultAction::RestartNats => "restart nats".to_string(),
                FaultAction::KillNats => format!("kill {target}"),
                FaultAction::StartNats => format!("start {target}"),
                a => format!("{} {target}", format!("{a:?}").to_lowercase()),
            };
            // The server a `jobs-leader` target turned out to be.
            let mut resolved: Option<String> = None;
            let done = match f_tb.lock() {
                Err(_) => Err("testbed lock".to_string()),
                Ok(mut tb) => match f.action {
                    FaultAction::Kill => tb.kill(&target).then_some(()).ok_or(format!("no process {target}")),
                    FaultAction::KillPlacement => tb.kill("placement").then_some(()).ok_or("no placement".into()),
                    FaultAction::Pause | FaultAction::Resume => {
                        let sig = if f.action == FaultAction::Pause { libc::SIGSTOP } else { libc::SIGCONT };
                        match tb.pid(&target) {
                            Some(pid) => {
                                crate::proc::signal_tree(pid, sig);
                                Ok(())
                            }
                            None => Err(format!("no process {target}")),
                        }
                    }
                    FaultAction::RestartNats => tb.restart_nats(Duration::from_secs(1)).map_err(|e| e.to_string()),
                    FaultAction::KillNats => {
                        tb.kill_nats(&target).map(|n| resolved = Some(n)).map_err(|e| e.to_string())
                    }
                    FaultAction::StartNats => {
                        tb.start_nats(&target).map(|n| resolved = Some(n)).map_err(|e| e.to_string())
                    }
                },
            };
            let label = match resolved.filter(|n| *n != target) {
                Some(n) => format!("{label} ({n})"),
                None => label,
            };
            match done {
                Ok(()) => {
                    println!("scenario: fault at {:.1} s: {label}", f.at_s);
                    f_log.lock().map(|mut l| l.push((now_ms(), label))).ok();
                }
                Err(e) => println!("scenario: fault {label} not performed: {e}"),
            }
        }
    });
    let f_list = sc.faults.clone();
    // Held until the end: the thread must outlive what it started.
    let keep_fault_thread = fault_tx.clone();
    let fault_task = tokio::spawn(async move {
        for f in f_list {
            let at = t0 + (f.at_s * 1000.0) as u64;
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
            if fault_tx.send(f).is_err() {
                return;
            }
        }
    });

    let limit = Duration::from_secs_f64(sc.duration_s) + Duration::from_secs(60);
    let out = match tokio::time::timeout(limit, loadgen.wait_with_output()).await {
        Ok(r) => r.map_err(|source| TestbedError::Spawn { what: "loadgen".into(), source })?,
        Err(_) => return Err(TestbedError::NotReady(format!("the load generator did not finish within {limit:?}"))),
    };
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_string();
    let loadgen_json: Option<serde_json::Value> = serde_json::from_str(&line).ok();
    if !out.status.success() {
        return Err(TestbedError::NotReady(format!("the load generator failed ({}): {line}", out.status)));
    }
    let submitted = loadgen_json.as_ref().and_then(|v| v["loadgen"]["submitted"].as_u64()).unwrap_or(0) as usize;
    let mut sessions = super::sessions::plan(&sc, t0, loadgen_json.as_ref());
    let requests: usize = sessions.iter().map(|s| s.observed.sent).sum();
    println!(
        "scenario: load phase over, {submitted} jobs submitted, {} sessions opened, {requests} session requests \
         sent; draining (up to {} s)",
        sessions.iter().filter(|s| s.observed.opened).count(),
        sc.drain_s
    );

    // Drain: every submitted job's record, until all are final, and every session request's reply, or until
    // the drain time is up.
    let ids: Vec<String> = (0..submitted).map(|i| crate::scenario::job_id(&sc.name, t0, i)).collect();
    let mut records: std::collections::BTreeMap<String, Option<crate::wire::JobRecord>> =
        ids.iter().map(|i| (i.clone(), None)).collect();
    let drain_until = Instant::now() + Duration::from_secs_f64(sc.drain_s);
    loop {
        let mut pending = 0;
        for (id, slot) in records.iter_mut() {
            if slot.as_ref().is_some_and(|r| r.state.is_final()) {
                continue;
            }
            *slot = bus.record(id).await.ok().flatten().map(|(r, _)| r);
            if !slot.as_ref().is_some_and(|r| r.state.is_final()) {
                pending += 1;
            }
        }
        super::sessions::refresh(&bus, &mut sessions).await;
        pending += events.lock().map(|e| super::sessions::missing_replies(&sessions, &e)).unwrap_or(0);
        if pending == 0 || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A late duplicate would still show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end_ms = now_ms();
    ev_task.abort();
    radio_task.abort();
    if let Ok(mut tb) = tb.lock() {
        tb.stop();
    }
    fault_task.abort();
    drop(keep_fault_thread);
    let _ = fault_thread.join();
    // Records that are not final count as lost (the report shows where they were stuck).

    // Every distinct (kind, input) that completed, run once uninterrupted.
    let mut kinds = std::collections::HashMap::new();
    let mut expected = std::collections::HashMap::new();
    let mut reference: std::collections::HashMap<(String, String), Option<serde_json::Value>> = Default::default();
    for (id, rec) in &records {
        let Some(r) = rec else { continue };
        let Some(kind) = sc.jobs.iter().find(|k| r.function.runs_source(&k.source)) else {
            continue;
        };
        kinds.insert(id.clone(), kind.name.clone());
        if r.state != crate::wire::JobState::Completed {
            continue;
        }
        let key = (kind.name.clone(), r.input.to_string());
        if !reference.contains_key(&key) {
            let args = crate::run::RunArgs {
                target: format!("{}:{}", kind.file.display(), kind.entry),
                input: r.input.to_string(),
                deadline_ms: 2000,
                key: crate::run::local_key(),
                ..Default::default()
            };
            let v = match crate::run::run(&args).await {
                Ok(o) => serde_json::from_str(&o.output_json).ok(),
                Err(e) => {
                    println!("scenario: reference run of {} failed: {e}", kind.name);
                    None
                }
            };
            reference.insert(key.clone(), v);
        }
        if let Some(Some(v)) = reference.get(&key) {
            expected.insert(id.clone(), v.clone());
        }
    }
    let sessions = super::sessions::check_in_cpython(&sc, &mut sessions).await;
    let observed = crate::report::Observed {
        scenario: sc.name.clone(),
        start_ms: t0,
        end_ms,
        threshold: sc.mesh.radio_threshold,
        events: std::mem::take(&mut *events.lock().map_err(|_| TestbedError::NotReady("event log".into()))?),
        radio: std::mem::take(&mut *radio.lock().map_err(|_| TestbedError::NotReady("radio log".into()))?),
        faults: std::mem::take(&mut *faults.lock().map_err(|_| TestbedError::NotReady("fault log".into()))?),
        records,
        kinds,
        expected,
        loadgen: loadgen_json,
        sessions,
    };
    let report = crate::report::analyze(&observed);
    let dir = args.out.unwrap_or_else(|| PathBuf::from("target/scenarios").join(&sc.name));
    let io = |source| TestbedError::Spawn { what: format!("report in {}", dir.display()), source };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(dir.join("report.json"), json).map_err(io)?;
    std::fs::write(dir.join("report.md"), crate::report::render_markdown(&report)).map_err(io)?;
    std::fs::write(dir.join("timeline.svg"), crate::plot::render_svg(&crate::report::timeline(&observed)))
        .map_err(io)?;
    Ok(ScenarioOutcome { report, dir })
}
