//! The job's state machine as tables of events and the effects they must give, one behaviour per test.
use super::*;
use crate::worker::protocol::CaptureStats;

const WALL: u64 = 1_700_000_000_000;

fn rules() -> Rules {
    Rules {
        node_id: "n1".into(),
        job_timeout_ms: 10_000,
        slice_ms: None,
        periodic_ms: Some(1000),
        periodic_deadline_ms: 200,
        slice_margin_ms: 10,
        evacuate_deadline_ms: 500,
    }
}

fn at(ms: u64) -> Now {
    Now { ms, wall_ms: WALL + ms }
}

/// A machine whose job started at 100 ms (its worker was told at 0).
fn running(rules: Rules) -> Machine {
    let mut m = Machine::new(rules, 0, false, 1, at(0));
    assert_eq!(m.on(Event::Started, at(100)), vec![Effect::ShowRunning, Effect::PublishStarted]);
    m
}

fn ck(seq: u64, stopped: bool) -> Event {
    Event::Checkpointed { seq, envelope: vec![seq as u8], stats: CaptureStats::default(), stopped }
}

fn captured(seq: u64, run_ms: u64) -> Captured {
    Captured { seq, envelope: vec![seq as u8], stats: CaptureStats::default(), run_ms }
}

fn failed(seq: u64, kind: CheckpointErrorKind) -> Event {
    Event::CheckpointFailed { seq, kind, message: "no".into() }
}

fn stop(seq: u64, deadline_ms: u64, after_ms: u64) -> Effect {
    Effect::Checkpoint { seq, mode: CheckpointMode::Stop, deadline_ms, after_ms }
}

fn periodic(seq: u64) -> Effect {
    Effect::Checkpoint { seq, mode: CheckpointMode::Continue, deadline_ms: 200, after_ms: 0 }
}

fn leave(to: Option<&str>) -> Event {
    Event::Leave { to: to.map(String::from) }
}

fn failure_kind(effects: &[Effect]) -> Option<(String, u64)> {
    effects.iter().find_map(|e| match e {
        Effect::Finish { outcome: Err(f), run_ms } => Some((f.kind.clone(), *run_ms)),
        _ => None,
    })
}

#[test]
fn a_job_that_completes_hands_its_worker_back_and_commits_its_output() {
    let mut m = running(rules());
    let fx = m.on(Event::Completed { output_json: "42".into() }, at(400));
    assert_eq!(fx, vec![Effect::Release { in_flight: false }, Effect::Finish { outcome: Ok(42.into()), run_ms: 300 }]);
    assert_eq!(m.phase(), &Phase::Done);
    assert_eq!(m.wake(), None);
    assert_eq!(m.on(Event::Tick, at(20_000)), vec![], "nothing happens after the end");
}

#[test]
fn output_that_is_not_json_fails_the_job() {
    let mut m = running(rules());
    let fx = m.on(Event::Completed { output_json: "{".into() }, at(150));
    assert_eq!(failure_kind(&fx), Some(("bad_output".into(), 50)));
}

#[test]
fn a_job_that_raises_fails_with_its_kind_and_traceback() {
    let mut m = running(rules());
    let ev = Event::Failed { kind: JobErrorKind::Raised, message: "boom".into(), traceback: Some("tb".into()) };
    let fx = m.on(ev, at(200));
    let f = failure(FailureKind::Job(JobErrorKind::Raised), "boom", Some("tb".into()));
    assert_eq!(fx, vec![Effect::Release { in_flight: false }, Effect::Finish { outcome: Err(f), run_ms: 100 }]);
}

#[test]
fn a_worker_crash_fails_the_job_with_its_running_time() {
    let mut m = Machine::new(rules(), 700, false, 1, at(0));
    m.on(Event::Started, at(100));
    let fx = m.on(Event::WorkerExited { status: "signal 9".into() }, at(350));
    assert_eq!(failure_kind(&fx), Some(("worker_exited".into(), 950)));
    assert!(!fx.contains(&Effect::Release { in_flight: false }), "the driver reaped the worker already");
}

