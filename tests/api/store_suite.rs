//! One test suite for every store backend: memory and SQLite here (a fresh temp file
//! each); the `postgres` test binary runs the same [`run_suite`] on PostgreSQL (a fresh
//! schema each), which is why this file is also compiled there.

use std::sync::Arc;

use jwks_server::keys::{Algorithm, KeyChange, KeyRecord, Schedule, SigningKey, Versioned};
use jwks_server::persist::StoreError;
use jwks_server::store::{MemoryStore, SqliteStore, Store};
use jwks_server::users::{LoginEvent, NewUser, UserStore as _};

use crate::helpers::test_master_key;

fn key(at: i64) -> Arc<KeyRecord> {
    let schedule = Schedule {
        created_at: at,
        published_at: at,
        activates_at: at,
        retires_at: at + 60_000,
        expires_at: at + 90_000,
    };
    KeyRecord::new(
        SigningKey::generate(Algorithm::Es256).expect("generate"),
        schedule,
    )
}

async fn keys_round_trip(store: Arc<dyn Store>) {
    let empty = store.load_keys().await.expect("load");
    assert!(empty.value.is_empty());
    let (a, b) = (key(1_000_000), key(1_060_000));
    store
        .apply(
            empty.version,
            &KeyChange {
                insert: vec![a.clone(), b.clone()],
                ..KeyChange::default()
            },
        )
        .await
        .expect("insert");
    let Versioned {
        version,
        value: loaded,
    } = store.load_keys().await.expect("load");
    assert_eq!(loaded.len(), 2);
    for original in [&a, &b] {
        let again = loaded
            .iter()
            .find(|k| k.kid == original.kid)
            .expect("stored");
        assert_eq!(again.jwk, original.jwk);
        assert_eq!(again.schedule, original.schedule);
        // The reloaded private key signs like the original (same public key).
        assert_eq!(again.key.public_jwk(), original.key.public_jwk());
    }
    let later = a.rescheduled(Schedule {
        retires_at: 1_500_000,
        expires_at: 1_530_000,
        ..a.schedule
    });
    let change = KeyChange {
        reschedule: vec![later],
        remove: vec![b.kid.clone()],
        ..KeyChange::default()
    };
    store
        .apply(version, &change)
        .await
        .expect("reschedule and remove");
    let loaded = store.load_keys().await.expect("load").value;
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].schedule.retires_at, 1_500_000);
    assert_eq!(loaded[0].schedule.expires_at, 1_530_000);
}

async fn users_round_trip(store: Arc<dyn Store>) {
    let user = NewUser {
        username: "suite".into(),
        email: "suite@example.com".into(),
        password_hash: "$argon2id$h".into(),
    };
    let id = store.create_user(&user).await.expect("create");
    let taken = store
        .create_user(&NewUser {
            email: "other@example.com".into(),
            ..user.clone()
        })
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict("username"))),
        "{taken:?}"
    );
    let taken = store
        .create_user(&NewUser {
            username: "other".into(),
            ..user.clone()
        })
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict("email"))),
        "{taken:?}"
    );
    let found = store
        .find_user("suite")
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(
        (found.id, found.password_hash.as_str()),
        (id, "$argon2id$h")
    );
    assert!(store.find_user("nobody").await.expect("find").is_none());
    let second = store
        .create_user(&NewUser {
            username: "two".into(),
            email: "two@example.com".into(),
            password_hash: "h".into(),
        })
        .await
        .expect("second user");
    assert_ne!(second, id);
    let events = [
        LoginEvent {
            user_id: Some(id),
            request_ip: "192.0.2.1".into(),
        },
        LoginEvent {
            user_id: None,
            request_ip: "::1".into(),
        },
    ];
    store.record_logins(&events).await.expect("logged");
}

/// A change that fails part-way (its second insert repeats a stored key) leaves the
/// stored keys exactly as they were: the first insert and the removal are undone too.
async fn a_failing_change_applies_nothing(store: Arc<dyn Store>) {
    let (a, b) = (key(2_000_000), key(2_060_000));
    let base = store.key_version().await.expect("version");
    let version = store
        .apply(
            base,
            &KeyChange {
                insert: vec![a.clone()],
                ..KeyChange::default()
            },
        )
        .await
        .expect("insert");
    let later = a.rescheduled(Schedule {
        retires_at: 2_500_000,
        expires_at: 2_530_000,
        ..a.schedule
    });
    let failing = KeyChange {
        insert: vec![b.clone(), a.clone()],
        reschedule: vec![later],
        remove: vec![a.kid.clone()],
        ..KeyChange::default()
    };
    store
        .apply(version, &failing)
        .await
        .expect_err("a key that is already stored cannot be inserted again");
    let Versioned {
        version: after,
        value: loaded,
    } = store.load_keys().await.expect("load");
    assert_eq!(after, version, "a failed change makes no new version");
    assert_eq!(loaded.len(), 1, "nothing of the failed change was kept");
    assert_eq!(loaded[0].kid, a.kid);
    assert_eq!(loaded[0].schedule, a.schedule);
}

