//! Attacks on the kernel surface from inside the sandbox: every call the
//! seccomp table refuses is made for real by a small C program
//! (`tests/c/probe.c`, compiled once per test binary with the host's gcc),
//! plus the capability, no_new_privs, setuid and inherited-descriptor checks.
//! Each refusal comes with the legitimate neighbour that must still work.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The probe binary, built once for all tests of this file (and shared by
/// the processes nextest runs them in).
fn probe_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_c_cached("probe", include_str!("c/probe.c")))
}

/// Runs the probe in a fresh sandbox (default policy) with `ops`, returning
/// each op's result (`ok`, an errno name such as `EPERM`, or `signal:N`).
fn probe(fx: &Fixture, ops: &[&str]) -> BTreeMap<String, String> {
    std::fs::copy(probe_bin(), fx.ws_path("probe")).unwrap();
    let mut argv = vec!["./probe"];
    argv.extend_from_slice(ops);
    let run = fx.run(&argv);
    run.expect_code(0);
    let v = kv(&run.stdout);
    for op in ops {
        assert!(v.contains_key(*op), "no result for {op}:\n{}{}", run.stdout, run.stderr);
    }
    v
}

fn assert_all(v: &BTreeMap<String, String>, ops: &[&str], want: &str) {
    let wrong: Vec<String> = ops.iter().filter(|op| v[**op] != want).map(|op| format!("{op}={}", v[*op])).collect();
    assert!(wrong.is_empty(), "expected {want} for: {wrong:?}");
}

#[test]
fn ptrace_and_cross_process_memory_access_are_refused() {
    let fx = Fixture::new("k-ptrace");
    let ops = ["ptrace_attach", "ptrace_traceme", "process_vm_readv"];
    let v = probe(&fx, &[&ops[..], &["fork"]].concat());
    assert_all(&v, &ops, "EPERM");
    assert_eq!(v["fork"], "ok");
}

#[test]
fn mount_family_chroot_and_pivot_root_are_refused() {
    let fx = Fixture::new("k-mount");
    let ops = ["mount_tmpfs", "mount_bind", "umount_proc", "fsopen", "open_tree", "chroot", "pivot_root"];
    let v = probe(&fx, &ops);
    assert_all(&v, &ops, "EPERM");
}

#[test]
fn new_namespaces_are_refused_through_every_door() {
    let fx = Fixture::new("k-ns");
    let ops = ["unshare_user", "unshare_mount", "unshare_net", "unshare_user_highbits", "clone_newuser", "setns"];
    let v = probe(&fx, &[&ops[..], &["clone3_newuser", "fork"]].concat());
    assert_all(&v, &ops, "EPERM");
    // clone3 says ENOSYS so that libc falls back to clone, whose flags are checked.
    assert_eq!(v["clone3_newuser"], "ENOSYS");
    assert_eq!(v["fork"], "ok");
}

#[test]
fn io_uring_keyrings_bpf_perf_and_userfaultfd_are_refused() {
    let fx = Fixture::new("k-surface");
    let ops = [
        "io_uring_setup",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "open_by_handle_at",
        "name_to_handle_at",
        "syslog",
        "kexec_load",
        "init_module",
        "personality",
    ];
    let v = probe(&fx, &[&ops[..], &["personality_query"]].concat());
    assert_all(&v, &ops, "EPERM");
    assert_eq!(v["personality_query"], "ok");
}

#[test]
fn socket_families_beyond_unix_and_inet_are_refused() {
    let fx = Fixture::new("k-sock");
    let ops = [
        "socket_netlink",
        "socket_packet",
        "socket_vsock",
        "socket_alg",
        "socket_netlink_highbits",
        "socketpair_netlink",
    ];
    let legit = ["socket_unix", "socket_inet", "socket_inet6"];
    let v = probe(&fx, &[&ops[..], &legit[..]].concat());
    assert_all(&v, &ops, "EPERM");
    assert_all(&v, &legit, "ok");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_and_i386_system_calls_fail_with_eperm() {
    let fx = Fixture::new("k-abi");
    let v = probe(&fx, &["x32_getpid", "i386_getpid", "fork"]);
    assert_all(&v, &["x32_getpid", "i386_getpid"], "EPERM");
    assert_eq!(v["fork"], "ok", "a 64-bit call after the refused ones");
}

#[test]
fn terminal_injection_ioctls_are_refused_even_without_a_tty() {
    // stdin is /dev/null here: seccomp answers before the tty layer would.
    let fx = Fixture::new("k-tiocsti");
    let v = probe(&fx, &["tiocsti", "tiocsti_highbits", "tioclinux"]);
    assert_all(&v, &["tiocsti", "tiocsti_highbits", "tioclinux"], "EPERM");
}

#[test]
fn capabilities_are_all_zero_with_no_new_privs_and_a_seccomp_filter() {
    let fx = Fixture::new("k-caps");
    let run = fx.run(&["cat", "/proc/self/status"]);
    run.expect_code(0);
    let status: BTreeMap<&str, &str> =
        run.stdout.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k, v.trim())).collect();
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status[cap], "0000000000000000", "{cap}");
    }
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status["Seccomp"], "2");
    // The same for a command's grandchild (inherited, not per exec).
    let run = fx.sh("sh -c 'grep -E \"^(CapEff|NoNewPrivs|Seccomp):\" /proc/self/status'");
    assert_eq!(
        run.stdout.split_whitespace().collect::<Vec<_>>(),
        ["CapEff:", "0000000000000000", "NoNewPrivs:", "1", "Seccomp:", "2"]
    );
}

