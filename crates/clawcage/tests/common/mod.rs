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
    }
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
    cmd.arg("run").arg("--workspace").arg(ws);
    if let Some(text) = policy {
        let file = ws.with_extension("policy.toml");
        std::fs::write(&file, text).unwrap();
        cmd.arg("--policy").arg(file);
    }
    cmd.arg("--").args(argv);
    cmd
}
