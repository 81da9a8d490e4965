//! Resource limits: cgroup v2, cgroup v1 (or a hybrid of both), rlimits as the fallback.
//!
//! Each sandbox gets groups named `clawcage-<pid>-<rand>` under the invoking process's own
//! group in each hierarchy (so outer limits still apply), or under the hierarchy root when the
//! own group is not writable. Pure v2: one group with `memory.max`, `pids.max`, `cpu.max`.
//! Hybrid: the limits go to the v1 `memory`, `pids` and `cpu` hierarchies, and a group in the
//! cgroup2 mount (e.g. `/sys/fs/cgroup/unified`, no controllers) tracks the processes: it has
//! `cgroup.kill` and `populated` anyway. Nothing writable: [`rlimits`] only.
//! Writes are kept few: they sit on the start path of every sandbox.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clawcage_policy::PlanLimits;
use nix::errno::Errno;
use nix::sys::resource::Resource;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{access, getpid, AccessFlags, Pid};

/// Prefix of every group clawcage makes.
const PREFIX: &str = "clawcage-";
/// The [`Tree::kind`] of the cgroup2 hierarchy (v1 trees are named by their controller).
const UNIFIED: &str = "unified";
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// Control files that may be absent (no swap accounting); writing them is skipped then.
const OPTIONAL: [&str; 2] = ["memory.swap.max", "memory.memsw.limit_in_bytes"];
/// How far `RLIMIT_FSIZE` sits above the disk limit (see [`rlimits`]): one page.
const FSIZE_SLACK: u64 = 4096;
/// CFS period for CPU quotas, in microseconds (the kernel default).
const CPU_PERIOD_US: u64 = 100_000;
/// How long [`Cgroup::destroy`] waits for the processes to be gone.
const DESTROY_WAIT: Duration = Duration::from_secs(2);
/// Rounds (200 µs apart) of "read cgroup.procs, SIGKILL each" when there is no `cgroup.kill`.
const KILL_ROUNDS: usize = 50;

/// How resource limits are enforced on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// Unified hierarchy with the memory and pids controllers enabled for our groups.
    V2,
    /// Legacy per-controller hierarchies (memory and pids writable).
    V1,
    /// No writable cgroup: per-process rlimits only (weaker; see [`rlimits`]).
    Rlimit,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::V2 => "cgroup v2",
            Mechanism::V1 => "cgroup v1",
            Mechanism::Rlimit => "rlimits",
        })
    }
}

/// A failure to set up, fill or remove a sandbox's cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The group name is empty, too long, or has characters other than `[A-Za-z0-9_.-]`.
    #[error("invalid cgroup name {0:?}")]
    InvalidName(String),
    /// A limit was asked for but the chosen hierarchy has no writable controller for it.
    #[error("{mechanism} has no writable `{controller}` controller for the requested limit")]
    MissingController {
        /// The controller that is missing (`memory`, `pids`, `cpu`).
        controller: &'static str,
        /// The mechanism that was chosen.
        mechanism: Mechanism,
    },
    /// The CPU limit is not a positive finite number.
    #[error("invalid cpus limit {0}")]
    InvalidCpus(f64),
    /// A file operation on a group failed: mkdir, writing a control file, or rmdir (still
    /// busy after the wait, or another error).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done: "creating cgroup", "writing", "removing cgroup".
        op: &'static str,
        /// The group directory or control file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// One mounted hierarchy and the directory our groups go in.
#[derive(Debug, Clone, PartialEq)]
struct Tree {
    /// [`UNIFIED`] for cgroup2, else the v1 controller (`memory`, `pids`, `cpu`).
    kind: &'static str,
    /// The directory our groups are made in (own group, or the mount as the fallback).
    base: PathBuf,
    /// Whether `base` is writable by us.
    writable: bool,
    /// v2 only: controllers enabled for children of `base` (`cgroup.subtree_control`).
    enabled: Vec<String>,
}

impl Tree {
    fn enables(&self, controller: &str) -> bool {
        self.enabled.iter().any(|c| c == controller)
    }

    fn describe(&self) -> String {
        let state = ["not writable", "writable"][usize::from(self.writable)];
        let (base, enabled) = (self.base.display(), self.enabled.join(" "));
        match self.kind {
            UNIFIED => format!("cgroup v2: {base} ({state}; for children: [{enabled}])"),
            kind => format!("cgroup v1 {kind}: {base} ({state})"),
        }
    }
}

/// What cgroup hierarchies exist and which of them we may write (see [`detect`]).
#[derive(Debug, Clone, Default)]
pub struct Support {
    trees: Vec<Tree>,
}