#[test]
fn periodic_checkpoint_then_completion() {
    let mut m = running(rules());
    assert_eq!(m.wake(), Some(1100));
    assert_eq!(m.on(Event::Tick, at(1099)), vec![], "not yet");
    assert_eq!(m.on(Event::Tick, at(1100)), vec![periodic(1)]);
    assert_eq!(m.wake(), Some(10_100), "only the timeout while a checkpoint is in flight");
    assert_eq!(m.on(ck(1, false), at(1150)), vec![Effect::CommitPeriodic(captured(1, 1050))]);
    assert_eq!(m.on(Event::PeriodicCommitted(Ok(())), at(1160)), vec![]);
    assert_eq!(m.phase(), &Phase::Running);
    assert_eq!(m.wake(), Some(2160), "the next one counts from the commit");
    assert_eq!(m.on(Event::Tick, at(2160)), vec![periodic(2)]);
    let fx = m.on(Event::Completed { output_json: "1".into() }, at(2170));
    assert_eq!(fx[0], Effect::Release { in_flight: true }, "the answer to the request must not reach the next job");
}

#[test]
fn a_move_requested_during_a_periodic_checkpoint_waits_for_it() {
    let mut m = running(rules());
    m.on(Event::Tick, at(1100));
    assert_eq!(m.on(leave(Some("n2")), at(1110)), vec![Effect::ShowLeaving]);
    assert_eq!(m.on(ck(1, false), at(1120)), vec![Effect::CommitPeriodic(captured(1, 1020))]);
    assert_eq!(m.on(Event::PeriodicCommitted(Ok(())), at(1130)), vec![stop(2, 500, 0)]);
    let fx = m.on(ck(2, true), at(1140));
    let exit = Exit::Move("n2".into());
    let leave = Effect::Leave { exit, captured: Some(captured(2, 1040)), began_ms: WALL + 1130 };
    assert_eq!(fx, vec![Effect::Reap { background: true }, leave]);
}

#[test]
fn a_move_requested_during_a_failed_periodic_checkpoint_starts_after_it() {
    let mut m = running(rules());
    m.on(Event::Tick, at(1100));
    m.on(leave(None), at(1110));
    assert_eq!(m.on(failed(1, CheckpointErrorKind::Deadline), at(1300)), vec![stop(2, 500, 0)]);
}

#[test]
fn a_stale_answer_changes_nothing() {
    let mut m = running(rules());
    m.on(Event::Tick, at(1100));
    assert_eq!(m.on(failed(7, CheckpointErrorKind::Internal), at(1110)), vec![]);
    let fx = m.on(ck(7, false), at(1120));
    assert!(matches!(fx.as_slice(), [Effect::Warn(_)]));
    assert_eq!(m.phase(), &Phase::Checkpointing { seq: 1, queued: None });
}

#[test]
fn an_unpicklable_job_gets_no_more_periodic_checkpoints() {
    let mut m = running(rules());
    m.on(Event::Tick, at(1100));
    let fx = m.on(failed(1, CheckpointErrorKind::Unpicklable), at(1110));
    assert!(matches!(fx.as_slice(), [Effect::Warn(_)]));
    assert_eq!(m.wake(), Some(10_100), "only the timeout is left");
    // Other failures only skip one.
    let mut m = running(rules());
    m.on(Event::Tick, at(1100));
    assert_eq!(m.on(failed(1, CheckpointErrorKind::Deadline), at(1110)), vec![]);
    assert_eq!(m.wake(), Some(2110));
}

#[test]
fn no_periodic_checkpoints_when_the_interval_is_zero() {
    let m = running(Rules { periodic_ms: None, ..rules() });
    assert_eq!(m.wake(), Some(10_100));
}

#[test]
fn a_periodic_commit_that_loses_the_compare_and_set_fences_the_job() {
    let mut m = running(rules());
    m.on(Event::Tick, at(1100));
    m.on(ck(1, false), at(1110));
    let fx = m.on(Event::PeriodicCommitted(Err(CommitError::Fenced)), at(1120));
    assert_eq!(fx, vec![Effect::Discard, Effect::End(JobEnd::Fenced)]);
    assert_eq!(m.phase(), &Phase::Done);
}

#[test]
fn a_periodic_commit_nats_did_not_take_is_skipped() {
    let mut m = running(rules());
    m.on(Event::Tick, at(1100));
    m.on(ck(1, false), at(1110));
    let fx = m.on(Event::PeriodicCommitted(Err(CommitError::Unavailable("timed out".into()))), at(1600));
    assert!(matches!(fx.as_slice(), [Effect::Warn(_)]));
    assert_eq!(m.wake(), Some(2600));
}

