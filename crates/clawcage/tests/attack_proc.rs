//! Attacks through /proc, /sys and /dev: host processes, kernel knobs and
//! memory, devices. Each tried from inside the real sandbox, with the
//! legitimate use of the same files beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;

/// `name=ok` or `name=err` for one shell command.
fn probe(name: &str, cmd: &str) -> String {
    format!("if {cmd} >/dev/null 2>&1; then echo {name}=ok; else echo {name}=err; fi; ")
}

#[test]
fn host_processes_are_invisible() {
    // A host process with a marker in its command line, alive during the run.
    let mark = format!("3600.{}", std::process::id());
    let mut host = std::process::Command::new("sleep").arg(&mark).spawn().unwrap();
    let fx = Fixture::new("proc-pids");
    // The pattern is put together at run time, so the script's own command
    // line (visible inside) does not contain it.
    let (a, b) = mark.split_at(3);
    let script = format!(
        "ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; m=$(printf %s%s {a} {b}); \
         cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c \"$m\"; \
         kill -0 {pid} && echo killed-host || echo no-such-pid; cat /proc/1/cmdline | tr -d '\\0'; echo",
        pid = host.id()
    );
    let run = fx.sh(&script);
    let _ = host.kill();
    let _ = host.wait();
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let pids: Vec<u32> = lines[0].split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert!(pids.len() <= 6 && pids.iter().all(|p| *p < 50), "host pids visible: {pids:?}");
    assert_eq!(lines[1], "0", "the host process's command line is readable inside");
    assert_eq!(lines[2], "no-such-pid", "{}", run.stdout);
    // pid 1 is the sandbox's init, scrubbed of the supervisor's argv.
    assert_eq!(lines[3].trim(), "clawcage-init");
}

#[test]
fn proc_sys_is_read_only_and_kernel_memory_files_are_masked() {
    let fx = Fixture::new("proc-sys");
    let script = [
        probe("sys_write", "sh -c 'echo 1 > /proc/sys/vm/drop_caches'"),
        probe("hostname_write", "sh -c 'echo evil > /proc/sys/kernel/hostname'"),
        probe("core_pattern", "sh -c 'echo \"|/tmp/x\" > /proc/sys/kernel/core_pattern'"),
        probe("sysrq", "sh -c 'echo b > /proc/sysrq-trigger'"),
        probe("sys_read", "cat /proc/sys/kernel/ostype"),
        probe("cpuinfo", "grep -q processor /proc/cpuinfo"),
        probe("self_status", "grep -q NoNewPrivs /proc/self/status"),
        "for f in kcore kallsyms sysrq-trigger timer_list keys kpageflags config.gz; do \
           echo size_$f=$(cat /proc/$f 2>/dev/null | wc -c); done; \
         for d in acpi scsi firmware driver; do echo ls_$d=$(ls -A /proc/$d 2>/dev/null | wc -l); done"
            .to_string(),
    ]
    .concat();
    let run = fx.sh(&script);
    run.expect_code(0);
    let v = kv(&run.stdout);
    for k in ["sys_write", "hostname_write", "core_pattern", "sysrq"] {
        assert_eq!(v[k], "err", "{k}: a kernel knob was written\n{}", run.stdout);
    }
    for f in ["kcore", "kallsyms", "sysrq-trigger", "timer_list", "keys", "kpageflags", "config.gz"] {
        assert_eq!(v[&format!("size_{f}")], "0", "/proc/{f} has content inside");
    }
    for d in ["acpi", "scsi", "firmware", "driver"] {
        assert_eq!(v[&format!("ls_{d}")], "0", "/proc/{d} lists entries inside");
    }
    assert_eq!(v["sys_read"], "ok", "reading /proc/sys must work: {}", run.stderr);
    assert_eq!(v["cpuinfo"], "ok");
    assert_eq!(v["self_status"], "ok");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").map(|s| s.contains("/tmp/x")).ok(),
        Some(false)
    );
}

#[test]
fn no_host_sys_and_only_a_minimal_dev() {
    let fx = Fixture::new("proc-dev");
    let script = "ls /sys 2>&1 | head -1; echo dev=$(ls -A /dev | tr '\\n' ,); \
                  for d in sda vda mem kmem port kmsg console tty0 net/tun fuse loop0; do \
                    test -e /dev/$d && echo has=$d; done; \
                  echo x > /dev/null && echo null=ok; head -c 4 /dev/urandom | wc -c; \
                  echo shm > /dev/shm/f && cat /dev/shm/f; touch /dev/newnode 2>/dev/null || echo devro=ok; \
                  mknod /tmp/m c 1 1 2>/dev/null || echo mknod=refused";
    let run = fx.sh(script);
    run.expect_code(0);
    let out = &run.stdout;
    assert!(out.contains("No such file or directory"), "/sys exists: {out}");
    assert!(!out.contains("has="), "host devices inside: {out}");
    let v = kv(out);
    let dev: Vec<&str> = v["dev"].split(',').filter(|s| !s.is_empty()).collect();
    let allowed =
        ["null", "zero", "full", "random", "urandom", "tty", "shm", "pts", "fd", "stdin", "stdout", "stderr", "ptmx"];
    assert!(dev.iter().all(|d| allowed.contains(d)), "unexpected /dev entries: {dev:?}");
    assert_eq!(v["null"], "ok");
    assert!(out.contains("\n4\nshm\n"), "urandom or /dev/shm do not work: {out}");
    assert_eq!(v["devro"], "ok");
    assert_eq!(v["mknod"], "refused");
}

#[test]
fn the_cgroup_and_mount_views_are_the_sandboxs_own() {
    let fx = Fixture::new("proc-views");
    let run = fx.sh("cat /proc/self/cgroup; echo ---; cut -d' ' -f5 /proc/self/mountinfo; hostname");
    run.expect_code(0);
    let (cgroups, rest) = run.stdout.split_once("---\n").unwrap();
    for line in cgroups.lines() {
        assert!(line.ends_with(":/"), "host cgroup path visible: {line}");
    }
    let mounts: Vec<&str> = rest.lines().collect();
    assert!(!mounts.iter().any(|m| *m == "/sys" || m.starts_with("/sys/") || m.starts_with("/oldroot")), "{mounts:?}");
    assert_eq!(mounts.last().copied(), Some("clawcage"), "hostname");
}
