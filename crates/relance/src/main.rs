//! `relance`: thin entry point; the work lives in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Measured under `serve`: glibc's malloc and free (chunk consolidation, free-list
/// unlinking) took about a tenth of the server's core; mimalloc's per-thread pages cost
/// a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(relance::sched::on_runtime_thread)
        .on_thread_unpark(relance::sched::on_runtime_thread)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> ExitCode {
    let cli = relance::cli::Cli::parse();
    // The server tells what it does; one-shot commands only warn.
    let default = if matches!(cli.command, relance::cli::Command::Serve(_)) { "info,tower_http=warn" } else { "warn" };
    let filter = EnvFilter::try_from_env("RELANCE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal, never in files, pipes or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // RELANCE_LOG_FORMAT=json: one JSON object per line, for log collectors.
    if std::env::var("RELANCE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    match relance::cli::run(cli).await {
        Ok(code) => code,
        Err(e) if relance::cli::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
