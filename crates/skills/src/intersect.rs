//! The policy a skill's script runs under: the task's policy intersected
//! with the skill's declared needs. Pure; no I/O.
//!
//! A skill can never widen the task's policy. For each kind of need:
//! - **network**: each declared pattern is intersected with every task
//!   `allow` rule (`api.x.com` ∩ `*.x.com` = `api.x.com`; `*.x.com` ∩
//!   `api.x.com` = `api.x.com`; ports must agree, a missing port takes the
//!   other's); a pattern that meets no rule is dropped.
//!   A pattern without a port means ports 80 and 443 (as in the policy).
//!   Unlisted hosts are never asked about (`[approvals] network = "deny"`).
//! - **secrets** (the task's `[secrets.NAME]`), **tools**: kept when the
//!   task has them by name; the task's other secrets are removed.
//! - **read**: kept when inside a task `read` or `write` path.
//! - **write**: kept when inside a task `write` path; inside only a `read`
//!   path it becomes read-only; else dropped.
//! - The script also sees the task's system directories ([`RUNTIME_DIRS`]
//!   among the task's `read` paths) so that programs can run, and nothing
//!   else of the task's: not the workspace, not the home paths, unless
//!   declared. The caller adds the skill's own directory, read-only.
//! - The task's `deny` and `protect` entries, limits, environment,
//!   approvals, accepted missing layers and change mode carry over unchanged.
//!
//! Everything dropped or narrowed is reported in [`Effective::notes`].

use crate::manifest::Needs;
use clawcage_policy::{PathSpec, Policy};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// System directories a skill's script gets when the task's policy has them.
pub const RUNTIME_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"];

/// What the task allows besides its policy file.
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    /// The task's policy.
    pub policy: &'a Policy,
    /// Host workspace (absolute): relative paths resolve against it.
    pub workspace: &'a Path,
    /// Host home directory: `~/` paths resolve against it.
    pub home: &'a Path,
    /// Names of the tools the task offers the model.
    pub tools: &'a [String],
}

/// The result of [`intersect`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effective {
    /// The policy the skill's script runs under (paths absolute).
    pub policy: Policy,
    /// Secrets the script may use.
    pub secrets: Vec<String>,
    /// Tools the skill may use.
    pub tools: Vec<String>,
    /// Needs that were dropped or narrowed, and why.
    pub notes: Vec<Note>,
}

/// One declared need the task's policy does not fully grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// `network`, `secrets`, `read`, `write` or `tools`.
    pub kind: &'static str,
    /// The need as declared.
    pub need: String,
    /// What happened to it.
    pub outcome: String,
}

/// The task's policy intersected with `needs` (see the module docs).
pub fn intersect(task: &Task<'_>, needs: &Needs) -> Effective {
    let mut notes = Vec::new();
    let mut policy = task.policy.clone();

    // Network.
    let mut allow: Vec<String> = Vec::new();
    for need in &needs.network {
        let got: Vec<String> = task.policy.network.allow.iter().filter_map(|rule| intersect_host(need, rule)).collect();
        match got.as_slice() {
            [] => notes.push(Note {
                kind: "network",
                need: need.clone(),
                outcome: "dropped: the task's policy does not allow it".into(),
            }),
            [one] if one.eq_ignore_ascii_case(need) => {}
            more => notes.push(Note { kind: "network", need: need.clone(), outcome: format!("narrowed to {more:?}") }),
        }
        for g in got {
            if !allow.contains(&g) {
                allow.push(g);
            }
        }
    }
    policy.network.allow = allow;
    // Asking a person about unlisted hosts would reach past the declared needs.
    policy.approvals.network = clawcage_policy::approval::NetworkApproval::Deny;

    // Secrets and tools: by name.
    let by_name = |kind: &'static str, declared: &[String], have: &[String], notes: &mut Vec<Note>| {
        let mut out = Vec::new();
        for d in declared {
            if have.contains(d) {
                out.push(d.clone());
            } else {
                notes.push(Note { kind, need: d.clone(), outcome: format!("dropped: the task has no {kind} {d:?}") });
            }
        }
        out
    };
    let have: Vec<String> = task.policy.secrets.keys().cloned().collect();
    let secrets = by_name("secrets", &needs.secrets, &have, &mut notes);
    policy.secrets.retain(|name, _| secrets.contains(name));
    let tools = by_name("tools", &needs.tools, task.tools, &mut notes);

    // Paths.
    let resolve = |s: &PathSpec| resolve(s, task.workspace, task.home);
    let task_read: Vec<PathBuf> = task.policy.filesystem.read.iter().filter_map(resolve).collect();
    let task_write: Vec<PathBuf> = task.policy.filesystem.write.iter().filter_map(resolve).collect();
    let inside = |p: &Path, roots: &[PathBuf]| roots.iter().any(|r| p.starts_with(r));
    let mut read: Vec<PathBuf> = task_read.iter().filter(|p| is_runtime(p)).cloned().collect();
    let mut write: Vec<PathBuf> = Vec::new();
    for (spec, text) in needs.read_specs().iter().zip(&needs.read) {
        let Some(p) = resolve(spec) else { continue };
        if inside(&p, &task_read) || inside(&p, &task_write) {
            read.push(p);
        } else {
            notes.push(Note {
                kind: "read",
                need: text.clone(),
                outcome: "dropped: outside the task's read and write paths".into(),
            });
        }
    }
    for (spec, text) in needs.write_specs().iter().zip(&needs.write) {
        let Some(p) = resolve(spec) else { continue };
        if inside(&p, &task_write) {
            write.push(p);
        } else if inside(&p, &task_read) {
            notes.push(Note {
                kind: "write",
                need: text.clone(),
                outcome: "read-only: the task's policy only lets it be read".into(),
            });
            read.push(p);
        } else {
            notes.push(Note { kind: "write", need: text.clone(), outcome: "dropped: outside the task's paths".into() });
        }
    }
    let abs = |v: Vec<PathBuf>| -> Vec<PathSpec> {
        let mut out: Vec<PathSpec> = Vec::new();
        for p in v {
            let spec = PathSpec::Absolute(p.to_string_lossy().into_owned());
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
        out
    };
    policy.filesystem.read = abs(read);
    policy.filesystem.write = abs(write);
    // deny / protect: relative entries would resolve against the plan's
    // workspace, which stays the task's; absolute forms make that explicit.
    policy.filesystem.deny = task.policy.filesystem.deny.iter().map(|s| absolute(s, task)).collect();
    policy.filesystem.protect = task.policy.filesystem.protect.iter().map(|s| absolute(s, task)).collect();
    Effective { policy, secrets, tools, notes }
}