#[test]
fn a_slice_ends_with_a_stop_checkpoint_and_parks() {
    let mut m = running(Rules { slice_ms: Some(180), ..rules() });
    assert_eq!(m.wake(), Some(280));
    // A slice's stop waits as long as an evacuation's (a long call into C returns when it returns).
    assert_eq!(m.on(Event::Tick, at(280)), vec![Effect::ShowLeaving, stop(1, 500, 0)]);
    let fx = m.on(ck(1, true), at(290));
    let exit = Exit::Park(ParkReason::Slice);
    let leave = Effect::Leave { exit, captured: Some(captured(1, 190)), began_ms: WALL + 280 };
    assert_eq!(fx, vec![Effect::Reap { background: true }, leave]);
}

#[test]
fn a_slice_that_finds_no_resumable_instant_keeps_trying() {
    let mut m = running(Rules { slice_ms: Some(180), slice_margin_ms: 30, ..rules() });
    m.on(Event::Tick, at(280));
    for seq in 1..50 {
        // No resumable instant in time, or state that cannot be saved at the instant found: never a rollback.
        let kind = if seq % 2 == 0 { CheckpointErrorKind::Unpicklable } else { CheckpointErrorKind::Deadline };
        // Asked again at once: the worker already waited its deadline, and a gap could be the only instant.
        let fx = m.on(failed(seq, kind), at(280 + seq * 500));
        assert_eq!(fx, vec![stop(seq + 1, 500, 0)]);
    }
    let Phase::Stopping(s) = m.phase() else { panic!("{:?}", m.phase()) };
    assert_eq!(s.began_ms, WALL + 280, "the slice ended when it was first asked to");
}

#[test]
fn an_evacuation_while_a_slice_ends_is_not_lost_behind_it() {
    for (kind, to) in [(CheckpointErrorKind::Deadline, Some("n2")), (CheckpointErrorKind::Unpicklable, None)] {
        let mut m = running(Rules { slice_ms: Some(180), ..rules() });
        m.on(Event::Tick, at(280));
        // The radio wants the node while the slice's stop waits for a long call into C.
        assert_eq!(m.on(leave(to), at(300)), vec![Effect::ShowLeaving]);
        let exit = to.map_or(Exit::Park(ParkReason::Evacuated), |n| Exit::Move(n.into()));
        // Its stop fails: no retry as for a slice; it leaves from the last committed checkpoint.
        let fx = m.on(failed(1, kind), at(780));
        let gone = Effect::Leave { exit: exit.clone(), captured: None, began_ms: WALL + 300 };
        assert_eq!(fx[1..], [Effect::Discard, gone], "{kind:?}");
        // Or it is taken: the job leaves for where the evacuation sends it, not to park for its next slice.
        let mut m = running(Rules { slice_ms: Some(180), ..rules() });
        m.on(Event::Tick, at(280));
        m.on(leave(to), at(300));
        let fx = m.on(ck(1, true), at(310));
        assert!(matches!(&fx[1], Effect::Leave { exit: e, began_ms, .. } if *e == exit && *began_ms == WALL + 300));
    }
}

#[test]
fn an_evacuation_that_cannot_checkpoint_leaves_from_the_last_committed_checkpoint() {
    for kind in [CheckpointErrorKind::Deadline, CheckpointErrorKind::Unpicklable, CheckpointErrorKind::Internal] {
        let mut m = running(rules());
        assert_eq!(m.on(leave(Some("n2")), at(200)), vec![Effect::ShowLeaving, stop(1, 500, 0)]);
        let fx = m.on(failed(1, kind), at(700));
        let leave = Effect::Leave { exit: Exit::Move("n2".into()), captured: None, began_ms: WALL + 200 };
        assert_eq!(fx[1..], [Effect::Discard, leave], "{kind:?}");
    }
}

#[test]
fn a_stop_that_finds_no_job_is_retried_a_bounded_number_of_times() {
    let mut m = running(rules());
    m.on(leave(None), at(200));
    for seq in 1..=STOP_RETRIES_NO_JOB as u64 {
        assert_eq!(m.on(failed(seq, CheckpointErrorKind::NoJob), at(200 + seq)), vec![stop(seq + 1, 500, 5)]);
    }
    let fx = m.on(failed(STOP_RETRIES_NO_JOB as u64 + 1, CheckpointErrorKind::NoJob), at(300));
    let exit = Exit::Park(ParkReason::Evacuated);
    assert_eq!(fx[1..], [Effect::Discard, Effect::Leave { exit, captured: None, began_ms: WALL + 200 }]);
}

