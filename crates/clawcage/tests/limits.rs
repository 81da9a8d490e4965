//! End-to-end tests of the resource limits (`[limits]`) and of cleanup: the
//! real `clawcage` binary, hostile commands inside, checks from the host.
//!
//! Every sandbox process of a test is marked with an environment variable
//! (`common::MARK_VAR`, via `--env`) so that leftover checks look only at this
//! test's processes, even while other tests run sandboxes in parallel.
//! Durations are bounded only to detect hangs, never asserted otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::process::Stdio;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// Upper bound on one clawcage run in these tests (a hang detector).
const HANG: Duration = Duration::from_secs(60);
/// How long cleanup (kills, the watcher's rmdir) may take to show.
const SETTLE: Duration = Duration::from_secs(10);

const BOMB_POLICY: &str = "[limits]\npids = 64\ntimeout = \"20s\"\n";
const MEMORY_POLICY: &str = "[limits]\nmemory = \"64MiB\"\npids = 64\ntimeout = \"20s\"\n";
const DISK_POLICY: &str = "[limits]\ndisk = \"16MiB\"\ntimeout = \"20s\"\n";
const OUTPUT_POLICY: &str = "[limits]\noutput = \"1MiB\"\ntimeout = \"20s\"\n";
const TIMEOUT_POLICY: &str = "[limits]\ntimeout = \"1s\"\n";
const CPU_POLICY: &str = "[limits]\ncpus = 0.5\ntimeout = \"20s\"\n";
/// Every cgroup-backed limit, so that every hierarchy gets a group.
const ALL_POLICY: &str = "[limits]\nmemory = \"256MiB\"\npids = 64\ncpus = 1.0\ntimeout = \"20s\"\n";

/// After a run: no process of the sandbox marked `mark` and no cgroup of the
/// supervisor `pid` remains (bounded retries).
fn assert_all_gone(mark: &str, pid: u32) {
    eventually("sandbox processes left behind", SETTLE, || sandbox_procs(Some(mark)));
    eventually("cgroups left behind", SETTLE, || cgroup_leftovers(pid));
}

/// Runs a fork bomb (stdin held open, so `read -t` can wait) and checks that
/// the host can fork while it runs; returns the run.
fn run_bomb(ws: &TempDir, mark: &str, argv: &[&str]) -> Run {
    let probe = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(1500));
        host_can_fork()
    });
    let (run, pid) = run_bounded(marked_command(ws.path(), Some(BOMB_POLICY), mark, argv), true, HANG);
    assert!(probe.join().unwrap(), "the host could not fork while the bomb ran");
    assert!(host_can_fork(), "the host cannot fork after the bomb");
    assert_all_gone(mark, pid);
    run
}

#[test]
fn bash_fork_bomb_is_stopped_by_the_pids_limit() {
    let ws = TempDir::new("bomb-sh");
    let mark = unique_mark("bomb-sh");
    // The bomb's tree outlives the function calls; the script itself waits
    // 3 s (a `read` that times out: no fork needed) and then reports.
    let run = run_bomb(&ws, &mark, &["/bin/bash", "-c", ":(){ :|:& };: ; read -t 3 ; echo survived"]);
    run.expect_code(0);
    assert!(run.stdout.contains("survived"), "stdout: {}", run.stdout);
}

#[test]
fn python_fork_loop_is_stopped_by_the_pids_limit() {
    let ws = TempDir::new("bomb-py");
    let mark = unique_mark("bomb-py");
    // Every process forks forever; only the first one stops, after 3 s, and
    // says how many of its forks failed (the limit at work).
    let script = "import os, time\n\
                  top = os.getpid(); ok = fails = 0; t = time.time()\n\
                  while os.getpid() != top or time.time() - t < 3:\n\
                  \x20   try:\n\
                  \x20       pid = os.fork()\n\
                  \x20   except OSError:\n\
                  \x20       fails += 1; time.sleep(0.01); continue\n\
                  \x20   ok += pid != 0 and os.getpid() == top\n\
                  print('forks', ok, 'failed', fails, flush=True)\n";
    let run = run_bomb(&ws, &mark, &["python3", "-c", script]);
    run.expect_code(0);
    let failed: u64 = (run.stdout.split_whitespace())
        .skip_while(|w| *w != "failed")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no report: {}\n{}", run.stdout, run.stderr));
    assert!(failed > 0, "no fork ever failed: the pids limit did not bite ({})", run.stdout);
}

