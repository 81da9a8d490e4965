#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

const GOOD: &str = "---
name: csv-report
description: Summarise CSV files into a Markdown report.
license: Apache-2.0
metadata:
  author: someone
allowed-tools: Bash Read
clawcage:
  network: [api.example.com, 'api.example.com']
  secrets: [example_token]
  read: [data, /etc/ssl/certs]
  write: [out]
  tools: [bash]
---
# CSV report

Run `scripts/report.py`.
";

#[test]
fn a_full_manifest_parses_and_the_body_is_kept_apart() {
    let m = parse(GOOD, "SKILL.md").unwrap();
    assert_eq!(m.name, "csv-report");
    assert_eq!(m.description, "Summarise CSV files into a Markdown report.");
    assert_eq!(m.license.as_deref(), Some("Apache-2.0"));
    assert_eq!(m.metadata.get("author").map(String::as_str), Some("someone"));
    assert_eq!(m.allowed_tools.as_deref(), Some("Bash Read"));
    assert_eq!(m.needs.network, vec!["api.example.com"], "duplicates dropped");
    assert_eq!(m.needs.secrets, vec!["example_token"]);
    assert_eq!(m.needs.read, vec!["data", "/etc/ssl/certs"]);
    assert_eq!(m.needs.write, vec!["out"]);
    assert_eq!(m.needs.tools, vec!["bash"]);
    assert_eq!(m.body, "# CSV report\n\nRun `scripts/report.py`.\n");
}

#[test]
fn without_a_clawcage_table_a_skill_needs_nothing() {
    let m = parse("---\nname: a\ndescription: b\n---\nbody", "SKILL.md").unwrap();
    assert!(m.needs.is_empty());
    assert_eq!(m.body, "body");
}

fn err(text: &str) -> String {
    parse(text, "skills/x/SKILL.md").unwrap_err().to_string()
}

#[test]
fn errors_name_the_file_the_line_and_the_field() {
    let e = err("---\nname: a\ndescription: b\nclawcage:\n  network: [ok.example.com, 'bad host!']\n---\n");
    assert!(e.starts_with("skills/x/SKILL.md:5: field `clawcage.network`: "), "{e}");
    assert!(e.contains("is not a host pattern"), "{e}");

    let e = err("---\nname: a\ndescription: b\nclawcage:\n  read: [../../etc]\n---\n");
    assert!(e.starts_with("skills/x/SKILL.md:5: field `clawcage.read`: "), "{e}");
    assert!(e.contains("climbs out of the workspace"), "{e}");

    let e = err("---\nname: a\ndescription: b\nclawcage:\n  hosts: [x]\n---\n");
    assert!(e.starts_with("skills/x/SKILL.md:5: field `clawcage`: unknown field `hosts`"), "{e}");

    let e = err("---\nname: Bad_Name\ndescription: b\n---\n");
    assert!(e.starts_with("skills/x/SKILL.md:2: field `name`: "), "{e}");

    let e = err("---\nname: a\ndescription: b\nversion: 2\n---\n");
    assert!(e.starts_with("skills/x/SKILL.md:4: unknown field `version`"), "{e}");

    let e = err("---\nname: a\n---\n");
    assert!(e.contains("missing field `description`"), "{e}");

    let e = err("---\nname: a\ndescription: ''\n---\n");
    assert!(e.contains("description must have 1 to 1024"), "{e}");

    let e = err("---\nname: a\ndescription: b\nclawcage:\n  secrets: [\"a b\"]\n---\n");
    assert!(e.starts_with("skills/x/SKILL.md:5: field `clawcage.secrets`: "), "{e}");

    let e = err("---\nname: a\ndescription: b\nclawcage:\n  write: '*.pem'\n---\n");
    assert!(e.starts_with("skills/x/SKILL.md:5: field `clawcage.write`: "), "{e}");
}

#[test]
fn front_matter_must_open_and_close() {
    assert_eq!(
        err("name: a\n"),
        "skills/x/SKILL.md:1: SKILL.md must start with a `---` line opening the YAML front matter"
    );
    assert_eq!(err("---\nname: a\n"), "skills/x/SKILL.md:1: the front matter is not closed by a `---` line");
    assert!(err("---\n: : :\n---\n").starts_with("skills/x/SKILL.md:2: "));
}

#[test]
fn names_follow_the_agent_skills_rules() {
    for good in ["a", "pdf", "csv-report", "x1-2"] {
        assert!(check_name(good).is_ok(), "{good}");
    }
    for bad in ["", "-a", "a-", "a--b", "A", "a_b", "a/b", "..", &"a".repeat(65)] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
}
