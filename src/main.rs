use std::process::ExitCode;

use clap::Parser;
use mathlake::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MATHLAKE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let threads = cli.threads();
    // Before any thread allocates: arenas are handed out on first use.
    mathlake::malloc::share_arenas(threads);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            cli::report_error(&error);
            ExitCode::FAILURE
        }
    }
}
