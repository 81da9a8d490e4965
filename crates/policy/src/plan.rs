//! The pure translation from a [`Policy`] to a [`Plan`]: absolute paths, the
//! environment, limits. No I/O happens here; the sandbox crate checks what
//! exists on the host when it carries the plan out.

use crate::model::{Changes, Limits, PathSpec, Policy};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Facts about the invocation that a policy's relative paths need.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// Absolute, canonical workspace directory on the host.
    pub workspace: PathBuf,
    /// The invoking user's home directory on the host (for `~/...` specs).
    pub host_home: PathBuf,
    /// The host environment (source for `[env] pass`).
    pub host_env: BTreeMap<String, String>,
    /// `--env K=V` from the command line (applied last).
    pub extra_env: Vec<(String, String)>,
    /// How changes reach the workspace when the policy does not say
    /// (`[filesystem] changes` unset): `run` passes `Direct`, agent tasks `Review`.
    pub default_changes: Changes,
}

/// A host file or directory shown read-only at another path inside the
/// sandbox (the task's skills at `/skills/NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountAt {
    /// Absolute host path.
    pub src: PathBuf,
    /// Absolute path inside the sandbox.
    pub dst: PathBuf,
}

/// One host path made visible inside the sandbox at the same path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Bind {
    /// Absolute host path (and the same path inside the sandbox).
    pub path: PathBuf,
    /// Writable (`write`) or read-only (`read`).
    pub writable: bool,
}

/// Everything the sandbox needs, with every path absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Host workspace; also the working directory inside.
    pub workspace: PathBuf,
    /// Binds, parents before children; a path listed in both read and write is writable.
    pub binds: Vec<Bind>,
    /// Absolute paths that must be absent inside (masked even under binds).
    pub deny: Vec<PathBuf>,
    /// Globs (relative to the workspace) whose matches must be absent inside.
    pub deny_globs: Vec<String>,
    /// Absolute paths inside write binds that are re-bound read-only.
    pub protect: Vec<PathBuf>,
    /// Globs (relative to the workspace) whose matches are re-bound read-only.
    pub protect_globs: Vec<String>,
    /// Resource limits.
    pub limits: PlanLimits,
    /// The complete environment of the command (sorted by name).
    pub env: Vec<(String, String)>,
    /// Host-side knobs: layers accepted as missing (`"landlock"`, `"cgroups"`).
    pub allow_missing: Vec<String>,
    /// Whether changes are written straight through (`true`) or held for review.
    pub direct_changes: bool,
    /// Where held changes go: the overlay layers of the task's review
    /// directory, set by the caller once the task exists. The sandbox refuses
    /// a plan that holds changes for review without them.
    #[serde(default)]
    pub review: Option<ReviewLayers>,
    /// The way out through the egress proxy; `None`: loopback only, no proxy.
    #[serde(default)]
    pub network: Option<PlanNetwork>,
    /// Read-only mounts at their own paths, set by the caller (not by a policy).
    #[serde(default)]
    pub mounts: Vec<MountAt>,
}

/// The host directory of a workspace overlay (`changes = "review"`): the
/// real workspace is the read-only lower layer; writes land in `dir/upper`,
/// and `dir/work` is the overlay's work directory (both in `dir`, which only
/// the sandbox's root may own: the task's other files live beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewLayers {
    /// Holds `upper/` (the task's changes) and `work/`.
    pub dir: PathBuf,
}

/// What the sandbox needs for the egress proxy (docs/ARCHITECTURE.md,
/// "Network path"): init listens on `127.0.0.1:proxy_port` inside the
/// network namespace and hands the listening socket to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanNetwork {
    /// Port of the proxy's listener on the sandbox's loopback.
    pub proxy_port: u16,
    /// Host file (PEM: the host's roots plus the proxy's CA) bound read-only
    /// at [`SANDBOX_CA_FILE`] and over the system bundles ([`SYSTEM_CA_BUNDLES`]).
    pub ca_bundle: Option<PathBuf>,
}

/// Port of the proxy inside every sandbox with network.
pub const PROXY_PORT: u16 = 3128;

/// Where the CA bundle appears inside the sandbox. (Not under /etc: /etc is a
/// read-only bind of the host's, where no mount point can be made.)
pub const SANDBOX_CA_FILE: &str = "/run/clawcage/ca.pem";

/// System CA bundle paths the bundle is bound over when they exist.
pub const SYSTEM_CA_BUNDLES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// Variables that tell common tools where the CA bundle is.
const CA_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
    "NPM_CONFIG_CAFILE",
];

impl Plan {
    /// Set (or replace) one variable of the command's environment, keeping it sorted.
    pub fn set_env(&mut self, name: &str, value: &str) {
        match self.env.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) => self.env[i].1 = value.to_string(),
            Err(i) => self.env.insert(i, (name.to_string(), value.to_string())),
        }
    }

    /// Give a sandbox with network the CA bundle at `host_file`, and point
    /// the usual variables at it. No effect without network.
    pub fn set_ca_bundle(&mut self, host_file: PathBuf) {
        let Some(net) = self.network.as_mut() else { return };
        net.ca_bundle = Some(host_file);
        for var in CA_VARS {
            self.set_env(var, SANDBOX_CA_FILE);
        }
    }
}

