//! [`ClientRegistry`]: the registered clients as an immutable snapshot behind `ArcSwap`,
//! like the key set. Requests read it without locking and never touch the database; a
//! background task polls the store's clients version (every [`CLIENTS_POLL`]) and swaps
//! in a new snapshot when another process (`jwks-server clients ...`, a replica) changed
//! the clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::{Client, ClientId, ClientStore};
use crate::persist::StoreError;
use crate::users::AuthMode;

/// How often the store's clients version is polled: a change is seen within this time
/// plus one reload.
pub const CLIENTS_POLL: Duration = Duration::from_secs(1);

/// One loaded version of the registered clients.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store's clients version this snapshot was loaded at.
    pub version: i64,
    /// Clients by id.
    pub clients: HashMap<String, Arc<Client>>,
    /// Every scope some registered client may ask for, sorted.
    pub scopes: Vec<String>,
}

impl Snapshot {
    fn new(version: i64, clients: Vec<Client>) -> Self {
        let mut scopes: Vec<String> = clients.iter().flat_map(|c| c.scopes.clone()).collect();
        scopes.sort_unstable();
        scopes.dedup();
        Self {
            version,
            clients: clients
                .into_iter()
                .map(|c| (c.id.as_str().to_owned(), Arc::new(c)))
                .collect(),
            scopes,
        }
    }
}

/// The outcome of client authentication (RFC 6749 §2.3).
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// A registered client that presented its own secret.
    Registered(Arc<Client>),
    /// An unregistered client id, accepted because the server runs in open mode.
    Open(ClientId),
    /// Refused; the text says why (for `error_description`).
    Refused(&'static str),
}

/// The registered clients, shared by every request.
#[derive(Debug, Clone)]
pub struct ClientRegistry {
    current: Arc<ArcSwap<Snapshot>>,
    store: Arc<dyn ClientStore>,
    mode: AuthMode,
}

