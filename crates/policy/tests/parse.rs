//! Tests of parsing, error locations, profiles and `to_toml` round trips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clawcage_policy::*;
use std::collections::BTreeMap;
use std::time::Duration;

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// The sample from the design, one key per line; line numbers matter below.
const SAMPLE: &str = r#"version = 1
extends = "dev"

[filesystem]
read    = ["/usr", "/etc/ssl/certs"]
write   = ["."]
deny    = ["~/.ssh", "~/.aws", "**/.env"]
protect = [".git/hooks", ".git/config"]
changes = "review"

[network]
allow = ["api.github.com", "*.pypi.org:443"]

[limits]
memory = "1GiB"
cpus = 1.0
pids = 256
timeout = "10m"
disk = "2GiB"
output = "10MiB"

[env]
pass = ["LANG", "TERM"]

[env.set]
RUST_LOG = "info"

[sandbox]
allow_missing = ["landlock", "cgroups"]
"#;

fn parse(text: &str) -> Policy {
    parse_str(text, "policy.toml").unwrap()
}

fn abs(p: &str) -> PathSpec {
    PathSpec::Absolute(p.into())
}
fn home(p: &str) -> PathSpec {
    PathSpec::Home(p.into())
}
fn ws(p: &str) -> PathSpec {
    PathSpec::Workspace(p.into())
}
fn glob(p: &str) -> PathSpec {
    PathSpec::Glob(p.into())
}
fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The error for SAMPLE with the first `from` replaced by `to`.
fn sample_err(from: &str, to: &str) -> PolicyError {
    assert!(SAMPLE.contains(from), "{from}");
    parse_str(&SAMPLE.replacen(from, to, 1), "policy.toml").unwrap_err()
}

/// (line, column, field) of an error, after checking its file and one-line display.
fn at(e: &PolicyError) -> (usize, usize, Option<&str>) {
    assert_eq!(e.file(), "policy.toml");
    let shown = e.to_string();
    assert!(!shown.contains('\n'), "{shown}");
    let prefix = format!("policy.toml:{}:{}: ", e.line().unwrap(), e.column().unwrap());
    assert!(shown.starts_with(&prefix), "{shown}");
    if let Some(field) = e.field() {
        assert!(shown.contains(&format!("field `{field}`: ")), "{shown}");
    }
    (e.line().unwrap(), e.column().unwrap(), e.field())
}

#[test]
fn sample_parses_to_the_whole_expected_policy() {
    let mut expected = builtin("dev").unwrap();
    expected.filesystem = Filesystem {
        read: vec![abs("/usr"), abs("/etc/ssl/certs")],
        write: vec![ws(".")],
        deny: vec![home(".ssh"), home(".aws"), glob("**/.env")],
        protect: vec![ws(".git/hooks"), ws(".git/config")],
        changes: Some(Changes::Review),
    };
    expected.network.allow = strings(&["api.github.com", "*.pypi.org:443"]);
    expected.limits = Limits {
        memory: Some(GIB),
        cpus: Some(1.0),
        pids: Some(256),
        timeout: Some(Duration::from_secs(600)),
        disk: Some(2 * GIB),
        output: Some(10 * MIB),
    };
    expected.env =
        Env { pass: strings(&["LANG", "TERM"]), set: BTreeMap::from([("RUST_LOG".to_string(), "info".to_string())]) };
    expected.sandbox.allow_missing = vec![Layer::Landlock, Layer::Cgroups];
    assert_eq!(parse(SAMPLE), expected);
}

