//! clawcage serve: agent groups, the task queue, the scheduler, the HTTP API
//! and the web UI (DESIGN.md "Shape"). The binary only wires
//! `clawcage serve` to [`config::load`] and [`Server`].
//!
//! - [`config`]: the config file.
//! - [`queue`]: claims queued tasks (leases, concurrency, one per
//!   conversation) and runs them through a [`runner::TaskRunner`] — in the
//!   product, the agent runtime.
//! - [`schedule`]: cron and one-shot schedules, fired exactly once.
//! - [`api`]: the HTTP API (bearer token), `/metrics`, `/openapi.json`.

pub mod agent_runner;
pub mod agent_tools;
pub mod api;
pub mod channels;
pub mod config;
pub mod hub;
pub mod metrics;
pub mod openapi;
pub mod queue;
pub mod runner;
pub mod schedule;
pub mod state;
pub mod ui;

pub use config::Config;
pub use runner::{Cancel, Events, Job, Outcome, TaskRunner};
pub use state::{ServerError, State};

use clawcage_store::audit::{AuditLog, SigningKey};
use clawcage_store::{StatePaths, Store};
use state::{Counters, Db};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch, Notify};

/// How long taken chat events are remembered (to drop retries and replays).
const CHANNEL_EVENTS_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

/// A configured server, not yet serving.
pub struct Server {
    state: Arc<State>,
    listener: tokio::net::TcpListener,
}

impl Server {
    /// Open the store and audit log in `paths` and bind the listen address.
    pub async fn bind(
        config: Config,
        paths: StatePaths,
        audit_key: Option<SigningKey>,
        runner: Arc<dyn TaskRunner>,
    ) -> Result<Server, ServerError> {
        paths.create()?;
        let store = Store::open(&paths.db)?;
        // Chat services stop retrying within hours: older event ids are not needed.
        store.forget_channel_events(clawcage_store::time::now_ms() - CHANNEL_EVENTS_KEPT_MS)?;
        let audit = AuditLog::open(&paths, audit_key.clone())?;
        let addr = config.server.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Io { what: format!("listen on {addr}"), source })?;
        let state = Arc::new(State {
            config,
            paths,
            db: Arc::new(Db::new(store)),
            audit: Arc::new(audit),
            audit_key,
            hub: Arc::default(),
            counters: Counters::default(),
            runner,
            queued: Notify::new(),
            cancels: Mutex::new(HashMap::new()),
            replies: broadcast::channel(1024).0,
            shutdown: watch::channel(false).0,
        });
        Ok(Server { state, listener })
    }

    /// The address it listens on (the port, when the config said 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(|source| ServerError::Io { what: "listener address".into(), source })
    }

    /// The shared state (for channels and tests).
    pub fn state(&self) -> Arc<State> {
        Arc::clone(&self.state)
    }

    /// Serve until `stop` resolves; then stop claiming, cancel running
    /// tasks, wait for them to be recorded, and return.
    pub async fn run(self, stop: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let state = self.state;
        let addr = self.listener.local_addr().ok();
        tracing::info!(listen = ?addr, groups = state.config.groups.len(), "serving");
        // Subscribed before the queue starts: a task resumed at start-up
        // may finish before a channel's task first runs.
        let telegram = state.config.channels.telegram.clone().map(|t| (t, state.replies.subscribe()));
        let discord = state.config.channels.discord.clone().map(|d| (d, state.replies.subscribe()));
        let slack = state.config.channels.slack.clone().map(|s| (s, state.replies.subscribe()));
        let queue = tokio::spawn(queue::run(Arc::clone(&state)));
        let sched = tokio::spawn(schedule::run(Arc::clone(&state)));
        let mut channels = Vec::new();
        let c = &state.config.channels;
        if c.telegram.is_some() || c.slack.is_some() || c.discord.is_some() {
            channels.push(tokio::spawn(channels::announce_approvals(Arc::clone(&state))));
        }
        if let Some((t, answers)) = telegram {
            channels.push(tokio::spawn(channels::telegram::run(Arc::clone(&state), t, answers)));
        }
        if let Some((d, answers)) = discord {
            channels.push(tokio::spawn(channels::discord::run(Arc::clone(&state), d, answers)));
        }
        if let Some((s, answers)) = slack {
            channels.push(tokio::spawn(channels::slack::run(Arc::clone(&state), s, answers)));
        }
        let app = api::router(Arc::clone(&state));
        let mut down = state.shutdown.subscribe();
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutting down");
            let _ = st.shutdown.send(true);
        });
        let serve = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            let _ = down.wait_for(|d| *d).await;
        });
        let served = serve.await.map_err(|source| ServerError::Io { what: "serve".into(), source });
        let _ = state.shutdown.send(true);
        let q = queue.await.map_err(|e| ServerError::Join(e.to_string()))?;
        let s = sched.await.map_err(|e| ServerError::Join(e.to_string()))?;
        for c in channels {
            let _ = c.await;
        }
        served.and(q).and(s)
    }
}

#[cfg(test)]
mod config_tests;

/// Run a server on its own tokio runtime until SIGTERM or SIGINT, then shut
/// down gracefully (see [`Server::run`]). For the binary.
pub fn run_until_signal(
    config: Config,
    paths: StatePaths,
    audit_key: Option<SigningKey>,
    runner: Arc<dyn TaskRunner>,
) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("clawcage-serve")
        .build()
        .map_err(|source| ServerError::Io { what: "tokio runtime".into(), source })?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|source| ServerError::Io { what: "SIGTERM handler".into(), source })?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|source| ServerError::Io { what: "SIGINT handler".into(), source })?;
        let server = Server::bind(config, paths, audit_key, runner).await?;
        server
            .run(async move {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM"),
                    _ = int.recv() => tracing::info!("SIGINT"),
                }
            })
            .await
    })
}
