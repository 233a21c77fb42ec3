//! The `jwks-server` binary: parse the command line, start logging, run. No logic.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use jwks_server::app::{AppError, Application};
use jwks_server::cli::{Cli, ClientsCommand, Command, KeysCommand};
use jwks_server::config::Settings;
use jwks_server::keys::{MasterKey, Sealer};
use jwks_server::selftest::Target;

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
        Command::Selftest { url } => return selftest(&settings, url.as_deref()),
        Command::Migrate => block_on(async {
            let store = jwks_server::store::open(&settings.database, &settings.master_key)
                .await
                .context("migration failed")?;
            store.close().await;
            tracing::info!("database schema is up to date");
            Ok(())
        }),
        Command::Keys {
            action: KeysCommand::List { json },
        } => block_on(async {
            print(&jwks_server::operator::list(&settings, json).await?);
            Ok(())
        }),
        Command::Keys {
            action: KeysCommand::Rotate { immediate },
        } => block_on(async {
            let operation = jwks_server::keys::Operation::Rotate { immediate };
            print(&jwks_server::operator::operate(&settings, operation).await?);
            Ok(())
        }),
        Command::Keys {
            action: KeysCommand::Revoke { kid, reason },
        } => block_on(async {
            let operation = jwks_server::operator::revoke(kid, reason);
            print(&jwks_server::operator::operate(&settings, operation).await?);
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
        Command::Clients { action } => block_on(clients(&settings, action)),
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

/// Writes a command's result to standard output.
fn print(text: &str) {
    #[allow(clippy::print_stdout, reason = "the command's result is its output")]
    {
        println!("{}", text.trim_end());
    }
}

/// `jwks-server clients ...`: the clients tables only, beside any running server.
#[allow(
    clippy::print_stdout,
    reason = "the one-time secret and the listing are the command's output"
)]
async fn clients(settings: &Settings, action: ClientsCommand) -> anyhow::Result<()> {
    use jwks_server::clients::{Client, ClientId, ClientSpec};
    let store = jwks_server::store::open_client_store(&settings.database)
        .await
        .context("cannot open the clients table")?;
    match action {
        ClientsCommand::Add {
            id,
            scopes,
            audience,
            claims,
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            public,
            name,
        } => {
            let spec = ClientSpec {
                id,
                scopes,
                grant_types,
                audience,
                claims,
                redirect_uris,
                post_logout_redirect_uris,
                public,
                name,
            };
            let (client, secret) = Client::create(&spec).context("invalid client")?;
            store
                .insert_client(&client)
                .await
                .with_context(|| format!("cannot add client '{}'", client.id))?;
            println!("client_id={}", client.id);
            match secret {
                Some(secret) => {
                    tracing::info!(client_id = %client.id, "client added; its secret is printed once, on stdout");
                    println!("client_secret={}", secret.expose());
                }
                None => {
                    tracing::info!(client_id = %client.id, "public client added (no secret; PKCE required)");
                }
            }
        }
        ClientsCommand::List => {
            println!("client_id\ttype\tscopes\tgrant_types\taudience\tclaims\tredirect_uris\tname");
            for c in store.list_clients().await.context("cannot list clients")? {
                let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    c.id,
                    if c.is_public() {
                        "public"
                    } else {
                        "confidential"
                    },
                    c.scopes.join(" "),
                    grants.join(" "),
                    c.audience.as_deref().unwrap_or("-"),
                    serde_json::Value::Object(c.claims.clone()),
                    c.redirect_uris.join(" "),
                    c.name.as_deref().unwrap_or("-")
                );
            }
        }
        ClientsCommand::Remove { id } => {
            let id = ClientId::parse(&id).context("invalid client id")?;
            if !store
                .remove_client(&id)
                .await
                .context("cannot remove the client")?
            {
                anyhow::bail!("no client '{id}'");
            }
            tracing::info!(client_id = %id, "client removed");
        }
    }
    Ok(())
}

fn block_on(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

/// `selftest`: the table on stdout; 0 without a FAIL, 1 with one, 2 when it cannot run.
fn selftest(settings: &Settings, url: Option<&str>) -> ExitCode {
    use std::io::Write as _;
    let target = url.map_or_else(|| Ok(Target::for_settings(settings)), Target::parse);
    let report = target.map_err(anyhow::Error::from).and_then(|target| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(jwks_server::selftest::run(&target))
            .context("selftest cannot run")
    });
    match report {
        Ok(report) => {
            let _ = std::io::stdout()
                .lock()
                .write_all(report.render().as_bytes());
            ExitCode::from(report.exit_code())
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr().lock(), "error: {error:#}");
            ExitCode::from(2)
        }
    }
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
