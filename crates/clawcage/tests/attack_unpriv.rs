//! The main escapes again, with clawcage invoked by an unprivileged user (a
//! throwaway account made with useradd; clawcage started through setpriv
//! with no capabilities), plus a normal command that must work there too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const USER: &str = "clawcage-test";

/// uid and gid of the test account, created on first use (tests of several
/// processes may race to create it; the loser sees it exist).
fn test_user() -> (u32, u32) {
    static ID: OnceLock<(u32, u32)> = OnceLock::new();
    *ID.get_or_init(|| {
        let lookup = |flag: &str| -> Option<u32> {
            let out = std::process::Command::new("id").args([flag, USER]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
        };
        for _ in 0..50 {
            if let (Some(u), Some(g)) = (lookup("-u"), lookup("-g")) {
                return (u, g);
            }
            let _ = std::process::Command::new("useradd")
                .args(["--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", USER])
                .status();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("cannot create the test user {USER} with useradd");
    })
}

fn probe_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_c_cached("probe", include_str!("c/probe.c")))
}

fn fixture(tag: &str) -> Fixture {
    let (uid, gid) = test_user();
    Fixture::new(tag).run_as(uid, gid)
}

#[test]
fn a_normal_command_works_and_its_files_belong_to_the_user() {
    let fx = fixture("unpriv-legit");
    fx.write("in.txt", "input");
    let run = fx.sh("id -u; cat in.txt; echo out > out.txt; python3 -c 'print(6*7)'");
    run.expect_code(0);
    assert_eq!(run.stdout, "0\ninput42\n", "{}", run.stderr);
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(fx.ws_path("out.txt")).unwrap();
    assert_eq!(meta.uid(), test_user().0, "the file belongs to the invoking user on the host");
    assert_eq!(std::fs::read_to_string(fx.ws_path("out.txt")).unwrap(), "out\n");
}

#[test]
fn host_secrets_stay_out_of_reach_of_an_unprivileged_caller() {
    let fx = fixture("unpriv-secrets").env("GITHUB_TOKEN", "unpriv-env-secret");
    let key = fx.write_home(".ssh/id_ed25519", "UNPRIV-KEY");
    fx.write_outside("tree/secret", "unpriv-deny-secret");
    fx.write_outside("tree/ok", "visible");
    let tree = fx.outside.join("tree").display().to_string();
    let fx = fx.policy(&policy(&format!("\"{tree}\""), "\".\"", &format!("deny = [\"{tree}/secret\"]")));
    let script = format!(
        "cat /etc/shadow 2>&1 | head -n 1; cat {key} 2>&1; env | grep -c unpriv-env-secret; \
         stat {tree}/secret 2>&1 | grep -c 'No such file'; cat {tree}/ok; echo; \
         ls /proc | grep -cE '^[0-9]+$'; touch /etc/x 2>&1 | grep -c 'Read-only'",
        key = key.display()
    );
    let run = fx.sh(&script);
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].contains("Permission denied"), "/etc/shadow: {}", lines[0]);
    assert!(lines[1].contains("No such file"), "the invoking user's key: {}", lines[1]);
    assert_eq!(lines[2], "0", "the host env secret is inside");
    assert_eq!(lines[3], "1", "the deny path exists inside");
    assert_eq!(lines[4], "visible");
    assert!(lines[5].parse::<u32>().unwrap() < 8, "host pids visible: {}", lines[5]);
    assert_eq!(lines[6], "1", "/etc writable");
}

#[test]
fn kernel_surface_is_refused_for_an_unprivileged_caller() {
    let fx = fixture("unpriv-kernel");
    std::fs::copy(probe_bin(), fx.ws_path("probe")).unwrap();
    let ops = [
        "ptrace_attach",
        "mount_tmpfs",
        "unshare_user",
        "clone_newuser",
        "io_uring_setup",
        "keyctl",
        "bpf",
        "socket_netlink",
        "tiocsti",
    ];
    let mut argv = vec!["./probe"];
    argv.extend_from_slice(&ops);
    let run = fx.run(&argv);
    run.expect_code(0);
    let v = kv(&run.stdout);
    for op in ops {
        assert_eq!(v.get(op).map(String::as_str), Some("EPERM"), "{op}\n{}{}", run.stdout, run.stderr);
    }
    let run = fx.sh("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '");
    assert_eq!(run.stdout, "CapEff: 0000000000000000\nCapBnd: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2\n");
}

#[test]
fn the_hosts_loopback_is_unreachable_for_an_unprivileged_caller() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fx = fixture("unpriv-net");
    let script = format!("import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')\nexcept OSError as e:\n    print('refused', e.errno)\n");
    let run = fx.run(&["python3", "-c", &script]);
    run.expect_code(0);
    assert!(run.stdout.starts_with("refused"), "{}{}", run.stdout, run.stderr);
    drop(listener);
}

#[test]
fn writes_outside_the_workspace_fail_for_an_unprivileged_caller() {
    let fx = fixture("unpriv-write");
    let target = fx.write_outside("target", "original");
    std::os::unix::fs::symlink(&target, fx.ws_path("link")).unwrap();
    let run = fx
        .sh(&format!("echo pwned > {t}; echo pwned > link; echo pwned > /usr/x; echo ok > mine", t = target.display()));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "original", "{}", run.stderr);
    assert!(!std::path::Path::new("/usr/x").exists());
    assert_eq!(std::fs::read_to_string(fx.ws_path("mine")).unwrap(), "ok\n");
}