#[test]
fn errors_have_exact_display() {
    let e = sample_err(r#"memory = "1GiB""#, r#"memory = "1 gigs""#);
    assert_eq!(
        e.to_string(),
        "policy.toml:15:10: field `limits.memory`: \"1 gigs\" is not a size \
         (expected e.g. 512MiB, 2GiB, 1000000)"
    );
    let e = sample_err("extends = \"dev\"\n", "extends = \"dev\"\ncolour = 1\n");
    assert_eq!(
        e.to_string(),
        "policy.toml:3:1: field `colour`: unknown key `colour` (allowed: `version`, \
         `extends`, `filesystem`, `network`, `limits`, `env`, `sandbox`, `approvals`, `secrets`)"
    );
    let e = sample_err(r#""dev""#, r#""prod""#);
    assert_eq!(
        e.to_string(),
        "policy.toml:2:11: field `extends`: unknown profile \"prod\" \
         (expected one of [\"default\", \"offline\", \"dev\"])"
    );
}

#[test]
fn unknown_keys_are_located_at_the_key() {
    let e = sample_err("cpus = 1.0\n", "cpus = 1.0\nswap = \"1GiB\"\n");
    assert_eq!(at(&e), (17, 1, Some("limits.swap")));
    assert!(e.to_string().contains("(allowed: `memory`, `cpus`, `pids`, `timeout`, `disk`, `output`)"));
    let e = sample_err("pass = ", "passthrough = ");
    assert_eq!(at(&e), (23, 1, Some("env.passthrough")));
    let e = sample_err("allow_missing", "allow_mising");
    assert_eq!(at(&e), (29, 1, Some("sandbox.allow_mising")));
    let e = sample_err("changes = ", "mode = ");
    assert_eq!(at(&e), (9, 1, Some("filesystem.mode")));
    let e = sample_err("[network]\n", "[network]\nblock = []\n");
    assert_eq!(at(&e), (12, 1, Some("network.block")));
    // Unknown tables (a misspelt one), and keys inside inline tables and dotted keys.
    let e = parse_str("[approval]\nnetwork = \"ask\"\n", "policy.toml").unwrap_err();
    assert_eq!(at(&e), (1, 2, Some("approval")));
    let e = parse_str("limits = { memory = 1, swap = 2 }\n", "policy.toml").unwrap_err();
    assert_eq!(at(&e), (1, 24, Some("limits.swap")));
    let e = parse_str("filesystem.reed = []\n", "policy.toml").unwrap_err();
    assert_eq!(at(&e), (1, 12, Some("filesystem.reed")));
}

#[test]
fn bad_limits_are_located_at_the_value() {
    let cases = [
        ("cpus = 1.0", "cpus = 0", (16, 8)),
        ("cpus = 1.0", "cpus = 1025.0", (16, 8)),
        ("cpus = 1.0", "cpus = \"two\"", (16, 8)),
        ("cpus = 1.0", "cpus = nan", (16, 8)),
        ("pids = 256", "pids = 0", (17, 8)),
        ("pids = 256", "pids = 1.5", (17, 8)),
        ("pids = 256", "pids = \"many\"", (17, 8)),
        (r#"timeout = "10m""#, r#"timeout = "10 minutes""#, (18, 11)),
        (r#"timeout = "10m""#, "timeout = 0", (18, 11)),
        (r#"timeout = "10m""#, "timeout = 1.5", (18, 11)),
        (r#"disk = "2GiB""#, "disk = -1", (19, 8)),
        (r#"disk = "2GiB""#, r#"disk = "0MiB""#, (19, 8)),
        (r#"output = "10MiB""#, "output = true", (20, 10)),
        (r#"memory = "1GiB""#, "memory = 1979-05-27", (15, 10)),
    ];
    for (from, to, (line, column)) in cases {
        let e = sample_err(from, to);
        let field = format!("limits.{}", to.split(' ').next().unwrap());
        assert_eq!(at(&e), (line, column, Some(field.as_str())), "{to}: {e}");
    }
}

#[test]
fn bad_values_elsewhere_are_located() {
    let cases = [
        ("1", "2", (1, 11), "version"),
        (r#""dev""#, "3", (2, 11), "extends"),
        (r#""/etc/ssl/certs""#, r#""lib/*.so""#, (5, 20), "filesystem.read"),
        (r#"read    = ["/usr", "/etc/ssl/certs"]"#, r#"read = "/usr""#, (5, 8), "filesystem.read"),
        (r#"["."]"#, r#"["../x"]"#, (6, 12), "filesystem.write"),
        (r#"["."]"#, r#"["a/../../b"]"#, (6, 12), "filesystem.write"),
        (r#"["."]"#, r#"["*"]"#, (6, 12), "filesystem.write"),
        (r#""**/.env""#, r#""[abc""#, (7, 32), "filesystem.deny"),
        (r#""**/.env""#, r#""/abs/*.pem""#, (7, 32), "filesystem.deny"),
        (r#""~/.ssh""#, r#""~/../.ssh""#, (7, 12), "filesystem.deny"),
        (r#""~/.ssh""#, r#""/etc/../root""#, (7, 12), "filesystem.deny"),
        (r#"".git/hooks""#, r#""""#, (8, 12), "filesystem.protect"),
        (r#"".git/hooks""#, r#""a\u0000b""#, (8, 12), "filesystem.protect"),
        (r#""review""#, r#""later""#, (9, 11), "filesystem.changes"),
        (r#""*.pypi.org:443""#, r#""*.pypi.org:99999""#, (12, 28), "network.allow"),
        (r#""api.github.com""#, r#""https://api.github.com""#, (12, 10), "network.allow"),
        (r#""api.github.com""#, "{ host = \"x\" }", (12, 10), "network.allow"),
        (r#""TERM""#, r#""TE RM""#, (23, 17), "env.pass"),
        ("RUST_LOG = \"info\"", "RUST-LOG = \"info\"", (26, 1), "env.set.RUST-LOG"),
        ("RUST_LOG = \"info\"", "RUST_LOG = 1", (26, 12), "env.set.RUST_LOG"),
        (r#""cgroups""#, r#""seccomp""#, (29, 30), "sandbox.allow_missing"),
    ];
    for (from, to, (line, column), field) in cases {
        let e = sample_err(from, to);
        assert_eq!(at(&e), (line, column, Some(field)), "{to}: {e}");
    }
}

#[test]
fn messages_say_what_is_expected() {
    let msg = |from, to| sample_err(from, to).to_string();
    assert!(msg(r#""/etc/ssl/certs""#, r#""*.so""#)
        .contains("globs are only allowed in filesystem.deny and filesystem.protect"));
    assert!(msg(r#"["."]"#, r#"["../x"]"#).contains("\"../x\" climbs out of the workspace"));
    assert!(msg("pids = 256", "pids = 0").contains("expected an integer of at least 1"));
    assert!(msg("cpus = 1.0", "cpus = 2000").contains("at most 1024 CPUs"));
    assert!(msg(r#"timeout = "10m""#, r#"timeout = "soon""#).contains("expected e.g. 30s, 10m"));
    assert!(msg(r#""*.pypi.org:443""#, r#""*.pypi.org:0""#).contains("port must be a number"));
    assert!(msg(r#"read    = ["/usr", "/etc/ssl/certs"]"#, "read = 1")
        .contains("expected an array of strings, found an integer"));
}

#[test]
fn syntax_errors_have_file_line_and_column() {
    let e = sample_err(r#"memory = "1GiB""#, r#"memory = "1GiB"#);
    assert_eq!((e.line(), e.field()), (Some(15), None));
    assert!(e.to_string().starts_with("policy.toml:15:"), "{e}");
    assert!(!e.to_string().contains('\n'));
    let e = sample_err("pids = 256\n", "pids = 256\npids = 1\n");
    assert_eq!((e.line(), e.column()), (Some(18), Some(1)));
    assert!(e.to_string().contains("duplicate key `pids`"), "{e}");
    let e = parse_str("[filesystem\n", "x.toml").unwrap_err();
    assert_eq!(e.to_string(), "x.toml:1:12: invalid table header; expected `.`, `]`");
}

#[test]
fn a_missing_extends_means_default_and_an_empty_file_is_the_default_profile() {
    assert_eq!(parse(""), builtin("default").unwrap());
    assert_eq!(parse("version = 1\n"), builtin("default").unwrap());
}

#[test]
fn extends_each_profile() {
    for name in PROFILES {
        let p = parse(&format!("extends = \"{name}\"\n"));
        assert_eq!(p, builtin(name).unwrap());
        assert_eq!(p.extends, name);
    }
    assert!(builtin("prod").is_none());
}

#[test]
fn lists_replace_limits_override_per_key_and_env_set_merges() {
    let p = parse(
        r#"
extends = "dev"
[filesystem]
read = ["/usr", "/usr/", "./tools/../bin", "/usr"]
[limits]
timeout = "none"
memory = 1000
[env]
set.A = "1"
set.B = "2"
"#,
    );
    let dev = builtin("dev").unwrap();
    assert_eq!(p.filesystem.read, vec![abs("/usr"), ws("bin")]); // replaced, deduplicated
    assert_eq!(p.filesystem.deny, dev.filesystem.deny); // untouched
    assert_eq!(p.network, dev.network);
    assert_eq!(p.limits.timeout, None);
    assert_eq!(p.limits.memory, Some(1000));
    assert_eq!(p.limits.pids, Some(4096)); // kept from dev
    assert_eq!(p.env.pass, dev.env.pass);
    let set: Vec<_> = p.env.set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(set, [("A", "1"), ("B", "2")]);
}

#[test]
fn offline_extension_can_reopen_a_limit() {
    let p = parse("extends = \"offline\"\n[limits]\ntimeout = 90\ncpus = 2\n");
    assert_eq!(p.limits.timeout, Some(Duration::from_secs(90)));
    assert_eq!(p.limits.cpus, Some(2.0));
    assert!(p.filesystem.write.is_empty());
    assert!(p.filesystem.read.contains(&ws(".")));
}

#[test]
fn profiles_match_their_documentation() {
    let default = builtin("default").unwrap();
    assert_eq!(default.filesystem.write, vec![ws(".")]);
    assert_eq!(default.filesystem.changes, None);
    assert!(default.network.allow.is_empty());
    assert_eq!(
        (default.limits.memory, default.limits.pids, default.limits.disk),
        (Some(4 * GIB), Some(1024), Some(GIB))
    );
    let dev = builtin("dev").unwrap();
    assert!(dev.filesystem.read.contains(&home(".cargo")));
    assert!(dev.filesystem.deny.contains(&glob("**/.env")));
    assert_eq!(dev.limits.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(dev.network.allow.len(), 6);
}

#[test]
fn every_profile_round_trips_through_to_toml() {
    for name in PROFILES {
        let p = builtin(name).unwrap();
        let text = p.to_toml();
        assert_eq!(parse_str(&text, "effective.toml").unwrap(), p, "{text}");
    }
}

#[test]
fn edited_policies_round_trip_through_to_toml() {
    let mut p = parse(SAMPLE);
    p.limits.timeout = Some(Duration::from_millis(1500));
    p.limits.output = Some(1000);
    p.limits.cpus = Some(0.25);
    p.env.set.insert("QUOTED".into(), "say \"hi\" \\ 'there'".into());
    p.filesystem.deny.push(glob("secrets/[a-z]*.pem"));
    let text = p.to_toml();
    assert_eq!(parse(&text), p, "{text}");
    assert!(text.contains("timeout = \"1500ms\""), "{text}");
}

#[test]
fn to_toml_prints_paths_as_written_and_documents_merging() {
    let text = builtin("dev").unwrap().to_toml();
    assert!(text.starts_with("# Effective clawcage policy"));
    assert!(text.contains("lists replace the profile's list"));
    assert!(text.contains(r#"deny = ["~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gh", "**/.env"]"#));
    assert!(text.contains(r#"write = ["."]"#));
    assert!(text.contains("    \"/usr\",\n"));
    assert!(text.contains("memory = \"8GiB\"\ncpus = \"none\"\npids = 4096\ntimeout = \"1h\"\n"));
}

#[test]
fn load_file_reads_and_reports_the_path() {
    let dir = std::env::temp_dir().join(format!("clawcage-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, SAMPLE).unwrap();
    assert_eq!(load_file(&good).unwrap(), parse(SAMPLE));

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[limits]\npids = -3\n").unwrap();
    let e = load_file(&bad).unwrap_err();
    assert_eq!(e.file(), bad.display().to_string());
    assert_eq!((e.line(), e.column(), e.field()), (Some(2), Some(8), Some("limits.pids")));

    let missing = dir.join("missing.toml");
    let e = load_file(&missing).unwrap_err();
    assert!(matches!(e, PolicyError::Io { .. }));
    assert_eq!((e.line(), e.column(), e.field()), (None, None, None));
    assert!(e.to_string().starts_with(&format!("{}: cannot read", missing.display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

const APPROVALS: &str = r#"[approvals]
commands = ["git push *", "rm -rf", "kubectl * delete"]
network = "ask"
writes = ["src/**", "*.lock"]
timeout = "90s"
"#;

#[test]
fn approvals_parse_match_and_round_trip() {
    let p = parse(APPROVALS);
    let a = &p.approvals;
    let rules: Vec<&str> = a.commands.iter().map(|r| r.text()).collect();
    assert_eq!(rules, ["git push *", "rm -rf", "kubectl * delete"]);
    assert_eq!(a.network, approval::NetworkApproval::Ask);
    assert_eq!(a.timeout, Duration::from_secs(90));
    assert_eq!(a.commands[0].words(), ["git", "push"]);
    assert_eq!(a.writes, ["src/**", "*.lock"]);
    let text = p.to_toml();
    assert_eq!(parse(&text), p, "{text}");
    assert!(
        text.contains(
            "[approvals]\ncommands = [\"git push *\", \"rm -rf\", \"kubectl * delete\"]\nnetwork = \"ask\"\n"
        ),
        "{text}"
    );
    // Defaults: no rules, unlisted hosts refused, five minutes.
    let d = parse("");
    assert!(d.approvals.commands.is_empty());
    assert_eq!(d.approvals.network, approval::NetworkApproval::Deny);
    assert_eq!(d.approvals.timeout, Duration::from_secs(300));
}

#[test]
fn bad_approvals_are_located() {
    let cases = [
        ("commands = [\"git push *\"", "commands = [\"git push; rm\"", (2, 13, "approvals.commands")),
        ("network = \"ask\"", "network = \"sometimes\"", (3, 11, "approvals.network")),
        ("writes = [\"src/**\"", "writes = [\"/etc/**\"", (4, 11, "approvals.writes")),
        ("timeout = \"90s\"", "timeout = \"soon\"", (5, 11, "approvals.timeout")),
        ("timeout = \"90s\"", "tiemout = \"90s\"", (5, 1, "approvals.tiemout")),
    ];
    for (from, to, (line, col, field)) in cases {
        let text = APPROVALS.replacen(from, to, 1);
        let e = parse_str(&text, "policy.toml").unwrap_err();
        assert_eq!(at(&e), (line, col, Some(field)), "{e}");
    }
    let e = parse_str(&APPROVALS.replacen("\"rm -rf\"", "\"$X rm\"", 1), "policy.toml").unwrap_err();
    assert!(e.to_string().contains("is not a command rule"), "{e}");
}

const NETWORK: &str = r#"[network]
allow = ["api.example.com:8443", "*.pypi.org"]
allow_ips = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]
ca = ["/etc/clawcage/upstream.pem"]
max_connections = 32
max_bytes = "1GiB"

[network.hosts]
"API.Example.com" = "127.0.0.1"
db = "::1"

[secrets.github]
from = "env:GITHUB_TOKEN"
hosts = ["api.github.com"]

[secrets.api-key]
from = "file:/run/keys/api"
hosts = ["*.Example.com"]
header = "X-Api-Key: {}"
env = "API_KEY"
"#;

#[test]
fn network_and_secrets_parse_and_round_trip() {
    let p = parse(NETWORK);
    let n = &p.network;
    assert_eq!(n.allow, ["api.example.com:8443", "*.pypi.org"]);
    assert_eq!(n.hosts.get("api.example.com"), Some(&"127.0.0.1".parse().unwrap()));
    assert_eq!(n.hosts.get("db"), Some(&"::1".parse().unwrap()));
    assert_eq!(n.allow_ips.len(), 3);
    assert!(n.allow_ips[1].contains("10.200.3.4".parse().unwrap()));
    assert!(!n.allow_ips[1].contains("11.0.0.1".parse().unwrap()));
    assert!(n.allow_ips[0].contains("::ffff:127.0.0.1".parse().unwrap()), "v4-mapped counts as v4");
    assert!(n.allow_ips[2].contains("fd12::1".parse().unwrap()));
    assert_eq!(n.ca, ["/etc/clawcage/upstream.pem"]);
    assert_eq!((n.max_connections, n.max_bytes), (Some(32), Some(GIB)));
    let gh = &p.secrets["github"];
    assert_eq!(gh.from, SecretSource::Env("GITHUB_TOKEN".into()));
    assert_eq!((gh.header.as_str(), gh.env.as_str()), ("Authorization: Bearer {}", "GITHUB_TOKEN"));
    let key = &p.secrets["api-key"];
    assert_eq!(key.from, SecretSource::File("/run/keys/api".into()));
    assert_eq!(key.hosts, ["*.example.com"]);
    assert_eq!((key.header.as_str(), key.env.as_str()), ("X-Api-Key: {}", "API_KEY"));
    let text = p.to_toml();
    assert_eq!(parse(&text), p, "{text}");
    // Profiles: no network in default and offline.
    for name in ["default", "offline"] {
        let b = builtin(name).unwrap();
        assert!(!b.network.enabled(&b.approvals), "{name}");
    }
}

#[test]
fn bad_network_and_secrets_are_located() {
    let cases: &[(&str, &str, &str)] = &[
        ("[network]\nallow_ips = [\"10.0.0.1/8\"]\n", "2:14: field `network.allow_ips`", "host bits"),
        ("[network]\nallow_ips = [\"10.0.0.0/33\"]\n", "2:14: field `network.allow_ips`", "prefix"),
        ("[network]\nallow_ips = [\"nope\"]\n", "2:14: field `network.allow_ips`", "not an IP"),
        ("[network.hosts]\napi = \"1.2.3\"\n", "2:7: field `network.hosts.api`", "not an IP address"),
        ("[network.hosts]\n\"*.x.org\" = \"1.2.3.4\"\n", "2:1: field `network.hosts.*.x.org`", "wildcard"),
        ("[network]\nca = [\"rel.pem\"]\n", "2:7: field `network.ca`", "absolute"),
        ("[network]\nmax_connections = 0\n", "2:19: field `network.max_connections`", "connections"),
        ("[network]\nmax_bytes = \"lots\"\n", "2:13: field `network.max_bytes`", "not a size"),
        ("[network]\nproxy = 1\n", "2:1: field `network.proxy`", "unknown key"),
        ("[secrets.gh]\nfrom = \"vault:x\"\nhosts = [\"a.org\"]\n", "2:8: field `secrets.gh.from`", "env:VAR"),
        ("[secrets.gh]\nfrom = \"file:rel\"\nhosts = [\"a.org\"]\n", "2:8: field `secrets.gh.from`", "absolute"),
        ("[secrets.gh]\nfrom = \"env:GH\"\n", "1:10: field `secrets.gh`", "missing `hosts`"),
        ("[secrets.gh]\nfrom = \"env:GH\"\nhosts = []\n", "3:9: field `secrets.gh.hosts`", "at least one"),
        ("[secrets.gh]\nfrom = \"env:GH\"\nhosts = [\"a.org:443\"]\n", "3:10: field `secrets.gh.hosts`", "no port"),
        (
            "[secrets.gh]\nfrom = \"env:GH\"\nhosts = [\"a.org\"]\nheader = \"Authorization Bearer {}\"\n",
            "4:10: field `secrets.gh.header`",
            "no `:`",
        ),
        (
            "[secrets.gh]\nfrom = \"env:GH\"\nhosts = [\"a.org\"]\nheader = \"X: {} {}\"\n",
            "4:10: field `secrets.gh.header`",
            "exactly once",
        ),
        (
            "[secrets.gh]\nfrom = \"env:GH\"\nhosts = [\"a.org\"]\nvalue = \"x\"\n",
            "4:1: field `secrets.gh.value`",
            "unknown key",
        ),
        ("[secrets.\"a b\"]\nfrom = \"env:GH\"\nhosts = [\"a.org\"]\n", "1:10: field `secrets.a b`", "variable name"),
    ];
    for (text, at, what) in cases {
        let e = parse_str(text, "p.toml").unwrap_err().to_string();
        assert!(e.starts_with(&format!("p.toml:{at}")), "{text:?}: {e}");
        assert!(e.contains(what), "{text:?}: {e}");
    }
}

#[test]
fn two_word_choices_name_both_words() {
    let e = parse_str("[filesystem]\nchanges = \"later\"\n", "p.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.toml:2:11: field `filesystem.changes`: \"later\" is not a mode (expected \"review\" or \"direct\")"
    );
    let e = parse_str("[approvals]\nnetwork = \"sometimes\"\n", "p.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.toml:2:11: field `approvals.network`: \"sometimes\" is not a choice (expected \"ask\" or \"deny\")"
    );
    let e = parse_str("[filesystem]\nchanges = 1\n", "p.toml").unwrap_err();
    assert!(e.to_string().contains("expected a string, found an integer"), "{e}");
    assert_eq!(
        parse_str("[filesystem]\nchanges = \"review\"\n", "p.toml").unwrap().filesystem.changes,
        Some(Changes::Review)
    );
}
