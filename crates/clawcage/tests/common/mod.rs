//! Shared helpers for the end-to-end tests: they run the real `clawcage`
//! binary, as the user would, and look at exit status and output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Path of the built `clawcage` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clawcage")
}

/// A fresh directory under /tmp (removed on drop), usable as a workspace.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = PathBuf::from(format!(
            "/tmp/clawcage-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// Write `content` to `rel` inside the directory, creating parents.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_dir_all(state_dir_for(&self.0));
    }
}

/// The state directory (`CLAWCAGE_HOME`) of runs on workspace `ws`: beside
/// it, never inside (the sandbox must not reach its own audit log).
pub fn state_dir_for(ws: &Path) -> PathBuf {
    ws.with_extension("state")
}

/// Result of one `clawcage` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        let code = out.status.code().unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
        Run {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    /// Panic with everything we know unless the exit code matches.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// `clawcage run [--policy P] --workspace WS -- sh -c SCRIPT` with stdin closed.
pub fn sh(ws: &Path, policy: Option<&str>, script: &str) -> Run {
    run(ws, policy, &["/bin/sh", "-c", script])
}

/// `clawcage run [--policy P] --workspace WS -- ARGV...`. `policy` is the
/// policy file's *text* (written next to, not inside, the workspace).
pub fn run(ws: &Path, policy: Option<&str>, argv: &[&str]) -> Run {
    let mut cmd = command(ws, policy, argv);
    Run::from(cmd.stdin(Stdio::null()).output().unwrap())
}

/// The `Command` for a run, for tests that need to tweak it.
pub fn command(ws: &Path, policy: Option<&str>, argv: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("CLAWCAGE_HOME", state_dir_for(ws)).arg("run").arg("--workspace").arg(ws);
    if let Some(text) = policy {
        let file = ws.with_extension("policy.toml");
        std::fs::write(&file, text).unwrap();
        cmd.arg("--policy").arg(file);
    }
    cmd.arg("--").args(argv);
    cmd
}

// ---------------------------------------------------------------------------
// Helpers for the resource-limit and cleanup tests (tests/limits.rs).

/// Host uid (and gid) of the sandbox's root when host root runs clawcage on a
/// root-owned workspace (`supervisor::ISOLATED_ID`).
pub const SANDBOX_UID: u32 = 0x7fff_0000;

/// Name of the environment variable that marks the processes of one test's
/// sandbox (passed with `--env`; every descendant inherits it).
pub const MARK_VAR: &str = "CLAWCAGE_TEST_MARK";

/// A marker unique to this test process and call.
pub fn unique_mark(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Like [`command`], with `extra` arguments of `run` before the `--`.
pub fn command_with(ws: &Path, policy: Option<&str>, extra: &[&str], argv: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("CLAWCAGE_HOME", state_dir_for(ws)).arg("run").arg("--workspace").arg(ws);
    if let Some(text) = policy {
        let file = ws.with_extension("policy.toml");
        std::fs::write(&file, text).unwrap();
        cmd.arg("--policy").arg(file);
    }
    cmd.args(extra).arg("--").args(argv);
    cmd
}

/// Like [`command`], with every sandbox process marked by `mark` (see [`MARK_VAR`]).
pub fn marked_command(ws: &Path, policy: Option<&str>, mark: &str, argv: &[&str]) -> Command {
    command_with(ws, policy, &["--env", &format!("{MARK_VAR}={mark}")], argv)
}

/// Runs `cmd` to completion with stdout and stderr collected, failing the test
/// (after killing it) if it takes longer than `limit`: a hang detector, not a
/// timing assertion. With `hold_stdin`, stdin is a pipe kept open (and empty)
/// until the process exits; otherwise /dev/null. Also returns the pid.
pub fn run_bounded(mut cmd: Command, hold_stdin: bool, limit: std::time::Duration) -> (Run, u32) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let stdin = if hold_stdin { Stdio::piped() } else { Stdio::null() };
    let mut child = cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let held = child.stdin.take();
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
            panic!("clawcage (pid {pid}) still running after {limit:?}; killed it\nstderr:\n{err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(held);
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let stdout = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    (Run { code, stdout, stderr }, pid)
}

/// Fields of /proc/PID/status as (name, value) pairs; `None` if the process is gone.
fn proc_status(pid: &str) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |l: &str| l.split_once(':').map(|(k, v)| (k.to_string(), v.trim().to_string()));
    Some(text.lines().filter_map(field).collect())
}

/// Numeric entries of /proc.
fn all_pids() -> Vec<String> {
    let entries = std::fs::read_dir("/proc").unwrap().flatten();
    let names = entries.filter_map(|e| e.file_name().to_str().map(str::to_string));
    names.filter(|n| n.bytes().all(|b| b.is_ascii_digit())).collect()
}

/// Live (not zombie) processes running as [`SANDBOX_UID`], as "pid name" strings.
/// With `mark`, only those whose environment carries that marker.
pub fn sandbox_procs(mark: Option<&str>) -> Vec<String> {
    let want = mark.map(|m| format!("{MARK_VAR}={m}"));
    let mut found = Vec::new();
    for pid in all_pids() {
        let Some(status) = proc_status(&pid) else { continue };
        let get = |k: &str| status.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("");
        let uid = get("Uid").split_whitespace().next().and_then(|u| u.parse::<u32>().ok());
        if uid != Some(SANDBOX_UID) || get("State").starts_with('Z') {
            continue;
        }
        if let Some(want) = &want {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if !environ.split(|b| *b == 0).any(|kv| kv == want.as_bytes()) {
                continue;
            }
        }
        found.push(format!("{pid} {}", get("Name")));
    }
    found
}

/// Live (not zombie) children of `parent`, as pids.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for pid in all_pids() {
        let Some(status) = proc_status(&pid) else { continue };
        let get = |k: &str| status.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        if get("PPid") == parent.to_string() && !get("State").starts_with('Z') {
            kids.extend(pid.parse::<u32>().ok());
        }
    }
    kids
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    proc_status(&pid.to_string()).is_some_and(|s| s.iter().any(|(k, v)| k == "State" && !v.starts_with('Z')))
}

