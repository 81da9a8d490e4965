#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use clawcage_policy::parse_str;

fn needs(yaml: &str) -> Needs {
    let text = format!("---\nname: s\ndescription: d\nclawcage:\n{yaml}---\n");
    crate::manifest::parse(&text, "SKILL.md").unwrap().needs
}

fn task_policy() -> Policy {
    parse_str(
        r#"
[filesystem]
read = ["/usr", "/etc", "/data/shared", "~/.cargo"]
write = [".", "/srv/out"]
deny = ["**/.env", "~/.ssh"]
protect = [".git/hooks"]
[network]
allow = ["api.github.com", "*.example.com", "pypi.org:443"]
[approvals]
network = "ask"
[secrets.github]
from = "env:GITHUB_TOKEN"
hosts = ["api.github.com"]
[secrets.example]
from = "env:EXAMPLE_TOKEN"
hosts = ["api.example.com"]
"#,
        "task.toml",
    )
    .unwrap()
}

fn run(policy: &Policy, n: &Needs) -> Effective {
    let tools = vec!["bash".to_string(), "read_file".to_string()];
    let task = Task { policy, workspace: Path::new("/ws"), home: Path::new("/home/u"), tools: &tools };
    intersect(&task, n)
}

fn strs(specs: &[PathSpec]) -> Vec<String> {
    specs.iter().map(|s| String::from(s.clone())).collect()
}

#[test]
fn host_patterns_intersect_to_the_narrower() {
    assert_eq!(intersect_host("api.github.com", "api.github.com").as_deref(), Some("api.github.com"));
    assert_eq!(intersect_host("API.GitHub.com.", "api.github.com").as_deref(), Some("api.github.com"));
    assert_eq!(intersect_host("a.example.com", "*.example.com").as_deref(), Some("a.example.com"));
    assert_eq!(intersect_host("*.example.com", "a.example.com").as_deref(), Some("a.example.com"));
    assert_eq!(intersect_host("*.a.example.com", "*.example.com").as_deref(), Some("*.a.example.com"));
    assert_eq!(intersect_host("*.example.com", "*.a.example.com").as_deref(), Some("*.a.example.com"));
    // A wildcard does not cover its own apex, nor look-alike suffixes.
    assert_eq!(intersect_host("example.com", "*.example.com"), None);
    assert_eq!(intersect_host("evilexample.com", "*.example.com"), None);
    assert_eq!(intersect_host("*.com", "example.org"), None);
    // Ports.
    assert_eq!(intersect_host("pypi.org", "pypi.org:443").as_deref(), Some("pypi.org:443"));
    assert_eq!(intersect_host("pypi.org:443", "pypi.org").as_deref(), Some("pypi.org:443"));
    assert_eq!(intersect_host("pypi.org:80", "pypi.org:443"), None);
    assert_eq!(intersect_host("[::1]:443", "::1").as_deref(), Some("[::1]:443"));
    // No port means 80 and 443: it shares nothing with 8080.
    assert_eq!(intersect_host("[::1]:8080", "::1"), None);
    assert_eq!(intersect_host("api.github.com", "api.github.com:8080"), None);
}

#[test]
fn a_skill_gets_only_what_it_declares_and_the_task_allows() {
    let n = needs(concat!(
        "  network: [api.github.com, '*.example.com', evil.test, 'pypi.org:80']\n",
        "  secrets: [github, stolen]\n",
        "  read: [src, /data/shared/x, /root, ~/.cargo/bin]\n",
        "  write: [out, /data/shared/y, /nowhere]\n",
        "  tools: [bash, write_file]\n",
    ));
    let e = run(&task_policy(), &n);
    assert_eq!(e.policy.network.allow, vec!["api.github.com", "*.example.com"]);
    assert_eq!(e.secrets, vec!["github"]);
    assert_eq!(e.policy.secrets.keys().collect::<Vec<_>>(), vec!["github"], "the other secret is gone");
    assert_eq!(e.policy.approvals.network, clawcage_policy::approval::NetworkApproval::Deny);
    assert_eq!(e.tools, vec!["bash"]);
    assert_eq!(
        strs(&e.policy.filesystem.read),
        vec!["/usr", "/etc", "/ws/src", "/data/shared/x", "/home/u/.cargo/bin", "/data/shared/y"]
    );
    assert_eq!(strs(&e.policy.filesystem.write), vec!["/ws/out"]);
    // Deny and protect carry over, made absolute.
    assert_eq!(strs(&e.policy.filesystem.deny), vec!["**/.env", "/home/u/.ssh"]);
    assert_eq!(strs(&e.policy.filesystem.protect), vec!["/ws/.git/hooks"]);
    let noted: Vec<(&str, &str)> = e.notes.iter().map(|n| (n.kind, n.need.as_str())).collect();
    assert_eq!(
        noted,
        vec![
            ("network", "evil.test"),
            ("network", "pypi.org:80"),
            ("secrets", "stolen"),
            ("tools", "write_file"),
            ("read", "/root"),
            ("write", "/data/shared/y"),
            ("write", "/nowhere"),
        ]
    );
    assert!(e.notes[5].outcome.starts_with("read-only"));
}

#[test]
fn declaring_nothing_gets_only_the_system_directories() {
    let e = run(&task_policy(), &Needs::default());
    assert!(e.policy.network.allow.is_empty());
    assert!(e.secrets.is_empty() && e.tools.is_empty() && e.policy.secrets.is_empty());
    assert_eq!(strs(&e.policy.filesystem.read), vec!["/usr", "/etc"]);
    assert!(e.policy.filesystem.write.is_empty());
    assert!(e.notes.is_empty());
}

#[test]
fn a_wildcard_need_is_narrowed_to_the_tasks_exact_host() {
    let n = needs("  network: ['*.github.com']\n");
    let e = run(&task_policy(), &n);
    assert_eq!(e.policy.network.allow, vec!["api.github.com"]);
    assert_eq!(e.notes.len(), 1);
    assert!(e.notes[0].outcome.starts_with("narrowed"));
}

#[test]
fn the_effective_policy_is_never_wider_than_the_tasks() {
    // Whatever a skill declares, each granted host is allowed by some task
    // rule and each granted path lies inside a task path of the same or
    // stronger kind.
    let policy = task_policy();
    let n = needs(concat!(
        "  network: ['*.com', '*.github.com', api.github.com, 'pypi.org', '*.org:443', 10.0.0.1]\n",
        "  read: [/, ., '~', /data, /srv]\n",
        "  write: [/, ., '~', /data, /srv/out/x, /usr/local]\n",
    ));
    let e = run(&policy, &n);
    for got in &e.policy.network.allow {
        assert!(policy.network.allow.iter().any(|rule| intersect_host(got, rule).as_deref() == Some(got.as_str())));
    }
    let within = |p: &str, roots: &[&str]| roots.iter().any(|r| Path::new(p).starts_with(r));
    let task_all = ["/usr", "/etc", "/data/shared", "/home/u/.cargo", "/ws", "/srv/out"];
    for p in strs(&e.policy.filesystem.read) {
        assert!(within(&p, &task_all), "{p}");
    }
    for p in strs(&e.policy.filesystem.write) {
        assert!(within(&p, &["/ws", "/srv/out"]), "{p}");
    }
    assert_eq!(strs(&e.policy.filesystem.write), vec!["/ws", "/srv/out/x"]);
}