impl ClientRegistry {
    /// Loads the clients from `store`.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    pub async fn load(store: Arc<dyn ClientStore>, mode: AuthMode) -> Result<Self, StoreError> {
        let version = store.clients_version().await?;
        let clients = store.list_clients().await?;
        Ok(Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::new(version, clients))),
            store,
            mode,
        })
    }

    /// The current snapshot. Lock-free.
    #[must_use]
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The authentication mode.
    #[must_use]
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Reloads if the store's version moved; returns whether it did.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails; the old snapshot stays.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        // The version is read before the list: a change between the two is loaded now
        // and seen again (harmlessly) at the next poll, never missed.
        let version = self.store.clients_version().await?;
        if version == self.current.load().version {
            return Ok(false);
        }
        let clients = self.store.list_clients().await?;
        let count = clients.len();
        self.current
            .store(Arc::new(Snapshot::new(version, clients)));
        tracing::info!(version, clients = count, "reloaded the registered clients");
        Ok(true)
    }

    /// Polls for changes until `stop` turns true. A failing database is logged once per
    /// outage; the last snapshot keeps serving.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(CLIENTS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            match self.refresh().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("the clients table is reachable again");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot poll the clients table; serving the clients loaded last");
                }
                Err(_) => {}
            }
        }
    }

    /// Identifies a client by id alone, as the authorization endpoint does (it sees no
    /// secret, RFC 6749 §4.1.1): a registered client, or in open mode an unregistered id.
    #[must_use]
    pub fn identify(&self, id: &str) -> ClientAuth {
        match self.current.load().clients.get(id) {
            Some(client) => ClientAuth::Registered(Arc::clone(client)),
            None => match (self.mode, ClientId::parse(id)) {
                (AuthMode::Open, Ok(id)) => ClientAuth::Open(id),
                (AuthMode::Open, Err(_)) => {
                    ClientAuth::Refused("a client id is 1 to 255 visible ASCII characters")
                }
                (AuthMode::Users, _) => ClientAuth::Refused("unknown client"),
            },
        }
    }

    /// Authenticates a client by id and optional secret (RFC 6749 §2.3.1). In open mode
    /// an unregistered id is accepted with any or no secret; a registered one always
    /// needs its own.
    #[must_use]
    pub fn authenticate(&self, id: &str, secret: Option<&str>) -> ClientAuth {
        match self.identify(id) {
            ClientAuth::Registered(client) => match (&client.secret_hash, secret) {
                (Some(hash), Some(s)) if hash.matches(s) => ClientAuth::Registered(client),
                // RFC 6749 §2.1: a public client has no secret; it only identifies itself.
                (None, None) => ClientAuth::Registered(client),
                (None, Some(_)) => {
                    ClientAuth::Refused("a public client has no secret; send only client_id")
                }
                (Some(_), _) => ClientAuth::Refused("wrong or missing client secret"),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ClientSpec;
    use crate::store::MemoryStore;

    async fn registry(mode: AuthMode) -> (ClientRegistry, Arc<MemoryStore>, String) {
        let store = Arc::new(MemoryStore::default());
        let (client, secret) = Client::create(&ClientSpec {
            id: "svc".into(),
            ..ClientSpec::default()
        })
        .expect("valid");
        store.insert_client(&client).await.expect("insert");
        let registry = ClientRegistry::load(store.clone(), mode)
            .await
            .expect("load");
        let secret = secret.expect("a confidential client has a secret");
        (registry, store, secret.expose().to_owned())
    }

    #[tokio::test]
    async fn open_mode_admits_unregistered_ids_but_registered_ones_need_their_secret() {
        let (registry, _, secret) = registry(AuthMode::Open).await;
        assert!(matches!(
            registry.authenticate("svc", Some(&secret)),
            ClientAuth::Registered(_)
        ));
        assert!(matches!(
            registry.authenticate("svc", Some("x")),
            ClientAuth::Refused(_)
        ));
        assert!(matches!(
            registry.authenticate("svc", None),
            ClientAuth::Refused(_)
        ));
        assert!(matches!(
            registry.authenticate("other", None),
            ClientAuth::Open(_)
        ));
        assert!(matches!(
            registry.authenticate("other", Some("any")),
            ClientAuth::Open(_)
        ));
        assert!(matches!(
            registry.authenticate("a b", None),
            ClientAuth::Refused(_)
        ));
    }

    #[tokio::test]
    async fn a_public_client_identifies_itself_without_a_secret() {
        let (registry, store, _) = registry(AuthMode::Users).await;
        let (public, secret) = Client::create(&ClientSpec {
            id: "spa".into(),
            public: true,
            ..ClientSpec::default()
        })
        .expect("valid");
        assert!(secret.is_none());
        store.insert_client(&public).await.expect("insert");
        registry.refresh().await.expect("refresh");
        assert!(matches!(
            registry.authenticate("spa", None),
            ClientAuth::Registered(c) if c.is_public()
        ));
        assert!(matches!(
            registry.authenticate("spa", Some("guess")),
            ClientAuth::Refused(_)
        ));
    }

    #[tokio::test]
    async fn users_mode_admits_only_registered_clients() {
        let (registry, _, secret) = registry(AuthMode::Users).await;
        assert!(matches!(
            registry.authenticate("svc", Some(&secret)),
            ClientAuth::Registered(_)
        ));
        assert!(matches!(
            registry.authenticate("other", Some("x")),
            ClientAuth::Refused(_)
        ));
    }

    #[tokio::test]
    async fn refresh_reloads_only_when_the_version_moved() {
        let (registry, store, _) = registry(AuthMode::Open).await;
        assert!(!registry.refresh().await.expect("refresh"));
        let id = ClientId::parse("svc").expect("id");
        assert!(store.remove_client(&id).await.expect("remove"));
        assert!(registry.snapshot().clients.contains_key("svc"));
        assert!(registry.refresh().await.expect("refresh"));
        assert!(!registry.snapshot().clients.contains_key("svc"));
        assert!(!store.remove_client(&id).await.expect("remove"));
    }
}
