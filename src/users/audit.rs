//! The audit log of successful authentications, written through a group-commit writer:
//! concurrent requests queue their rows, one transaction commits every row waiting, and
//! each request is answered only after its own row is committed. Under load one commit
//! carries many rows, so logging does not cap throughput. [`AuditWriter::stop`] closes
//! the queue and finishes every queued row before the writer exits.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::UserError;
use super::{LoginEvent, UserStore};
use crate::persist::StoreError;

/// Most rows one transaction carries.
const MAX_BATCH: usize = 512;
/// Most rows waiting for the writer before new requests wait for room.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<(), Arc<StoreError>>>;

/// A handle to the group-commit writer. Cloned into every request's state.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<(LoginEvent, Reply)>,
}

/// The writer task itself, held by the one owner of shutdown.
#[derive(Debug)]
pub struct AuditWriter {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl AuditLog {
    /// Starts the writer task over `store`.
    #[must_use]
    pub fn spawn(store: Arc<dyn UserStore>) -> (Self, AuditWriter) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(write_batches(store, rx, stopped));
        (Self { queue }, AuditWriter { task, stop })
    }

    /// Queues `event` and waits until its row is committed.
    ///
    /// # Errors
    /// [`UserError::AuditClosed`] if the writer has stopped; [`UserError::Audit`] if the
    /// commit failed.
    pub async fn record(&self, event: LoginEvent) -> Result<(), UserError> {
        let (reply, committed) = oneshot::channel();
        self.queue
            .send((event, reply))
            .await
            .map_err(|_| UserError::AuditClosed)?;
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(UserError::Audit(error)),
            Err(_) => Err(UserError::AuditClosed),
        }
    }
}

impl AuditWriter {
    /// Refuses new rows, commits every row already queued, and waits for the writer to
    /// end. Requests that log after this get [`UserError::AuditClosed`].
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn write_batches(
    store: Arc<dyn UserStore>,
    mut rx: mpsc::Receiver<(LoginEvent, Reply)>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // recv_many is cancel-safe; it returns 0 only once the channel is closed and
        // empty, so every row queued before the stop is written.
        let received = tokio::select! {
            received = rx.recv_many(&mut batch, MAX_BATCH) => received,
            _ = &mut stop, if !stop.is_terminated() => {
                rx.close();
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let (events, replies): (Vec<LoginEvent>, Vec<Reply>) = batch.drain(..).unzip();
        let result = store.record_logins(&events).await.map_err(Arc::new);
        if let Err(error) = &result {
            tracing::error!(
                error = &**error as &dyn std::error::Error,
                rows = events.len(),
                "audit log commit failed"
            );
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
    tracing::debug!("audit log writer stopped");
}
