//! Resource limits: cgroup v2, cgroup v1 (or a hybrid of both), rlimits as the fallback.
//!
//! Groups live under the invoking process's own group in each hierarchy (so outer limits still
//! apply), or under the hierarchy root when the own group is not writable. Pure v2: one group
//! with `memory.max`, `pids.max`, `cpu.max`. Hybrid: the limits go to the v1 `memory`, `pids`
//! and `cpu` hierarchies, and a group in the cgroup2 mount (e.g. `/sys/fs/cgroup/unified`, no
//! controllers) tracks the processes: it has `cgroup.kill` anyway. Nothing writable:
//! [`rlimits`] only.
//!
//! # Slots
//! Groups are not made and removed per sandbox: a sandbox takes a free *slot*, the groups named
//! `clawcage-slot-<n>` (one per hierarchy), held by an exclusive `flock` on the slot's directory
//! in one fixed hierarchy for as long as the sandbox lives. Taking a slot kills and waits out
//! anything left in it and rewrites every limit file (limits absent from the plan go back to
//! "max"), so a slot left by a supervisor that was SIGKILLed (its lock went with it; init died
//! with it through PDEATHSIG, taking its pid namespace along) is simply taken over and reset by
//! the next sandbox. There are never more slots than sandboxes that ever ran at once; no
//! watcher process and no mkdir/rmdir (a memory-cgroup rmdir is slow) sit on the start path.
//! Writes are kept few: they sit on the start path of every sandbox.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clawcage_policy::PlanLimits;
use nix::sys::resource::Resource;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{access, getpid, AccessFlags, Pid};

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
    /// The mechanism [`Cgroup::acquire`] will use.
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

    /// Where slot locks live: the same hierarchy whatever a plan limits, so that two
    /// sandboxes never hold one slot (cgroup2 when writable, else v1 memory, else pids).
    fn lock_base(&self) -> Option<&Path> {
        [UNIFIED, "memory", "pids"].into_iter().find_map(|k| self.usable(k)).map(|t| t.base.as_path())
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
        // Every file is written, "max" where the plan sets no limit: a slot
        // keeps what its last sandbox had.
        let max = || "max".to_string();
        let mut files = vec![
            ("memory.max", limits.memory.map_or_else(max, |b| b.to_string())),
            ("memory.swap.max", limits.memory.map_or_else(max, |_| "0".to_string())),
            ("pids.max", limits.pids.map_or_else(max, |n| n.to_string())),
        ];
        if tree.enables("cpu") {
            files.push(("cpu.max", quota.map_or_else(max, |q| format!("{q} {CPU_PERIOD_US}"))));
        }
        return Ok(vec![step(tree.base.clone(), files, Some("memory.events"))]);
    }
    let base = |kind| tree(kind).map(|t| t.base.clone());
    let tracking = s.usable(UNIFIED).map(|t| t.base.clone());
    let tracking = tracking.map(|base| step(base, Vec::new(), None));
    let mut steps: Vec<Step> = Vec::new();
    if let Some(bytes) = limits.memory {
        // memsw (memory + swap) equal to the memory limit means no swap. It
        // may never be below the memory limit, so it is lifted first (the
        // slot may hold a lower pair from its last sandbox).
        let bytes = bytes.to_string();
        let files = vec![
            ("memory.memsw.limit_in_bytes", "-1".to_string()),
            ("memory.limit_in_bytes", bytes.clone()),
            ("memory.memsw.limit_in_bytes", bytes),
        ];
        steps.push(step(base("memory")?, files, Some("memory.oom_control")));
    }
    // Without a v2 group, the pids group is the one that tracks the processes.
    if limits.pids.is_some() || tracking.is_none() {
        let files = vec![("pids.max", limits.pids.map_or_else(|| "max".to_string(), |n| n.to_string()))];
        steps.push(step(base("pids")?, files, None));
    }
    if let Some(q) = quota {
        let files = vec![("cpu.cfs_period_us", CPU_PERIOD_US.to_string()), ("cpu.cfs_quota_us", q.to_string())];
        steps.push(step(base("cpu")?, files, None));
    }
    Ok(tracking.into_iter().chain(steps).collect())
}

/// Prefix of slot group names: `clawcage-slot-<n>`.
pub const SLOT_PREFIX: &str = "clawcage-slot-";
/// Most slots (sandboxes running at once on this machine) before [`Cgroup::acquire`] refuses.
pub const MAX_SLOTS: usize = 4096;

