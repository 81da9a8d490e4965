//! clawcage change review: the file changes of a task are held in an overlay
//! and reach the real workspace only through `apply`.
//!
//! With `changes = "review"` the sandbox mounts the workspace as an overlay
//! whose lower layer is the real directory and whose upper layer lives in the
//! task's review directory ([`ReviewDir`]): the real directory is untouched
//! while the task runs. Afterwards [`ReviewDir::changes`] reads the upper layer
//! as a list of changes, [`ReviewDir::diff`] renders them, [`ReviewDir::apply`]
//! writes them to the real directory (refusing on conflicts, never writing
//! protected paths) and [`ReviewDir::discard`] drops them.
//!
//! A review directory holds `layers/upper/` and `layers/work/` (the overlay's layers),
//! `review.json` (workspace, protections) and `baseline.json` (the workspace's
//! stamps when the task started).

pub mod apply;
pub mod approve;
pub mod diff;
pub mod manifest;
pub mod scan;
mod tty;

pub use apply::{ApplyError, Protect, Report};
pub use manifest::{Kind, Manifest};
pub use scan::Change;

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a review directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// A file operation on the review directory or the workspace failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Reading the overlay's upper layer failed.
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    /// The apply was refused or stopped.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// `review.json` or `baseline.json` is not what this version wrote.
    #[error("{}: {why}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ReviewError + '_ {
    move |source| ReviewError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    workspace: PathBuf,
    protect: Protect,
    /// `[approvals] writes` of the task's policy: applying a change to a
    /// matching path waits for a person.
    #[serde(default)]
    write_rules: Vec<String>,
    /// `[approvals] timeout`, in milliseconds.
    #[serde(default)]
    approval_timeout_ms: u64,
}

/// The review state of one task.
#[derive(Debug)]
pub struct ReviewDir {
    root: PathBuf,
    meta: Meta,
}

impl ReviewDir {
    /// Make a new review directory at `root` for `workspace` and take the baseline.
    pub fn create(root: &Path, workspace: &Path, protect: Protect) -> Result<ReviewDir, ReviewError> {
        let workspace = fs::canonicalize(workspace).map_err(io_at(workspace))?;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(root).map_err(io_at(root))?;
        let meta = Meta { workspace, protect, write_rules: Vec::new(), approval_timeout_ms: 0 };
        let dir = ReviewDir { root: root.to_path_buf(), meta };
        for d in [dir.layers_dir(), dir.upper(), dir.work()] {
            fs::DirBuilder::new().mode(0o700).create(&d).map_err(io_at(&d))?;
        }
        dir.write_json("review.json", &dir.meta)?;
        dir.rebaseline()?;
        Ok(dir)
    }

    /// Open an existing review directory.
    pub fn open(root: &Path) -> Result<ReviewDir, ReviewError> {
        let path = root.join("review.json");
        let text = fs::read_to_string(&path).map_err(io_at(&path))?;
        let meta: Meta = serde_json::from_str(&text).map_err(|e| ReviewError::Corrupt { path, why: e.to_string() })?;
        Ok(ReviewDir { root: root.to_path_buf(), meta })
    }

    /// The real workspace.
    pub fn workspace(&self) -> &Path {
        &self.meta.workspace
    }

    /// The overlay's upper layer (where the task's changes land).
    pub fn upper(&self) -> PathBuf {
        self.layers_dir().join("upper")
    }

    /// The overlay's work directory.
    pub fn work(&self) -> PathBuf {
        self.layers_dir().join("work")
    }

    /// The overlay layers for the sandbox's plan ([`clawcage_policy::Plan::review`]).
    pub fn layers(&self) -> clawcage_policy::ReviewLayers {
        clawcage_policy::ReviewLayers { dir: self.layers_dir() }
    }

    /// The directory holding the overlay's `upper/` and `work/`. The sandbox
    /// makes it (and only it) its root's; `review.json` and `baseline.json`
    /// stay beside it, out of the task's reach.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// Make applying changes to paths matching `approvals.writes` wait for
    /// approval (kept in `review.json`, so a later `apply` knows).
    pub fn set_write_approvals(&mut self, approvals: &clawcage_policy::approval::Approvals) -> Result<(), ReviewError> {
        self.meta.write_rules = approvals.writes.clone();
        self.meta.approval_timeout_ms = u64::try_from(approvals.timeout.as_millis()).unwrap_or(u64::MAX);
        self.write_json("review.json", &self.meta)
    }

    /// The write approvals applying these changes is subject to.
    pub fn write_approvals(&self) -> clawcage_policy::approval::Approvals {
        let mut a =
            clawcage_policy::approval::Approvals { writes: self.meta.write_rules.clone(), ..Default::default() };
        if self.meta.approval_timeout_ms > 0 {
            a.timeout = std::time::Duration::from_millis(self.meta.approval_timeout_ms);
        }
        a
    }

    /// The protections applied at apply time.
    pub fn protect(&self) -> &Protect {
        &self.meta.protect
    }

    /// The changes the task made, sorted by path.
    pub fn changes(&self) -> Result<Vec<Change>, ReviewError> {
        Ok(scan::scan(self.workspace(), &self.upper())?)
    }

    /// A summary line and the unified diff of the changes.
    pub fn diff(&self) -> Result<String, ReviewError> {
        let changes = self.changes()?;
        Ok(format!("{}\n{}", diff::summary(&changes), diff::render(self.workspace(), &self.upper(), &changes)))
    }

