//! The `jwks-server` binary: parse the command line, start logging, run. No logic.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use jwks_server::app::{AppError, Application};
use jwks_server::cli::{Cli, Command, KeysCommand};
use jwks_server::config::Settings;
use jwks_server::keys::{MasterKey, Sealer};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_args(&cli.serve) {
        Ok(settings) => settings,
        Err(error) => {
            #[allow(
                clippy::print_stderr,
                reason = "a configuration error is reported before logging starts"
            )]
            {
                eprintln!("error: {error}");
            }
            return ExitCode::from(2);
        }
    };
    jwks_server::telemetry::init(settings.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => block_on(async {
            let store = jwks_server::store::open(&settings.database, &settings.master_key)
                .await
                .context("migration failed")?;
            store.close().await;
            tracing::info!("database schema is up to date");
            Ok(())
        }),
        Command::Keys {
            action: KeysCommand::Rewrap {
                new_master_key_file,
            },
        } => block_on(async {
            let text = std::fs::read_to_string(&new_master_key_file)
                .with_context(|| format!("cannot read {}", new_master_key_file.display()))?;
            let new = MasterKey::from_base64(&text)
                .and_then(Sealer::new)
                .with_context(|| format!("{}", new_master_key_file.display()))?;
            let store = jwks_server::store::open(&settings.database, &settings.master_key)
                .await
                .context("rewrap failed")?;
            let rewrapped = store.rewrap(&new).await;
            store.close().await;
            let count = rewrapped.context("rewrap failed")?;
            tracing::info!(keys = count, file = %new_master_key_file.display(), "re-sealed every key; start with the new master key");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            // An unusable certificate or key is a setting like any other: status 2.
            let tls = error
                .chain()
                .any(|cause| matches!(cause.downcast_ref(), Some(AppError::Tls(_))));
            if tls {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn block_on(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    // On one CPU (a pinned process, a one-core container) a multi-threaded runtime only
    // adds cross-thread wake-ups: at 1024 connections its p99 was 16x the single thread's
    // (159.8 vs 10.3 ms, BENCHMARKS.md). Blocking work (Argon2id, RSA generation) has its
    // own pool either way.
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Handlers first: a SIGTERM that arrives while keys load still drains cleanly.
        let stop = shutdown_signal().context("cannot install signal handlers")?;
        let app = Application::build(settings)
            .await
            .context("cannot start the server")?;
        app.run_until_stopped(stop).await;
        Ok(())
    })
}

/// Installs SIGINT and SIGTERM handlers now; the future resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received SIGINT"),
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
        }
    })
}
