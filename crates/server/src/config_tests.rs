#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::config::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

struct Tmp(PathBuf);
impl Tmp {
    fn new(tag: &str) -> Tmp {
        let n = std::sync::atomic::AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "clawcage-config-{tag}-{}-{}",
            std::process::id(),
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("ws")).unwrap();
        std::fs::write(p.join("dev.toml"), "extends = \"default\"\n").unwrap();
        Tmp(p)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8787"
token = "0123456789abcdef0123"
concurrency = 3

[groups.dev]
policy = "dev.toml"
workspace = "ws"
model = "anthropic:claude-sonnet-4-5"
memory = "MEMORY.md"

[roles.maintainer]
members = ["telegram:42", "slack:U1"]
start = ["dev"]
approve = ["*"]

[roles.viewer]
members = ["discord:7"]

[channels.telegram]
token = "env:TG_TOKEN"
group = "dev"
api_base = "http://127.0.0.1:9/"
"#;

fn env(var: &str) -> Option<String> {
    (var == "TG_TOKEN").then(|| "123:abc".to_string())
}

fn parse_in(t: &Tmp, text: &str) -> Result<Config, ConfigError> {
    parse(text, "serve.toml", &t.0, &env)
}

fn invalid(t: &Tmp, text: &str) -> (usize, usize, String, String) {
    match parse_in(t, text) {
        Err(ConfigError::Invalid { file, line, column, field, message }) => {
            assert_eq!(file, "serve.toml");
            (line, column, field, message)
        }
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
}

#[test]
fn a_full_config_is_read_and_roles_decide_rights() {
    let t = Tmp::new("good");
    let c = parse_in(&t, GOOD).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8787");
    assert_eq!(c.server.concurrency, 3);
    let g = &c.groups["dev"];
    assert_eq!(g.workspace, std::fs::canonicalize(t.0.join("ws")).unwrap());
    assert_eq!(g.policy_file, t.0.join("dev.toml"));
    assert_eq!(g.model.as_deref(), Some("anthropic:claude-sonnet-4-5"));
    let tg = c.channels.telegram.as_ref().unwrap();
    assert_eq!((tg.token.0.as_str(), tg.api_base.as_str()), ("123:abc", "http://127.0.0.1:9"));
    assert!(!format!("{c:?}").contains("123:abc"), "a secret appears in Debug output");
    assert!(!format!("{c:?}").contains("0123456789abcdef0123"), "the API token appears in Debug output");

    let m = c.rights("telegram", "42");
    assert_eq!(m.roles, ["maintainer"]);
    assert!(c.may_start(&m, "dev") && c.may_approve(&m, "dev"));
    let v = c.rights("discord", "7");
    assert!(!c.may_start(&v, "dev") && !c.may_approve(&v, "dev"));
    let stranger = c.rights("telegram", "43");
    assert!(stranger.roles.is_empty() && !c.may_start(&stranger, "dev"));
    // The same id on another channel is another person.
    assert!(c.rights("discord", "42").roles.is_empty());
}

#[test]
fn unknown_keys_are_errors_with_line_column_and_field() {
    let t = Tmp::new("unknown");
    let text = GOOD.replace("concurrency = 3", "concurrency = 3\nlisten_port = 1");
    let (line, col, field, msg) = invalid(&t, &text);
    assert_eq!((line, col, field.as_str()), (6, 1, "server.listen_port"), "{msg}");
    assert!(msg.contains("unknown field `listen_port`"), "{msg}");

    let text = GOOD.replace("memory = ", "skils = \"x\"\nmemory = ");
    let (line, _, field, _) = invalid(&t, &text);
    assert_eq!((line, field.as_str()), (11, "groups.dev.skils"));

    let (_, _, field, _) = invalid(&t, &format!("{GOOD}\n[channels.irc]\nserver = \"x\"\n"));
    assert_eq!(field, "channels.irc");
}

#[test]
fn bad_values_name_their_field() {
    let t = Tmp::new("values");
    let cases: &[(&str, &str, usize, &str, &str)] = &[
        ("concurrency = 3", "concurrency = \"3\"", 5, "server.concurrency", "invalid type"),
        ("concurrency = 3", "concurrency = 0", 5, "server.concurrency", "between 1 and"),
        ("\"127.0.0.1:8787\"", "\"localhost\"", 3, "server.listen", "not an address"),
        ("token = \"0123456789abcdef0123\"", "token = \"short\"", 4, "server.token", "at least 16"),
        ("workspace = \"ws\"", "workspace = \"nope\"", 9, "groups.dev.workspace", "not a directory"),
        ("model = \"anthropic:claude-sonnet-4-5\"", "model = \"claude\"", 10, "groups.dev.model", "provider:name"),
        ("\"MEMORY.md\"", "\"ws/MEMORY.md\"", 11, "groups.dev.memory", "inside the workspace"),
        ("\"telegram:42\"", "\"irc:42\"", 14, "roles.maintainer.members", "channel:sender-id"),
        ("start = [\"dev\"]", "start = [\"ops\"]", 15, "roles.maintainer.start", "no group \"ops\""),
        ("group = \"dev\"", "group = \"ops\"", 23, "channels.telegram.group", "no group"),
        ("env:TG_TOKEN", "env:NOT_SET", 22, "channels.telegram.token", "NOT_SET is not set"),
        ("env:TG_TOKEN", "123:inline", 22, "channels.telegram.token", "env:VAR or file:PATH"),
    ];
    for (from, to, line, field, needle) in cases {
        let text = GOOD.replace(from, to);
        assert_ne!(text, GOOD, "{from} not in the sample");
        let (l, _, f, msg) = invalid(&t, &text);
        assert_eq!((l, f.as_str()), (*line, *field), "{to}: {msg}");
        assert!(msg.contains(needle), "{to}: {msg}");
    }
}

#[test]
fn a_bad_policy_is_reported_with_both_files() {
    let t = Tmp::new("policy");
    std::fs::write(t.0.join("dev.toml"), "[limits]\nmemory = \"lots\"\n").unwrap();
    let e = parse_in(&t, GOOD).unwrap_err();
    let line = e.to_string();
    assert!(matches!(e, ConfigError::Policy { line: 8, .. }), "{line}");
    assert!(line.starts_with("serve.toml:8:10: field `groups.dev.policy`: "), "{line}");
    assert!(line.contains("dev.toml:2:10: field `limits.memory`"), "{line}");
}

#[test]
fn the_token_comes_from_a_private_file_only() {
    let t = Tmp::new("token");
    let f = t.0.join("token");
    std::fs::write(&f, "fedcba9876543210fedcba\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = GOOD.replace("token = \"0123456789abcdef0123\"", "token_file = \"token\"");
    let (line, _, field, msg) = invalid(&t, &text);
    assert_eq!((line, field.as_str()), (4, "server.token_file"));
    assert!(msg.contains("readable by others"), "{msg}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(parse_in(&t, &text).unwrap().server.token, "fedcba9876543210fedcba");
    let both = GOOD.replace("concurrency = 3", "token_file = \"token\"");
    assert!(invalid(&t, &both).3.contains("not both"));
    let none = GOOD.replace("token = \"0123456789abcdef0123\"", "");
    assert_eq!(invalid(&t, &none).2, "server.token");
}

#[test]
fn syntax_errors_have_a_line() {
    let t = Tmp::new("syntax");
    let (line, _, _, _) = invalid(&t, "[server]\nlisten = \n");
    assert_eq!(line, 2);
    let (_, _, field, msg) = invalid(&t, "[groups.dev]\npolicy = \"dev.toml\"\nworkspace = \"ws\"\n");
    assert!(msg.contains("missing field `server`"), "{field}: {msg}");
}

#[test]
fn agent_schedules_is_a_small_positive_number_or_absent() {
    let t = Tmp::new("agent-schedules");
    assert_eq!(parse_in(&t, GOOD).unwrap().groups["dev"].agent_schedules, None);
    let with =
        |v: &str| GOOD.replace("memory = \"MEMORY.md\"", &format!("memory = \"MEMORY.md\"\nagent_schedules = {v}"));
    assert_eq!(parse_in(&t, &with("5")).unwrap().groups["dev"].agent_schedules, Some(5));
    for bad in ["0", "-1", "101", "99999999999"] {
        let (line, col, field, msg) = invalid(&t, &with(bad));
        assert_eq!((line, col, field.as_str()), (12, 19, "groups.dev.agent_schedules"), "{bad}: {msg}");
        assert!(msg.contains("from 1 to 100"), "{bad}: {msg}");
    }
    let (line, _, field, msg) = invalid(&t, &with("true"));
    assert_eq!((line, field.as_str()), (12, "groups.dev.agent_schedules"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn a_groups_mcp_servers_are_read_and_a_bad_file_names_both_places() {
    let t = Tmp::new("mcp");
    std::fs::write(t.0.join("mcp.toml"), "[mcp.files]\ncommand = [\"python3\", \"s.py\"]\n").unwrap();
    let text = GOOD.replace("memory = \"MEMORY.md\"", "memory = \"MEMORY.md\"\nmcp = \"mcp.toml\"");
    let c = parse_in(&t, &text).unwrap();
    assert_eq!(c.groups["dev"].mcp["files"].command, vec!["python3", "s.py"]);
    std::fs::write(t.0.join("mcp.toml"), "[mcp.files]\ncommand = [\"x\"]\nargs = []\n").unwrap();
    let (line, _, field, msg) = invalid(&t, &text);
    assert_eq!((line, field.as_str()), (12, "groups.dev.mcp"), "{msg}");
    assert!(msg.contains("mcp.toml:3: unknown field `args`"), "{msg}");
    std::fs::remove_file(t.0.join("mcp.toml")).unwrap();
    let (_, _, field, msg) = invalid(&t, &text);
    assert!(field == "groups.dev.mcp" && msg.contains("No such file"), "{msg}");
}
