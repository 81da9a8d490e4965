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
    // `3600[.]PID` matches the mark but not itself, so the command lines of
    // the script and of grep (both visible inside) do not count.
    let pattern = mark.replacen('.', "[.]", 1);
    let script = format!(
        "ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; \
         cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c '{pattern}'; \
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

#[test]
fn init_is_out_of_reach_of_the_commands_it_runs() {
    let fx = Fixture::new("proc-init");
    let script = [
        probe("fds", "ls /proc/1/fd"),
        probe("mem", "dd if=/proc/1/mem bs=1 count=1 skip=4096"),
        probe("environ", "grep -q . /proc/1/environ"),
        probe("kill_init", "kill -KILL 1"),
        probe("own_fds", "ls /proc/self/fd"),
        "echo after=$(echo alive)".to_string(),
    ]
    .concat();
    let run = fx.sh(&script);
    run.expect_code(0);
    let v = kv(&run.stdout);
    for k in ["fds", "mem", "environ"] {
        assert_eq!(v[k], "err", "{k}: init's state is readable\n{}", run.stdout);
    }
    // Signals to pid 1 from inside its namespace are ignored unless it handles them.
    assert_eq!(v["after"], "alive", "{}", run.stdout);
    assert_eq!(v["own_fds"], "ok");
}

#[test]
fn signals_to_everyone_stay_inside_the_sandbox() {
    let mut host = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let fx = Fixture::new("proc-kill");
    // kill -1 reaches every process the caller can signal: inside, that is
    // only the sandbox's own (the shell itself survives POSIX kill -1).
    let (run, pid) = run_bounded(
        fx.command(&["/bin/bash", "-c", "sleep 100 & kill -KILL -1; wait; echo survived"]),
        false,
        std::time::Duration::from_secs(60),
    );
    let host_alive = alive(host.id());
    let _ = host.kill();
    let _ = host.wait();
    assert!(host_alive, "a host process was killed from inside");
    assert!(!alive(pid), "clawcage itself did not finish");
    run.expect_code(0);
    assert_eq!(run.stdout, "survived\n", "{}", run.stderr);
}
