//! `SKILL.md`: YAML front matter between `---` lines, then a Markdown body.
//!
//! ```text
//! ---
//! name: csv-report
//! description: Summarise CSV files into a Markdown report.
//! clawcage:
//!   network: [api.example.com]
//!   secrets: [example_token]
//!   read: [data]
//!   write: [out]
//!   tools: [bash]
//! ---
//! # How to use this skill ...
//! ```
//!
//! The keys of the Agent Skills format (`name`, `description`, `license`,
//! `compatibility`, `metadata`, `allowed-tools`) plus clawcage's `clawcage`
//! table of declared needs. Unknown keys are errors at any depth, and every
//! error names the file, the line and the field.

use crate::error::SkillError;
use clawcage_policy::PathSpec;
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The file every skill directory holds.
pub const SKILL_FILE: &str = "SKILL.md";

/// Longest `SKILL.md` accepted.
pub const MAX_SKILL_FILE: usize = 256 * 1024;

/// A parsed and validated `SKILL.md`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// Lowercase letters, digits and `-`, 1 to 64 characters.
    pub name: String,
    /// What the skill does and when to use it (shown to the model), 1 to 1024 characters.
    pub description: String,
    /// Licence name or file, as written.
    pub license: Option<String>,
    /// Environment requirements, as written (up to 500 characters).
    pub compatibility: Option<String>,
    /// Free-form string metadata.
    pub metadata: BTreeMap<String, String>,
    /// The format's `allowed-tools` (space-separated), as written.
    pub allowed_tools: Option<String>,
    /// What the skill declares it needs; it gets no more.
    pub needs: Needs,
    /// The Markdown after the front matter: loaded only when the model asks.
    pub body: String,
}

/// The `clawcage:` table: everything a skill's scripts may use. Missing
/// keys are empty lists: a skill that declares nothing gets nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Needs {
    /// Hosts its scripts connect to (`host`, `*.suffix`, optional `:port`).
    pub network: Vec<String>,
    /// Names of the task policy's secrets its scripts use.
    pub secrets: Vec<String>,
    /// Paths read (policy syntax: relative = the workspace, `~/`, absolute).
    pub read: Vec<String>,
    /// Paths written.
    pub write: Vec<String>,
    /// Agent tools the skill's instructions use (`bash`, `mcp__NAME__tool`, ...):
    /// while the skill is a task's active skill, only these are accepted.
    pub tools: Vec<String>,
}

impl Needs {
    /// `read` as parsed path specs (validated when the manifest was parsed).
    pub fn read_specs(&self) -> Vec<PathSpec> {
        self.read.iter().filter_map(|p| clawcage_policy::parse_path_spec(p).ok()).collect()
    }

    /// `write` as parsed path specs.
    pub fn write_specs(&self) -> Vec<PathSpec> {
        self.write.iter().filter_map(|p| clawcage_policy::parse_path_spec(p).ok()).collect()
    }

    /// Nothing declared at all.
    pub fn is_empty(&self) -> bool {
        self.network.is_empty()
            && self.secrets.is_empty()
            && self.read.is_empty()
            && self.write.is_empty()
            && self.tools.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Name,
    description: Description,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    compatibility: Option<Compatibility>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default, rename = "allowed-tools")]
    allowed_tools: Option<String>,
    #[serde(default)]
    clawcage: RawNeeds,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNeeds {
    #[serde(default)]
    network: Vec<Host>,
    #[serde(default)]
    secrets: Vec<Ident>,
    #[serde(default)]
    read: Vec<PathNeed>,
    #[serde(default)]
    write: Vec<PathNeed>,
    #[serde(default)]
    tools: Vec<Ident>,
}

/// A string checked while it is deserialised, so that the YAML parser
/// reports the line of the offending value.
/// Top-level keys get no path from the parser: `$field` names them.
macro_rules! checked_string {
    ($name:ident, $check:expr) => {
        checked_string!($name, "", $check);
    };
    ($name:ident, $field:literal, $check:expr) => {
        struct $name(String);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s).map_err(|m| match $field {
                    "" => D::Error::custom(m),
                    field => D::Error::custom(format!("{field}: {m}")),
                })?;
                Ok($name(s))
            }
        }
    };
}

