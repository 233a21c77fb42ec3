//! The PostgreSQL tests, in a test binary of their own so that they can be *ignored* at
//! run time: libtest decides `#[ignore]` when it compiles, so a test that found no server
//! could only return early and be counted as passed. This binary (`harness = false`,
//! libtest-mimic, the same command line as libtest) decides once, before any test runs:
//!
//! - `JWKS_TEST_POSTGRES_URL` set and not empty: every test runs against it, and fails
//!   if that server does not answer (CI sets it, so CI can never skip them);
//! - unset: the local server at `postgres://postgres@127.0.0.1:5432/postgres` if it
//!   accepts a connection within a few seconds;
//! - otherwise every test is reported `ignored`, with the reason.

#![allow(
    unreachable_pub,
    reason = "helpers are shared between the files of this one test binary"
)]

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use sqlx::Connection as _;

mod backend;
mod clients;
#[allow(
    dead_code,
    unused_imports,
    reason = "the PostgreSQL tests use part of the clients helpers; the file's own #[test]s run in the api binary"
)]
#[path = "../api/clients.rs"]
mod clients_api;
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(
    dead_code,
    unused_imports,
    reason = "the PostgreSQL tests use part of the operations helpers; the file's own #[test]s run in the api binary"
)]
#[path = "../api/operations.rs"]
mod operations_api;
#[allow(
    dead_code,
    reason = "the replica test uses part of the process helpers"
)]
#[path = "../api/process.rs"]
mod process;
mod replicas;
mod revocation;
mod signin;
#[allow(
    dead_code,
    unused_imports,
    reason = "the replica test uses part of the sign-in helpers; the file's own #[test]s run in the api binary"
)]
#[path = "../api/signin.rs"]
mod signin_api;
#[allow(
    dead_code,
    unused_imports,
    reason = "only `run_suite` is used here; the file's own #[test]s run in the api binary"
)]
#[path = "../api/store_suite.rs"]
mod store_suite;
mod suite;

/// The server the tests use when `JWKS_TEST_POSTGRES_URL` is unset.
const LOCAL_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which server the tests run against, or why none.
enum Target {
    Url(String),
    Unavailable(String),
}

fn target() -> Target {
    match std::env::var("JWKS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Target::Url(url),
        _ => {
            let probe = runtime(false).block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(3),
                    sqlx::PgConnection::connect(LOCAL_URL),
                )
                .await
            });
            match probe {
                Ok(Ok(connection)) => {
                    drop(connection);
                    Target::Url(LOCAL_URL.to_owned())
                }
                Ok(Err(error)) => Target::Unavailable(format!(
                    "JWKS_TEST_POSTGRES_URL is unset and {LOCAL_URL} refused: {error}"
                )),
                Err(_) => Target::Unavailable(format!(
                    "JWKS_TEST_POSTGRES_URL is unset and {LOCAL_URL} did not answer within 3 s"
                )),
            }
        }
    }
}

fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("a tokio runtime")
}

/// A trial that runs `test(url)` on its own runtime, or is ignored with the reason.
fn trial<F, Fut>(name: &str, multi_thread: bool, target: &Target, test: F) -> Trial
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let url = match target {
        Target::Url(url) => Ok(url.clone()),
        Target::Unavailable(reason) => Err(reason.clone()),
    };
    Trial::ignorable_test(name, move || match url {
        Ok(url) => {
            runtime(multi_thread).block_on(test(url));
            Ok(Completion::Completed)
        }
        Err(reason) => Ok::<_, Failed>(Completion::ignored_with(reason)),
    })
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let target = if args.list {
        Target::Unavailable("only listing".into())
    } else {
        target()
    };
    let t = &target;
    let trials = vec![
        trial(
            "backend::keys_round_trip_sealed_and_changes_are_atomic_and_versioned",
            false,
            t,
            backend::keys_round_trip_sealed_and_changes_are_atomic_and_versioned,
        ),
        trial(
            "backend::a_wrong_master_key_cannot_open_the_keys",
            false,
            t,
            backend::a_wrong_master_key_cannot_open_the_keys,
        ),
        trial(
            "backend::a_database_migrated_by_a_newer_build_is_refused",
            false,
            t,
            backend::a_database_migrated_by_a_newer_build_is_refused,
        ),
        trial(
            "backend::exactly_one_replica_holds_the_rotation_lease",
            false,
            t,
            backend::exactly_one_replica_holds_the_rotation_lease,
        ),
        trial(
            "backend::users_and_the_audit_log_work_as_on_sqlite",
            false,
            t,
            backend::users_and_the_audit_log_work_as_on_sqlite,
        ),
        trial(
            "backend::two_rotators_on_one_database_create_each_key_once_and_publish_the_same_set",
            false,
            t,
            backend::two_rotators_on_one_database_create_each_key_once_and_publish_the_same_set,
        ),
        trial(
            "suite::the_postgres_store_passes_the_suite",
            false,
            t,
            suite::the_postgres_store_passes_the_suite,
        ),
        trial(
            "replicas::three_replicas_share_one_key_set_survive_kill_9_and_a_database_outage",
            true,
            t,
            replicas::three_replicas_share_one_key_set_survive_kill_9_and_a_database_outage,
        ),
        trial(
            "replicas::the_leading_replica_exits_promptly_on_sigterm",
            false,
            t,
            replicas::the_leading_replica_exits_promptly_on_sigterm,
        ),
        trial(
            "revocation::a_revoke_reaches_every_postgres_replica_within_two_seconds_under_traffic",
            true,
            t,
            revocation::a_revoke_reaches_every_postgres_replica_within_two_seconds_under_traffic,
        ),
        trial(
            "clients::the_cli_changes_clients_of_postgres_replicas_which_all_see_them_within_2_seconds",
            true,
            t,
            clients::the_cli_changes_clients_of_postgres_replicas_which_all_see_them_within_2_seconds,
        ),
        trial(
            "signin::sessions_and_codes_of_one_replica_are_honoured_once_at_another",
            true,
            t,
            signin::sessions_and_codes_of_one_replica_are_honoured_once_at_another,
        ),
        trial(
            "clients::postgres_keeps_the_client_store_contract",
            false,
            t,
            clients::postgres_keeps_the_client_store_contract,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
