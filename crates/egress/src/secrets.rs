//! `[secrets.NAME]`: the sandbox holds a random placeholder; the proxy puts
//! the real value into requests toward the hosts the secret is bound to and
//! blocks any request that carries a placeholder anywhere else.

use crate::host::{Host, HostError, Target};
use crate::rules::Rule;
use clawcage_policy::{Policy, SecretSource};
use http::header::{HeaderName, HeaderValue};
use rand::RngCore;

/// Why the secrets could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `from = "env:VAR"` but VAR is not set (or not UTF-8).
    #[error("secrets.{name}: the host variable {var} is not set")]
    MissingEnv {
        /// Secret name.
        name: String,
        /// Variable.
        var: String,
    },
    /// `from = "file:PATH"` could not be read.
    #[error("secrets.{name}: cannot read {path}: {source}")]
    File {
        /// Secret name.
        name: String,
        /// File.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The value cannot travel in an HTTP header (empty, control characters).
    #[error("secrets.{name}: the value is empty or has characters a header cannot carry")]
    BadValue {
        /// Secret name.
        name: String,
    },
    /// A bound host is not a host pattern.
    #[error("secrets.{name}: {source}")]
    Host {
        /// Secret name.
        name: String,
        /// Why.
        source: HostError,
    },
}

struct Entry {
    name: String,
    placeholder: String,
    value: String,
    hosts: Vec<Rule>,
    header: HeaderName,
    template: String,
}

/// The prepared secrets of one sandbox: placeholders and real values. It
/// never leaves the host process; `Debug` prints names only.
#[derive(Default)]
pub struct SecretTable {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for SecretTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|e| &e.name)).finish()
    }
}

/// What [`SecretTable::apply`] did to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing of any secret in it.
    None,
    /// These secrets' values were put in (toward a bound host).
    Injected(Vec<String>),
    /// The request carries the placeholder of this secret, which is not bound
    /// to the destination: it must not go out.
    Blocked(String),
}

/// Building a [`SecretTable`] from a policy.
pub struct Secrets;

impl Secrets {
    /// Read every secret's value from the host and make its placeholder.
    /// Returns the variables to put in the sandbox's environment (name,
    /// placeholder) and the table for the proxy.
    pub fn prepare(policy: &Policy) -> Result<(Vec<(String, String)>, SecretTable), SecretError> {
        let mut env = Vec::new();
        let mut entries = Vec::new();
        for (name, s) in &policy.secrets {
            let value = match &s.from {
                SecretSource::Env(var) => {
                    std::env::var(var).map_err(|_| SecretError::MissingEnv { name: name.clone(), var: var.clone() })?
                }
                SecretSource::File(path) => {
                    let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                        name: name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                    let t = text.strip_suffix('\n').unwrap_or(&text);
                    t.strip_suffix('\r').unwrap_or(t).to_string()
                }
            };
            if value.is_empty() || HeaderValue::from_str(&value).is_err() {
                return Err(SecretError::BadValue { name: name.clone() });
            }
            let hosts = s
                .hosts
                .iter()
                .map(|h| Rule::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| SecretError::Host { name: name.clone(), source })?;
            let (header, template) = s.header.split_once(':').unwrap_or(("authorization", "Bearer {}"));
            let header = HeaderName::from_bytes(header.trim().as_bytes())
                .map_err(|_| SecretError::BadValue { name: name.clone() })?;
            let placeholder = placeholder(name);
            env.push((s.env.clone(), placeholder.clone()));
            entries.push(Entry {
                name: name.clone(),
                placeholder,
                value,
                hosts,
                header,
                template: template.trim().to_string(),
            });
        }
        Ok((env, SecretTable { entries }))
    }
}

/// `clawcage-secret-NAME-` and 128 random bits in hex: unguessable, and
/// recognisable in logs as ours.
fn placeholder(name: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("clawcage-secret-{name}-{hex}")
}

impl Entry {
    /// Whether the secret is bound to this host (ports do not matter).
    fn bound_to(&self, host: &Host) -> bool {
        // A bound-host rule has no port: it matches on 80 and 443; ask for 443.
        let target = Target { host: host.clone(), port: 443 };
        self.hosts.iter().any(|r| r.matches(&target))
    }
}

impl SecretTable {
    /// No secrets at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any secret is bound to `host` (then HTTPS to it is
    /// terminated by the proxy so the value can be put in).
    pub fn any_bound(&self, host: &Host) -> bool {
        self.entries.iter().any(|e| e.bound_to(host))
    }

