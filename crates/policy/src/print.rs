//! The effective policy written back as a policy file (`clawcage policy check`).

use crate::model::{PathSpec, Policy};
use crate::values::{format_duration, format_size};
use std::fmt::Write;

impl Policy {
    /// The effective policy as TOML that [`parse_str`](crate::parse_str)
    /// reads back to an equal `Policy`: every key is written, lists in full,
    /// absent limits as `"none"`, paths as written (`~/.ssh`, `.`, `**/.env`).
    /// Durations are written to the millisecond.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let fs = &self.filesystem;
        let l = &self.limits;
        let paths = |list: &[PathSpec]| -> Vec<String> { list.iter().map(|p| String::from(p.clone())).collect() };
        let limit = |v: Option<String>| v.unwrap_or_else(|| quote("none"));

        out.push_str(concat!(
            "# Effective clawcage policy: the profile named by `extends` with the file applied.\n",
            "# Merging onto the profile: lists replace the profile's list, scalars override,\n",
            "# [limits] override per key (\"none\" removes a limit), [env.set] merges per key.\n",
        ));
        line(&mut out, "version", "1".into());
        line(&mut out, "extends", quote(&self.extends));

        out.push_str("\n[filesystem]\n");
        line(&mut out, "read", array(&paths(&fs.read)));
        line(&mut out, "write", array(&paths(&fs.write)));
        line(&mut out, "deny", array(&paths(&fs.deny)));
        line(&mut out, "protect", array(&paths(&fs.protect)));
        match fs.changes {
            Some(c) => line(&mut out, "changes", quote(c.name())),
            None => out.push_str("# changes: not set (\"direct\" for `run`, \"review\" for agent tasks)\n"),
        }

        out.push_str("\n[network]\n");
        let net = &self.network;
        line(&mut out, "allow", array(&net.allow));
        let ips: Vec<String> = net.allow_ips.iter().map(|c| String::from(*c)).collect();
        line(&mut out, "allow_ips", array(&ips));
        line(&mut out, "ca", array(&net.ca));
        line(&mut out, "max_connections", limit(net.max_connections.map(|n| n.to_string())));
        line(&mut out, "max_bytes", limit(net.max_bytes.map(format_size)));
        out.push_str("\n[network.hosts]\n");
        for (name, ip) in &net.hosts {
            line(&mut out, &quote_key(name), quote(&ip.to_string()));
        }

        out.push_str("\n[limits]\n");
        line(&mut out, "memory", limit(l.memory.map(format_size)));
        line(&mut out, "cpus", limit(l.cpus.map(|c| format!("{c:?}"))));
        line(&mut out, "pids", limit(l.pids.map(|p| p.to_string())));
        line(&mut out, "timeout", limit(l.timeout.map(format_duration)));
        line(&mut out, "disk", limit(l.disk.map(format_size)));
        line(&mut out, "output", limit(l.output.map(format_size)));

        out.push_str("\n[env]\n");
        line(&mut out, "pass", array(&self.env.pass));
        out.push_str("\n[env.set]\n");
        for (name, value) in &self.env.set {
            line(&mut out, &quote_key(name), quote(value));
        }

        out.push_str("\n[sandbox]\n");
        let layers: Vec<&str> = self.sandbox.allow_missing.iter().map(|l| l.name()).collect();
        line(&mut out, "allow_missing", array(&layers));

        let a = &self.approvals;
        out.push_str("\n[approvals]\n");
        let rules: Vec<&str> = a.commands.iter().map(|r| r.text()).collect();
        line(&mut out, "commands", array(&rules));
        line(
            &mut out,
            "network",
            quote(match a.network {
                crate::approval::NetworkApproval::Ask => "ask",
                crate::approval::NetworkApproval::Deny => "deny",
            }),
        );
        line(&mut out, "writes", array(&a.writes));
        line(&mut out, "timeout", format_duration(a.timeout));

        for (name, secret) in &self.secrets {
            let _ = writeln!(out, "\n[secrets.{}]", quote_key(name));
            line(&mut out, "from", quote(&String::from(secret.from.clone())));
            line(&mut out, "hosts", array(&secret.hosts));
            line(&mut out, "header", quote(&secret.header));
            line(&mut out, "env", quote(&secret.env));
        }
        out
    }
}

fn line(out: &mut String, key: &str, value: String) {
    let _ = writeln!(out, "{key} = {value}");
}

/// A TOML string literal, escaped as needed.
fn quote(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

/// A bare key when possible, a quoted one otherwise.
fn quote_key(s: &str) -> String {
    let bare = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        s.to_string()
    } else {
        quote(s)
    }
}

/// An array of strings: on one line when short, one entry per line otherwise.
fn array<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    let inline = format!("[{}]", quoted.join(", "));
    if inline.len() <= 72 {
        return inline;
    }
    let mut out = String::from("[\n");
    for q in quoted {
        let _ = writeln!(out, "    {q},");
    }
    out.push(']');
    out
}