/// Finds the cgroup hierarchies and the groups we may create children in.
///
/// Cheap: reads `/proc/self/mountinfo`, `/proc/self/cgroup`, the v2 controller lists, and
/// checks write access with access(2); it changes nothing.
pub fn detect() -> Support {
    let (mountinfo, own) = (read("/proc/self/mountinfo"), read("/proc/self/cgroup"));
    let mut trees: Vec<Tree> = Vec::new();
    for (controllers, mount, root) in parse_mountinfo(&mountinfo) {
        let kinds = match &controllers {
            None => vec![UNIFIED],
            Some(opts) => Vec::from_iter(V1_CONTROLLERS.into_iter().filter(|c| opts.contains(c))),
        };
        for kind in kinds {
            if !trees.iter().any(|t| t.kind == kind) {
                trees.extend(pick(kind, &mount, &root, own_path(&own, kind)));
            }
        }
    }
    Support { trees }
}

impl Support {
    /// The mechanism [`Cgroup::create`] will use.
    pub fn mechanism(&self) -> Mechanism {
        let v2 = self.usable(UNIFIED);
        if v2.is_some_and(|t| t.enables("memory") && t.enables("pids")) {
            Mechanism::V2
        } else if self.usable("memory").is_some() && self.usable("pids").is_some() {
            Mechanism::V1
        } else {
            Mechanism::Rlimit
        }
    }

    /// Human-readable lines for `clawcage doctor`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.trees.iter().map(Tree::describe).collect();
        let tracking = self.usable(UNIFIED).is_some();
        lines.push(match self.mechanism() {
            Mechanism::V1 if tracking => "limits: cgroup v1; a v2 group tracks and kills".into(),
            Mechanism::Rlimit => "limits: rlimits (no writable memory + pids cgroup)".into(),
            m => format!("limits: {m}"),
        });
        lines
    }

    /// The tree of `kind` if its base is writable.
    fn usable(&self, kind: &str) -> Option<&Tree> {
        self.trees.iter().find(|t| t.kind == kind && t.writable)
    }
}