/// One sandbox's groups (v1 hierarchies and/or one v2 group): a slot, held while this lives.
#[derive(Debug)]
pub struct Cgroup {
    /// The slot's number.
    slot: usize,
    /// Every group directory the sandbox joins, in plan order.
    groups: Vec<PathBuf>,
    /// `memory.events` (v2) or `memory.oom_control` (v1) when memory is limited.
    oom_file: Option<PathBuf>,
    /// OOM kills counted in `oom_file` before this sandbox took the slot.
    oom_base: u64,
    /// The slot's lock: an exclusive `flock` on its directory in the lock hierarchy.
    _lock: OwnedFd,
}

impl Cgroup {
    /// Takes a free slot and applies the limits: memory to v2 `memory.max` (and
    /// `memory.swap.max` = 0) or v1 `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`
    /// where swap is accounted); pids to `pids.max`; cpus to v2 `cpu.max` or v1
    /// `cpu.cfs_period_us` + `cpu.cfs_quota_us`, with a 100 ms period. Anything a killed
    /// holder left in the slot is killed first (see the module docs).
    ///
    /// Returns `Ok(None)` when the mechanism is [`Mechanism::Rlimit`]. Fails if a limit was
    /// asked for that the chosen hierarchy cannot enforce, so the caller can fail closed.
    pub fn acquire(support: &Support, limits: &PlanLimits) -> Result<Option<Cgroup>, CgroupError> {
        Cgroup::acquire_from(support, limits, 0)
    }

    /// [`Cgroup::acquire`], trying slots from `first` on (tests pick slots nobody else uses).
    fn acquire_from(support: &Support, limits: &PlanLimits, first: usize) -> Result<Option<Cgroup>, CgroupError> {
        let mechanism = support.mechanism();
        if mechanism == Mechanism::Rlimit {
            return Ok(None);
        }
        let steps = plan(support, mechanism, limits)?;
        let missing = CgroupError::MissingController { controller: "pids", mechanism };
        let lock_base = support.lock_base().ok_or(missing)?;
        for slot in first..MAX_SLOTS {
            let Some(lock) = try_lock(&lock_base.join(format!("{SLOT_PREFIX}{slot}")))? else { continue };
            return Cgroup::take(slot, lock, &steps).map(Some);
        }
        Err(CgroupError::Io {
            op: "taking a cgroup slot",
            path: lock_base.to_path_buf(),
            source: io::Error::other(format!("all {MAX_SLOTS} slots are in use")),
        })
    }

