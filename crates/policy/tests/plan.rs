//! `plan()` tests: each compares a whole [`Plan`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clawcage_policy::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

const GIB: u64 = 1024 * 1024 * 1024;
const PROXY: &str = "http://127.0.0.1:3128";
const NO_PROXY: &str = "localhost,127.0.0.1,::1";
const SYSTEM: [&str; 9] = ["/bin", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/sbin", "/usr"];

fn ctx(extra_env: &[(&str, &str)]) -> Context {
    let pairs = |kv: &[(&str, &str)]| -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    Context {
        workspace: PathBuf::from("/home/u/proj"),
        host_home: PathBuf::from("/home/u"),
        host_env: BTreeMap::from_iter(pairs(&[
            ("HOME", "/home/u"),
            ("LANG", "C.UTF-8"),
            ("SECRET_TOKEN", "hunter2"),
            ("TERM", "xterm"),
        ])),
        extra_env: pairs(extra_env),
        default_changes: Changes::Direct,
    }
}

fn bind(path: &str, writable: bool) -> Bind {
    Bind { path: PathBuf::from(path), writable }
}

fn paths(items: &[&str]) -> Vec<PathBuf> {
    items.iter().map(PathBuf::from).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn env(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn default_profile() {
    let policy = builtin("default").unwrap();
    let got = plan(&policy, &ctx(&[("FOO", "1"), ("LANG", "de_DE.UTF-8")]));
    let mut binds: Vec<Bind> = SYSTEM.iter().map(|p| bind(p, false)).collect();
    binds.push(bind("/home/u/proj", true));
    let expected = Plan {
        workspace: PathBuf::from("/home/u/proj"),
        binds,
        deny: vec![],
        deny_globs: vec![],
        protect: paths(&["/home/u/proj/.git/config", "/home/u/proj/.git/hooks"]),
        protect_globs: vec![],
        limits: PlanLimits {
            memory: Some(4 * GIB),
            cpus: None,
            pids: Some(1024),
            timeout_ms: None,
            disk: Some(GIB),
            output: None,
        },
        env: env(&[
            ("FOO", "1"),
            ("HOME", SANDBOX_HOME),
            ("LANG", "de_DE.UTF-8"), // --env wins over the passed host value
            ("PATH", DEFAULT_PATH),
            ("TERM", "xterm"),
        ]),
        allow_missing: vec![],
        direct_changes: true,
        review: None,
        network: None,
        mounts: vec![],
    };
    assert_eq!(got, expected);
}

#[test]
fn offline_profile_binds_the_workspace_read_only() {
    let got = plan(&builtin("offline").unwrap(), &ctx(&[]));
    let mut binds: Vec<Bind> = SYSTEM.iter().map(|p| bind(p, false)).collect();
    binds.push(bind("/home/u/proj", false));
    let expected = Plan {
        binds,
        limits: PlanLimits { timeout_ms: Some(600_000), ..plan(&builtin("default").unwrap(), &ctx(&[])).limits },
        ..plan(&builtin("default").unwrap(), &ctx(&[]))
    };
    assert_eq!(got, expected);
}

#[test]
fn file_with_deny_protect_globs_and_env() {
    let policy = parse_str(
        r#"
extends = "dev"
[filesystem]
read = ["/usr", ".", "~/.cargo", "/opt/tools/", "build"]
write = [".", "build", "/var/cache/tool"]
deny = ["~/.ssh", "secrets", "**/.env", "*.pem", "/etc/shadow"]
protect = [".git", "**/Makefile"]
changes = "review"
[limits]
timeout = "1h30m"
cpus = 1.5
[env]
pass = ["TERM", "NOT_SET"]
[env.set]
PATH = "/opt/tools/bin:/usr/bin"
RUST_LOG = "debug"
[sandbox]
allow_missing = ["cgroups", "landlock"]
"#,
        "policy.toml",
    )
    .unwrap();
    let got = plan(&policy, &ctx(&[("RUST_LOG", "trace")]));
    let expected = Plan {
        workspace: PathBuf::from("/home/u/proj"),
        binds: vec![
            bind("/usr", false),
            bind("/opt/tools", false),
            bind("/home/u/.cargo", false),
            bind("/home/u/proj", true), // in read and write: writable
            bind("/var/cache/tool", true),
            bind("/home/u/proj/build", true),
        ],
        deny: paths(&["/etc/shadow", "/home/u/.ssh", "/home/u/proj/secrets"]),
        deny_globs: strings(&["**/.env", "*.pem"]),
        protect: paths(&["/home/u/proj/.git"]),
        protect_globs: strings(&["**/Makefile"]),
        limits: PlanLimits {
            memory: Some(8 * GIB),
            cpus: Some(1.5),
            pids: Some(4096),
            timeout_ms: Some(5_400_000),
            disk: Some(GIB),
            output: None,
        },
        env: env(&[
            // dev allows registries: the proxy variables are set.
            ("ALL_PROXY", PROXY),
            ("HOME", SANDBOX_HOME),
            ("HTTPS_PROXY", PROXY),
            ("HTTP_PROXY", PROXY),
            ("NO_PROXY", NO_PROXY),
            ("PATH", "/opt/tools/bin:/usr/bin"), // [env.set] overrides the default
            ("RUST_LOG", "trace"),               // --env overrides [env.set]
            ("TERM", "xterm"),
            ("all_proxy", PROXY),
            ("http_proxy", PROXY),
            ("https_proxy", PROXY),
            ("no_proxy", NO_PROXY),
        ]),
        allow_missing: strings(&["cgroups", "landlock"]),
        direct_changes: false,
        review: None,
        network: Some(PlanNetwork { proxy_port: 3128, ca_bundle: None }),
        mounts: vec![],
    };
    assert_eq!(got, expected);
}

#[test]
fn duplicates_collapse_and_parents_precede_children() {
    let policy = Policy {
        filesystem: Filesystem {
            read: vec![
                PathSpec::Workspace("a/b".into()),
                PathSpec::Home("".into()),
                PathSpec::Absolute("/home/u".into()),
            ],
            write: vec![PathSpec::Workspace("a".into())],
            deny: vec![
                PathSpec::Home(".ssh".into()),
                PathSpec::Absolute("/home/u/.ssh".into()),
                PathSpec::Glob("*.key".into()),
                PathSpec::Glob("*.key".into()),
            ],
            protect: vec![],
            changes: Some(Changes::Review),
        },
        ..builtin("default").unwrap()
    };
    let got = plan(&policy, &ctx(&[]));
    assert_eq!(got.binds, vec![bind("/home/u", false), bind("/home/u/proj/a", true), bind("/home/u/proj/a/b", false),]);
    assert_eq!(got.deny, paths(&["/home/u/.ssh"]));
    assert_eq!(got.deny_globs, strings(&["*.key"]));
    assert_eq!(plan(&policy, &ctx(&[])), got); // pure: same input, same plan
}

#[test]
fn unset_changes_take_the_callers_default() {
    let policy = builtin("default").unwrap();
    assert_eq!(policy.filesystem.changes, None);
    assert!(plan(&policy, &ctx(&[])).direct_changes, "run's default: straight through");
    let agent = Context { default_changes: Changes::Review, ..ctx(&[]) };
    assert!(!plan(&policy, &agent).direct_changes, "agent tasks' default: held for review");
    // A policy that says so wins over either default.
    let mut direct = policy.clone();
    direct.filesystem.changes = Some(Changes::Direct);
    assert!(plan(&direct, &agent).direct_changes);
    let mut review = policy;
    review.filesystem.changes = Some(Changes::Review);
    assert!(!plan(&review, &ctx(&[])).direct_changes);
}

#[test]
fn network_plan_gets_the_ca_bundle_and_secret_placeholders_but_no_proxy_without_network() {
    let offline = plan(&builtin("default").unwrap(), &ctx(&[]));
    assert_eq!(offline.network, None);
    assert!(!offline.env.iter().any(|(k, _)| k.to_ascii_lowercase().contains("proxy")));

    let policy = parse_str("[network]\nallow = [\"api.example.com\"]\n", "p.toml").unwrap();
    let mut p = plan(&policy, &ctx(&[]));
    p.set_ca_bundle(PathBuf::from("/state/ca/bundle.pem"));
    p.set_env("GITHUB_TOKEN", "placeholder");
    p.set_env("HOME", "/elsewhere");
    assert_eq!(
        p.network,
        Some(PlanNetwork { proxy_port: PROXY_PORT, ca_bundle: Some(PathBuf::from("/state/ca/bundle.pem")) })
    );
    let get = |k: &str| p.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for var in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"] {
        assert_eq!(get(var), Some(SANDBOX_CA_FILE), "{var}");
    }
    assert_eq!(get("https_proxy"), Some(PROXY));
    assert_eq!(get("GITHUB_TOKEN"), Some("placeholder"));
    assert_eq!(get("HOME"), Some("/elsewhere"));
    let mut names: Vec<&String> = p.env.iter().map(|(k, _)| k).collect();
    let sorted = names.clone();
    names.sort();
    assert_eq!(names, sorted, "the environment stays sorted");

    // `[approvals] network = "ask"` needs the proxy even with nothing allowed.
    let ask = parse_str("[approvals]\nnetwork = \"ask\"\n", "p.toml").unwrap();
    assert!(plan(&ask, &ctx(&[])).network.is_some());
}