#[test]
fn memory_hog_is_killed_with_137_and_a_reason() {
    let ws = TempDir::new("memhog");
    let hog = "b = b'\\x01' * (512 << 20); print('allocated', len(b))";
    let run = run(ws.path(), Some(MEMORY_POLICY), &["python3", "-c", hog]);
    run.expect_code(137);
    assert!(!run.stdout.contains("allocated"), "the hog got its memory: {}", run.stdout);
    assert!(run.stderr.contains("memory limit"), "no reason on stderr:\n{}", run.stderr);
}

#[test]
fn memory_within_the_limit_is_fine() {
    let ws = TempDir::new("memok");
    let ok = "b = b'\\x01' * (16 << 20); print('allocated', len(b))";
    let run = run(ws.path(), Some(MEMORY_POLICY), &["python3", "-c", ok]);
    run.expect_code(0);
    assert_eq!(run.stdout.trim(), format!("allocated {}", 16 * MIB));
}

/// Filling the private /tmp or $HOME with one big file must end in ENOSPC
/// (a clean error the program can handle), not in a kill.
#[test]
fn filling_tmp_or_home_with_one_file_fails_with_no_space() {
    let ws = TempDir::new("diskfill");
    let mark = unique_mark("f");
    for dir in ["/tmp", "$HOME"] {
        let script = format!("dd if=/dev/zero of={dir}/{mark} bs=1M count=64 2>&1; echo dd-status=$?");
        let run = sh(ws.path(), Some(DISK_POLICY), &script);
        run.expect_code(0);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(!all.contains("dd-status=0"), "dd of 64 MiB into {dir} succeeded:\n{all}");
        assert!(all.contains("No space left on device"), "writing {dir} full did not fail with ENOSPC:\n{all}");
    }
    assert!(!std::path::Path::new("/tmp").join(&mark).exists(), "the sandbox wrote to the host's /tmp");
}

#[test]
fn disk_limit_bounds_tmp_and_home_and_leaves_the_host_alone() {
    let ws = TempDir::new("disk");
    let mark = unique_mark("f");
    for dir in ["/tmp", "$HOME"] {
        // Sizes in 1 KiB blocks; two 10 MiB files cannot both fit in 16 MiB.
        let script = format!(
            "df -k {dir} | tail -n 1; \
             dd if=/dev/zero of={dir}/a-{mark} bs=1M count=10 2>/dev/null; echo a=$?; \
             dd if=/dev/zero of={dir}/b-{mark} bs=1M count=10 2>&1; echo b=$?; \
             dd if=/dev/zero of={dir}/c-{mark} bs=1M count=64 2>/dev/null; echo c=$?; \
             cat {dir}/?-{mark} | wc -c"
        );
        let run = sh(ws.path(), Some(DISK_POLICY), &script);
        run.expect_code(0);
        let out = &run.stdout;
        let total: u64 = out.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0);
        assert_eq!(total, 16 * 1024, "{dir} is not a 16 MiB filesystem:\n{out}");
        assert!(out.contains("a=0"), "a 10 MiB file did not fit in {dir}:\n{out}");
        assert!(!out.contains("b=0") && out.contains("No space left on device"), "second file in {dir}:\n{out}");
        assert!(!out.contains("c=0"), "a 64 MiB file fit in {dir}:\n{out}");
        let used: u64 = out.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(u64::MAX);
        assert!(used <= 16 * MIB as u64, "{dir} holds {used} bytes of file data:\n{out}");
    }
    for f in ["a", "b", "c"] {
        let host = std::path::PathBuf::from(format!("/tmp/{f}-{mark}"));
        assert!(!host.exists(), "the sandbox's /tmp file is on the host: {}", host.display());
    }
    assert!(!std::path::Path::new("/home/sandbox").join(format!("a-{mark}")).exists());
}

