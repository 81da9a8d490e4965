//! MCP servers of an agent group: `[mcp.NAME]` tables.
//!
//! ```toml
//! [mcp.files]
//! command = ["python3", "/opt/mcp/files_server.py"]
//! env = { LOG_LEVEL = "warn" }
//! ```
//!
//! The server runs inside the task's sandbox under the task's policy, so
//! `command` names programs as the sandbox sees them. Unknown keys are errors.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Extra environment variables (on top of the sandbox's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    mcp: BTreeMap<String, Server>,
}

/// Parse `[mcp.NAME]` tables from `text` (a file holding only them). Errors
/// are one line naming `origin`, the line and the field.
pub fn parse(text: &str, origin: &str) -> Result<BTreeMap<String, Server>, String> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        format!("{origin}:{line}: {}", e.message().lines().next().unwrap_or(""))
    })?;
    for (name, server) in &file.mcp {
        let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(format!("{origin}: field `mcp.{name}`: server names are letters, digits and `-`"));
        }
        if server.command.is_empty() {
            return Err(format!("{origin}: field `mcp.{name}.command`: must name a program"));
        }
        for key in server.env.keys() {
            let ok = key
                .bytes()
                .enumerate()
                .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
            if key.is_empty() || !ok {
                return Err(format!("{origin}: field `mcp.{name}.env.{key}`: not an environment variable name"));
            }
        }
    }
    Ok(file.mcp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn servers_parse_and_bad_ones_name_the_line() {
        let s = parse("[mcp.files]\ncommand = [\"python3\", \"s.py\"]\nenv = { A = \"1\" }\n", "g.toml").unwrap();
        assert_eq!(s["files"].command, vec!["python3", "s.py"]);
        assert_eq!(s["files"].env["A"], "1");
        let e = parse("[mcp.files]\ncommand = [\"x\"]\nargs = []\n", "g.toml").unwrap_err();
        assert!(e.starts_with("g.toml:3: unknown field `args`"), "{e}");
        let e = parse("[mcp.files]\ncommand = []\n", "g.toml").unwrap_err();
        assert!(e.contains("field `mcp.files.command`"), "{e}");
        let e = parse("[mcp.a]\ncommand = [\"x\"]\nenv = { \"A=B\" = \"1\" }\n", "g.toml").unwrap_err();
        assert!(e.contains("field `mcp.a.env.A=B`"), "{e}");
        let e = parse("[mcp.a__b]\ncommand = [\"x\"]\n", "g.toml").unwrap_err();
        assert!(e.contains("field `mcp.a__b`"), "{e}");
    }
}
