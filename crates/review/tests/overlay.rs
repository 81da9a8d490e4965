//! Review round trips on a real overlayfs: the changes are made through an
//! overlay mounted with `userxattr` in a new user + mount namespace (as the
//! sandbox mounts it), then read, diffed, applied, discarded on the host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clawcage_review::{ApplyError, Change, Kind, Protect, ReviewDir, ReviewError};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

struct Fixture {
    root: PathBuf,
    ws: PathBuf,
    review: ReviewDir,
}

impl Fixture {
    /// A workspace with `files` (path → content; a trailing `/` makes a directory).
    fn new(files: &[(&str, &[u8])], protect: Protect) -> Fixture {
        static N: AtomicU32 = AtomicU32::new(0);
        let root =
            PathBuf::from(format!("/tmp/clawcage-review-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = fs::remove_dir_all(&root);
        let ws = root.join("ws");
        fs::create_dir_all(&ws).unwrap();
        for (path, content) in files {
            let p = ws.join(path.trim_end_matches('/'));
            if path.ends_with('/') {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, content).unwrap();
            }
        }
        let review = ReviewDir::create(&root.join("review"), &ws, protect).unwrap();
        Fixture { root, ws, review }
    }

    /// Run `script` (sh) with the merged overlay as its working directory;
    /// afterwards `expected/` holds a copy of what the task saw.
    fn task(&self, script: &str) {
        let merged = self.root.join("merged");
        let expected = self.root.join("expected");
        fs::create_dir_all(&merged).unwrap();
        let _ = fs::remove_dir_all(&expected);
        fs::create_dir_all(&expected).unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},userxattr",
            self.ws.display(),
            self.review.upper().display(),
            self.review.work().display()
        );
        let full = format!(
            "set -e; mount -t overlay overlay -o {opts} {m}; cd {m}; {script}\ncd /; cp -a {m}/. {e}/",
            m = merged.display(),
            e = expected.display()
        );
        let out = Command::new("unshare").args(["-Urm", "sh", "-c", &full]).output().expect("util-linux unshare");
        assert!(
            out.status.success(),
            "task failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn expected(&self) -> PathBuf {
        self.root.join("expected")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Command::new("chmod").args(["-R", "u+rwx"]).arg(&self.root).status();
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Every path under `dir` → (kind, mode bits, content or link target).
fn tree(dir: &Path) -> BTreeMap<String, (Kind, u32, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (Kind, u32, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let kind = Kind::of(&m);
            let content = match kind {
                Kind::File => fs::read(&p).unwrap(),
                Kind::Symlink => fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes(),
                _ => Vec::new(),
            };
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            out.insert(rel, (kind, m.mode() & 0o7777, content));
            if kind == Kind::Dir {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn paths(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let tag = match c {
                Change::Added { .. } => "A",
                Change::Modified { .. } => "M",
                Change::Deleted { .. } => "D",
            };
            format!("{tag} {}", c.path().display())
        })
        .collect()
}

const FILES: &[(&str, &[u8])] = &[
    ("README.md", b"hello\nworld\n"),
    ("src/main.rs", b"fn main() {}\n"),
    ("src/old.rs", b"old\n"),
    ("run.sh", b"#!/bin/sh\necho hi\n"),
    ("data.bin", b"\x00\x01\x02binary"),
    ("docs/a.md", b"a\n"),
    ("docs/sub/b.md", b"b\n"),
    ("empty/", b""),
];

#[test]
fn changes_are_held_diffed_and_applied_exactly() {
    let f = Fixture::new(FILES, Protect { globs: vec![], root_dotfiles: false });
    let before = tree(&f.ws);
    f.task(
        "printf 'hello\\nthere\\n' > README.md; echo 'new' > src/new.rs; rm src/old.rs; chmod +x run.sh; \
         printf '\\000\\377more' > data.bin; rm -rf docs; mkdir docs; echo fresh > docs/c.md; \
         ln -s ../README.md src/link; mkdir -p deep/er; echo z > deep/er/z; rmdir empty; echo same > same.txt; \
         touch src/main.rs",
    );
    assert_eq!(tree(&f.ws), before, "the real workspace changed while the task ran");

    let changes = f.review.changes().unwrap();
    assert_eq!(
        paths(&changes),
        [
            "M README.md",
            "M data.bin",
            "A deep",
            "A deep/er",
            "A deep/er/z",
            "D docs/a.md",
            "A docs/c.md",
            "D docs/sub/b.md",
            "D docs/sub",
            "D empty",
            "M run.sh",
            "A same.txt",
            "A src/link",
            "A src/new.rs",
            "D src/old.rs",
        ],
        "(src/main.rs was only touched: not a change)"
    );
    let diff = f.review.diff().unwrap();
    for needle in [
        "15 changes: 7 added, 3 modified, 5 deleted",
        "diff a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,2 @@\n hello\n-world\n+there\n",
        "Binary file data.bin differs",
        "diff a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n",
        "diff a/src/old.rs b/src/old.rs\ndeleted file mode 100644\n--- a/src/old.rs\n+++ /dev/null\n@@ -1 +0,0 @@\n-old\n",
        "diff a/src/new.rs b/src/new.rs\nnew file mode 100644\n--- /dev/null\n+++ b/src/new.rs\n@@ -0,0 +1 @@\n+new\n",
        "new file mode 120000\nsymbolic link\n",
        "+../README.md",
        "directory deleted: docs/sub",
        "directory added: deep/er",
    ] {
        assert!(diff.contains(needle), "diff lacks {needle:?}:\n{diff}");
    }

    let report = f.review.apply().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.applied.len(), 15);
    let mut want = tree(&f.expected());
    want.remove("src/main.rs"); // times are not compared; content is
    let mut got = tree(&f.ws);
    got.remove("src/main.rs");
    assert_eq!(got, want, "the workspace after apply is not what the task saw");
    assert!(f.review.changes().unwrap().is_empty(), "apply leaves the overlay empty");
}

#[test]
fn discard_drops_everything_and_leaves_the_workspace_alone() {
    let f = Fixture::new(FILES, Protect { globs: vec![], root_dotfiles: false });
    let before = tree(&f.ws);
    f.task("rm -rf src docs; echo x > README.md; mkdir n; echo y > n/y");
    assert!(!f.review.changes().unwrap().is_empty());
    f.review.discard().unwrap();
    assert!(f.review.changes().unwrap().is_empty());
    assert_eq!(tree(&f.ws), before);
    assert_eq!(fs::read_dir(f.review.upper()).unwrap().count(), 0);
    // The directory can be used again, as by a resumed task.
    f.task("echo again > again.txt");
    assert_eq!(paths(&f.review.changes().unwrap()), ["A again.txt"]);
}

#[test]
fn apply_refuses_everything_when_the_workspace_changed_underneath() {
    let f = Fixture::new(FILES, Protect { globs: vec![], root_dotfiles: false });
    f.task("echo task > README.md; echo task > src/new.rs; echo task > untouched-by-host.txt; echo task > docs/a.md");
    // The host edits one file the task changed, creates one it created, and deletes one it edited.
    fs::write(f.ws.join("README.md"), "host edit\n").unwrap();
    fs::write(f.ws.join("src/new.rs"), "host\n").unwrap();
    fs::remove_file(f.ws.join("docs/a.md")).unwrap();
    let before = tree(&f.ws);
    match f.review.apply() {
        Err(ReviewError::Apply(ApplyError::Conflicts(c))) => {
            let c: Vec<String> = c.iter().map(|p| p.display().to_string()).collect();
            assert_eq!(c, ["README.md", "docs/a.md", "src/new.rs"]);
        }
        other => panic!("expected conflicts, got {other:?}"),
    }
    assert_eq!(tree(&f.ws), before, "a refused apply must write nothing");
    assert_eq!(f.review.changes().unwrap().len(), 4, "the changes stay for another look");
    let msg = ReviewError::Apply(ApplyError::Conflicts(vec!["README.md".into()])).to_string();
    assert!(msg.contains("Conflicting paths: README.md"), "{msg}");
}

#[test]
fn unrelated_host_changes_do_not_conflict() {
    let f = Fixture::new(FILES, Protect { globs: vec![], root_dotfiles: false });
    f.task("echo task > src/new.rs");
    fs::write(f.ws.join("README.md"), "host edit\n").unwrap();
    fs::write(f.ws.join("src/host.rs"), "host\n").unwrap();
    f.review.apply().unwrap();
    assert_eq!(fs::read_to_string(f.ws.join("src/new.rs")).unwrap(), "task\n");
    assert_eq!(fs::read_to_string(f.ws.join("README.md")).unwrap(), "host edit\n");
}

#[test]
fn protected_paths_are_never_applied() {
    let files: &[(&str, &[u8])] = &[
        (".git/config", b"[core]\n"),
        (".git/hooks/", b""),
        (".git/HEAD", b"ref: main\n"),
        ("app/x.txt", b"x\n"),
        (".gitignore", b"t\n"),
    ];
    let f = Fixture::new(files, Protect::review_defaults());
    f.task(
        "echo '[core] hooksPath=/tmp' >> .git/config; echo 'curl evil' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; \
         echo ref > .git/HEAD; echo T=1 > .envrc; echo K=v > app/.env.local; echo '*' > .gitignore; mkdir -p .github/workflows; \
         echo steal > .github/workflows/ci.yml; echo fine > app/x.txt",
    );
    let report = f.review.apply().unwrap();
    let refused: Vec<String> = report.refused.iter().map(|(p, _)| p.display().to_string()).collect();
    for p in [
        ".git/config",
        ".git/hooks/pre-commit",
        ".envrc",
        "app/.env.local",
        ".gitignore",
        ".github",
        ".github/workflows/ci.yml",
    ] {
        assert!(refused.contains(&p.to_string()), "{p} was not refused: {refused:?}");
    }
    assert_eq!(fs::read_to_string(f.ws.join(".git/config")).unwrap(), "[core]\n");
    assert!(!f.ws.join(".git/hooks/pre-commit").exists());
    assert!(!f.ws.join(".envrc").exists() && !f.ws.join("app/.env.local").exists() && !f.ws.join(".github").exists());
    assert_eq!(fs::read_to_string(f.ws.join(".gitignore")).unwrap(), "t\n");
    // Ordinary paths, including inside .git, go through.
    assert_eq!(fs::read_to_string(f.ws.join(".git/HEAD")).unwrap(), "ref\n");
    assert_eq!(fs::read_to_string(f.ws.join("app/x.txt")).unwrap(), "fine\n");
}

#[test]
fn set_id_bits_and_special_files_never_reach_the_workspace() {
    let f = Fixture::new(&[("tool", b"#!/bin/sh\n")], Protect { globs: vec![], root_dotfiles: false });
    f.task("cp tool suid; chmod 4755 suid; chmod 2755 tool; mkfifo pipe");
    let report = f.review.apply().unwrap();
    assert_eq!(fs::metadata(f.ws.join("suid")).unwrap().permissions().mode() & 0o7777, 0o755);
    assert_eq!(fs::metadata(f.ws.join("tool")).unwrap().permissions().mode() & 0o7777, 0o755);
    assert!(!f.ws.join("pipe").exists());
    assert!(
        report.refused.iter().any(|(p, why)| p == Path::new("pipe") && why.contains("not a file")),
        "{:?}",
        report.refused
    );
}

#[test]
fn a_symlink_in_the_workspace_is_replaced_not_followed() {
    // The workspace holds a link to a directory outside it; the task turns the
    // link into a real directory with a file in it. The apply must create the
    // directory in the workspace and leave the outside alone.
    let f = Fixture::new(&[("keep", b"k")], Protect { globs: vec![], root_dotfiles: false });
    let outside = f.root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, f.ws.join("out")).unwrap();
    f.review.discard().unwrap(); // baseline with the link
    f.task("rm out; mkdir out; echo inside > out/file");
    f.review.apply().unwrap();
    assert!(fs::symlink_metadata(f.ws.join("out")).unwrap().is_dir());
    assert_eq!(fs::read_to_string(f.ws.join("out/file")).unwrap(), "inside\n");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "the apply followed the link");
}