/// Writers work from explicit versions: a change planned from a version that moved on
/// is refused whole, and the metadata listing agrees with the loaded keys.
async fn changes_apply_only_over_the_version_they_were_planned_from(store: Arc<dyn Store>) {
    let base = store.key_version().await.expect("version");
    let (a, b) = (key(3_000_000), key(3_060_000));
    let insert = |k: &Arc<KeyRecord>| KeyChange {
        insert: vec![k.clone()],
        ..KeyChange::default()
    };
    let next = store.apply(base, &insert(&a)).await.expect("first writer");
    assert_ne!(next, base);
    assert_eq!(store.key_version().await.expect("version"), next);
    let stale = store.apply(base, &insert(&b)).await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    let listed = store.list_keys().await.expect("list");
    assert_eq!(listed.version, next, "the stale change made no version");
    assert_eq!(listed.value.len(), 1, "the stale change stored nothing");
    assert_eq!(listed.value[0].kid, a.kid);
    assert_eq!(listed.value[0].alg, Algorithm::Es256);
    assert_eq!(listed.value[0].schedule, a.schedule);
    store
        .apply(next, &insert(&b))
        .await
        .expect("replanned over the new version");
    let loaded = store.load_keys().await.expect("load");
    let listed = store.list_keys().await.expect("list");
    assert_eq!(listed.version, loaded.version);
    let mut from_load: Vec<_> = loaded
        .value
        .iter()
        .map(|k| (k.kid.clone(), k.schedule))
        .collect();
    let mut from_list: Vec<_> = listed
        .value
        .iter()
        .map(|k| (k.kid.clone(), k.schedule))
        .collect();
    from_load.sort_by(|x, y| x.0.cmp(&y.0));
    from_list.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(from_load, from_list);
}

pub async fn run_suite(make: impl AsyncFn() -> Arc<dyn Store>) {
    keys_round_trip(make().await).await;
    a_failing_change_applies_nothing(make().await).await;
    changes_apply_only_over_the_version_they_were_planned_from(make().await).await;
    users_round_trip(make().await).await;
}

#[tokio::test]
async fn the_memory_store_passes_the_suite() {
    run_suite(async || Arc::new(MemoryStore::default()) as Arc<dyn Store>).await;
}

#[tokio::test]
async fn the_sqlite_store_passes_the_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    run_suite(async || {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("suite.db"), Some(test_master_key()))
            .await
            .expect("open");
        dirs.lock().expect("lock").push(dir);
        Arc::new(store) as Arc<dyn Store>
    })
    .await;
}

/// A batch larger than one statement's chunk, with repeated and absent users, lands
/// whole and in order, and stamps `last_login` of exactly the users in it.
#[tokio::test]
async fn a_large_sqlite_audit_batch_keeps_every_row_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.db");
    let store = SqliteStore::open(&path, Some(test_master_key()))
        .await
        .expect("open");
    let mut ids = Vec::new();
    for name in ["ann", "bob", "cy"] {
        let id = store
            .create_user(&NewUser {
                username: name.into(),
                email: format!("{name}@example.com"),
                password_hash: "h".into(),
            })
            .await
            .expect("user");
        ids.push(id);
    }
    // 600 rows: ann, bob and anonymous ones; cy never logs in.
    let events: Vec<LoginEvent> = (0..600)
        .map(|i| LoginEvent {
            user_id: [Some(ids[0]), Some(ids[1]), None][i % 3],
            request_ip: format!("192.0.2.{}", i % 250),
        })
        .collect();
    store.record_logins(&events).await.expect("logged");
    let pool = crate::helpers::sqlite_reader(&path).await;
    let rows = crate::helpers::auth_log_rows(&pool).await;
    let expected: Vec<(String, Option<i64>)> = events
        .iter()
        .map(|e| (e.request_ip.clone(), e.user_id))
        .collect();
    assert_eq!(rows, expected);
    let logged_in: Vec<(String, bool)> =
        sqlx::query_as("SELECT username, last_login IS NOT NULL FROM users ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("users");
    assert_eq!(
        logged_in,
        [
            ("ann".to_owned(), true),
            ("bob".to_owned(), true),
            ("cy".to_owned(), false)
        ]
    );
    pool.close().await;
}