    /// Write the changes to the workspace (see [`apply::apply`]); on success the
    /// overlay is emptied and the baseline retaken, so the task can go on from
    /// the applied state. The task's sandbox must not be running.
    pub fn apply(&self) -> Result<Report, ReviewError> {
        let changes = self.changes()?;
        let baseline = self.baseline()?;
        // Host root applying to someone's workspace: new files are theirs.
        let owner = match nix_euid() {
            0 => fs::metadata(self.workspace()).map(|m| Some((m.uid(), m.gid()))).map_err(io_at(self.workspace()))?,
            _ => None,
        };
        let report = apply::apply(self.workspace(), &self.upper(), &baseline, &changes, self.protect(), owner)?;
        self.discard()?;
        Ok(report)
    }

    /// Drop every change: empty the overlay's layers and retake the baseline.
    /// The task's sandbox must not be running.
    pub fn discard(&self) -> Result<(), ReviewError> {
        for d in [self.upper(), self.work()] {
            clear(&d)?;
        }
        self.rebaseline()
    }

    /// The baseline taken when the task started (or at the last apply/discard).
    pub fn baseline(&self) -> Result<Manifest, ReviewError> {
        let path = self.root.join("baseline.json");
        let text = fs::read_to_string(&path).map_err(io_at(&path))?;
        serde_json::from_str(&text).map_err(|e| ReviewError::Corrupt { path, why: e.to_string() })
    }

    fn rebaseline(&self) -> Result<(), ReviewError> {
        let m = Manifest::take(self.workspace()).map_err(io_at(self.workspace()))?;
        self.write_json("baseline.json", &m)
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), ReviewError> {
        let path = self.root.join(name);
        let tmp = self.root.join(format!(".{name}.tmp"));
        let text =
            serde_json::to_vec(value).map_err(|e| ReviewError::Corrupt { path: path.clone(), why: e.to_string() })?;
        fs::write(&tmp, text).map_err(io_at(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_at(&path))
    }
}

/// The review directory of `task` in the state directory `state`:
/// `STATE/tasks/TASK`. Task ids are the store's (hex digits); anything else
/// is refused so that an id can never name a path outside `tasks/`.
pub fn task_dir(state: &Path, task: &str) -> Result<PathBuf, ReviewError> {
    if task.is_empty() || task.len() > 64 || !task.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReviewError::Corrupt { path: PathBuf::from(task), why: "not a task id (hex digits)".into() });
    }
    Ok(state.join("tasks").join(task))
}

/// The protections of a reviewed task under `policy`: the review defaults
/// ([`Protect::review_defaults`]) and the policy's `protect` entries that
/// lie in the workspace, as workspace-relative globs.
pub fn protect_for(policy: &clawcage_policy::Policy, workspace: &Path) -> Protect {
    use clawcage_policy::PathSpec;
    let mut p = Protect::review_defaults();
    for spec in &policy.filesystem.protect {
        let rel = match spec {
            PathSpec::Workspace(rel) | PathSpec::Glob(rel) => Some(rel.trim_start_matches("./").to_string()),
            PathSpec::Absolute(abs) => Path::new(abs).strip_prefix(workspace).ok().map(|r| r.display().to_string()),
            PathSpec::Home(_) => None,
        };
        if let Some(rel) = rel.filter(|r| !r.is_empty() && r != ".") {
            if !p.globs.contains(&rel) {
                p.globs.push(rel);
            }
        }
    }
    p
}

/// Most paths a file-change summary names (the counts are always complete).
pub const SUMMARY_PATHS: usize = 200;

/// A file-change summary for the audit log: counts, and the changed paths
/// (`A`/`M`/`D` and the path) up to [`SUMMARY_PATHS`].
pub fn summary_json(changes: &[Change]) -> serde_json::Value {
    let count = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count();
    let paths: Vec<String> = changes
        .iter()
        .take(SUMMARY_PATHS)
        .map(|c| {
            let tag = match c {
                Change::Added { .. } => "A",
                Change::Modified { .. } => "M",
                Change::Deleted { .. } => "D",
            };
            format!("{tag} {}", c.path().display())
        })
        .collect();
    serde_json::json!({
        "added": count(|c| matches!(c, Change::Added { .. })),
        "modified": count(|c| matches!(c, Change::Modified { .. })),
        "deleted": count(|c| matches!(c, Change::Deleted { .. })),
        "paths": paths,
        "paths_truncated": changes.len() > SUMMARY_PATHS,
    })
}

/// Remove everything inside `dir` (kept, empty). The overlay leaves a
/// `work/work` directory with mode 000; permissions are opened up first.
fn clear(dir: &Path) -> Result<(), ReviewError> {
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        let meta = fs::symlink_metadata(&path).map_err(io_at(&path))?;
        if meta.is_dir() {
            open_up(&path)?;
            fs::remove_dir_all(&path).map_err(io_at(&path))?;
        } else {
            fs::remove_file(&path).map_err(io_at(&path))?;
        }
    }
    Ok(())
}

fn open_up(dir: &Path) -> Result<(), ReviewError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_at(dir))?;
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        if fs::symlink_metadata(&path).map_err(io_at(&path))?.is_dir() {
            open_up(&path)?;
        }
    }
    Ok(())
}

fn nix_euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}