checked_string!(Name, "name", check_name);
checked_string!(Description, "description", |s| check_len(s, 1, 1024, "description"));
checked_string!(Compatibility, "compatibility", |s| check_len(s, 0, 500, "compatibility"));
checked_string!(Host, clawcage_policy::check_host_pattern);
checked_string!(Ident, check_ident);
checked_string!(PathNeed, |s| clawcage_policy::parse_path_spec(s).map(|_| ()));

/// A skill name: 1 to 64 of `a-z`, `0-9`, `-`; no leading, trailing or double `-`.
pub fn check_name(s: &str) -> Result<(), String> {
    let chars_ok = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if s.is_empty() || s.len() > 64 || !chars_ok || s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return Err(format!(
            "{s:?} is not a skill name (1 to 64 lowercase letters, digits and single `-`, not at either end)"
        ));
    }
    Ok(())
}

fn check_len(s: &str, min: usize, max: usize, what: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n < min || n > max || (min > 0 && s.trim().is_empty()) {
        return Err(format!("the {what} must have {min} to {max} characters (has {n})"));
    }
    Ok(())
}

/// A secret or tool name: letters, digits, `_` and `-`, 1 to 128 characters.
fn check_ident(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(format!("{s:?} is not a name (1 to 128 letters, digits, `_` or `-`)"));
    }
    Ok(())
}

/// Parse `SKILL.md` text. `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Manifest, SkillError> {
    let at = |line: usize, field: &str, message: String| SkillError::Invalid {
        file: file.to_string(),
        line,
        field: field.to_string(),
        message,
    };
    if text.len() > MAX_SKILL_FILE {
        return Err(at(1, "", format!("larger than {MAX_SKILL_FILE} bytes")));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "---" {
        return Err(at(1, "", "SKILL.md must start with a `---` line opening the YAML front matter".into()));
    }
    let mut yaml_len = 0;
    let mut closed = None;
    for (i, line) in lines.enumerate() {
        if line.trim_end() == "---" {
            closed = Some(i + 2);
            break;
        }
        yaml_len += line.len();
    }
    let Some(close_line) = closed else {
        return Err(at(1, "", "the front matter is not closed by a `---` line".into()));
    };
    let yaml = &text[first.len()..first.len() + yaml_len];
    let body_start = text[first.len() + yaml_len..].find('\n').map_or(text.len(), |i| first.len() + yaml_len + i + 1);
    let raw: RawManifest = serde_norway::from_str(yaml).map_err(|e| yaml_error(file, &e))?;
    let _ = close_line;
    let needs = Needs {
        network: dedup(raw.clawcage.network.into_iter().map(|h| h.0)),
        secrets: dedup(raw.clawcage.secrets.into_iter().map(|h| h.0)),
        read: dedup(raw.clawcage.read.into_iter().map(|h| h.0)),
        write: dedup(raw.clawcage.write.into_iter().map(|h| h.0)),
        tools: dedup(raw.clawcage.tools.into_iter().map(|h| h.0)),
    };
    Ok(Manifest {
        name: raw.name.0,
        description: raw.description.0,
        license: raw.license,
        compatibility: raw.compatibility.map(|c| c.0),
        metadata: raw.metadata,
        allowed_tools: raw.allowed_tools,
        needs,
        body: text[body_start..].to_string(),
    })
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// A YAML error as `file:line: field: message`; YAML line 1 is file line 2.
fn yaml_error(file: &str, e: &serde_norway::Error) -> SkillError {
    let line = e.location().map_or(1, |l| l.line() + 1);
    let full = e.to_string();
    // serde_norway appends " at line L column C"; we give the file's line instead.
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    // Nested errors start with the field path: `clawcage.network[1]: ...`.
    let (field, message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
        _ => (String::new(), message),
    };
    SkillError::Invalid { file: file.to_string(), line, field, message }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
