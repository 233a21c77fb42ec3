//! The audit log of successful authentications, written through a group-commit writer:
//! concurrent requests queue their rows, one transaction commits every row waiting, and
//! each request is answered only after its own row is committed. Under load one commit
//! carries many rows, so logging does not cap throughput; when the server stops, the
//! writer finishes every queued row before it exits.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::UserError;
use crate::store::{LoginEvent, StoreError, UserStore};

/// Most rows one transaction carries.
const MAX_BATCH: usize = 512;
/// Most rows waiting for the writer before new requests wait for room.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<(), Arc<StoreError>>>;

/// A handle to the group-commit writer. Cloned into every request's state; the writer
/// stops once every handle is dropped and the queue is drained.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<(LoginEvent, Reply)>,
}

impl AuditLog {
    /// Starts the writer task over `store`.
    #[must_use]
    pub fn spawn(store: Arc<dyn UserStore>) -> (Self, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (Self { queue }, tokio::spawn(write_batches(store, rx)))
    }

    /// Queues `event` and waits until its row is committed.
    ///
    /// # Errors
    /// [`UserError::AuditClosed`] if the writer has stopped; the store's error if the
    /// commit failed.
    pub async fn record(&self, event: LoginEvent) -> Result<(), UserError> {
        let (reply, committed) = oneshot::channel();
        self.queue
            .send((event, reply))
            .await
            .map_err(|_| UserError::AuditClosed)?;
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(UserError::Store(StoreError::Database(error.to_string()))),
            Err(_) => Err(UserError::AuditClosed),
        }
    }
}

async fn write_batches(store: Arc<dyn UserStore>, mut rx: mpsc::Receiver<(LoginEvent, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // recv_many returns 0 only once the channel is closed and empty: every row queued
    // before shutdown is written.
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<LoginEvent>, Vec<Reply>) = batch.drain(..).unzip();
        let result = store.record_logins(&events).await.map_err(Arc::new);
        if let Err(error) = &result {
            tracing::error!(%error, rows = events.len(), "audit log commit failed");
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
    tracing::debug!("audit log writer stopped");
}
