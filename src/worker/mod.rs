//! Python worker processes, seen from the host: the pipe protocol, the zygote that forks workers, and the
//! process handle.
//!
//! Architecture invariant: the host never links Python state into its own process; every job runs in a worker
//! process of its own (a fresh child of the node's zygote), so a crashing or hanging job costs one process,
//! never a node, and nothing of one job is left for the next.
//!
//! Architecture invariant: the checkpoint key lives only here, in the host; workers get and return raw parts.
pub mod fdpass;
pub mod host;
pub mod protocol;
pub mod zygote;

pub use host::{open_for_restore, OpenedCheckpoint, WorkerError, WorkerOptions, WorkerProcess};
pub use protocol::{CaptureStats, CheckpointMode, FromWorker, JobError, JobErrorKind, ModuleSpec, ToWorker};
pub use zygote::{Imported, Zygote};