fn absolute(spec: &PathSpec, task: &Task<'_>) -> PathSpec {
    match resolve(spec, task.workspace, task.home) {
        Some(p) => PathSpec::Absolute(p.to_string_lossy().into_owned()),
        None => spec.clone(), // a glob, matched in the workspace as before
    }
}

fn is_runtime(p: &Path) -> bool {
    RUNTIME_DIRS.iter().any(|d| p.starts_with(d))
}

/// The absolute host path of a spec (`.` components dropped); `None` for globs.
fn resolve(spec: &PathSpec, workspace: &Path, home: &Path) -> Option<PathBuf> {
    let joined = match spec {
        PathSpec::Absolute(p) => PathBuf::from(p),
        PathSpec::Home(rest) => home.join(rest),
        PathSpec::Workspace(rel) => workspace.join(rel),
        PathSpec::Glob(_) => return None,
    };
    Some(joined.components().collect())
}

/// A host pattern split into its host part and optional port.
#[derive(Debug, PartialEq, Eq)]
struct HostPattern {
    /// Lowercase, without a trailing dot; `*.` kept for wildcards.
    host: String,
    port: Option<u16>,
}

fn split(p: &str) -> HostPattern {
    let (host, port) = if let Some(rest) = p.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => (format!("[{v6}]"), after.strip_prefix(':').and_then(|s| s.parse().ok())),
            None => (p.to_string(), None),
        }
    } else if p.matches(':').count() > 1 {
        (format!("[{p}]"), None)
    } else {
        match p.rsplit_once(':') {
            Some((h, port)) => (h.to_string(), port.parse().ok()),
            None => (p.to_string(), None),
        }
    };
    HostPattern { host: host.trim_end_matches('.').to_ascii_lowercase(), port }
}

/// The pattern both `a` and `b` allow, or `None` when they share nothing.
/// `*.x` matches names below `x`, not `x` itself.
pub fn intersect_host(a: &str, b: &str) -> Option<String> {
    let (a, b) = (split(a), split(b));
    // No port: 80 and 443.
    let web = |p: u16| p == 80 || p == 443;
    let port = match (a.port, b.port) {
        (Some(p), Some(q)) if p != q => return None,
        (Some(p), None) | (None, Some(p)) if !web(p) => return None,
        (p, q) => p.or(q),
    };
    let host = match (a.host.strip_prefix("*."), b.host.strip_prefix("*.")) {
        (None, None) => (a.host == b.host).then(|| a.host.clone()),
        (None, Some(s)) => a.host.ends_with(&format!(".{s}")).then(|| a.host.clone()),
        (Some(s), None) => b.host.ends_with(&format!(".{s}")).then(|| b.host.clone()),
        (Some(s), Some(t)) if s == t || s.ends_with(&format!(".{t}")) => Some(a.host.clone()),
        (Some(s), Some(t)) if t.ends_with(&format!(".{s}")) => Some(b.host.clone()),
        _ => None,
    }?;
    Some(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

#[cfg(test)]
#[path = "intersect_tests.rs"]
mod tests;