#[test]
fn a_job_completing_while_it_is_stopped_completes() {
    let mut m = running(rules());
    m.on(leave(Some("n2")), at(200));
    m.on(failed(1, CheckpointErrorKind::NoJob), at(201));
    let fx = m.on(Event::Completed { output_json: "7".into() }, at(202));
    assert_eq!(fx, vec![Effect::Release { in_flight: true }, Effect::Finish { outcome: Ok(7.into()), run_ms: 102 }]);
}

#[test]
fn leave_requested_twice_leaves_once() {
    // Running: the first request wins, the second only shows the job leaving.
    let mut m = running(rules());
    assert_eq!(m.on(leave(Some("n2")), at(200)), vec![Effect::ShowLeaving, stop(1, 500, 0)]);
    assert_eq!(m.on(leave(Some("n3")), at(210)), vec![Effect::ShowLeaving]);
    let fx = m.on(ck(1, true), at(220));
    assert!(matches!(&fx[1], Effect::Leave { exit: Exit::Move(to), .. } if to == "n2"));
    // Not started yet: the last request is the one that waits.
    let mut m = Machine::new(rules(), 0, false, 1, at(0));
    assert_eq!(m.on(leave(Some("n2")), at(10)), vec![Effect::ShowLeaving]);
    assert_eq!(m.on(leave(None), at(20)), vec![Effect::ShowLeaving]);
    let fx = m.on(Event::Started, at(100));
    assert_eq!(fx, vec![Effect::ShowRunning, Effect::PublishStarted, stop(1, 500, 0)]);
    assert_eq!(
        m.phase(),
        &Phase::Stopping(Stop { seq: 1, exit: Exit::Park(ParkReason::Evacuated), began_ms: WALL + 100, tries: 0 })
    );
}

#[test]
fn a_move_to_this_node_parks() {
    let mut m = running(rules());
    m.on(leave(Some("n1")), at(200));
    let Phase::Stopping(s) = m.phase() else { panic!() };
    assert_eq!(s.exit, Exit::Park(ParkReason::Evacuated));
}

#[test]
fn the_timeout_counts_from_the_start_and_from_earlier_slices() {
    // Before it runs, from when the worker was told (start-up and restore count).
    let mut m = Machine::new(rules(), 4000, false, 1, at(0));
    assert_eq!(m.wake(), Some(6000));
    let fx = m.on(Event::Tick, at(6000));
    assert_eq!(fx[0], Effect::Discard);
    assert_eq!(failure_kind(&fx), Some(("timeout".into(), 4000)));
    // Once it runs, from its start.
    let mut m = Machine::new(Rules { periodic_ms: None, ..rules() }, 4000, false, 1, at(0));
    m.on(Event::Started, at(500));
    assert_eq!(m.on(Event::Tick, at(6000)), vec![]);
    let fx = m.on(Event::Tick, at(6500));
    assert_eq!(failure_kind(&fx), Some(("timeout".into(), 10_000)));
}

#[test]
fn the_timeout_applies_while_stopping() {
    let mut m = running(rules());
    m.on(leave(Some("n2")), at(200));
    let fx = m.on(Event::Tick, at(10_100));
    assert_eq!(failure_kind(&fx), Some(("timeout".into(), 10_000)));
}

#[test]
fn an_adopted_job_is_ours_once_the_record_says_so() {
    let mut m = Machine::new(rules(), 0, true, 1, at(0));
    m.on(leave(Some("n2")), at(50));
    assert_eq!(m.on(Event::Started, at(100)), vec![Effect::ShowRunning, Effect::CommitAdoption]);
    let fx = m.on(Event::AdoptionCommitted(Ok(())), at(110));
    assert_eq!(fx, vec![Effect::PublishStarted, stop(1, 500, 0)], "a move that waited starts now");
}