const SETUID_SRC: &str = r#"
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
int main(void) {
    int su = setuid(0), sg = setgid(0);
    int fd = open("/etc/shadow", O_RDONLY);
    printf("ruid=%d euid=%d setuid=%d setgid=%d shadow=%s\n", getuid(), geteuid(), su, sg, fd >= 0 ? "open" : "denied");
    return 0;
}
"#;

#[test]
fn a_setuid_root_binary_gains_nothing() {
    let fx = Fixture::new("k-setuid");
    let bin = compile_c(&fx.outside, "suid", SETUID_SRC);
    let inside = fx.ws_path("suid");
    std::fs::copy(&bin, &inside).unwrap();
    std::os::unix::fs::chown(&inside, Some(0), Some(0)).unwrap();
    chmod(&inside, 0o4755);
    // On the host, as a plain user, the bit works (the control).
    let host = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&inside)
        .output()
        .unwrap();
    let host = String::from_utf8_lossy(&host.stdout).into_owned();
    assert!(host.contains("euid=0"), "control: the setuid bit should work on the host: {host}");
    let run = fx.sh("./suid; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '");
    run.expect_code(0);
    assert!(run.stdout.contains("shadow=denied"), "{}", run.stdout);
    assert!(run.stdout.contains("CapEff: 0000000000000000"), "{}", run.stdout);
    // The sandbox's own root already is uid 0 inside; as an unprivileged user
    // inside it stays that user.
    let run = fx.sh("setpriv --reuid=1000 --regid=1000 --clear-groups ./suid || echo setpriv-failed");
    assert!(run.stdout.contains("setpriv-failed") || run.stdout.contains("euid=1000"), "{}{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("shadow=open"));
}

#[test]
fn descriptors_inherited_from_the_caller_are_closed_inside() {
    use std::os::fd::AsRawFd;
    let fx = Fixture::new("k-fds");
    let secret = fx.write_outside("fd-secret", "inherited-secret");
    let file = std::fs::File::open(&secret).unwrap();
    let fd = file.as_raw_fd();
    // SAFETY: clears FD_CLOEXEC on a descriptor this test owns.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let script = format!(
        "cat <&{fd}; echo read=$?; ls /proc/self/fd | tr '\\n' ' '; echo; readlink /proc/self/fd/* 2>/dev/null; true"
    );
    let mut cmd = fx.command(&["/bin/sh", "-c", &script]);
    let run = output(&mut cmd);
    drop(file);
    run.expect_code(0);
    assert!(!run.stdout.contains("inherited-secret"), "{}", run.stdout);
    assert!(!run.stdout.contains("read=0"), "fd {fd} was open inside:\n{}", run.stdout);
    assert!(!run.stdout.contains("fd-secret"), "{}", run.stdout);
    let fds: Vec<&str> = run.stdout.lines().nth(1).unwrap_or("").split_whitespace().collect();
    // 0-2 and the one ls opened for the listing.
    assert!(fds.len() <= 4, "descriptors inside: {fds:?}");
}

#[test]
fn no_set_id_file_can_be_left_in_the_workspace_for_the_host() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new("k-setid");
    let script = "cp /bin/true t1; chmod 4755 t1; chmod u+s t1; chmod g+s t1; cp /bin/true t2; \
                  install -m 4755 /bin/true t3; mkdir d; chmod 2775 d; \
                  python3 -c \"import os; os.close(os.open('t4', os.O_CREAT | os.O_WRONLY, 0o6755))\"; \
                  python3 -c \"import os; os.chmod('t2', 0o4755)\"; \
                  cp /bin/true ok; chmod 755 ok && ./ok && echo legit=ok";
    let run = fx.sh(script);
    assert!(run.stdout.contains("legit=ok"), "{}{}", run.stdout, run.stderr);
    let mut set_id = Vec::new();
    for entry in std::fs::read_dir(&fx.ws).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        if mode & 0o6000 != 0 {
            set_id.push(format!("{} {mode:o}", entry.file_name().to_string_lossy()));
        }
    }
    assert!(set_id.is_empty(), "set-id files reached the host: {set_id:?}\n{}", run.stderr);
    assert!(run.stderr.contains("Operation not permitted"), "{}", run.stderr);
}