    /// The placeholder of secret `name` (for tests and diagnostics).
    pub fn placeholder(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.name == name).map(|e| e.placeholder.as_str())
    }

    /// Put secret values into a request toward `host`, or say it must be blocked.
    ///
    /// Every header value and the request target are searched for
    /// placeholders. A placeholder of a secret not bound to `host` blocks the
    /// request (nothing is changed). Toward a bound host, placeholders are
    /// replaced by the value, and the secret's header (`Authorization:
    /// Bearer {}` by default) is added when the request does not have it.
    pub fn apply(&self, host: &Host, parts: &mut http::request::Parts) -> Applied {
        let carries = |e: &Entry| {
            let p = e.placeholder.as_bytes();
            contains(parts.uri.to_string().as_bytes(), p) || parts.headers.values().any(|v| contains(v.as_bytes(), p))
        };
        for e in &self.entries {
            if !e.bound_to(host) && carries(e) {
                return Applied::Blocked(e.name.clone());
            }
        }
        let mut injected = Vec::new();
        for e in self.entries.iter().filter(|e| e.bound_to(host)) {
            let mut used = false;
            for v in parts.headers.values_mut() {
                if contains(v.as_bytes(), e.placeholder.as_bytes()) {
                    let replaced = String::from_utf8_lossy(v.as_bytes()).replace(&e.placeholder, &e.value);
                    if let Ok(nv) = HeaderValue::from_str(&replaced) {
                        *v = nv;
                        used = true;
                    }
                }
            }
            let uri = parts.uri.to_string();
            if uri.contains(&e.placeholder) {
                if let Ok(u) = uri.replace(&e.placeholder, &e.value).parse() {
                    parts.uri = u;
                    used = true;
                }
            }
            if !parts.headers.contains_key(&e.header) {
                if let Ok(mut v) = HeaderValue::from_str(&e.template.replace("{}", &e.value)) {
                    v.set_sensitive(true);
                    parts.headers.insert(e.header.clone(), v);
                    used = true;
                }
            }
            if used {
                injected.push(e.name.clone());
            }
        }
        if injected.is_empty() {
            Applied::None
        } else {
            Applied::Injected(injected)
        }
    }

    /// (name, placeholder) of every secret not bound to `host`: what must
    /// not appear in anything sent there.
    pub fn foreign(&self, host: &Host) -> Vec<(String, Vec<u8>)> {
        self.entries
            .iter()
            .filter(|e| !e.bound_to(host))
            .map(|e| (e.name.clone(), e.placeholder.clone().into_bytes()))
            .collect()
    }

    /// A whole request body toward `host`: blocked when it carries the
    /// placeholder of a secret not bound there; otherwise the placeholders
    /// of the secrets bound there replaced by their values (form and JSON
    /// credentials), with the names of those used.
    pub fn apply_body(&self, host: &Host, body: &[u8]) -> BodyApplied {
        if let Some((name, _)) = self.foreign(host).into_iter().find(|(_, p)| contains(body, p)) {
            return BodyApplied::Blocked(name);
        }
        let mut out = body.to_vec();
        let mut used = Vec::new();
        for e in self.entries.iter().filter(|e| e.bound_to(host)) {
            if contains(&out, e.placeholder.as_bytes()) {
                out = replace(&out, e.placeholder.as_bytes(), e.value.as_bytes());
                used.push(e.name.clone());
            }
        }
        if used.is_empty() {
            BodyApplied::Unchanged
        } else {
            BodyApplied::Injected(used, out)
        }
    }
}

/// What [`SecretTable::apply_body`] did to a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyApplied {
    /// No placeholder in it.
    Unchanged,
    /// These secrets' values were put in; the new body.
    Injected(Vec<String>, Vec<u8>),
    /// It carries the placeholder of this secret, not bound to the destination.
    Blocked(String),
}