#[test]
fn an_adopted_job_whose_record_moved_on_is_fenced_without_a_word() {
    for err in [CommitError::Fenced, CommitError::Unavailable("timed out".into())] {
        let mut m = Machine::new(rules(), 0, true, 1, at(0));
        m.on(Event::Started, at(100));
        let fx = m.on(Event::AdoptionCommitted(Err(err)), at(110));
        assert_eq!(fx, vec![Effect::Discard, Effect::End(JobEnd::Fenced)]);
    }
}

#[test]
fn a_check_owner_fences_only_when_the_record_moved_on() {
    let mut m = running(rules());
    assert_eq!(m.on(Event::CheckOwner, at(200)), vec![Effect::CheckOwner]);
    assert_eq!(m.on(Event::OwnerChecked { ours: true }, at(201)), vec![]);
    assert_eq!(m.phase(), &Phase::Running);
    let fx = m.on(Event::OwnerChecked { ours: false }, at(202));
    assert_eq!(fx[1..], [Effect::Discard, Effect::End(JobEnd::Fenced)]);
}

#[test]
fn a_worker_that_stops_unasked_parks_the_job_from_its_checkpoint() {
    let mut m = running(rules());
    let fx = m.on(ck(3, true), at(300));
    let exit = Exit::Park(ParkReason::Evacuated);
    let leave = Effect::Leave { exit, captured: Some(captured(3, 200)), began_ms: WALL + 300 };
    assert_eq!(fx[1..], [Effect::Reap { background: false }, leave]);
}

#[test]
fn checkpoint_sequence_numbers_go_on_from_the_one_resumed() {
    let mut m = Machine::new(rules(), 0, false, 8, at(0));
    m.on(Event::Started, at(0));
    assert_eq!(m.on(Event::Tick, at(1000)), vec![periodic(8)]);
    m.on(failed(8, CheckpointErrorKind::Deadline), at(1001));
    assert_eq!(m.on(leave(None), at(1002)), vec![Effect::ShowLeaving, stop(9, 500, 0)]);
}

#[test]
fn park_reasons_and_failure_kinds_keep_their_wire_strings() {
    let reasons = [ParkReason::Slice, ParkReason::Evacuated, ParkReason::Refused].map(ParkReason::as_str);
    assert_eq!(reasons, ["slice", "evacuated", "refused"]);
    let kinds = [FailureKind::Timeout, FailureKind::WorkerExited, FailureKind::BadOutput, FailureKind::Runtime]
        .map(FailureKind::as_str);
    assert_eq!(kinds, ["timeout", "worker_exited", "bad_output", "runtime"]);
    assert_eq!(FailureKind::UnknownFunction.as_str(), "unknown_function");
}

/// A machine brought to each phase, by name.
fn in_phase(name: &str) -> Machine {
    let mut m = match name {
        "confirming" => Machine::new(rules(), 0, true, 1, at(0)),
        _ => Machine::new(rules(), 0, false, 1, at(0)),
    };
    match name {
        "starting" => {}
        "confirming" => {
            m.on(Event::Started, at(100));
        }
        "running" => {
            m.on(Event::Started, at(100));
        }
        "checkpointing" | "committing" => {
            m.on(Event::Started, at(100));
            m.on(Event::Tick, at(1100));
            if name == "committing" {
                m.on(ck(1, false), at(1110));
            }
        }
        "stopping" => {
            m.on(Event::Started, at(100));
            m.on(leave(Some("n3")), at(200));
        }
        _ => unreachable!("{name}"),
    }
    m
}

#[test]
fn a_leave_request_in_each_phase() {
    let queued = Some(Exit::Move("n2".into()));
    let stopping_n3 = Phase::Stopping(Stop { seq: 1, exit: Exit::Move("n3".into()), began_ms: WALL + 200, tries: 0 });
    let table: [(&str, Vec<Effect>, Phase); 6] = [
        ("starting", vec![Effect::ShowLeaving], Phase::Starting { queued: queued.clone() }),
        ("confirming", vec![Effect::ShowLeaving], Phase::Confirming { queued: queued.clone() }),
        (
            "running",
            vec![Effect::ShowLeaving, stop(1, 500, 0)],
            Phase::Stopping(Stop { seq: 1, exit: Exit::Move("n2".into()), began_ms: WALL + 5000, tries: 0 }),
        ),
        ("checkpointing", vec![Effect::ShowLeaving], Phase::Checkpointing { seq: 1, queued: queued.clone() }),
        ("committing", vec![Effect::ShowLeaving], Phase::Committing { queued }),
        ("stopping", vec![Effect::ShowLeaving], stopping_n3),
    ];
    for (name, effects, phase) in table {
        let mut m = in_phase(name);
        assert_eq!(m.on(leave(Some("n2")), at(5000)), effects, "{name}");
        assert_eq!(m.phase(), &phase, "{name}");
    }
}