/// One group to make in `base`, and the control files to write there, in order.
#[derive(Debug, PartialEq)]
struct Step {
    base: PathBuf,
    files: Vec<(&'static str, String)>,
    /// The file that counts OOM kills, when this group limits memory.
    oom: Option<&'static str>,
}

/// The groups and writes that enforce `limits` with `mech` (not [`Mechanism::Rlimit`]).
/// Fails, before anything is made, if a requested limit has no writable controller.
fn plan(s: &Support, mech: Mechanism, limits: &PlanLimits) -> Result<Vec<Step>, CgroupError> {
    let quota = limits.cpus.map(cpu_quota).transpose()?;
    let missing = |controller| CgroupError::MissingController { controller, mechanism: mech };
    let tree = |kind| s.usable(kind).ok_or_else(|| missing(kind));
    let step = |base, files, oom| Step { base, files, oom };
    if mech == Mechanism::V2 {
        let tree = tree(UNIFIED)?;
        if quota.is_some() && !tree.enables("cpu") {
            return Err(missing("cpu"));
        }
        let mut files = Vec::new();
        if let Some(bytes) = limits.memory {
            files.push(("memory.max", bytes.to_string()));
            files.push(("memory.swap.max", "0".to_string()));
        }
        files.extend(limits.pids.map(|n| ("pids.max", n.to_string())));
        files.extend(quota.map(|q| ("cpu.max", format!("{q} {CPU_PERIOD_US}"))));
        return Ok(vec![step(tree.base.clone(), files, Some("memory.events"))]);
    }
    let base = |kind| tree(kind).map(|t| t.base.clone());
    let tracking = s.usable(UNIFIED).map(|t| t.base.clone());
    let tracking = tracking.map(|base| step(base, Vec::new(), None));
    let mut steps: Vec<Step> = Vec::new();
    if let Some(bytes) = limits.memory {
        // memsw (memory + swap) equal to the memory limit means no swap.
        let bytes = bytes.to_string();
        let files = vec![("memory.limit_in_bytes", bytes.clone()), ("memory.memsw.limit_in_bytes", bytes)];
        steps.push(step(base("memory")?, files, Some("memory.oom_control")));
    }
    // Without a v2 group, the pids group is the one that tracks the processes.
    if limits.pids.is_some() || tracking.is_none() {
        let files = Vec::from_iter(limits.pids.map(|n| ("pids.max", n.to_string())));
        steps.push(step(base("pids")?, files, None));
    }
    if let Some(q) = quota {
        let files = vec![("cpu.cfs_period_us", CPU_PERIOD_US.to_string()), ("cpu.cfs_quota_us", q.to_string())];
        steps.push(step(base("cpu")?, files, None));
    }
    Ok(tracking.into_iter().chain(steps).collect())
}

/// One sandbox's groups: v1 hierarchies and/or one v2 group.
#[derive(Debug, Default)]
pub struct Cgroup {
    /// Every group directory, in creation order.
    groups: Vec<PathBuf>,
    /// `memory.events` (v2) or `memory.oom_control` (v1) when memory is limited.
    oom_file: Option<PathBuf>,
}

impl Cgroup {
    /// Creates the groups named `clawcage-<name>` and applies the limits: memory to v2
    /// `memory.max` (and `memory.swap.max` = 0) or v1 `memory.limit_in_bytes` (and
    /// `memory.memsw.limit_in_bytes` where swap is accounted); pids to `pids.max`; cpus to v2
    /// `cpu.max` or v1 `cpu.cfs_period_us` + `cpu.cfs_quota_us`, with a 100 ms period.
    ///
    /// Returns `Ok(None)` when the mechanism is [`Mechanism::Rlimit`]. Fails if a limit was
    /// asked for that the chosen hierarchy cannot enforce, so the caller can fail closed.
    /// Leaves nothing behind on failure. Pass a name from [`unique_name`] so that
    /// [`sweep_stale`] can tell whether the owner is still alive.
    pub fn create(support: &Support, name: &str, limits: &PlanLimits) -> Result<Option<Cgroup>, CgroupError> {
        let mechanism = support.mechanism();
        if mechanism == Mechanism::Rlimit {
            return Ok(None);
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || name.len() > 200 || !name.chars().all(valid) {
            return Err(CgroupError::InvalidName(name.to_string()));
        }
        let steps = plan(support, mechanism, limits)?;
        let dir = format!("{PREFIX}{name}");
        let mut cg = Cgroup::default();
        if let Err(e) = steps.iter().try_for_each(|step| cg.make(step, &dir)) {
            // Best effort: the groups are still empty, so this is rmdir only.
            let _ = remove_groups(&cg.groups);
            return Err(e);
        }
        Ok(Some(cg))
    }

    fn make(&mut self, step: &Step, dir: &str) -> Result<(), CgroupError> {
        let group = step.base.join(dir);
        fs::create_dir(&group).map_err(|e| io_error("creating cgroup", &group, e))?;
        self.groups.push(group.clone());
        for (file, value) in &step.files {
            match write_raw(&group.join(file), value) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && OPTIONAL.contains(file) => {}
                Err(e) => return Err(io_error("writing", &group.join(file), e)),
                Ok(()) => {}
            }
        }
        self.oom_file = step.oom.map(|f| group.join(f)).or(self.oom_file.take());
        Ok(())
    }

    /// Descriptors with which a new process enters every group of this sandbox
    /// without a `cgroup.procs` write from outside: such a write takes the
    /// kernel's global threadgroup lock for writing, which (without the
    /// `favordynmods` mount option) waits for an RCU grace period, 5-15 ms
    /// here on every start. Instead the cgroup2 group is entered at birth
    /// (`clone3` with `CLONE_INTO_CGROUP`) and each v1 group by the process
    /// itself writing `0` to its `tasks` file ([`join_self`]), which moves
    /// only the calling thread and skips that lock. Both were opened here, by
    /// the supervisor, so the kernel checks the supervisor's rights.
    pub fn entry(&self) -> Result<Entry, CgroupError> {
        let mut entry = Entry { into: None, tasks: Vec::new() };
        for g in &self.groups {
            let v2 = nix::sys::statfs::statfs(g).map_err(|e| io_error("statfs", g, e.into()))?.filesystem_type()
                == nix::sys::statfs::CGROUP2_SUPER_MAGIC;
            if v2 {
                let dir = fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(g);
                entry.into = Some(dir.map_err(|e| io_error("opening", g, e))?.into());
            } else {
                let tasks = g.join("tasks");
                let file = fs::OpenOptions::new().write(true).open(&tasks);
                entry.tasks.push(file.map_err(|e| io_error("opening", &tasks, e))?.into());
            }
        }
        Ok(entry)
    }

