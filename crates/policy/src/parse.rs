//! Reading a policy file: TOML text → a spanned tree → a validated [`Policy`].
//!
//! # How a file combines with the profile it `extends`
//!
//! The file starts from the named built-in profile (`default` when `extends`
//! is missing) and then, key by key:
//! - a **list** in the file (`read`, `write`, `deny`, `protect`, `allow`,
//!   `pass`, `allow_missing`, `commands`, `writes`) **replaces** the profile's list;
//! - a **scalar** (`changes`) overrides;
//! - `[limits]` overrides **per key**; `"none"` removes the profile's limit;
//! - `[env.set]` **merges** key by key (the file wins);
//! - `[approvals]`: lists replace, `network` and `timeout` override;
//! - `[network]`: lists replace, `max_*` override, `[network.hosts]` merges
//!   per name; `[secrets.NAME]` adds or replaces the secret NAME whole.
//!
//! Keys that are not part of the format are errors, at any depth.

use crate::approval::{Approvals, CommandRule, NetworkApproval};
use crate::error::PolicyError;
use crate::model::{Changes, Layer, Limits, Network, PathSpec, Policy, Secret, SecretSource, DEFAULT_SECRET_HEADER};
use crate::profiles::{builtin, PROFILES};
use crate::values;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// Policy files larger than this are refused before parsing.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

const TOP_KEYS: &[&str] =
    &["version", "extends", "filesystem", "network", "limits", "env", "sandbox", "approvals", "secrets"];
const FILESYSTEM_KEYS: &[&str] = &["read", "write", "deny", "protect", "changes"];
const NETWORK_KEYS: &[&str] = &["allow", "hosts", "allow_ips", "ca", "max_connections", "max_bytes"];
const SECRET_KEYS: &[&str] = &["from", "hosts", "header", "env"];
const LIMIT_KEYS: &[&str] = &["memory", "cpus", "pids", "timeout", "disk", "output"];
const ENV_KEYS: &[&str] = &["pass", "set"];
const SANDBOX_KEYS: &[&str] = &["allow_missing"];
const APPROVAL_KEYS: &[&str] = &["commands", "network", "writes", "timeout"];

/// Read and parse a policy file. The file name as given is used in messages.
/// This is the only I/O in the crate.
pub fn load_file(path: &Path) -> Result<Policy, PolicyError> {
    let name = path.display().to_string();
    let io = |source| PolicyError::Io { file: name.clone(), source };
    let mut text = String::new();
    std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)).map_err(io)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(io(std::io::Error::other(format!("larger than {MAX_FILE_BYTES} bytes"))));
    }
    parse_str(&text, &name)
}

/// Parse policy text. `origin` is the file name used in error messages.
///
/// See the [module documentation](self) for how the file combines with the
/// profile it extends.
pub fn parse_str(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    let doc = ImDocument::parse(text).map_err(|e| PolicyError::syntax(origin, text, &e))?;
    let top = &entries(doc.as_table());
    let cx = Cx { file: origin, text };
    cx.check_keys(top, "", TOP_KEYS)?;
    if let Some(v) = find(top, "version") {
        if !matches!(v.kind, Kind::Int(1)) {
            let msg = format!("{} is not a supported version (expected 1)", v.kind);
            return Err(cx.err(&v.span, "version", msg));
        }
    }
    let (name, span) = match find(top, "extends") {
        Some(v) => (cx.string(v, "extends")?, v.span.clone()),
        None => ("default", 0..0),
    };
    let mut policy = builtin(name).ok_or_else(|| {
        let msg = format!("unknown profile {name:?} (expected one of {PROFILES:?})");
        cx.err(&span, "extends", msg)
    })?;

    for (key, node) in top {
        match key.name.as_str() {
            "filesystem" => cx.filesystem(node, &mut policy)?,
            "network" => cx.network(node, &mut policy.network)?,
            "secrets" => cx.secrets(node, &mut policy.secrets)?,
            "limits" => cx.limits(node, &mut policy.limits)?,
            "env" => cx.env(node, &mut policy)?,
            "sandbox" => {
                for (key, v) in cx.table(node, "sandbox", SANDBOX_KEYS)? {
                    if key.name == "allow_missing" {
                        policy.sandbox.allow_missing = cx.list(v, "sandbox.allow_missing", parse_layer)?;
                    }
                }
            }
            "approvals" => cx.approvals(node, &mut policy.approvals)?,
            _ => {} // version and extends are handled above
        }
    }
    Ok(policy)
}