#[test]
fn file_size_limit_applies_in_the_workspace() {
    let ws = TempDir::new("fsize");
    let script = "dd if=/dev/zero of=big bs=1M count=32 2>/dev/null; echo big=$?; \
                  dd if=/dev/zero of=small bs=1M count=1 2>/dev/null; echo small=$?";
    let run = sh(ws.path(), Some(DISK_POLICY), script);
    run.expect_code(0);
    // Killed by SIGXFSZ (128 + 25) or failed with EFBIG, either way not 0.
    assert!(!run.stdout.contains("big=0"), "a 32 MiB file was written:\n{}", run.stdout);
    assert!(run.stdout.contains("small=0"), "a 1 MiB file failed:\n{}{}", run.stdout, run.stderr);
    let size = |f: &str| std::fs::metadata(ws.path().join(f)).map(|m| m.len()).unwrap_or(0);
    // The rlimit is the disk limit plus one page (so tmpfs fills with ENOSPC first).
    assert!(size("big") <= 16 * MIB as u64 + 4096, "big is {} bytes", size("big"));
    assert_eq!(size("small"), MIB as u64);
}

#[test]
fn endless_output_is_cut_at_exactly_the_limit() {
    let ws = TempDir::new("yes");
    let (run, _) = run_bounded(command(ws.path(), Some(OUTPUT_POLICY), &["yes"]), false, HANG);
    run.expect_code(153);
    assert_eq!(run.stdout.len(), MIB, "stdout length");
    assert!(run.stdout.bytes().all(|b| b == b'y' || b == b'\n'));
    assert!(run.stderr.contains("output limit"), "no reason on stderr:\n{}", run.stderr);
}

#[test]
fn output_limit_counts_stdout_and_stderr_together() {
    let ws = TempDir::new("out2");
    let script = "import sys\n\
                  sys.stdout.write('P' * 600000); sys.stdout.flush()\n\
                  sys.stderr.write('Q' * 600000); sys.stderr.flush()\n";
    let (run, _) = run_bounded(command(ws.path(), Some(OUTPUT_POLICY), &["python3", "-c", script]), false, HANG);
    run.expect_code(153);
    let count = |s: &str, c: char| s.chars().filter(|x| *x == c).count();
    assert_eq!(count(&run.stdout, 'P') + count(&run.stderr, 'Q'), MIB, "bytes delivered");
}

#[test]
fn output_up_to_the_limit_passes_in_full() {
    let ws = TempDir::new("outok");
    for n in [MIB - 1, MIB] {
        let script = format!("head -c {n} /dev/zero | tr '\\0' y");
        let (run, _) = run_bounded(command(ws.path(), Some(OUTPUT_POLICY), &["/bin/sh", "-c", &script]), false, HANG);
        run.expect_code(0);
        assert_eq!(run.stdout.len(), n, "stdout length for {n} bytes");
        assert!(!run.stderr.contains("output limit"), "{}", run.stderr);
    }
}

#[test]
fn timeout_kills_with_124_and_a_reason() {
    let ws = TempDir::new("timeout");
    let (run, _) = run_bounded(command(ws.path(), Some(TIMEOUT_POLICY), &["sleep", "30"]), false, HANG);
    run.expect_code(124);
    assert!(run.stderr.contains("timeout"), "no reason on stderr:\n{}", run.stderr);
}