/// Directories named `clawcage-<owner>-*` anywhere under /sys/fs/cgroup (every
/// hierarchy: memory, pids, cpu, unified, ...).
pub fn cgroup_leftovers(owner: u32) -> Vec<PathBuf> {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(e.path());
            }
            if depth > 0 {
                walk(&e.path(), prefix, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), &format!("clawcage-{owner}-"), 12, &mut out);
    out
}

/// Lines of the host's (our) /proc/self/mountinfo that contain any of `needles`.
pub fn mounts_mentioning(needles: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines().filter(|l| needles.iter().any(|n| l.contains(n))).map(str::to_string).collect()
}

/// Retries `check` (an empty list means "fine") until it passes or `limit`
/// has gone by, then panics with `what` and the last findings.
pub fn eventually<T: std::fmt::Debug>(what: &str, limit: std::time::Duration, mut check: impl FnMut() -> Vec<T>) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let found = check();
        if found.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            panic!("{what} (still after {limit:?}): {found:#?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether this process can still fork and run a trivial program.
pub fn host_can_fork() -> bool {
    (0..5).all(|_| Command::new("/bin/true").status().is_ok_and(|s| s.success()))
}

/// `key=value` lines of a probe's output, in order (later keys win).
pub fn kv(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Compile C source `src` with the host's gcc into `dir/name`; returns the
/// binary's path. A missing or failing gcc fails the test loudly.
pub fn compile_c(dir: &Path, name: &str, src: &str) -> PathBuf {
    let source = dir.join(format!("{name}.c"));
    let binary = dir.join(name);
    std::fs::write(&source, src).unwrap();
    let out = Command::new("gcc").arg("-O0").arg("-Wall").arg("-o").arg(&binary).arg(&source).output().unwrap();
    assert!(out.status.success(), "gcc {}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
    binary
}

/// Like [`compile_c`], into a directory named after the source's hash and
/// shared by every test process: compiled once (into a temporary name, then
/// renamed, so concurrent tests never see half a binary), reused after.
pub fn compile_c_cached(name: &str, src: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    src.hash(&mut h);
    let dir = PathBuf::from(format!("/tmp/clawcage-test-cbin-{:016x}", h.finish()));
    let binary = dir.join(name);
    if binary.exists() {
        return binary;
    }
    std::fs::create_dir_all(&dir).unwrap();
    chmod(&dir, 0o755);
    let scratch = dir.join(format!(".build-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let built = compile_c(&scratch, name, src);
    std::fs::rename(&built, &binary).unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    binary
}

/// What a pty reader thread has collected (bytes, at end) and its signal.
type PtyOutput = std::sync::Arc<(std::sync::Mutex<(Vec<u8>, bool)>, std::sync::Condvar)>;

/// A process running on a fresh pseudo-terminal that the test holds the
/// master of: what it writes can be read back, and keystrokes typed into it.
/// The slave is the child's controlling terminal (new session).
pub struct Pty {
    master: std::fs::File,
    child: Option<std::process::Child>,
    out: PtyOutput,
}

/// Bound on every wait in [`Pty`]: generous, it only turns a hang into a failure.
pub const PTY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(90);

impl Pty {
    /// Spawn `cmd` with stdin, stdout and stderr on a new pty of `rows` x `cols`.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let (mut m, mut s) = (-1, -1);
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two descriptors into the ints we own; no name buffer or termios is passed.
        let rc = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just returned these descriptors; we are their only owner.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        // The child must not inherit the master, or the test would never see EOF.
        // SAFETY: plain fcntl on a descriptor we own.
        assert_eq!(unsafe { libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC) }, 0);
        cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave.try_clone().unwrap());
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(slave);
        drop(cmd);
        let master = std::fs::File::from(master);
        let out = std::sync::Arc::new((std::sync::Mutex::new((Vec::new(), false)), std::sync::Condvar::new()));
        let (mut reader, shared) = (master.try_clone().unwrap(), out.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            loop {
                // EIO once every slave descriptor is closed: the end of the session.
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*shared;
                let mut st = lock.lock().unwrap();
                if n == 0 {
                    st.1 = true;
                } else {
                    st.0.extend_from_slice(&buf[..n]);
                }
                cv.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        Pty { master, child: Some(child), out }
    }

    /// Everything read from the master so far (lossy UTF-8).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.0.lock().unwrap().0).into_owned()
    }

    /// Block until the output contains `needle` (panics after [`PTY_DEADLINE`]).
    pub fn wait_for(&self, needle: &str) {
        let (lock, cv) = &*self.out;
        let (guard, res) = cv
            .wait_timeout_while(lock.lock().unwrap(), PTY_DEADLINE, |st| {
                !st.1 && !String::from_utf8_lossy(&st.0).contains(needle)
            })
            .unwrap();
        let text = String::from_utf8_lossy(&guard.0).into_owned();
        assert!(!res.timed_out() && text.contains(needle), "never saw {needle:?} on the pty; output so far:\n{text}");
    }

    /// Type `text` into the terminal.
    pub fn type_in(&mut self, text: &str) {
        use std::io::Write;
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Wait for the child to exit and the pty to drain; returns (exit code, output).
    pub fn finish(mut self) -> (i32, String) {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.take().unwrap();
        let pid = child.id() as libc::pid_t;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(PTY_DEADLINE) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                // SAFETY: kill on the pid of our own, not yet reaped, child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("pty child did not exit; output so far:\n{}", self.output());
            }
        };
        let (lock, cv) = &*self.out;
        let (guard, _) = cv.wait_timeout_while(lock.lock().unwrap(), PTY_DEADLINE, |st| !st.1).unwrap();
        let text = String::from_utf8_lossy(&guard.0).into_owned();
        (status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)), text)
    }
}

