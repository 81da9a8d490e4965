//! Reviewed changes end to end through the real binary: `run --changes
//! review` (or the policy's `changes = "review"`) holds every change in an
//! overlay while the real workspace stays untouched; `diff`, `apply` (with
//! its conflict check and protected paths) and `discard` act on the held
//! changes; every step is in the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use clawcage_store::audit::Record;
use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A workspace with its state directory beside it (both removed on drop).
struct Env {
    ws: TempDir,
}

impl Env {
    fn new(tag: &str) -> Env {
        Env { ws: TempDir::new(tag) }
    }
    fn ws(&self) -> &Path {
        self.ws.path()
    }
    fn clawcage(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.env("CLAWCAGE_HOME", state_dir_for(self.ws())).env_remove("CLAWCAGE_AUDIT_KEY_FILE").args(args);
        cmd
    }
    fn cli(&self, args: &[&str]) -> Run {
        output(&mut self.clawcage(args))
    }
    /// `clawcage run [extra] --workspace WS -- sh -c SCRIPT`.
    fn run_cmd(&self, extra: &[&str], script: &str) -> Command {
        let mut cmd = self.clawcage(&["run", "--workspace"]);
        cmd.arg(self.ws()).args(extra).args(["--", "/bin/sh", "-c", script]);
        cmd
    }
    fn review(&self, script: &str) -> Run {
        output(&mut self.run_cmd(&["--changes", "review"], script))
    }
    /// `run --policy FILE [extra]` with the policy `text`.
    fn run_policy(&self, text: &str, extra: &[&str], script: &str) -> Run {
        let file = self.with_policy(text);
        let mut args = vec!["--policy", file.as_str()];
        args.extend_from_slice(extra);
        output(&mut self.run_cmd(&args, script))
    }
    fn with_policy(&self, text: &str) -> String {
        let file = self.ws().with_extension("policy.toml");
        std::fs::write(&file, text).unwrap();
        file.display().to_string()
    }
    fn records(&self) -> Vec<Record> {
        let text = std::fs::read_to_string(state_dir_for(self.ws()).join("audit.jsonl")).unwrap();
        text.lines().map(|l| Record::parse_line(l.as_bytes()).unwrap()).collect()
    }
    fn kinds(&self, task: &str) -> Vec<String> {
        self.records().into_iter().filter(|r| r.task.as_deref() == Some(task)).map(|r| r.kind).collect()
    }
    fn record(&self, task: &str, kind: &str) -> serde_json::Value {
        let r = self.records().into_iter().find(|r| r.task.as_deref() == Some(task) && r.kind == kind);
        r.unwrap_or_else(|| panic!("no {kind} record of task {task}")).data
    }
}

