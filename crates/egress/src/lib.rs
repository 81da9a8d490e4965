//! clawcage egress proxy (part of the enforcement core).
//!
//! The sandbox's network namespace has loopback only; its one way out is a
//! listening socket on `127.0.0.1:3128` inside it that init made and handed
//! to the host (docs/ARCHITECTURE.md, "Network path"). [`Proxy::spawn`]
//! serves that socket on its own thread: HTTP CONNECT and absolute-URI HTTP,
//! every destination normalised ([`host`]), matched against `[network]
//! allow` ([`rules`]), resolved on the host (`[network.hosts]` first),
//! refused when it resolves to loopback/private/link-local/... addresses
//! that `allow_ips` does not name, and connected to at the very address that
//! was checked. `[secrets.NAME]` values are put into requests only toward
//! their bound hosts ([`secrets`]); HTTPS to those hosts is terminated with
//! the per-installation CA ([`tls`]), other HTTPS is tunnelled untouched.
//!
//! Every allow and deny is recorded through the [`EventSink`] before it
//! takes effect; when recording fails, the request is refused.
//!
//! ```no_run
//! # fn demo(policy: &clawcage_policy::Policy, listener: std::net::TcpListener,
//! #         sink: std::sync::Arc<dyn clawcage_policy::EventSink>) -> Result<(), clawcage_egress::EgressError> {
//! use clawcage_egress::{Config, Proxy, Secrets};
//! let (placeholder_env, table) = Secrets::prepare(policy)?;   // env goes into the sandbox's plan
//! let ca = std::sync::Arc::new(clawcage_egress::tls::Ca::load_or_create("/var/lib/clawcage/ca".as_ref())?);
//! let config = Config::new(policy, "task-1", "policy.toml", table, Some(ca))?;
//! let proxy = Proxy::spawn(config, listener, sink)?;
//! // ... run commands in the sandbox ...
//! proxy.shutdown();
//! # let _ = placeholder_env; Ok(()) }
//! ```
#![deny(clippy::undocumented_unsafe_blocks)]

mod body;
pub mod host;
mod io;
mod proxy;
pub mod rules;
pub mod secrets;
pub mod tls;
mod tunnel;

pub use host::{Host, Target};
pub use proxy::{Proxy, ProxyHandle};
pub use secrets::{SecretTable, Secrets};

use clawcage_policy::{Cidr, EventSink, Policy};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// Why the proxy could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// A `[network] allow` entry is not a host pattern.
    #[error("[network] allow: {0}")]
    Rule(#[from] host::HostError),
    /// CA, leaf certificates or upstream roots.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A secret's value could not be read.
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    /// Secrets are configured but no CA was given to terminate their HTTPS.
    #[error("[secrets] need the egress CA (none was given)")]
    NoCa,
    /// The listener or the proxy thread could not be set up.
    #[error("egress proxy: {0}")]
    Io(#[from] std::io::Error),
}

/// Future of a name lookup.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Resolves names on the host, after `[network.hosts]` was consulted.
/// Every address returned is checked before any is connected to, and the
/// proxy connects to one of exactly those addresses (no second lookup).
pub trait Resolve: Send + Sync {
    /// The addresses of `name` (ASCII, lowercase).
    fn resolve(&self, name: &str, port: u16) -> Lookup<'_>;
}

/// The host's resolver (getaddrinfo on a blocking thread).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: &str, port: u16) -> Lookup<'_> {
        let query = format!("{name}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(query).await?.map(|a| a.ip()).collect()) })
    }
}

/// What the hook for unlisted destinations decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through; the text is recorded as the rule (e.g. "approved by alice").
    Allow(String),
    /// Refuse it (403 naming the rule to add).
    Deny,
}

/// The hook asked about a destination that no `[network] allow` rule
/// matches, before it is refused. The default ([`DenyUnlisted`]) refuses;
/// `[approvals] network = "ask"` plugs in an implementation that asks a
/// person and may remember the answer. It is called on a blocking thread
/// and may take as long as the approval takes (the client waits); the
/// address checks (private ranges) still apply after an `Allow`.
pub trait UnlistedHost: Send + Sync {
    /// Decide about `target`.
    fn decide(&self, target: &Target) -> Verdict;
}

/// Refuses every unlisted destination.
#[derive(Debug, Default)]
pub struct DenyUnlisted;

impl UnlistedHost for DenyUnlisted {
    fn decide(&self, _: &Target) -> Verdict {
        Verdict::Deny
    }
}

/// A line for an optional human-readable log (e.g. `--log-network` on stderr).
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything one sandbox's proxy enforces.
pub struct Config {
    /// Sandbox id in events.
    pub sandbox: String,
    /// The policy file as named in 403 bodies ("add ... in POLICY").
    pub policy_file: String,
    /// `[network] allow`.
    pub allow: rules::Allowlist,
    /// `[network.hosts]`: consulted before DNS.
    pub hosts: BTreeMap<String, IpAddr>,
    /// `[network] allow_ips`.
    pub allow_ips: Vec<Cidr>,
    /// `[network] max_connections`: client connections open at once.
    pub max_connections: Option<u64>,
    /// `[network] max_bytes`: bytes through the proxy over its life.
    pub max_bytes: Option<u64>,
    /// Secret placeholders and values.
    pub secrets: SecretTable,
    /// The CA that signs leaf certificates for secret-bound hosts.
    pub ca: Option<Arc<tls::Ca>>,
    /// How upstream TLS (of terminated connections) is verified.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    /// DNS.
    pub resolver: Arc<dyn Resolve>,
    /// Decisions about unlisted destinations.
    pub unlisted: Arc<dyn UnlistedHost>,
    /// Optional human-readable log of decisions.
    pub log: Option<LogFn>,
}

impl Config {
    /// The proxy configuration for `policy`, with the system resolver,
    /// upstream roots from the system plus `[network] ca`, and unlisted hosts denied.
    pub fn new(
        policy: &Policy,
        sandbox: &str,
        policy_file: &str,
        secrets: SecretTable,
        ca: Option<Arc<tls::Ca>>,
    ) -> Result<Config, EgressError> {
        if !secrets.is_empty() && ca.is_none() {
            return Err(EgressError::NoCa);
        }
        let net = &policy.network;
        let extra: Vec<PathBuf> = net.ca.iter().map(PathBuf::from).collect();
        Ok(Config {
            sandbox: sandbox.to_string(),
            policy_file: policy_file.to_string(),
            allow: rules::Allowlist::new(&net.allow)?,
            hosts: net.hosts.clone(),
            allow_ips: net.allow_ips.clone(),
            max_connections: net.max_connections,
            max_bytes: net.max_bytes,
            secrets,
            ca,
            upstream_tls: tls::upstream_config(&extra)?,
            resolver: Arc::new(SystemResolver),
            unlisted: Arc::new(DenyUnlisted),
            log: None,
        })
    }
}

/// A sink shared with the proxy's threads.
pub type SharedSink = Arc<dyn EventSink>;
