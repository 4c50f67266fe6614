//! microlambda: run offloaded Python jobs on C-RAN edge nodes and shed them in milliseconds without losing
//! progress.
//!
//! The library holds everything but argument parsing (benchmarks live in the `microlambda-bench` crate, `bench/`):
//! - [`config`]: one serde struct per component, loaded from `configs/*.toml` with env overrides;
//! - [`wire`]: every type that crosses a process boundary (JSON on NATS, postcard between node and worker);
//! - [`bus`]: the only module that knows NATS subject names (and so the subjects each role may use);
//! - [`auth`]: the mesh's nkey users, their server configuration and the mesh key, in a private directory;
//! - [`natsd`]: the embedded nats-server used when no URL is given;
//! - [`http`], [`metrics`]: the one small HTTP server (dashboard, `/metrics`) and the Prometheus metrics of nodes and
//!   placement;
//! - [`proc`], [`runtime`]: child processes that die with their parent; the actix-on-tokio runtime;
//! - [`client`]: `submit`, `deploy`, `status`, `watch` and `dashboard`;
//! - [`testbed`]: a local mesh (nats-server, three nodes, placement) and its demo;
//! - [`worker`]: the host side of a Python worker process (spawn, pipe protocol);
//! - [`py`]: the worker process itself: the embedded CPython, the checkpoint trigger and frame capture;
//! - [`checkpoint`]: the signed, versioned checkpoint envelope;
//! - [`run`]: `microlambda run` / `resume`, the engine driven locally without NATS;
//! - [`plot`]: the scenario report's plot (radio load, job runs per node, markers) as a dependency-free SVG;
//! - [`report`]: the scenario report (lost, duplicated, evacuation latencies...) from what a run observed;
//! - [`scenario`]: scenario files (mesh, radio patterns, job mix, faults) shared by the loadgen and the testbed;
//! - [`stats`], [`table`]: percentiles and the Markdown table printer, shared by the report and the tools;
//! - [`actors`]: node, job and placement actors on actix (source in `actors/`).
#[path = "../actors/mod.rs"]
pub mod actors;
pub mod auth;
pub mod burn;
pub mod bus;
pub mod checkpoint;
pub mod client;
pub mod config;
pub mod http;
pub mod metrics;
pub mod natsd;
pub mod plot;
pub mod proc;
pub mod py;
pub mod report;
pub mod run;
pub mod runtime;
pub mod scenario;
pub mod stats;
pub mod table;
pub mod testbed;
pub mod wire;
pub mod worker;