/// The task id `run` printed with the held changes.
fn task_of(r: &Run) -> String {
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("held for review in task"))
        .unwrap_or_else(|| panic!("run did not report held changes\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr));
    line.rsplit(' ').next().unwrap().to_string()
}

/// Every path under `dir` → (kind, mode bits, content or link target).
fn tree(dir: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let (kind, content) = if m.file_type().is_symlink() {
                ('l', std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes())
            } else if m.is_dir() {
                ('d', Vec::new())
            } else {
                ('f', std::fs::read(&p).unwrap())
            };
            out.insert(rel, (kind, m.mode() & 0o7777, content));
            if kind == 'd' {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn plant(ws: &Path) {
    let w = |rel: &str, content: &[u8]| {
        let p = ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    };
    w("README.md", b"hello\nworld\n");
    w("src/main.rs", b"fn main() {}\n");
    w("src/old.rs", b"old\n");
    w("run.sh", b"#!/bin/sh\necho hi\n");
    w("data.bin", b"\x00\x01\x02binary");
    w("docs/a.md", b"a\n");
    std::os::unix::fs::symlink("README.md", ws.join("readme-link")).unwrap();
}

/// What the task does: new, modified and deleted files, a mode change, a
/// binary edit, a new symlink, a retargeted symlink, a deleted directory.
const EDITS: &str = "printf 'hello\\nthere\\n' > README.md; echo new > src/new.rs; rm src/old.rs; chmod +x run.sh; \
    printf '\\000\\377more' > data.bin; ln -s src/main.rs main-link; rm readme-link; ln -s data.bin readme-link; \
    rm -r docs; mkdir -p deep/er; echo z > deep/er/z";

#[test]
fn review_holds_every_kind_of_change_and_apply_writes_exactly_what_the_task_saw() {
    let env = Env::new("review-roundtrip");
    plant(env.ws());
    let before = tree(env.ws());

    // The task makes its changes, then shows what it sees and waits: the
    // real workspace is checked while the sandbox is still running.
    let script = format!("{EDITS}; echo READY; read _; find . | sort | xargs ls -ld >/dev/null");
    let mut child = env
        .run_cmd(&["--changes", "review"], &script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().map(|l| l.unwrap());
    assert_eq!(first.as_deref(), Some("READY"), "the task never got to its changes");
    assert_eq!(tree(env.ws()), before, "the real workspace changed while the task ran");
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = wait_bounded(&mut child, std::time::Duration::from_secs(120));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "run failed: {stderr}");
    assert_eq!(tree(env.ws()), before, "the real workspace changed after the run");
    let run = Run { code: 0, stdout: String::new(), stderr };
    let task = task_of(&run);
    assert!(run.stderr.contains("12 changes: 5 added, 4 modified, 3 deleted"), "{}", run.stderr);

    let diff = env.cli(&["diff", &task]);
    diff.expect_code(0);
    for needle in [
        "12 changes: 5 added, 4 modified, 3 deleted",
        "diff a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,2 @@\n hello\n-world\n+there\n",
        "Binary file data.bin differs",
        "diff a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n",
        "diff a/src/old.rs b/src/old.rs\ndeleted file mode 100644\n",
        "diff a/src/new.rs b/src/new.rs\nnew file mode 100644\n--- /dev/null\n+++ b/src/new.rs\n@@ -0,0 +1 @@\n+new\n",
        "diff a/main-link b/main-link\nnew file mode 120000\n",
        "+src/main.rs",
        "-README.md\n",
        "+data.bin",
        "directory deleted: docs",
        "directory added: deep/er",
    ] {
        assert!(diff.stdout.contains(needle), "diff lacks {needle:?}:\n{}", diff.stdout);
    }
    assert_eq!(tree(env.ws()), before, "diff changed the workspace");

    let summary = env.record(&task, "file_changes");
    assert_eq!((summary["added"].as_u64(), summary["modified"].as_u64()), (Some(5), Some(4)), "{summary}");
    assert!(summary["paths"].as_array().unwrap().contains(&"D src/old.rs".into()), "{summary}");

    env.cli(&["apply", &task]).expect_code(0);
    let got = tree(env.ws());
    assert_eq!(got["README.md"].2, b"hello\nthere\n");
    assert_eq!(got["src/new.rs"].2, b"new\n");
    assert!(!got.contains_key("src/old.rs") && !got.contains_key("docs") && !got.contains_key("docs/a.md"));
    assert_eq!(got["run.sh"].1, 0o755);
    assert_eq!(got["data.bin"].2, b"\x00\xffmore");
    assert_eq!(got["main-link"], ('l', 0o777, b"src/main.rs".to_vec()));
    assert_eq!(got["readme-link"].2, b"data.bin");
    assert_eq!(got["deep/er/z"].2, b"z\n");
    assert_eq!(got["src/main.rs"], before["src/main.rs"]);
    // Applied files belong to the workspace's owner, not the sandbox's id.
    assert_eq!(std::fs::metadata(env.ws().join("src/new.rs")).unwrap().uid(), 0);

    assert_eq!(
        env.kinds(&task),
        ["sandbox_start", "exec", "exec_end", "sandbox_stop", "file_changes", "changes_apply", "changes_applied"]
    );
    let diff = env.cli(&["diff", &task]);
    assert!(diff.stdout.starts_with("0 changes"), "apply leaves nothing held: {}", diff.stdout);
    env.cli(&["audit", "verify"]).expect_code(0);
}

#[test]
fn apply_refuses_with_the_conflicting_paths_when_the_workspace_changed_since_the_task_started() {
    let env = Env::new("review-conflict");
    plant(env.ws());
    // The sandbox acts as the workspace's owner here (not the isolated id).
    chown_tree(env.ws(), 1000, 1000);
    let r = env.review("echo task >> README.md; echo task > src/new.rs; echo task > docs/a.md");
    r.expect_code(0);
    let task = task_of(&r);
    // Meanwhile on the host: an edit of a file the task edited, and the
    // creation of a file the task created.
    std::fs::write(env.ws().join("README.md"), "host\n").unwrap();
    std::fs::write(env.ws().join("src/new.rs"), "host\n").unwrap();
    let before = tree(env.ws());
    let a = env.cli(&["apply", &task]);
    a.expect_code(1);
    assert!(a.stderr.contains("nothing applied. Conflicting paths:\n  README.md\n  src/new.rs\n"), "{}", a.stderr);
    assert_eq!(tree(env.ws()), before, "a refused apply wrote something");
    assert_eq!(env.record(&task, "changes_apply_refused")["conflicts"], serde_json::json!(["README.md", "src/new.rs"]));

    // Still held; discard drops them and leaves the workspace as it is.
    assert!(env.cli(&["diff", &task]).stdout.starts_with("3 changes"));
    env.cli(&["discard", &task]).expect_code(0);
    assert!(env.cli(&["diff", &task]).stdout.starts_with("0 changes"));
    assert_eq!(tree(env.ws()), before);
    let discarded = env.record(&task, "changes_discarded");
    assert_eq!(discarded["changes"]["modified"], 3, "{discarded}");
    env.cli(&["audit", "verify"]).expect_code(0);
}

#[test]
fn protected_paths_are_read_only_inside_the_overlay_and_never_applied() {
    let env = Env::new("review-protect");
    for (rel, content) in [(".git/config", "[core]\n"), (".git/HEAD", "ref: main\n"), ("app/x", "x\n")] {
        env.ws.write(rel, content);
    }
    std::fs::create_dir_all(env.ws().join(".git/hooks")).unwrap();
    let before = tree(env.ws());
    // .git/config and .git/hooks are policy protect paths: read-only in the
    // sandbox. Root dotfiles and .env files can be written in the overlay
    // but are refused at apply.
    let r = env.review(
        "echo '[core] hooksPath=/tmp' >> .git/config && echo BAD1; echo evil > .git/hooks/pre-commit && echo BAD2; \
         echo T=1 > .envrc; echo K=v > app/.env.local; echo ref > .git/HEAD; echo fine > app/x; echo done",
    );
    r.expect_code(0);
    assert!(!r.stdout.contains("BAD"), "a protected path was writable inside: {}", r.stdout);
    assert_eq!(r.stderr.matches("Read-only file system").count(), 2, "{}", r.stderr);
    let task = task_of(&r);
    assert_eq!(tree(env.ws()), before);

    let a = env.cli(&["apply", &task]);
    a.expect_code(0);
    for p in [".envrc", "app/.env.local"] {
        assert!(a.stderr.contains(&format!("not applied: {p}: protected")), "{p}: {}", a.stderr);
    }
    assert!(!env.ws().join(".envrc").exists() && !env.ws().join("app/.env.local").exists());
    assert_eq!(std::fs::read_to_string(env.ws().join(".git/config")).unwrap(), "[core]\n");
    assert!(!env.ws().join(".git/hooks/pre-commit").exists());
    assert_eq!(std::fs::read_to_string(env.ws().join(".git/HEAD")).unwrap(), "ref\n");
    assert_eq!(std::fs::read_to_string(env.ws().join("app/x")).unwrap(), "fine\n");
    let refused = env.record(&task, "changes_applied")["refused"].clone();
    assert_eq!(refused.as_array().unwrap().len(), 2, "{refused}");
}

#[test]
fn deny_paths_stay_invisible_in_the_overlay() {
    let env = Env::new("review-deny");
    env.ws.write("secret.key", "TOPSECRET-KEY\n");
    env.ws.write("app/.env", "TOPSECRET-ENV\n");
    env.ws.write("app/code", "ok\n");
    let policy = "[filesystem]\ndeny = [\"**/.env\", \"*.key\"]\nchanges = \"review\"\n";
    let script = "cat secret.key app/.env; cat app/code; cp secret.key stolen 2>/dev/null; cat stolen; echo end";
    let r = env.run_policy(policy, &[], script);
    r.expect_code(0);
    assert!(!r.stdout.contains("TOPSECRET"), "a denied path was readable: {}", r.stdout);
    assert!(r.stdout.contains("ok\n") && r.stdout.contains("end"), "{}", r.stdout);
    let task = task_of(&r);
    let diff = env.cli(&["diff", &task]).stdout;
    assert!(!diff.contains("TOPSECRET"), "{diff}");
}

#[test]
fn the_policy_decides_by_default_and_the_flag_overrides_it() {
    let env = Env::new("review-policy");
    env.ws.write("f", "0\n");
    let review = "[filesystem]\nchanges = \"review\"\n";
    let held = env.run_policy(review, &[], "echo 1 > f");
    held.expect_code(0);
    task_of(&held);
    assert_eq!(std::fs::read_to_string(env.ws().join("f")).unwrap(), "0\n");

    // --changes direct wins over the policy; without either, run writes through.
    let direct = env.run_policy(review, &["--changes", "direct"], "echo 2 > f");
    direct.expect_code(0);
    assert_eq!(std::fs::read_to_string(env.ws().join("f")).unwrap(), "2\n");
    assert!(!direct.stderr.contains("held for review"), "{}", direct.stderr);
    let plain = output(&mut env.run_cmd(&[], "echo 3 > f"));
    plain.expect_code(0);
    assert_eq!(std::fs::read_to_string(env.ws().join("f")).unwrap(), "3\n");

    // A direct task holds nothing to review; bad ids and modes are clear errors.
    let tasks = env.cli(&["tasks"]).stdout;
    let direct_task = tasks.lines().nth(1).and_then(|l| l.split_whitespace().next()).unwrap().to_string();
    let d = env.cli(&["diff", &direct_task]);
    d.expect_code(125);
    assert!(d.stderr.contains("holds no reviewed changes") || d.stderr.contains("no task"), "{}", d.stderr);
    for bad in ["../../etc", "nosuchtask"] {
        let r = env.cli(&["apply", bad]);
        r.expect_code(125);
        assert!(r.stderr.contains("no task"), "{bad}: {}", r.stderr);
    }
    let m = output(&mut env.run_cmd(&["--changes", "later"], "true"));
    m.expect_code(125);
    assert!(m.stderr.contains("--changes \"later\""), "{}", m.stderr);
}

#[test]
fn a_workspace_owned_by_a_user_gets_its_changes_as_that_user() {
    let env = Env::new("review-owner");
    env.ws.write("f", "0\n");
    chown_tree(env.ws(), 1000, 1000);
    std::fs::set_permissions(env.ws(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = env.review("echo 1 > f; echo n > new; id -u");
    r.expect_code(0);
    let task = task_of(&r);
    env.cli(&["apply", &task]).expect_code(0);
    for f in ["f", "new"] {
        let m = std::fs::metadata(env.ws().join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 1000), "{f}");
    }
    assert_eq!(std::fs::read_to_string(env.ws().join("f")).unwrap(), "1\n");
    let _: PathBuf = env.ws().to_path_buf();
}