#[test]
fn timeout_takes_stubborn_children_and_grandchildren_along() {
    let ws = TempDir::new("timeout2");
    let mark = unique_mark("timeout2");
    // A shell and children that ignore SIGTERM, a background grandchild, and
    // one in a session of its own.
    let script = "trap '' TERM; (trap '' TERM; sleep 1000) & setsid sleep 1000 & sleep 1000 & sleep 1000";
    let cmd = marked_command(ws.path(), Some(TIMEOUT_POLICY), &mark, &["/bin/sh", "-c", script]);
    let (run, pid) = run_bounded(cmd, false, HANG);
    run.expect_code(124);
    assert_all_gone(&mark, pid);
}

#[test]
fn fast_command_under_a_timeout_exits_normally() {
    let ws = TempDir::new("fast");
    let (run, _) = run_bounded(command(ws.path(), Some(TIMEOUT_POLICY), &["echo", "fast"]), false, HANG);
    run.expect_code(0);
    assert_eq!(run.stdout, "fast\n");
    assert!(!run.stderr.contains("timeout"), "{}", run.stderr);
}

#[test]
fn cpu_limit_throttles_a_busy_loop() {
    let ws = TempDir::new("cpu");
    let script = "import time\n\
                  t0 = time.time(); c0 = time.process_time()\n\
                  while time.time() - t0 < 1.5: pass\n\
                  print(time.process_time() - c0, time.time() - t0)\n";
    let (run, _) = run_bounded(command(ws.path(), Some(CPU_POLICY), &["python3", "-c", script]), false, HANG);
    run.expect_code(0);
    let nums: Vec<f64> = run.stdout.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let [cpu, wall] = nums[..] else { panic!("unexpected output: {}", run.stdout) };
    eprintln!("busy loop under cpus = 0.5: {cpu:.3} CPU-s in {wall:.3} s");
    // 0.5 expected; an unlimited loop gets close to 1.0.
    assert!(cpu <= 0.7 * wall, "{cpu:.3} CPU-s in {wall:.3} s of wall time: more than 0.5 CPUs");
}

#[test]
fn nothing_remains_after_a_normal_end_with_a_background_process() {
    let ws = TempDir::new("orphans");
    let mark = unique_mark("orphans");
    let ready = ws.path().join("ready");
    // Stays until its stdin ends, so that the cgroups can be seen first.
    let script = "sleep 1000 & echo up > ready; read x; echo done";
    let mut cmd = marked_command(ws.path(), Some(ALL_POLICY), &mark, &["/bin/sh", "-c", script]);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    wait_for_file(&ready, HANG, || format!("exited: {:?}", child.try_wait()));
    let groups = cgroup_leftovers(pid);
    assert!(groups.len() >= 2, "expected v1 and/or v2 groups while running, found {groups:?}");
    assert!(!sandbox_procs(Some(&mark)).is_empty(), "the marked processes are not visible");
    drop(child.stdin.take());
    let status = wait_bounded(&mut child, HANG);
    assert_eq!(status.code(), Some(0), "clawcage exit status");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "done\n");
    assert_all_gone(&mark, pid);
}

#[test]
fn nothing_remains_after_the_supervisor_is_killed() {
    let ws = TempDir::new("sigkill");
    let mark = unique_mark("sigkill");
    let ready = ws.path().join("ready");
    let script = "sleep 1000 & echo up > ready; exec sleep 1000";
    let mut cmd = marked_command(ws.path(), Some(ALL_POLICY), &mark, &["/bin/sh", "-c", script]);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    wait_for_file(&ready, HANG, || format!("exited: {:?}", child.try_wait()));

    // What there is to clean up: init and the watcher, cgroups, processes.
    let helpers = children_of(pid);
    assert!(helpers.len() >= 2, "expected init and the watcher as children of {pid}: {helpers:?}");
    assert!(cgroup_leftovers(pid).len() >= 2, "no cgroups while running");
    assert!(sandbox_procs(Some(&mark)).len() >= 2, "the marked processes are not visible");

    child.kill().unwrap();
    let status = wait_bounded(&mut child, HANG);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc_sigkill()));

    assert_all_gone(&mark, pid);
    eventually("init or the watcher still alive", SETTLE, || {
        helpers.iter().copied().filter(|p| alive(*p)).collect::<Vec<_>>()
    });
    let ws_path = ws.path().to_string_lossy().into_owned();
    eventually("host mounts left behind", SETTLE, || mounts_mentioning(&[&ws_path, "clawcage"]));
}