    /// Moves process `pid` (all its threads) into every group of this sandbox.
    /// Slow on most kernels (see [`Cgroup::entry`]); the fallback where
    /// `clone3` is missing.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        self.groups.iter().try_for_each(|g| {
            let procs = g.join("cgroup.procs");
            write_raw(&procs, &pid).map_err(|e| io_error("writing", &procs, e))
        })
    }

    /// Whether the kernel's OOM killer has killed a process of this sandbox (`false` without
    /// a memory limit).
    pub fn oom_killed(&self) -> bool {
        let text = self.oom_file.as_ref().map(read).unwrap_or_default();
        text.lines().filter_map(|l| l.strip_prefix("oom_kill ")).any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
    }

    /// Sends SIGKILL to every process in the groups (`cgroup.kill` where there is one).
    pub fn kill_all(&self) {
        kill_groups(&self.groups);
    }

    /// The group directories, one per hierarchy.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.groups.clone()
    }

    /// Kills everything in the groups, waits up to 2 s for them to empty and removes them.
    pub fn destroy(self) -> Result<(), CgroupError> {
        remove_groups(&self.groups)
    }
}

/// How a new process enters a sandbox's groups (see [`Cgroup::entry`]).
#[derive(Debug)]
pub struct Entry {
    /// The cgroup2 group's directory, for `clone3(CLONE_INTO_CGROUP)`.
    pub into: Option<OwnedFd>,
    /// The v1 groups' `tasks` files, for [`join_self`].
    pub tasks: Vec<OwnedFd>,
}

/// Moves the calling thread into the v1 group of each `tasks` file by
/// writing `0` (the caller). The caller must be single-threaded, so that
/// its only thread is the whole process; its future children follow it.
pub fn join_self(tasks: &[OwnedFd]) -> io::Result<()> {
    tasks.iter().try_for_each(|fd| {
        let n = nix::unistd::write(fd, b"0")?;
        if n == 1 {
            Ok(())
        } else {
            Err(io::Error::other("short write to a cgroup tasks file"))
        }
    })
}

/// Kill and remove every `clawcage-<owner>-*` group (the owner, a supervisor,
/// died without cleaning up). Used by the supervisor's watcher process.
pub fn remove_owned_by(support: &Support, owner: i32) {
    let prefix = format!("{PREFIX}{owner}-");
    let bases = support.trees.iter().filter(|t| t.writable);
    let entries = bases.flat_map(|t| fs::read_dir(&t.base)).flatten().flatten();
    let groups: Vec<PathBuf> =
        entries.filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix))).map(|e| e.path()).collect();
    let _ = remove_groups(&groups);
}

/// Removes leftover `clawcage-<pid>-*` groups that are empty and whose owner `<pid>` (in our
/// pid namespace) no longer exists. Groups with processes stay: rmdir refuses them.
pub fn sweep_stale(support: &Support) {
    let bases = support.trees.iter().filter(|t| t.writable);
    let entries = bases.flat_map(|t| fs::read_dir(&t.base)).flatten();
    for entry in entries.flatten() {
        let owner = entry.file_name().to_str().and_then(owner_pid);
        // Only "no such process" means gone (EPERM: alive, someone else's).
        if owner.is_some_and(|pid| kill(pid, None) == Err(Errno::ESRCH)) {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// A fresh group name, `<our pid>-<rand>`, for [`Cgroup::create`].
pub fn unique_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    let nanos = now.map(|d| d.subsec_nanos()).unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}{seq}", getpid())
}

/// The rlimits to set in the sandbox: always `RLIMIT_CORE` = 0 and `RLIMIT_FSIZE` = disk plus
/// one page; with [`Mechanism::Rlimit`] also `RLIMIT_AS` = memory and `RLIMIT_NPROC` = pids.
///
/// The file-size limit sits one page above the size of the private `/tmp` and `$HOME` so that
/// filling those ends in a clean `ENOSPC` the program can handle, not in `SIGXFSZ`; in the
/// workspace (a host directory) the rlimit is what bounds a single file.
///
/// These are weaker than cgroups: `RLIMIT_AS` bounds each process's address space (not the
/// sandbox's resident memory), `RLIMIT_NPROC` counts all processes of the uid (in its user
/// namespace), and no rlimit bounds a CPU *rate*, so `cpus` is not enforced (the timeout is).
pub fn rlimits(limits: &PlanLimits, mech: Mechanism) -> Vec<(Resource, u64)> {
    let mut out = vec![(Resource::RLIMIT_CORE, 0)];
    out.extend(limits.disk.map(|d| (Resource::RLIMIT_FSIZE, d.saturating_add(FSIZE_SLACK))));
    if mech == Mechanism::Rlimit {
        out.extend(limits.memory.map(|m| (Resource::RLIMIT_AS, m)));
        out.extend(limits.pids.map(|p| (Resource::RLIMIT_NPROC, p)));
    }
    out
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
    let path = path.to_path_buf();
    CgroupError::Io { op, path, source }
}

/// The CFS quota for `cpus` CPUs, at least the kernel's 1 ms minimum.
fn cpu_quota(cpus: f64) -> Result<u64, CgroupError> {
    if !(cpus.is_finite() && cpus > 0.0) {
        return Err(CgroupError::InvalidCpus(cpus));
    }
    // `as` saturates, so a huge value is a huge quota, not a wrapped one.
    Ok(((cpus * CPU_PERIOD_US as f64).round() as u64).max(1_000))
}

/// The text of a (proc or cgroup) file; empty if it cannot be read.
fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Writes `value` to an existing control file in one write(2).
fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(value.as_bytes())
}

