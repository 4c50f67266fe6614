//! The mesh's actors on actix: a node actor per BBU hosting one job actor per running job, and the
//! placement actor that picks a node for each job (fed by the gateway that answers `jobs.submit`).
//!
//! Architecture invariant: actors never touch pyo3; Python runs only in `microlambda worker` processes
//! reached through [`crate::worker::WorkerProcess`].
//! Architecture invariant: actors never name a NATS subject; they talk through [`crate::bus::Bus`].
pub mod gateway;
pub mod job;
pub mod node;
pub mod placement;
pub mod pool;
pub mod scheduler;
pub mod session;
