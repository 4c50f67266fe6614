//! How every long-running component runs: an actix System on a multi-thread tokio runtime (a current-thread
//! runtime lets one busy actor delay everyone's NATS traffic), and one shutdown signal.

/// Run `f` to completion inside an actix System on a multi-thread tokio runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
    })
    .block_on(f)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// An error and its causes as one line for a user, each said once: a message that already quotes its cause
/// (`cannot read x: No such file...`) is not followed by the cause again.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// Log to stderr, filtered by `MICROLAMBDA_LOG` (default: info, async-nats at warn); once per process, by the
/// binaries.
pub fn init_tracing() {
    init_tracing_at("info,async_nats=warn");
}

/// As [`init_tracing`], with another default filter (`microlambda run`: warnings only, its output is the job's).
pub fn init_tracing_at(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MICROLAMBDA_LOG").unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