    /// With the slot locked: make its missing groups, clear them out, write the limits.
    fn take(slot: usize, lock: OwnedFd, steps: &[Step]) -> Result<Cgroup, CgroupError> {
        let dir = format!("{SLOT_PREFIX}{slot}");
        let groups: Vec<PathBuf> = steps.iter().map(|s| s.base.join(&dir)).collect();
        for g in &groups {
            match fs::create_dir(g) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(io_error("creating cgroup", g, e)),
                _ => {}
            }
        }
        // Normally empty already; after a crash, the last holder's processes may still be dying.
        wait_empty(&groups)?;
        let mut oom_file = None;
        for (step, group) in steps.iter().zip(&groups) {
            for (file, value) in &step.files {
                match write_raw(&group.join(file), value) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound && OPTIONAL.contains(file) => {}
                    Err(e) => return Err(io_error("writing", &group.join(file), e)),
                    Ok(()) => {}
                }
            }
            oom_file = step.oom.map(|f| group.join(f)).or(oom_file);
        }
        let oom_base = oom_file.as_ref().map_or(0, oom_count);
        Ok(Cgroup { slot, groups, oom_file, oom_base, _lock: lock })
    }

    /// The slot's number.
    pub fn slot(&self) -> usize {
        self.slot
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
        self.oom_file.as_ref().is_some_and(|f| oom_count(f) > self.oom_base)
    }

    /// Sends SIGKILL to every process in the groups (`cgroup.kill` where there is one).
    pub fn kill_all(&self) {
        kill_groups(&self.groups);
    }

    /// The group directories, one per hierarchy.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.groups.clone()
    }

    /// Kills everything in the groups, waits up to 2 s for them to empty, and gives the slot
    /// back. The groups stay for the next sandbox; if they do not empty, the slot is still
    /// released and its next taker kills again (or refuses).
    pub fn release(self) -> Result<(), CgroupError> {
        wait_empty(&self.groups)
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

/// Kills whatever is in `groups` and waits (bounded) until none of them lists a process.
fn wait_empty(groups: &[PathBuf]) -> Result<(), CgroupError> {
    const MAX_PAUSE: Duration = Duration::from_millis(5);
    let busy = || groups.iter().find(|g| !read(g.join("cgroup.procs")).trim().is_empty());
    if busy().is_none() {
        return Ok(());
    }
    kill_groups(groups);
    let deadline = Instant::now() + DESTROY_WAIT;
    let mut pause = Duration::from_micros(25);
    loop {
        std::thread::sleep(pause);
        let Some(group) = busy() else { return Ok(()) };
        if Instant::now() >= deadline {
            let busy = io::Error::from_raw_os_error(libc::EBUSY);
            return Err(io_error("emptying cgroup", group, busy));
        }
        if pause >= MAX_PAUSE {
            // Slow to empty: something escaped the first kill (v1 without cgroup.kill).
            kill_groups(groups);
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The `oom_kill` count in a `memory.events` / `memory.oom_control` file (0 if unreadable).
fn oom_count(file: &PathBuf) -> u64 {
    let text = read(file);
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

/// Opens `dir` (making it if missing) and takes an exclusive `flock` on it without waiting.
/// `None`: someone holds it.
fn try_lock(dir: &Path) -> Result<Option<OwnedFd>, CgroupError> {
    let open = || fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(dir);
    let file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(io_error("creating cgroup", dir, e)),
            _ => open(),
        },
        other => other,
    };
    let fd: OwnedFd = file.map_err(|e| io_error("opening", dir, e))?.into();
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let ret = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if ret == 0 {
            return Ok(Some(fd));
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(None),
            e if e.raw_os_error() == Some(libc::EINTR) => continue,
            e => return Err(io_error("locking", dir, e)),
        }
    }
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
        let mem = [
            ("memory.memsw.limit_in_bytes", "-1"),
            ("memory.limit_in_bytes", "67108864"),
            ("memory.memsw.limit_in_bytes", "67108864"),
        ];
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
        // Limits the plan does not set are reset to "max" (a slot keeps its last values).
        let files = [("memory.max", "max"), ("memory.swap.max", "max"), ("pids.max", "max"), ("cpu.max", "max")];
        let want = vec![step("/u/own", &files, Some("memory.events"))];
        assert_eq!(plan(&v2, Mechanism::V2, &PlanLimits::default()).unwrap(), want);
        let pids_only = PlanLimits { pids: None, ..limits(1, 1, 1.0) };
        let v1 = plan(&hybrid, Mechanism::V1, &PlanLimits { memory: None, cpus: None, ..pids_only }).unwrap();
        assert_eq!(v1, vec![step("/unified", &[], None)]);
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

    /// A slot number no real sandbox (they start at 0) and no other test process is likely to use.
    fn test_slot() -> usize {
        1000 + std::process::id() as usize % 3000
    }

    fn acquire(s: &Support, l: &PlanLimits) -> Cgroup {
        Cgroup::acquire_from(s, l, test_slot()).unwrap().unwrap()
    }

    fn procs(p: &Path) -> String {
        read(p, "cgroup.procs")
    }

    #[test]
    fn takes_a_slot_with_the_limits_and_gives_it_back() {
        let s = support();
        let cg = acquire(&s, &limits(64 << 20, 16, 0.5));
        let paths = cg.paths();
        let name = format!("{SLOT_PREFIX}{}", cg.slot());
        assert!(paths.iter().all(|p| p.file_name().unwrap() == name.as_str()), "{paths:?}");
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
        // Held: the same slot cannot be taken twice.
        let other = acquire(&s, &PlanLimits { pids: Some(8), ..Default::default() });
        assert_ne!(other.slot(), cg.slot());
        let slot = cg.slot();
        cg.release().unwrap();
        // The groups stay, empty, and the slot is free again.
        assert!(paths.iter().all(|p| p.is_dir() && procs(p).is_empty()));
        let again = acquire(&s, &limits(32 << 20, 8, 0.25));
        assert_eq!(again.slot(), slot);
        again.release().unwrap();
        other.release().unwrap();
    }

    #[test]
    fn a_slot_left_by_a_killed_holder_is_emptied_and_reset_by_the_next() {
        let s = support();
        // Forked first, so that it does not inherit (and keep) the slot's lock.
        let (pid, _tx) = child(sleep_forever);
        let cg = acquire(&s, &limits(64 << 20, 16, 0.5));
        let slot = cg.slot();
        cg.add_pid(pid.as_raw()).unwrap();
        // The holder dies without cleaning up: its lock goes, its process stays.
        drop(cg);
        let next = acquire(&s, &limits(128 << 20, 32, 1.0));
        assert_eq!(next.slot(), slot, "the free slot was not reused");
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        let paths = next.paths();
        assert!(paths.iter().all(|p| procs(p).is_empty()), "the slot still holds processes");
        let has = |file: &str| paths.iter().find(|p| p.join(file).exists()).unwrap().clone();
        if s.mechanism() == Mechanism::V1 {
            assert_eq!(read(&has("memory.limit_in_bytes"), "memory.limit_in_bytes"), "134217728");
            assert_eq!(read(&has("pids.max"), "pids.max"), "32");
            assert_eq!(read(&has("cpu.cfs_quota_us"), "cpu.cfs_quota_us"), "100000");
        } else {
            assert_eq!(read(&has("memory.max"), "memory.max"), "134217728");
            assert_eq!(read(&has("pids.max"), "pids.max"), "32");
        }
        next.release().unwrap();
    }

    #[test]
    fn kill_all_kills_a_member_and_release_empties_the_groups() {
        let s = support();
        let cg = acquire(&s, &limits(64 << 20, 16, 0.5));
        let (pid, tx) = child(sleep_forever);
        cg.add_pid(pid.as_raw()).unwrap();
        for p in cg.paths() {
            assert!(procs(&p).lines().any(|l| l == pid.to_string()));
        }
        go(tx);
        cg.kill_all();
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        assert!(!cg.oom_killed());
        let paths = cg.paths();
        cg.release().unwrap();
        assert!(paths.iter().all(|p| procs(p).is_empty()));
    }

    #[test]
    fn entry_puts_a_new_process_in_every_group_without_a_procs_write() {
        let s = support();
        let cg = acquire(&s, &limits(64 << 20, 16, 0.5));
        let entry = cg.entry().unwrap();
        let (rx, tx) = pipe().unwrap(); // child -> parent: joined?
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
            assert!(procs(&p).lines().any(|l| l == want), "{pid} not in {}", p.display());
        }
        // It joined for real: the groups cannot be removed while it lives.
        assert!(fs::remove_dir(&cg.paths()[0]).is_err());
        // release() kills it.
        cg.release().unwrap();
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
    }

    #[test]
    fn oom_kill_is_reported_to_its_holder_only() {
        let s = support();
        let l = PlanLimits { memory: Some(32 << 20), ..Default::default() };
        let cg = acquire(&s, &l);
        assert!(!cg.oom_killed());
        let (pid, tx) = child(hog_memory);
        cg.add_pid(pid.as_raw()).unwrap();
        go(tx);
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        assert!(cg.oom_killed());
        let slot = cg.slot();
        cg.release().unwrap();
        // The slot's counter keeps the kill; its next holder starts from zero.
        let next = acquire(&s, &l);
        assert_eq!(next.slot(), slot);
        assert!(!next.oom_killed());
        next.release().unwrap();
    }

    #[test]
    fn acquire_and_release_timing() {
        let s = support();
        let l = limits(64 << 20, 16, 0.5);
        let rounds = 50;
        let start = Instant::now();
        for _ in 0..rounds {
            acquire(&s, &l).release().unwrap();
        }
        let each = start.elapsed() / rounds;
        let cg = acquire(&s, &l);
        let (pid, tx) = child(sleep_forever);
        let start = Instant::now();
        cg.add_pid(pid.as_raw()).unwrap();
        let add = start.elapsed();
        go(tx);
        let start = Instant::now();
        cg.release().unwrap();
        let release_busy = start.elapsed();
        let _ = waitpid(pid, None);
        println!(
            "{}: acquire+release (empty) {each:?} avg of {rounds}; add_pid (procs write) {add:?}, \
             release with a live member {release_busy:?}",
            s.mechanism()
        );
    }
}
