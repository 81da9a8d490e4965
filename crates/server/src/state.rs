//! What every part of the server shares: the config, the store, the audit
//! log, the live-output hub, counters, and the runner.

use crate::config::Config;
use crate::hub::Hub;
use crate::runner::TaskRunner;
use clawcage_store::audit::{AuditLog, SigningKey};
use clawcage_store::{StatePaths, Store, StoreError};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch, Notify};

/// Why the server could not do something.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log refused a record (the effect must not happen).
    #[error("audit log: {0}")]
    Audit(#[from] clawcage_store::audit::AuditError),
    /// A blocking job panicked or was cancelled.
    #[error("internal: {0}")]
    Join(String),
    /// Binding or serving the listener failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// The store behind a mutex, used from async code through blocking threads.
pub struct Db {
    store: Mutex<Store>,
}

impl Db {
    /// Wrap an open store.
    pub fn new(store: Store) -> Db {
        Db { store: Mutex::new(store) }
    }

    /// Run `f` on the store on a blocking thread.
    pub async fn call<T, F>(self: &Arc<Self>, f: F) -> Result<T, ServerError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let store = me.store.lock().unwrap_or_else(|p| p.into_inner());
            f(&store).map_err(ServerError::from)
        })
        .await
        .map_err(|e| ServerError::Join(e.to_string()))?
    }
}

/// A message to post back to a conversation (a channel picks up its own).
#[derive(Debug, Clone)]
pub struct Reply {
    /// `telegram:<chat>`, `slack:<channel>:<thread>`, ...
    pub conversation: String,
    /// The task it is about.
    pub task: String,
    /// The text.
    pub text: String,
    /// The task's final answer (`false`: a notice while it runs, such as an
    /// approval request).
    pub last: bool,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// HTTP requests by (method, status).
    pub http: Mutex<BTreeMap<(String, u16), u64>>,
    /// Tasks this process is running now.
    pub running: AtomicU64,
    /// Messages from unknown senders that were ignored, by channel.
    pub ignored: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    /// Count one HTTP request.
    pub fn http_request(&self, method: &str, status: u16) {
        let mut m = self.http.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((method.to_string(), status)).or_default() += 1;
    }

    /// Tasks running in this process.
    pub fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }
}

/// See the module docs.
pub struct State {
    /// The validated config.
    pub config: Config,
    /// The state directory.
    pub paths: StatePaths,
    /// The store.
    pub db: Arc<Db>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// The audit log's signing key, for verify.
    pub audit_key: Option<SigningKey>,
    /// Live output.
    pub hub: Arc<Hub>,
    /// Counters.
    pub counters: Counters,
    /// Runs the tasks.
    pub runner: Arc<dyn TaskRunner>,
    /// Wakes the queue when a task is queued.
    pub queued: Notify,
    /// Cancel switches of the tasks running here, by task id.
    pub cancels: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Replies for the channels.
    pub replies: broadcast::Sender<Reply>,
    /// Fires once when the server shuts down.
    pub shutdown: watch::Sender<bool>,
}

impl State {
    /// Append an audit record on a blocking thread; an error means the
    /// record is not durable and the effect it describes must not happen.
    pub async fn audit(&self, task: Option<&str>, kind: &'static str, data: Value) -> Result<(), ServerError> {
        let log = Arc::clone(&self.audit);
        let task = task.map(str::to_string);
        tokio::task::spawn_blocking(move || log.append(task.as_deref(), kind, data).map(|_| ()))
            .await
            .map_err(|e| ServerError::Join(e.to_string()))?
            .map_err(ServerError::from)
    }
}
