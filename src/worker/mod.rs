//! Python worker processes, seen from the host: the pipe protocol and the process handle.
//!
//! Architecture invariant: the host never links Python state into its own process; every job runs in a
//! `microlambda worker` child, so a crashing or hanging job costs one process, never a node.
pub mod host;
pub mod protocol;

pub use host::{WorkerError, WorkerOptions, WorkerProcess};
pub use protocol::{CaptureStats, CheckpointMode, FromWorker, JobError, JobErrorKind, ModuleSpec, ToWorker};