/// First occurrence of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn table() -> (Vec<(String, String)>, SecretTable) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("clawcage-egress-secret-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "file-value-123\n").unwrap();
        std::env::set_var("CLAWCAGE_TEST_GH_TOKEN", "ghp_realvalue");
        let text = format!(
            "[network]\nallow = [\"api.github.com\", \"*.example.com\"]\n\
             [secrets.gh]\nfrom = \"env:CLAWCAGE_TEST_GH_TOKEN\"\nhosts = [\"api.github.com\"]\n\
             [secrets.key]\nfrom = \"file:{}\"\nhosts = [\"*.example.com\"]\nheader = \"X-Api-Key: {{}}\"\n",
            file.display()
        );
        let policy = clawcage_policy::parse_str(&text, "p.toml").unwrap();
        let prepared = Secrets::prepare(&policy).unwrap(); // the value is read here
        let _ = std::fs::remove_dir_all(&dir);
        prepared
    }

    fn req(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn name(s: &str) -> Host {
        Host::Name(s.into())
    }

    #[test]
    fn placeholders_are_random_and_hold_no_value() {
        let (env, t) = table();
        let (_, t2) = table();
        assert_eq!(env.len(), 2);
        let gh = env.iter().find(|(k, _)| k == "CLAWCAGE_TEST_GH_TOKEN").unwrap();
        assert!(gh.1.starts_with("clawcage-secret-gh-") && !gh.1.contains("realvalue"));
        assert_ne!(t.placeholder("gh"), t2.placeholder("gh"));
        assert_eq!(env.iter().find(|(k, _)| k == "KEY").map(|(_, v)| v.as_str()), t.placeholder("key"));
        assert!(!format!("{t:?}").contains("realvalue"));
    }

    #[test]
    fn values_go_only_to_bound_hosts() {
        let (_, t) = table();
        let ph = t.placeholder("gh").unwrap().to_string();
        let mut p = req("/user", &[("authorization", &format!("token {ph}"))]);
        assert_eq!(t.apply(&name("api.github.com"), &mut p), Applied::Injected(vec!["gh".into()]));
        assert_eq!(p.headers["authorization"], "token ghp_realvalue");

        // Bound host, no placeholder: the header is added.
        let mut p = req("/repos", &[]);
        assert_eq!(t.apply(&name("api.github.com"), &mut p), Applied::Injected(vec!["gh".into()]));
        assert_eq!(p.headers["authorization"], "Bearer ghp_realvalue");

        // Another host: no value, and the placeholder blocks the request.
        let mut p = req("/x", &[]);
        assert_eq!(t.apply(&name("evil.test"), &mut p), Applied::None);
        assert!(p.headers.get("authorization").is_none());
        let mut p = req(&format!("/steal?t={ph}"), &[]);
        assert_eq!(t.apply(&name("evil.test"), &mut p), Applied::Blocked("gh".into()));
        let mut p = req("/", &[("cookie", &format!("a={ph}"))]);
        assert_eq!(t.apply(&name("evil.test"), &mut p), Applied::Blocked("gh".into()));
        // gh's placeholder toward key's bound host is blocked too.
        let mut p = req("/", &[("x-leak", &ph)]);
        assert_eq!(t.apply(&name("a.example.com"), &mut p), Applied::Blocked("gh".into()));

        let kph = t.placeholder("key").unwrap().to_string();
        let mut p = req(&format!("/q?k={kph}"), &[]);
        assert_eq!(t.apply(&name("a.example.com"), &mut p), Applied::Injected(vec!["key".into()]));
        assert_eq!(p.uri, "/q?k=file-value-123");
        assert_eq!(p.headers["x-api-key"], "file-value-123");
        assert!(t.any_bound(&name("a.example.com")) && !t.any_bound(&name("example.com")));
    }

    #[test]
    fn bodies_get_values_toward_bound_hosts_and_are_blocked_elsewhere() {
        let (_, t) = table();
        let gh = t.placeholder("gh").unwrap().to_string();
        let key = t.placeholder("key").unwrap().to_string();
        let form = format!("user=me&token={gh}&again={gh}");
        match t.apply_body(&name("api.github.com"), form.as_bytes()) {
            BodyApplied::Injected(names, out) => {
                assert_eq!(names, ["gh"]);
                assert_eq!(out, b"user=me&token=ghp_realvalue&again=ghp_realvalue");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.apply_body(&name("evil.test"), form.as_bytes()), BodyApplied::Blocked("gh".into()));
        // Another secret's placeholder toward a bound host blocks too.
        let json = format!("{{\"a\":\"{gh}\",\"k\":\"{key}\"}}");
        assert_eq!(t.apply_body(&name("api.github.com"), json.as_bytes()), BodyApplied::Blocked("key".into()));
        assert_eq!(t.apply_body(&name("evil.test"), b"nothing here"), BodyApplied::Unchanged);
        let foreign: Vec<String> = t.foreign(&name("api.github.com")).into_iter().map(|(n, _)| n).collect();
        assert_eq!(foreign, ["key"]);
    }

    #[test]
    fn missing_sources_are_errors() {
        let policy = clawcage_policy::parse_str(
            "[secrets.x]\nfrom = \"env:CLAWCAGE_TEST_SURELY_UNSET\"\nhosts = [\"a.org\"]\n",
            "p.toml",
        )
        .unwrap();
        let e = Secrets::prepare(&policy).unwrap_err().to_string();
        assert!(e.contains("CLAWCAGE_TEST_SURELY_UNSET"), "{e}");
    }
}