#[test]
fn the_timeout_ends_every_phase() {
    for name in ["starting", "confirming", "running", "checkpointing", "committing", "stopping"] {
        let mut m = in_phase(name);
        let due = m.wake().expect("a timer");
        assert!(due <= 10_100, "{name}: {due}");
        let fx = m.on(Event::Tick, at(10_100));
        assert_eq!(fx.first(), Some(&Effect::Discard), "{name}");
        assert_eq!(failure_kind(&fx).map(|(k, _)| k).as_deref(), Some("timeout"), "{name}");
        assert_eq!(m.phase(), &Phase::Done, "{name}");
    }
}

#[test]
fn a_worker_ending_its_job_in_each_phase_is_given_back_only_once_it_has_answered() {
    let table = [("starting", false), ("running", false), ("checkpointing", true), ("stopping", true)];
    for (name, in_flight) in table {
        let mut m = in_phase(name);
        let fx = m.on(Event::Completed { output_json: "null".into() }, at(5000));
        assert_eq!(fx[0], Effect::Release { in_flight }, "{name}");
        assert!(matches!(fx[1], Effect::Finish { outcome: Ok(_), .. }), "{name}");
    }
}

fn reply(n: u64) -> Event {
    Event::SessionReply { n, output_json: format!("{n}") }
}

fn idle(n: u64) -> Exit {
    Exit::Idle { n, output_json: format!("{n}") }
}

#[test]
fn a_session_that_answered_is_checkpointed_to_wait_idle() {
    let mut m = running(rules());
    assert_eq!(m.on(reply(3), at(150)), vec![Effect::ShowLeaving, stop(1, 500, 0)]);
    let fx = m.on(ck(1, true), at(160));
    assert_eq!(
        fx,
        vec![
            Effect::Reap { background: true },
            Effect::Leave { exit: idle(3), captured: Some(captured(1, 60)), began_ms: WALL + 150 }
        ]
    );
}

#[test]
fn a_session_that_answers_while_it_is_asked_to_leave_waits_idle_instead() {
    // A move in flight: the stop's checkpoint comes after the answer, so it is where the session waits.
    let mut m = running(rules());
    m.on(leave(Some("n2")), at(150));
    assert_eq!(m.on(reply(1), at(155)), vec![]);
    let fx = m.on(ck(1, true), at(160));
    assert!(matches!(&fx[1], Effect::Leave { exit, .. } if *exit == idle(1)), "{fx:?}");
    // During a periodic checkpoint: the answer waits for it, and a move asked for after does not replace it.
    let mut m = running(rules());
    assert_eq!(m.on(Event::Tick, at(1100)), vec![periodic(1)]);
    assert_eq!(m.on(reply(2), at(1105)), vec![Effect::ShowLeaving]);
    assert_eq!(m.on(leave(Some("n2")), at(1106)), vec![Effect::ShowLeaving]);
    assert_eq!(m.on(ck(1, false), at(1110)), vec![Effect::CommitPeriodic(captured(1, 1010))]);
    assert_eq!(m.on(Event::PeriodicCommitted(Ok(())), at(1120)), vec![stop(2, 500, 0)]);
    assert!(matches!(m.phase(), Phase::Stopping(s) if s.exit == idle(2)));
}

#[test]
fn a_session_that_cannot_be_checkpointed_to_wait_retries_or_fails_the_request() {
    let mut m = running(rules());
    m.on(reply(1), at(150));
    // No resumable instant in time: try again.
    assert_eq!(m.on(failed(1, CheckpointErrorKind::Deadline), at(700)), vec![stop(2, 500, 0)]);
    // State that cannot be saved: never from a checkpoint it did not take; the request fails.
    let fx = m.on(failed(2, CheckpointErrorKind::Unpicklable), at(800));
    assert_eq!(fx[0], Effect::Discard);
    assert_eq!(failure_kind(&fx), Some(("runtime".into(), 700)));
}