/// SIGKILLs everything in `groups`: one write to `cgroup.kill` if any group has one, else
/// rounds of killing what `cgroup.procs` lists until it is empty (or [`KILL_ROUNDS`] passed).
fn kill_groups(groups: &[PathBuf]) {
    let cgroup_kill = |g: &PathBuf| write_raw(&g.join("cgroup.kill"), "1").is_ok();
    if groups.iter().any(cgroup_kill) {
        return;
    }
    let me = getpid().as_raw();
    for _ in 0..KILL_ROUNDS {
        let procs: String = groups.iter().map(|g| read(g.join("cgroup.procs"))).collect();
        // 0 is a process outside our pid namespace, and kill(0) would hit our own group.
        let pids = procs.lines().flat_map(str::parse);
        let pids: Vec<i32> = pids.filter(|p| *p > 0 && *p != me).collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Kills, waits (bounded) for the groups to empty, and removes them; removes what it can and
/// returns the first error.
fn remove_groups(groups: &[PathBuf]) -> Result<(), CgroupError> {
    kill_groups(groups);
    let deadline = Instant::now() + DESTROY_WAIT;
    // Every group is tried; the first error is kept.
    let results = Vec::from_iter(groups.iter().map(|g| rmdir_when_empty(g, deadline)));
    results.into_iter().collect()
}

/// Retries rmdir while it says EBUSY (processes still dying) until `deadline`. Sub-groups are
/// not removed: the sandbox cannot make any (its cgroup directories are not writable to it).
fn rmdir_when_empty(group: &Path, deadline: Instant) -> Result<(), CgroupError> {
    const MAX_PAUSE: Duration = Duration::from_millis(5);
    let mut pause = Duration::from_micros(25);
    loop {
        let err = match fs::remove_dir(group) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
            Ok(()) => return Ok(()),
        };
        if err.raw_os_error() != Some(libc::EBUSY) || Instant::now() >= deadline {
            return Err(io_error("removing cgroup", group, err));
        }
        if pause >= MAX_PAUSE {
            // Slow to empty: something escaped the first kill (v1 without cgroup.kill).
            kill_groups(&[group.to_path_buf()]);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The owner pid of a `clawcage-<pid>-<rand>` group name.
fn owner_pid(name: &str) -> Option<Pid> {
    let (pid, _) = name.strip_prefix(PREFIX)?.split_once('-')?;
    let pid: i32 = pid.parse().ok()?;
    (pid > 0).then(|| Pid::from_raw(pid))
}

/// The cgroup mounts in `/proc/self/mountinfo` text: (`None` for cgroup2 or the v1 mount
/// options, mount point, hierarchy path mounted there). Octal escapes are left as they are
/// (such a mount point is then simply not found).
fn parse_mountinfo(text: &str) -> Vec<(Option<Vec<&str>>, PathBuf, String)> {
    let parse = |line| {
        let fields: Vec<&str> = str::split(line, ' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let controllers = match *fields.get(sep + 1)? {
            "cgroup2" => None,
            "cgroup" => Some(fields.get(sep + 3)?.split(',').collect()),
            _ => return None,
        };
        let (root, mount) = (fields.get(3)?.to_string(), fields.get(4)?);
        Some((controllers, PathBuf::from(mount), root))
    };
    text.lines().filter_map(parse).collect()
}

/// Our group in the hierarchy of `kind`, from `/proc/self/cgroup` text.
fn own_path(text: &str, kind: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match kind {
            UNIFIED => id == "0" && ctrls.is_empty(),
            c => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_string())
    })
}

/// Picks where groups of `kind` go: the first writable candidate (our own group, then the
/// hierarchy root) that enables memory and pids for its children (v2), else the first
/// writable one, else our own group (not writable).
fn pick(kind: &'static str, mount: &Path, root: &str, own: Option<String>) -> Option<Tree> {
    // Our group relative to the mounted part; outside it (e.g. "/.." in a cgroup namespace)
    // it is not reachable.
    let rel = (own.as_deref())
        .and_then(|own| own.strip_prefix(root.trim_end_matches('/')))
        .filter(|rel| (rel.is_empty() || rel.starts_with('/')) && !rel.contains("/.."))
        .map(|rel| rel.trim_matches('/'))
        .filter(|rel| !rel.is_empty());
    let tree = |base: PathBuf| {
        // Only cgroup2 has it: controllers enabled for the children of `base`.
        let enabled = read(base.join("cgroup.subtree_control"));
        let enabled = enabled.split_whitespace().map(str::to_string).collect();
        let writable = access(&base, AccessFlags::W_OK).is_ok();
        Tree { kind, base, writable, enabled }
    };
    let candidates = rel.map(|rel| mount.join(rel)).into_iter().chain([mount.to_path_buf()]);
    let trees = Vec::from_iter(candidates.map(tree));
    let delegated = |t: &&Tree| t.writable && t.enables("memory") && t.enables("pids");
    let best = (trees.iter().find(delegated)).or_else(|| trees.iter().find(|t| t.writable)).or(trees.first());
    best.cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, pipe, ForkResult};
    use std::os::fd::AsRawFd;

    fn limits(memory: u64, pids: u64, cpus: f64) -> PlanLimits {
        let (memory, pids, cpus) = (Some(memory), Some(pids), Some(cpus));
        PlanLimits { memory, pids, cpus, ..Default::default() }
    }

    fn read(dir: &Path, file: &str) -> String {
        fs::read_to_string(dir.join(file)).unwrap().trim().to_string()
    }

    /// The groups must be usable here (root, as in CI): a missing prerequisite fails loudly.
    fn support() -> Support {
        let s = detect();
        assert_ne!(s.mechanism(), Mechanism::Rlimit, "no writable cgroups: {:#?}", s.describe());
        s
    }

    /// Forks a child that runs `body` (raw syscalls only: the test process has threads)
    /// once the parent has written a byte to the pipe, then exits 0.
    fn child(body: fn()) -> (Pid, std::os::fd::OwnedFd) {
        let (rx, tx) = pipe().unwrap();
        // SAFETY: the child only makes raw syscalls (read, mmap, pause, _exit) and never
        // returns into Rust code that could take a lock held by another thread.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let mut byte = 0u8;
                // SAFETY: reading one byte into a valid local buffer; then the body; then exit.
                unsafe {
                    libc::read(rx.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
                    body();
                    libc::_exit(0)
                }
            }
            ForkResult::Parent { child } => (child, tx),
        }
    }

    fn go(tx: std::os::fd::OwnedFd) {
        nix::unistd::write(&tx, b"g").unwrap();
    }

    fn sleep_forever() {
        // SAFETY: pause() only blocks until a signal arrives.
        unsafe { libc::pause() };
    }

    /// Touches 256 MiB of anonymous memory, page by page.
    fn hog_memory() {
        const LEN: usize = 256 << 20;
        // SAFETY: a fresh private anonymous mapping; only its own pages are written.
        unsafe {
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            let p = libc::mmap(std::ptr::null_mut(), LEN, prot, flags, -1, 0).cast::<u8>();
            if p.cast() == libc::MAP_FAILED {
                libc::_exit(3);
            }
            for off in (0..LEN).step_by(4096) {
                p.add(off).write_volatile(1);
            }
        }
    }

    #[test]
    fn parses_hybrid_mountinfo_and_own_groups() {
        let mountinfo = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
            22 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
        let mounts = parse_mountinfo(mountinfo);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].0, Some(vec!["rw", "memory"]));
        assert_eq!(mounts[1].1, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(mounts[2], (None, PathBuf::from("/sys/fs/cgroup/unified"), "/".into()));
        let own = "4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice\n";
        assert_eq!(own_path(own, "memory").as_deref(), Some("/process_api/abc"));
        assert_eq!(own_path(own, "cpu").as_deref(), Some("/"));
        assert_eq!(own_path(own, UNIFIED).as_deref(), Some("/user.slice"));
        assert_eq!(own_path(own, "pids"), None);
        assert_eq!(owner_pid("clawcage-123-abc"), Some(Pid::from_raw(123)));
        assert_eq!(owner_pid("clawcage-x-abc"), None);
        assert_eq!(owner_pid("other-123-abc"), None);
    }

    #[test]
    fn plans_whole_hybrid_and_v2_setups() {
        let tree = |kind, base: &str, enabled: &[&str]| Tree {
            kind,
            base: PathBuf::from(base),
            writable: true,
            enabled: enabled.iter().map(|c| c.to_string()).collect(),
        };
        let hybrid = Support {
            trees: vec![
                tree("memory", "/mem/own", &[]),
                tree("pids", "/pids", &[]),
                tree("cpu", "/cpu", &[]),
                tree(UNIFIED, "/unified", &[]),
            ],
        };
        assert_eq!(hybrid.mechanism(), Mechanism::V1);
        let l = limits(64 << 20, 16, 0.5);
        let step = |base: &str, files: &[(&'static str, &str)], oom| Step {
            base: PathBuf::from(base),
            files: files.iter().map(|(f, v)| (*f, v.to_string())).collect(),
            oom,
        };
        let mem = [("memory.limit_in_bytes", "67108864"), ("memory.memsw.limit_in_bytes", "67108864")];
        assert_eq!(
            plan(&hybrid, Mechanism::V1, &l).unwrap(),
            vec![
                step("/unified", &[], None),
                step("/mem/own", &mem, Some("memory.oom_control")),
                step("/pids", &[("pids.max", "16")], None),
                step("/cpu", &[("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")], None),
            ]
        );
        let v2 = Support { trees: vec![tree(UNIFIED, "/u/own", &["memory", "pids", "cpu"])] };
        assert_eq!(v2.mechanism(), Mechanism::V2);
        let files =
            [("memory.max", "67108864"), ("memory.swap.max", "0"), ("pids.max", "16"), ("cpu.max", "50000 100000")];
        let want = vec![step("/u/own", &files, Some("memory.events"))];
        assert_eq!(plan(&v2, Mechanism::V2, &l).unwrap(), want);
        // A CPU limit without the cpu controller fails closed.
        let no_cpu = Support { trees: vec![tree(UNIFIED, "/u", &["memory", "pids"])] };
        assert!(matches!(
            plan(&no_cpu, Mechanism::V2, &l),
            Err(CgroupError::MissingController { controller: "cpu", .. })
        ));
        assert!(matches!(cpu_quota(0.0), Err(CgroupError::InvalidCpus(_))));
        assert_eq!(cpu_quota(0.001).unwrap(), 1_000);
        let rl = rlimits(&PlanLimits { disk: Some(1 << 30), ..l.clone() }, Mechanism::Rlimit);
        assert_eq!(rl.len(), 4);
        assert_eq!(rlimits(&l, Mechanism::V1), vec![(Resource::RLIMIT_CORE, 0)]);
    }

    #[test]
    fn detects_this_machine() {
        let s = support();
        println!("{}", s.describe().join("\n"));
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        if mountinfo.contains(" - cgroup cgroup ") {
            // Hybrid (this machine, CI): v1 memory/pids/cpu and a writable cgroup2 mount.
            assert_eq!(s.mechanism(), Mechanism::V1);
            for kind in ["memory", "pids", "cpu", UNIFIED] {
                assert!(s.usable(kind).is_some(), "{kind} not writable: {s:#?}");
            }
        }
    }

    #[test]
    fn creates_groups_with_the_limits_and_removes_them() {
        let s = support();
        let cg = Cgroup::create(&s, &unique_name(), &limits(64 << 20, 16, 0.5)).unwrap().unwrap();
        let paths = cg.paths();
        let has = |file: &str| paths.iter().find(|p| p.join(file).exists()).unwrap().clone();
        if s.mechanism() == Mechanism::V1 {
            let mem = has("memory.limit_in_bytes");
            assert_eq!(read(&mem, "memory.limit_in_bytes"), "67108864");
            assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "67108864");
            assert_eq!(read(&has("pids.max"), "pids.max"), "16");
            assert_eq!(read(&has("cpu.cfs_quota_us"), "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&has("cpu.cfs_period_us"), "cpu.cfs_period_us"), "100000");
        } else {
            let g = has("memory.max");
            assert_eq!(read(&g, "memory.max"), "67108864");
            assert_eq!(read(&g, "pids.max"), "16");
            assert_eq!(read(&g, "cpu.max"), "50000 100000");
        }
        cg.destroy().unwrap();
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn kill_all_kills_a_member_and_destroy_removes_the_groups() {
        let s = support();
        let cg = Cgroup::create(&s, &unique_name(), &limits(64 << 20, 16, 0.5)).unwrap().unwrap();
        let (pid, tx) = child(sleep_forever);
        cg.add_pid(pid.as_raw()).unwrap();
        for p in cg.paths() {
            assert!(read(&p, "cgroup.procs").lines().any(|l| l == pid.to_string()));
        }
        go(tx);
        cg.kill_all();
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        assert!(!cg.oom_killed());
        let paths = cg.paths();
        cg.destroy().unwrap();
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn entry_puts_a_new_process_in_every_group_without_a_procs_write() {
        let s = support();
        let cg = Cgroup::create(&s, &unique_name(), &limits(64 << 20, 16, 0.5)).unwrap().unwrap();
        let entry = cg.entry().unwrap();
        let (rx, tx) = pipe().unwrap();
        let forked = match &entry.into {
            Some(group) => crate::sys::clone_into_cgroup(0, group.as_raw_fd()).unwrap(),
            None => crate::sys::clone_namespaces(0).unwrap(),
        };
        let pid = match forked {
            crate::sys::Forked::Child => {
                // Raw syscalls only (the test process has threads): join, report, wait.
                let code = if join_self(&entry.tasks).is_ok() { 0 } else { 7 };
                // SAFETY: writing one byte from a local buffer, then waiting
                // for the kill. (Reading the pipe here could take back our own
                // byte before the parent reads it, and both would hang.)
                unsafe {
                    libc::write(tx.as_raw_fd(), (&code as *const i32).cast(), 1);
                    loop {
                        libc::pause();
                    }
                }
            }
            crate::sys::Forked::Parent(pid) => Pid::from_raw(pid),
        };
        let mut code = [9u8];
        nix::unistd::read(rx.as_raw_fd(), &mut code).unwrap();
        assert_eq!(code[0], 0, "join_self failed in the child");
        let want = pid.to_string();
        for p in cg.paths() {
            assert!(read(&p, "cgroup.procs").lines().any(|l| l == want), "{pid} not in {}", p.display());
        }
        // It joined for real: the groups cannot be removed while it lives.
        assert!(fs::remove_dir(&cg.paths()[0]).is_err());
        cg.kill_all();
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        let paths = cg.paths();
        cg.destroy().unwrap();
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn destroy_kills_and_cleanup_paths_removes() {
        let s = support();
        let cg = Cgroup::create(&s, &unique_name(), &PlanLimits::default()).unwrap().unwrap();
        let (pid, tx) = child(sleep_forever);
        cg.add_pid(pid.as_raw()).unwrap();
        go(tx);
        let paths = cg.paths();
        let _ = remove_groups(&paths);
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn oom_kill_is_reported() {
        let s = support();
        let l = PlanLimits { memory: Some(32 << 20), ..Default::default() };
        let cg = Cgroup::create(&s, &unique_name(), &l).unwrap().unwrap();
        assert!(!cg.oom_killed());
        let (pid, tx) = child(hog_memory);
        cg.add_pid(pid.as_raw()).unwrap();
        go(tx);
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        assert!(cg.oom_killed());
        cg.destroy().unwrap();
    }

    #[test]
    fn sweep_removes_stale_groups_only() {
        let s = support();
        let base = s.trees.iter().find(|t| t.writable).unwrap().base.clone();
        // A pid that cannot exist (above pid_max's ceiling) and our own, live pid.
        let stale = base.join(format!("{PREFIX}{}-test", 4_194_305 + 7));
        let live = base.join(format!("{PREFIX}{}", unique_name()));
        fs::create_dir(&stale).unwrap();
        fs::create_dir(&live).unwrap();
        sweep_stale(&s);
        let (stale_gone, live_kept) = (!stale.exists(), live.exists());
        let _ = fs::remove_dir(&live);
        assert!(stale_gone, "stale group left: {}", stale.display());
        assert!(live_kept, "live group removed: {}", live.display());
    }

    #[test]
    fn create_and_destroy_timing() {
        let s = support();
        let l = limits(64 << 20, 16, 0.5);
        let rounds = 50;
        let start = Instant::now();
        for _ in 0..rounds {
            let cg = Cgroup::create(&s, &unique_name(), &l).unwrap().unwrap();
            cg.destroy().unwrap();
        }
        let each = start.elapsed() / rounds;
        let start = Instant::now();
        let cg = Cgroup::create(&s, &unique_name(), &l).unwrap().unwrap();
        let create = start.elapsed();
        let (pid, tx) = child(sleep_forever);
        let start = Instant::now();
        cg.add_pid(pid.as_raw()).unwrap();
        let add = start.elapsed();
        go(tx);
        let start = Instant::now();
        cg.destroy().unwrap();
        let destroy_busy = start.elapsed();
        let _ = waitpid(pid, None);
        println!(
            "{}: create+destroy (empty) {each:?} avg of {rounds}; create {create:?}, \
             add_pid {add:?}, destroy with a live member {destroy_busy:?}",
            s.mechanism()
        );
    }
}
