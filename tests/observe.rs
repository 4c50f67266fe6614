//! The bus's observer for tools (`Bus::observe_internal`, what the benchmarks use) on a real mesh: it sees
//! record writes, checkpoint writes, adopt requests and node commands already decoded, and the node still
//! answers the requests as if nobody watched.
mod common;

use common::Mesh;
use futures::StreamExt;
use microlambda::bus::Observed;
use microlambda::wire::{Adopt, FunctionRef, JobRecord, JobState, NodeCommand};
use std::time::Duration;

#[tokio::test]
async fn observers_see_internal_messages_decoded_and_change_nothing() {
    let mesh = Mesh::start(&[("n1", 0.1)], &[]);
    let bus = mesh.bus().await;
    mesh.ready(&bus, 1).await;
    let mut seen = bus.observe_internal().await.unwrap();
    bus.flush().await.unwrap();

    let function = FunctionRef::deployed("f");
    bus.put_record(&JobRecord::queued("obs-1", function, serde_json::Value::Null, 0, None)).await.unwrap();
    bus.persist_checkpoint("obs-1", 1, 1, b"not a checkpoint").await.unwrap();
    // The node answers the adopt (and later finds no record of the job: it is not its own).
    let adopt = Adopt {
        job_id: "obs-2".into(),
        revision: 1,
        epoch: 1,
        from: "x".into(),
        began_ms: 0,
        checkpoint: None,
        inline: vec![],
    };
    bus.adopt("n1", &adopt, Duration::from_secs(5)).await.expect("the node answers");
    bus.command("n1", &NodeCommand::Fence { jobs: vec![] }, Duration::from_secs(5)).await.expect("the node answers");

    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 4 {
        match tokio::time::timeout_at(deadline, seen.next()).await {
            Ok(Some(o)) => got.push(o),
            _ => break,
        }
    }
    let has = |f: &dyn Fn(&Observed) -> bool| got.iter().any(f);
    assert!(
        has(
            &|o| matches!(o, Observed::RecordWrite { job_id, state: Some(JobState::Queued), bytes } if job_id == "obs-1" && *bytes > 0)
        ),
        "{got:?}"
    );
    assert!(has(&|o| *o == Observed::CheckpointWrite { job_id: "obs-1".into(), bytes: 16 }), "{got:?}");
    assert!(has(&|o| matches!(o, Observed::Adopt { job_id, .. } if job_id == "obs-2")), "{got:?}");
    assert!(has(&|o| matches!(o, Observed::Command { node, .. } if node == "n1")), "{got:?}");
}
