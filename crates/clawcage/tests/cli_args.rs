//! Argument errors are bad input: every subcommand exits 125 on an unknown
//! flag or a missing value (not clap's 2); `--help` and `--version` exit 0.
//! The subcommands are read from `--help` itself, so a new one is covered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn clawcage(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clawcage"))
        .env("CLAWCAGE_HOME", "/nonexistent/clawcage-cli-args")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The subcommands `help` lists (its "Commands:" section), `help` itself left out.
fn subcommands(prefix: &[&str]) -> Vec<String> {
    let mut args = prefix.to_vec();
    args.push("--help");
    let (code, out, err) = clawcage(&args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// Every leaf subcommand, as its argument path (`["audit", "verify"]`).
fn leaves(prefix: Vec<String>) -> Vec<Vec<String>> {
    let refs: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let subs = subcommands(&refs);
    if subs.is_empty() {
        return vec![prefix];
    }
    subs.into_iter()
        .flat_map(|s| {
            let mut p = prefix.clone();
            p.push(s);
            leaves(p)
        })
        .collect()
}

#[test]
fn an_unknown_flag_exits_125_for_every_subcommand() {
    let all = leaves(Vec::new());
    for must in [&["run"][..], &["agent"], &["audit", "verify"], &["skill", "add"], &["schedule", "rm"]] {
        assert!(all.iter().any(|l| l == must), "{must:?} missing from {all:?}");
    }
    for path in &all {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--no-such-flag");
        let (code, out, err) = clawcage(&args);
        assert_eq!(code, 125, "{args:?}\nstdout: {out}\nstderr: {err}");
        assert!(err.contains("--no-such-flag"), "{args:?}: the error names the flag: {err}");
    }
    let (code, _, err) = clawcage(&["no-such-command"]);
    assert_eq!(code, 125, "{err}");
    let (code, _, err) = clawcage(&[]);
    assert_eq!(code, 125, "a missing subcommand is an error too: {err}");
}

#[test]
fn a_missing_value_or_argument_exits_125() {
    for args in [
        &["agent", "--model"][..],
        &["run", "--policy"],
        &["run", "--workspace", "/tmp"],
        &["tasks", "--limit"],
        &["tasks", "--limit", "many"],
        &["diff"],
        &["policy", "check"],
        &["audit", "export", "--format"],
    ] {
        let (code, out, err) = clawcage(args);
        assert_eq!(code, 125, "{args:?}\nstdout: {out}\nstderr: {err}");
        assert!(err.starts_with("error:"), "{args:?}: {err}");
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [&["--help"][..], &["--version"], &["agent", "--help"], &["audit", "show", "--help"], &["help", "run"]]
    {
        let (code, out, err) = clawcage(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!out.is_empty(), "{args:?}");
    }
}