/// Limits in plain numbers (serialisable for the helper process).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlanLimits {
    /// Bytes of memory.
    pub memory: Option<u64>,
    /// CPUs (fractional).
    pub cpus: Option<f64>,
    /// Processes/threads.
    pub pids: Option<u64>,
    /// Milliseconds of wall-clock time per command.
    pub timeout_ms: Option<u64>,
    /// Bytes for /tmp, $HOME and any single file.
    pub disk: Option<u64>,
    /// Bytes of stdout + stderr per command.
    pub output: Option<u64>,
}

impl From<&Limits> for PlanLimits {
    fn from(l: &Limits) -> Self {
        PlanLimits {
            memory: l.memory,
            cpus: l.cpus,
            pids: l.pids,
            timeout_ms: l.timeout.map(|d| d.as_millis().min(u64::MAX as u128) as u64),
            disk: l.disk,
            output: l.output,
        }
    }
}

/// Home directory inside the sandbox (a private, size-limited tmpfs).
pub const SANDBOX_HOME: &str = "/home/sandbox";

/// PATH inside the sandbox unless the policy sets one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// Turn a policy into a plan for one invocation. Pure: same input, same plan.
///
/// - `read` and `write` become [`Bind`]s (a path in both is writable), with
///   parents before children (fewer components first, then by path);
/// - `deny` and `protect` become absolute paths, same order; their globs are
///   passed on as written, duplicates dropped;
/// - the environment is `PATH` and `HOME`, then (with network) the proxy
///   variables, then the `pass` variables set on the host, then `[env.set]`,
///   then `--env` (later wins), sorted by name;
/// - with network ([`Network::enabled`](crate::Network::enabled)), the plan
///   has a [`PlanNetwork`] on [`PROXY_PORT`]; the caller adds the CA bundle
///   ([`Plan::set_ca_bundle`]) and secret placeholders ([`Plan::set_env`]).
pub fn plan(policy: &Policy, ctx: &Context) -> Plan {
    let fs = &policy.filesystem;

    let mut writable: BTreeMap<PathBuf, bool> = BTreeMap::new();
    for path in fs.read.iter().filter_map(|p| resolve(p, ctx)) {
        writable.entry(path).or_insert(false);
    }
    for path in fs.write.iter().filter_map(|p| resolve(p, ctx)) {
        writable.insert(path, true);
    }
    let mut binds: Vec<Bind> = writable.into_iter().map(|(path, writable)| Bind { path, writable }).collect();
    binds.sort_by(|a, b| parents_first(&a.path, &b.path));

    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    env.insert("HOME".into(), SANDBOX_HOME.into());
    let network = policy.network.enabled(&policy.approvals);
    if network {
        let url = format!("http://127.0.0.1:{PROXY_PORT}");
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            env.insert(var.into(), url.clone());
        }
        for var in ["NO_PROXY", "no_proxy"] {
            env.insert(var.into(), "localhost,127.0.0.1,::1".into());
        }
    }
    for name in &policy.env.pass {
        if let Some(value) = ctx.host_env.get(name) {
            env.insert(name.clone(), value.clone());
        }
    }
    env.extend(policy.env.set.clone());
    env.extend(ctx.extra_env.iter().cloned());

    Plan {
        workspace: ctx.workspace.clone(),
        binds,
        deny: absolute(&fs.deny, ctx),
        deny_globs: globs(&fs.deny),
        protect: absolute(&fs.protect, ctx),
        protect_globs: globs(&fs.protect),
        limits: PlanLimits::from(&policy.limits),
        env: env.into_iter().collect(),
        allow_missing: policy.sandbox.allow_missing.iter().map(|l| l.name().to_string()).collect(),
        direct_changes: policy.filesystem.changes.unwrap_or(ctx.default_changes) == Changes::Direct,
        review: None,
        network: network.then_some(PlanNetwork { proxy_port: PROXY_PORT, ca_bundle: None }),
        mounts: Vec::new(),
    }
}

/// The host path of a spec; `None` for globs.
fn resolve(spec: &PathSpec, ctx: &Context) -> Option<PathBuf> {
    let joined = match spec {
        PathSpec::Absolute(p) => PathBuf::from(p),
        PathSpec::Home(rest) => ctx.host_home.join(rest),
        PathSpec::Workspace(rel) => ctx.workspace.join(rel),
        PathSpec::Glob(_) => return None,
    };
    // Drop the `.` components (`/ws/.` is `/ws`); specs hold no `..`.
    Some(joined.components().collect())
}

/// The non-glob specs as absolute paths, deduplicated, parents first.
fn absolute(specs: &[PathSpec], ctx: &Context) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = specs.iter().filter_map(|p| resolve(p, ctx)).collect();
    paths.sort_by(|a, b| parents_first(a, b));
    paths.dedup();
    paths
}

/// The glob specs as written, deduplicated, in policy order.
fn globs(specs: &[PathSpec]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for spec in specs {
        if let PathSpec::Glob(g) = spec {
            if !out.contains(g) {
                out.push(g.clone());
            }
        }
    }
    out
}

/// Fewer components first, then by path: a parent always precedes its children.
fn parents_first(a: &Path, b: &Path) -> Ordering {
    let depth = |p: &Path| p.components().count();
    depth(a).cmp(&depth(b)).then_with(|| a.cmp(b))
}