/// Waits for `child` to exit, killing it and failing the test after `limit`.
pub fn wait_bounded(child: &mut std::process::Child, limit: std::time::Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pid {} still running after {limit:?}; killed it", child.id());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits (at most `limit`) until `path` exists; panics with `why` otherwise.
pub fn wait_for_file(path: &Path, limit: std::time::Duration, mut why: impl FnMut() -> String) {
    let deadline = std::time::Instant::now() + limit;
    while !path.exists() {
        if std::time::Instant::now() >= deadline {
            panic!("{} did not appear within {limit:?}: {}", path.display(), why());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Run a prepared `clawcage` command with stdin closed.
pub fn output(cmd: &mut Command) -> Run {
    Run::from(cmd.stdin(Stdio::null()).output().unwrap())
}

/// Everything one test puts on the host, under one temp dir removed on drop:
/// `ws/` (the workspace), `home/` (the invoking user's fake `$HOME`),
/// `outside/` (host files outside the sandbox's view) and an optional
/// `policy.toml`. Runs set `HOME` to `home/`, so `~` in a policy means it.
pub struct Fixture {
    pub dir: TempDir,
    pub ws: PathBuf,
    pub home: PathBuf,
    pub outside: PathBuf,
    policy: Option<PathBuf>,
    env: Vec<(String, String)>,
    user: Option<(u32, u32)>,
    extra: Vec<String>,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new(tag);
        let (ws, home, outside) = (dir.0.join("ws"), dir.0.join("home"), dir.0.join("outside"));
        for d in [dir.path(), &ws, &home, &outside] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fixture { dir, ws, home, outside, policy: None, env: Vec::new(), user: None, extra: Vec::new() }
    }
    /// Use `text` as the policy file.
    pub fn policy(mut self, text: &str) -> Fixture {
        let file = self.dir.0.join("policy.toml");
        std::fs::write(&file, text).unwrap();
        self.policy = Some(file);
        self
    }
    /// Set a variable in clawcage's own environment.
    pub fn env(mut self, k: &str, v: &str) -> Fixture {
        self.env.push((k.into(), v.into()));
        self
    }
    /// Invoke clawcage as `uid:gid` without privileges (`setpriv`); the
    /// fixture's files are handed to that user before each run.
    pub fn run_as(mut self, uid: u32, gid: u32) -> Fixture {
        self.user = Some((uid, gid));
        self
    }
    /// Pass `arg` to `clawcage run` before the `--` (e.g. `--tty`).
    pub fn run_arg(mut self, arg: &str) -> Fixture {
        self.extra.push(arg.into());
        self
    }
    /// Write a file in the workspace (parents created).
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        write_file(&self.ws.join(rel), content)
    }
    /// Write a file under the fake home (parents created).
    pub fn write_home(&self, rel: &str, content: &str) -> PathBuf {
        write_file(&self.home.join(rel), content)
    }
    /// Write a file outside the workspace (parents created).
    pub fn write_outside(&self, rel: &str, content: &str) -> PathBuf {
        write_file(&self.outside.join(rel), content)
    }
    /// Host path of `rel` in the workspace.
    pub fn ws_path(&self, rel: &str) -> PathBuf {
        self.ws.join(rel)
    }
    /// The `clawcage run` command for `argv`.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = match self.user {
            Some((uid, gid)) => {
                chown_tree(self.dir.path(), uid, gid);
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--inh-caps=-all", "--"])
                    .arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("run").arg("--workspace").arg(&self.ws).env("HOME", &self.home);
        cmd.env("CLAWCAGE_HOME", self.dir.0.join("state"));
        if let Some(p) = &self.policy {
            cmd.arg("--policy").arg(p);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.extra).arg("--").args(argv);
        cmd
    }
    /// Run `argv` in the sandbox.
    pub fn run(&self, argv: &[&str]) -> Run {
        output(&mut self.command(argv))
    }
    /// Run `/bin/sh -c script` in the sandbox.
    pub fn sh(&self, script: &str) -> Run {
        self.run(&["/bin/sh", "-c", script])
    }
}

/// Write `content` to `path`, creating parents.
pub fn write_file(path: &Path, content: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    path.to_path_buf()
}

/// Set permission bits of `path`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `chown -R uid:gid path`, not following symlinks.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// A policy text that reads the usual system directories (so `/bin/sh`
/// works) plus `extra_read`, writes `write`, and has the given `[filesystem]`
/// lines appended. Lists are TOML arrays without brackets.
pub fn policy(extra_read: &str, write: &str, more: &str) -> String {
    let sep = if extra_read.is_empty() { "" } else { ", " };
    format!(
        "[filesystem]\nread = [\"/usr\", \"/bin\", \"/sbin\", \"/lib\", \"/lib64\", \"/etc\"{sep}{extra_read}]\n\
         write = [{write}]\n{more}\n"
    )
}