/// SIGKILL's number (no libc dependency in this crate's tests).
fn libc_sigkill() -> i32 {
    9
}

#[test]
fn killing_the_supervisor_during_a_fork_bomb_leaves_nothing() {
    let ws = TempDir::new("sigkill-bomb");
    let mark = unique_mark("sigkill-bomb");
    let ready = ws.path().join("ready");
    // The bomb keeps forking while the supervisor is killed under it.
    let script = "echo up > ready; :(){ :|:& };: ; sleep 1000";
    let policy = "[limits]\npids = 64\nmemory = \"256MiB\"\ntimeout = \"60s\"\n";
    let mut cmd = marked_command(ws.path(), Some(policy), &mark, &["/bin/bash", "-c", script]);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    wait_for_file(&ready, HANG, || format!("exited: {:?}", child.try_wait()));
    std::thread::sleep(Duration::from_millis(300)); // let the bomb fill its pids limit
    assert!(sandbox_procs(Some(&mark)).len() >= 10, "the bomb is not running");
    child.kill().unwrap();
    wait_bounded(&mut child, HANG);
    assert_all_gone(&mark, pid);
    assert!(host_can_fork(), "the host cannot fork after the bomb");
    let ws_path = ws.path().to_string_lossy().into_owned();
    eventually("host mounts left behind", SETTLE, || mounts_mentioning(&[&ws_path, "clawcage"]));
}

/// Many limited runs at once (every hierarchy gets groups), sharing one
/// workspace and state directory: all succeed, nothing is left behind, and
/// their audit records form one valid chain with nothing pending.
#[test]
fn concurrent_limited_runs_all_succeed_and_leave_nothing() {
    const RUNS: usize = 14;
    let ws = TempDir::new("concurrent-limits");
    let runs: Vec<_> = (0..RUNS)
        .map(|i| {
            let ws = ws.path().to_path_buf();
            std::thread::spawn(move || {
                let mark = unique_mark(&format!("concurrent-{i}"));
                let cmd = marked_command(&ws, Some(ALL_POLICY), &mark, &["/bin/sh", "-c", "echo ok"]);
                let (run, pid) = run_bounded(cmd, false, HANG);
                (mark, pid, run)
            })
        })
        .collect();
    let runs: Vec<_> = runs.into_iter().map(|t| t.join().unwrap()).collect();
    for (_, pid, run) in &runs {
        assert_eq!((run.code, run.stdout.as_str()), (0, "ok\n"), "run {pid}: {}", run.stderr);
    }
    for (mark, pid, _) in &runs {
        assert_all_gone(mark, *pid);
        eventually("the cgroup watcher still alive", SETTLE, || {
            children_of(*pid).into_iter().filter(|p| alive(*p)).collect::<Vec<_>>()
        });
    }
    let mut verify = std::process::Command::new(bin());
    verify.env("CLAWCAGE_HOME", state_dir_for(ws.path())).args(["audit", "verify"]);
    let v = output(&mut verify);
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    assert!(!v.stdout.contains("note:"), "pending or crashed records: {}", v.stdout);
    let log = std::fs::read_to_string(state_dir_for(ws.path()).join("audit.jsonl")).unwrap();
    for kind in ["sandbox_start", "exec", "exec_end", "sandbox_stop"] {
        let n = log.lines().filter(|l| l.contains(&format!("\"kind\":\"{kind}\""))).count();
        assert_eq!(n, RUNS, "{kind} records");
    }
}
