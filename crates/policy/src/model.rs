//! The effective policy: what a sandbox may read, write, reach and use.
//!
//! These types are the contract between the policy file and the enforcement
//! crates. They hold *validated* data: once a [`Policy`] exists, every size is
//! a number of bytes, every duration a [`Duration`], every path spec parsed.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// A fully resolved policy (profile + file, `extends` applied).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Name of the built-in profile this policy extends (`default`, `offline`, `dev`).
    pub extends: String,
    /// What the sandbox can see and change on disk.
    pub filesystem: Filesystem,
    /// Where the sandbox may connect (enforced by the egress proxy; empty = no network).
    pub network: Network,
    /// Resource limits.
    pub limits: Limits,
    /// Environment of the sandboxed command.
    pub env: Env,
    /// Protection layers the operator explicitly accepts running without.
    pub sandbox: SandboxOptions,
    /// Tool calls that wait for a person's approval.
    pub approvals: crate::approval::Approvals,
    /// `[secrets.NAME]`: credentials injected by the egress proxy, by name.
    pub secrets: BTreeMap<String, Secret>,
}

/// A path as written in a policy, before the workspace and home are known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub enum PathSpec {
    /// `/usr`: an absolute host path.
    Absolute(String),
    /// `~/.ssh`: relative to the invoking user's home directory (the rest, without `~/`).
    Home(String),
    /// `.`, `src`, `build/out`: relative to the workspace; never escapes it.
    Workspace(String),
    /// `**/.env`, `*.pem`: a glob matched against paths relative to the workspace.
    Glob(String),
}

impl From<PathSpec> for String {
    fn from(p: PathSpec) -> String {
        match p {
            PathSpec::Absolute(s) | PathSpec::Workspace(s) | PathSpec::Glob(s) => s,
            PathSpec::Home(s) if s.is_empty() => "~".to_string(),
            PathSpec::Home(s) => format!("~/{s}"),
        }
    }
}

/// `[filesystem]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filesystem {
    /// Visible read-only.
    pub read: Vec<PathSpec>,
    /// Visible and writable.
    pub write: Vec<PathSpec>,
    /// Never visible, even inside read or write paths.
    pub deny: Vec<PathSpec>,
    /// Visible but read-only inside write paths.
    pub protect: Vec<PathSpec>,
    /// How file changes reach the real directory; `None`: the caller's
    /// default ([`crate::Context::default_changes`]: `direct` for `run`,
    /// `review` for agent tasks).
    pub changes: Option<Changes>,
}

/// How the sandbox's file changes reach the real workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Changes {
    /// Held in an overlay for `diff` / `apply`.
    Review,
    /// Written straight through.
    Direct,
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Network {
    /// Allowed destinations (`host`, `*.suffix`, an IP, each with an optional
    /// `:port`; without a port, 80 and 443). Empty: no network.
    pub allow: Vec<String>,
    /// `[network.hosts]`: names resolved to these addresses without DNS.
    pub hosts: BTreeMap<String, IpAddr>,
    /// Addresses allowed even though they are loopback, private, link-local...
    pub allow_ips: Vec<Cidr>,
    /// Extra CA certificate files (PEM) trusted for upstream TLS.
    pub ca: Vec<String>,
    /// Most connections open through the proxy at once.
    pub max_connections: Option<u64>,
    /// Most bytes (both directions) through the proxy over the sandbox's life.
    pub max_bytes: Option<u64>,
}

impl Network {
    /// Whether the sandbox gets the proxy at all: something is allowed, or
    /// unlisted hosts may be asked about.
    pub fn enabled(&self, approvals: &crate::approval::Approvals) -> bool {
        !self.allow.is_empty() || approvals.network == crate::approval::NetworkApproval::Ask
    }
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Cidr {
    /// The network address (host bits are zero).
    pub addr: IpAddr,
    /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network. IPv4-mapped IPv6 addresses count as
    /// the IPv4 address they carry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        let full = if c.addr.is_ipv4() { 32 } else { 128 };
        if c.prefix == full {
            c.addr.to_string()
        } else {
            format!("{}/{}", c.addr, c.prefix)
        }
    }
}

/// `[secrets.NAME]`: a credential the sandbox sees only as a placeholder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Secret {
    /// Where the real value comes from on the host.
    pub from: SecretSource,
    /// Host patterns (as in `[network] allow`, without ports) the value may go to.
    pub hosts: Vec<String>,
    /// Header the value is sent in toward bound hosts: `Name: text with {}`.
    pub header: String,
    /// Variable that holds the placeholder inside the sandbox.
    pub env: String,
}

/// Default `[secrets.NAME] header`.
pub const DEFAULT_SECRET_HEADER: &str = "Authorization: Bearer {}";

/// `[secrets.NAME] from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum SecretSource {
    /// `env:VAR`: the host environment variable VAR.
    Env(String),
    /// `file:PATH`: the contents of a host file (one trailing newline dropped).
    File(String),
}

impl From<SecretSource> for String {
    fn from(s: SecretSource) -> String {
        match s {
            SecretSource::Env(v) => format!("env:{v}"),
            SecretSource::File(p) => format!("file:{p}"),
        }
    }
}

/// `[limits]`. `None` means "no limit of this kind".
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Limits {
    /// Memory in bytes (cgroup memory limit, or RLIMIT_AS as a last resort).
    pub memory: Option<u64>,
    /// CPU share, in CPUs (1.5 = one and a half cores).
    pub cpus: Option<f64>,
    /// Maximum number of processes/threads in the sandbox.
    pub pids: Option<u64>,
    /// Wall-clock timeout of one command.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Option<Duration>,
    /// Size of the private /tmp and $HOME, and the largest file the sandbox may write.
    pub disk: Option<u64>,
    /// Combined stdout + stderr bytes one command may produce.
    pub output: Option<u64>,
}

fn ser_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format!("{}s", d.as_secs_f64())),
        None => s.serialize_none(),
    }
}

/// `[env]`: the command's environment starts empty; these are added.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Env {
    /// Host variables passed through by name when set (`pass = ["LANG", "TERM"]`).
    pub pass: Vec<String>,
    /// Fixed values (`[env.set] RUST_LOG = "info"`).
    pub set: BTreeMap<String, String>,
}

/// `[sandbox]`: explicit acceptance of missing layers (fail closed otherwise).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SandboxOptions {
    /// Layers that may be absent on this kernel without refusing to run.
    pub allow_missing: Vec<Layer>,
}

/// A protection layer that a kernel may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Landlock filesystem rules.
    Landlock,
    /// cgroup (v1 or v2) limits; without them rlimits are used.
    Cgroups,
}

impl Layer {
    /// Every layer, in the order they are documented.
    pub const ALL: [Layer; 2] = [Layer::Landlock, Layer::Cgroups];

    /// The name used in policy files and plans (`"landlock"`, `"cgroups"`).
    pub fn name(self) -> &'static str {
        match self {
            Layer::Landlock => "landlock",
            Layer::Cgroups => "cgroups",
        }
    }

    /// The layer with this policy-file name.
    pub fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl Changes {
    /// The name used in policy files (`"review"`, `"direct"`).
    pub fn name(self) -> &'static str {
        match self {
            Changes::Review => "review",
            Changes::Direct => "direct",
        }
    }
}