fn parse_layer(s: &str) -> Result<Layer, String> {
    Layer::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
        format!("unknown layer {s:?} (expected one of {names:?})")
    })
}

/// The file being parsed, for turning spans into error locations.
struct Cx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Cx<'_> {
    fn err(&self, span: &Range<usize>, field: &str, message: String) -> PolicyError {
        PolicyError::invalid(self.file, self.text, span, field, message)
    }

    fn type_err(&self, node: &Node, field: &str, expected: &str) -> PolicyError {
        let msg = format!("expected {expected}, found {}", node.kind.type_name());
        self.err(&node.span, field, msg)
    }

    /// Every key of `table` must be in `allowed`.
    fn check_keys(&self, table: &[(Key, Node)], prefix: &str, allowed: &[&str]) -> Result<(), PolicyError> {
        for (key, _) in table {
            if !allowed.contains(&key.name.as_str()) {
                let field = join(prefix, &key.name);
                let list: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
                let msg = format!("unknown key `{}` (allowed: {})", key.name, list.join(", "));
                return Err(self.err(&key.span, &field, msg));
            }
        }
        Ok(())
    }

    /// `node` as a table whose keys are all in `allowed`.
    fn table<'n>(&self, node: &'n Node, field: &str, allowed: &[&str]) -> Result<&'n [(Key, Node)], PolicyError> {
        match &node.kind {
            Kind::Table(t) => {
                self.check_keys(t, field, allowed)?;
                Ok(t)
            }
            _ => Err(self.type_err(node, field, "a table")),
        }
    }

    fn string<'n>(&self, node: &'n Node, field: &str) -> Result<&'n str, PolicyError> {
        match &node.kind {
            Kind::Str(s) => Ok(s),
            _ => Err(self.type_err(node, field, "a string")),
        }
    }

    /// One of two words, each standing for a value.
    fn choice<T>(&self, node: &Node, field: &str, what: &str, options: [(&str, T); 2]) -> Result<T, PolicyError> {
        let text = self.string(node, field)?;
        let [(a, _), (b, _)] = options;
        match options.into_iter().find(|(word, _)| *word == text) {
            Some((_, value)) => Ok(value),
            None => Err(self.err(&node.span, field, format!("{text:?} is not {what} (expected {a:?} or {b:?})"))),
        }
    }

    /// An array of strings, each converted by `each`; duplicates dropped.
    fn list<T: PartialEq>(
        &self,
        node: &Node,
        field: &str,
        each: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, PolicyError> {
        let Kind::Array(items) = &node.kind else {
            return Err(self.type_err(node, field, "an array of strings"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let value = each(self.string(item, field)?).map_err(|m| self.err(&item.span, field, m))?;
            if !out.contains(&value) {
                out.push(value);
            }
        }
        Ok(out)
    }

    fn filesystem(&self, node: &Node, policy: &mut Policy) -> Result<(), PolicyError> {
        let fs = &mut policy.filesystem;
        for (key, v) in self.table(node, "filesystem", FILESYSTEM_KEYS)? {
            let field = join("filesystem", &key.name);
            let paths = |allow_glob| -> Result<Vec<PathSpec>, PolicyError> {
                self.list(v, &field, |s| values::parse_path(s, allow_glob))
            };
            match key.name.as_str() {
                "read" => fs.read = paths(false)?,
                "write" => fs.write = paths(false)?,
                "deny" => fs.deny = paths(true)?,
                "protect" => fs.protect = paths(true)?,
                "changes" => {
                    let modes = [("review", Changes::Review), ("direct", Changes::Direct)];
                    fs.changes = Some(self.choice(v, &field, "a mode", modes)?);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn network(&self, node: &Node, net: &mut Network) -> Result<(), PolicyError> {
        for (key, v) in self.table(node, "network", NETWORK_KEYS)? {
            let field = join("network", &key.name);
            match key.name.as_str() {
                "allow" => net.allow = self.list(v, &field, |s| values::check_host(s).map(|()| s.to_string()))?,
                "allow_ips" => net.allow_ips = self.list(v, &field, values::parse_cidr)?,
                "ca" => {
                    net.ca = self.list(v, &field, |s| match values::parse_path(s, false)? {
                        PathSpec::Absolute(p) => Ok(p),
                        _ => Err(format!("{s:?}: CA files are absolute host paths")),
                    })?
                }
                "max_connections" => net.max_connections = self.limit(v, &field, connections)?,
                "max_bytes" => net.max_bytes = self.limit(v, &field, size)?,
                "hosts" => {
                    let Kind::Table(map) = &v.kind else {
                        return Err(self.type_err(v, &field, "a table of name = \"IP\""));
                    };
                    for (name, ip) in map {
                        let f = join(&field, &name.name);
                        values::check_host_name(&name.name).map_err(|m| self.err(&name.span, &f, m))?;
                        let text = self.string(ip, &f)?;
                        let addr = text.parse::<IpAddr>().map_err(|_| {
                            self.err(
                                &ip.span,
                                &f,
                                format!("{text:?} is not an IP address (expected e.g. 10.0.0.5 or ::1)"),
                            )
                        })?;
                        net.hosts.insert(name.name.to_ascii_lowercase(), addr);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn secrets(&self, node: &Node, secrets: &mut BTreeMap<String, Secret>) -> Result<(), PolicyError> {
        let Kind::Table(all) = &node.kind else {
            return Err(self.type_err(node, "secrets", "a table of [secrets.NAME] tables"));
        };
        for (name, body) in all {
            let field = join("secrets", &name.name);
            values::check_env_name(&name.name.replace('-', "_")).map_err(|m| self.err(&name.span, &field, m))?;
            let mut from = None;
            let mut hosts = None;
            let mut header = DEFAULT_SECRET_HEADER.to_string();
            let mut env = None;
            for (key, v) in self.table(body, &field, SECRET_KEYS)? {
                let f = join(&field, &key.name);
                match key.name.as_str() {
                    "from" => {
                        from = Some(
                            values::parse_secret_source(self.string(v, &f)?).map_err(|m| self.err(&v.span, &f, m))?,
                        )
                    }
                    "hosts" => {
                        let list =
                            self.list(v, &f, |s| values::check_secret_host(s).map(|()| s.to_ascii_lowercase()))?;
                        if list.is_empty() {
                            return Err(self.err(&v.span, &f, "a secret must be bound to at least one host".into()));
                        }
                        hosts = Some(list);
                    }
                    "header" => {
                        header = self.string(v, &f)?.to_string();
                        values::check_header_template(&header).map_err(|m| self.err(&v.span, &f, m))?;
                    }
                    "env" => {
                        let s = self.string(v, &f)?;
                        values::check_env_name(s).map_err(|m| self.err(&v.span, &f, m))?;
                        env = Some(s.to_string());
                    }
                    _ => {}
                }
            }
            let missing = |k: &str| self.err(&name.span, &field, format!("missing `{k}`"));
            let from = from.ok_or_else(|| missing("from"))?;
            let hosts = hosts.ok_or_else(|| missing("hosts"))?;
            let env = env.unwrap_or_else(|| match &from {
                SecretSource::Env(var) => var.clone(),
                SecretSource::File(_) => name.name.to_ascii_uppercase().replace('-', "_"),
            });
            secrets.insert(name.name.clone(), Secret { from, hosts, header, env });
        }
        Ok(())
    }

    fn limits(&self, node: &Node, limits: &mut Limits) -> Result<(), PolicyError> {
        for (key, v) in self.table(node, "limits", LIMIT_KEYS)? {
            let field = join("limits", &key.name);
            match key.name.as_str() {
                "memory" => limits.memory = self.limit(v, &field, size)?,
                "cpus" => limits.cpus = self.limit(v, &field, cpus)?,
                "pids" => limits.pids = self.limit(v, &field, pids)?,
                "timeout" => limits.timeout = self.limit(v, &field, duration)?,
                "disk" => limits.disk = self.limit(v, &field, size)?,
                "output" => limits.output = self.limit(v, &field, size)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// One limit: `"none"` removes it, anything else must `parse`.
    fn limit<T>(
        &self,
        node: &Node,
        field: &str,
        parse: fn(&Kind) -> Result<T, String>,
    ) -> Result<Option<T>, PolicyError> {
        match &node.kind {
            Kind::Str(s) if s == "none" => Ok(None),
            kind => parse(kind).map(Some).map_err(|m| self.err(&node.span, field, m)),
        }
    }

    fn approvals(&self, node: &Node, a: &mut Approvals) -> Result<(), PolicyError> {
        for (key, v) in self.table(node, "approvals", APPROVAL_KEYS)? {
            let field = join("approvals", &key.name);
            match key.name.as_str() {
                "commands" => a.commands = self.list(v, &field, CommandRule::parse)?,
                "writes" => a.writes = self.list(v, &field, |s| values::check_glob(s).map(|()| s.to_string()))?,
                "network" => {
                    let choices = [("ask", NetworkApproval::Ask), ("deny", NetworkApproval::Deny)];
                    a.network = self.choice(v, &field, "a choice", choices)?;
                }
                "timeout" => a.timeout = duration(&v.kind).map_err(|m| self.err(&v.span, &field, m))?,
                _ => {}
            }
        }
        Ok(())
    }

    fn env(&self, node: &Node, policy: &mut Policy) -> Result<(), PolicyError> {
        for (key, v) in self.table(node, "env", ENV_KEYS)? {
            if key.name == "pass" {
                policy.env.pass = self.list(v, "env.pass", |s| values::check_env_name(s).map(|()| s.to_string()))?;
                continue;
            }
            let Kind::Table(set) = &v.kind else {
                return Err(self.type_err(v, "env.set", "a table"));
            };
            for (name, value) in set {
                let field = join("env.set", &name.name);
                values::check_env_name(&name.name).map_err(|m| self.err(&name.span, &field, m))?;
                let text = self.string(value, &field)?;
                if text.contains('\0') {
                    let msg = "the value contains a NUL byte".to_string();
                    return Err(self.err(&value.span, &field, msg));
                }
                policy.env.set.insert(name.name.clone(), text.to_string());
            }
        }
        Ok(())
    }
}

fn size(kind: &Kind) -> Result<u64, String> {
    match kind {
        Kind::Str(s) => values::parse_size(s),
        Kind::Int(n) if *n > 0 => Ok(*n as u64),
        Kind::Int(n) => Err(format!("{n} must be greater than zero (use \"none\" for no limit)")),
        other => Err(format!("{other} is not a size (expected e.g. 512MiB, 2GiB, 1000000, or \"none\")")),
    }
}

fn duration(kind: &Kind) -> Result<std::time::Duration, String> {
    match kind {
        Kind::Str(s) => values::parse_duration(s),
        Kind::Int(n) if *n > 0 => Ok(std::time::Duration::from_secs(*n as u64)),
        Kind::Int(n) => Err(format!("{n} must be greater than zero (use \"none\" for no limit)")),
        other => Err(format!(
            "{other} is not a duration (expected e.g. 30s, 10m, 1h30m, 500ms, integer seconds, or \"none\")"
        )),
    }
}

fn cpus(kind: &Kind) -> Result<f64, String> {
    let x = match kind {
        Kind::Float(x) => *x,
        Kind::Int(n) => *n as f64,
        other => return Err(format!("{other} is not a number of CPUs (expected e.g. 0.5, 1.0, 4, or \"none\")")),
    };
    if x > 0.0 && x <= 1024.0 {
        Ok(x)
    } else {
        Err(format!("{kind} is out of range (expected more than 0 and at most 1024 CPUs)"))
    }
}

fn connections(kind: &Kind) -> Result<u64, String> {
    match kind {
        Kind::Int(n) if *n >= 1 => Ok(*n as u64),
        other => {
            Err(format!("{other} is not a number of connections (expected an integer of at least 1, or \"none\")"))
        }
    }
}

fn pids(kind: &Kind) -> Result<u64, String> {
    match kind {
        Kind::Int(n) if *n >= 1 => Ok(*n as u64),
        other => Err(format!("{other} is not a number of processes (expected an integer of at least 1, or \"none\")")),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn find<'a>(table: &'a [(Key, Node)], name: &str) -> Option<&'a Node> {
    table.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

// ---- The spanned tree --------------------------------------------------------
//
// The document is copied out of `toml_edit` into this small tree, in which
// every key and value keeps its byte span. (`toml::Spanned` cannot be used for
// a generic tree: implicit tables such as `env` in `[env.set]` carry no span.)

/// A table key and where it was written.
struct Key {
    name: String,
    span: Range<usize>,
}

/// A value and where it was written.
struct Node {
    kind: Kind,
    span: Range<usize>,
}

enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Vec<(Key, Node)>),
}

impl Kind {
    fn type_name(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

/// The value as it appears in messages: scalars literally, others by type.
impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Str(s) => write!(f, "{s:?}"),
            Kind::Int(n) => write!(f, "{n}"),
            Kind::Float(x) => write!(f, "{x}"),
            Kind::Bool(b) => write!(f, "{b}"),
            other => f.write_str(other.type_name()),
        }
    }
}

/// The entries of a table; a value without a span of its own (an implicit
/// table) gets the span of its key.
fn entries(table: &dyn TableLike) -> Vec<(Key, Node)> {
    table
        .iter()
        .map(|(name, item)| {
            let span = table.key(name).and_then(|k| k.span()).unwrap_or(0..0);
            let value = from_item(item, &span);
            let key = Key { name: name.to_string(), span };
            (key, value)
        })
        .collect()
}

fn from_item(item: &Item, fallback: &Range<usize>) -> Node {
    let kind = match item {
        Item::Value(v) => return from_value(v, fallback),
        Item::Table(t) => Kind::Table(entries(t)),
        Item::ArrayOfTables(a) => Kind::Array(
            a.iter()
                .map(|t| Node { kind: Kind::Table(entries(t)), span: t.span().unwrap_or_else(|| fallback.clone()) })
                .collect(),
        ),
        Item::None => Kind::Table(Vec::new()),
    };
    Node { kind, span: item.span().unwrap_or_else(|| fallback.clone()) }
}

fn from_value(value: &Value, fallback: &Range<usize>) -> Node {
    let span = value.span().unwrap_or_else(|| fallback.clone());
    let kind = match value {
        Value::String(s) => Kind::Str(s.value().clone()),
        Value::Integer(n) => Kind::Int(*n.value()),
        Value::Float(x) => Kind::Float(*x.value()),
        Value::Boolean(b) => Kind::Bool(*b.value()),
        Value::Datetime(_) => Kind::Datetime,
        Value::Array(a) => Kind::Array(a.iter().map(|v| from_value(v, &span)).collect()),
        Value::InlineTable(t) => Kind::Table(entries(t)),
    };
    Node { kind, span }
}
