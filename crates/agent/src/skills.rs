//! Skills in an agent task.
//!
//! - At the start of a task every approved skill is checked against its
//!   approved hash and copied (verified after the copy) into a snapshot for
//!   the task; a changed skill is refused (listed to nobody, its refusal
//!   audited) until it is approved again with `clawcage skill add`.
//! - The model sees each usable skill's name and description in the system
//!   prompt; the `load_skill` tool returns the `SKILL.md` body only when the
//!   model asks for it.
//! - The snapshots are mounted read-only in the task's sandbox at
//!   [`SKILLS_DIR`]`/NAME`.
//! - `run_skill` runs one of a skill's scripts in a sandbox of its own under
//!   the task's policy intersected with the skill's declared needs
//!   ([`clawcage_skills::intersect`]): only its declared hosts and secrets
//!   through its own egress proxy, only its declared paths, the skill's
//!   files read-only at `/skills/NAME` as its working directory. When the
//!   task holds its changes for review, the skill's `write` paths become
//!   read-only (its writes could not be held with the task's).
//! - The `tools` need: loading a skill (or running its script) makes it the
//!   task's *active* skill; while a skill is active, only the tools it
//!   declares (and that the task offers) are accepted, plus `load_skill` and
//!   `run_skill`; any other call is refused and audited as `tool_denied`.
//!   The active skill changes when the model loads another one; it ends with
//!   the run.

use crate::conversation::ToolSpec;
use crate::helper::{Client, EgressStart};
use crate::task::HelperCommand;
use clawcage_policy::{Changes, Context, MountAt, PathSpec, Policy};
use clawcage_sandbox::{Collected, ExecSpec};
use clawcage_skills::catalog::{Approved, Catalog};
use clawcage_skills::install::{self, Loaded, Snapshot};
use clawcage_skills::intersect::{intersect, Effective, Task};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Where the task's skills appear inside its sandbox (`/skills/NAME`).
pub const SKILLS_DIR: &str = "/skills";

/// Tools that drive skills themselves; always allowed while a skill is active.
pub const SKILL_TOOLS: &[&str] = &["load_skill", "run_skill"];

/// What a skill's script run needs to know about the task.
#[derive(Debug, Clone)]
pub struct SkillHost {
    /// The task's policy.
    pub policy: Policy,
    /// What to call it in egress refusals.
    pub policy_name: String,
    /// The task's workspace (absolute).
    pub workspace: PathBuf,
    /// The invoking user's home.
    pub host_home: PathBuf,
    /// The host environment (secrets are read from it by the egress proxy).
    pub env: BTreeMap<String, String>,
    /// The sandbox helper.
    pub helper: HelperCommand,
    /// The state directory (CA, audit log).
    pub state_dir: PathBuf,
    /// The task holds its changes for review.
    pub held: bool,
}

/// The skills of one task: verified snapshots, refusals, the active skill.
#[derive(Debug)]
pub struct TaskSkills {
    snaps: Vec<Snapshot>,
    refused: Vec<(String, String)>,
    active: Option<String>,
    host: SkillHost,
    runs: u64,
}

impl TaskSkills {
    /// Check every approved skill under `root` and snapshot the good ones
    /// under `tmp`. Refusals are kept with their reason.
    pub fn prepare(root: &Path, approved: &[Approved], tmp: &Path, host: SkillHost) -> TaskSkills {
        let mut snaps = Vec::new();
        let mut refused = Vec::new();
        for a in approved {
            match install::snapshot(root, &a.name, &a.hash, tmp) {
                Ok(s) if s.loaded().is_some() => snaps.push(s),
                Ok(_) => refused.push((a.name.clone(), "the snapshot is empty".to_string())),
                Err(e) => refused.push((a.name.clone(), e.to_string())),
            }
        }
        TaskSkills { snaps, refused, active: None, host, runs: 0 }
    }

    fn loaded(&self) -> impl Iterator<Item = &Loaded> {
        self.snaps.iter().filter_map(Snapshot::loaded)
    }

    fn find(&self, name: &str) -> Result<&Loaded, String> {
        if let Some(l) = self.loaded().find(|l| l.manifest.name == name) {
            return Ok(l);
        }
        match self.refused.iter().find(|(n, _)| n == name) {
            Some((_, why)) => Err(format!("skill {name} is refused: {why}")),
            None => {
                let names: Vec<&str> = self.loaded().map(|l| l.manifest.name.as_str()).collect();
                Err(format!("no skill named {name:?}; the skills are: {}", names.join(", ")))
            }
        }
    }

    /// Skills refused at the start, with why.
    pub fn refused(&self) -> &[(String, String)] {
        &self.refused
    }

    /// Names and hashes of the usable skills.
    pub fn usable(&self) -> Vec<(String, String)> {
        self.loaded().map(|l| (l.manifest.name.clone(), l.hash.clone())).collect()
    }

    /// The read-only mounts of the task's sandbox: each snapshot at `/skills/NAME`.
    pub fn mounts(&self) -> Vec<MountAt> {
        self.loaded().map(|l| MountAt { src: l.dir.clone(), dst: skill_dir(&l.manifest.name) }).collect()
    }

    /// The system-prompt section (empty without usable skills).
    pub fn prompt_section(&self) -> String {
        let catalog = Catalog { skills: self.loaded().cloned().collect(), refused: Vec::new() };
        let list = catalog.prompt_section();
        if list.is_empty() {
            return list;
        }
        format!(
            "\n\n{list}A skill's files are at {SKILLS_DIR}/NAME (read-only). Run its scripts with the run_skill tool: \
they run under the skill's declared needs. While a skill is in use, only the tools it declares are accepted.\n"
        )
    }

    /// `load_skill` and `run_skill`, when there is any skill to speak of.
    pub fn specs(&self) -> Vec<ToolSpec> {
        if self.snaps.is_empty() && self.refused.is_empty() {
            return Vec::new();
        }
        vec![
            ToolSpec {
                name: "load_skill".into(),
                description: "Read the instructions (SKILL.md) of one of the installed skills listed in the system prompt.".into(),
                input_schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
            },
            ToolSpec {
                name: "run_skill".into(),
                description: "Run a command of a skill (e.g. one of its scripts, path relative to the skill's directory) in a sandbox limited to what the skill declared it needs. Its working directory is /skills/NAME.".into(),
                input_schema: json!({"type": "object", "properties": {
                    "skill": {"type": "string"},
                    "command": {"type": "array", "items": {"type": "string"}, "description": "Program and arguments, e.g. [\"scripts/report.sh\", \"data.csv\"]."}
                }, "required": ["skill", "command"]}),
            },
        ]
    }

    /// The active skill, if any.
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// Whether `tool` may be called now (see the module docs on `tools`).
    pub fn allowed(&self, tool: &str) -> Result<(), String> {
        let Some(active) = &self.active else { return Ok(()) };
        if SKILL_TOOLS.contains(&tool) {
            return Ok(());
        }
        let declared = self.loaded().find(|l| &l.manifest.name == active).map(|l| l.manifest.needs.tools.clone());
        match declared {
            Some(tools) if tools.iter().any(|t| t == tool) => Ok(()),
            Some(tools) => Err(format!(
                "skill {active} is in use and does not declare the tool {tool:?} (it declares: {}); \
                 load another skill or finish without it",
                if tools.is_empty() { "none".to_string() } else { tools.join(", ") }
            )),
            None => Err(format!("skill {active} is in use but no longer available")),
        }
    }

    /// The body of `name`'s `SKILL.md` (from the task's verified snapshot);
    /// `name` becomes the active skill.
    pub fn load(&mut self, name: &str) -> Result<(String, Vec<String>), String> {
        let l = self.find(name)?;
        let out = (l.manifest.body.clone(), l.manifest.needs.tools.clone());
        self.active = Some(name.to_string());
        Ok(out)
    }

    /// What a run of `name`'s script gets: the intersection, with `write`
    /// made read-only when the task holds its changes, the skill's files at
    /// `/skills/NAME`. `task_tools` are the tools the task offers.
    pub fn effective(&self, name: &str, task_tools: &[String]) -> Result<(Effective, Policy, PathBuf), String> {
        let l = self.find(name)?;
        let h = &self.host;
        let task = Task { policy: &h.policy, workspace: &h.workspace, home: &h.host_home, tools: task_tools };
        let mut eff = intersect(&task, &l.manifest.needs);
        let mut policy = eff.policy.clone();
        if h.held {
            let writes = std::mem::take(&mut policy.filesystem.write);
            for w in writes {
                eff.notes.push(clawcage_skills::intersect::Note {
                    kind: "write",
                    need: String::from(w.clone()),
                    outcome: "read-only: the task holds its changes for review".into(),
                });
                policy.filesystem.read.push(w);
            }
        }
        policy.filesystem.changes = Some(Changes::Direct);
        Ok((eff, policy, l.dir.clone()))
    }

    /// Run `argv` of skill `name` to its end in a sandbox of its own (see the
    /// module docs). Blocking: call it from a thread that outlives the run
    /// (the helper dies with the thread that started it). `pid` receives the
    /// helper's pid so that a cancellation can kill it.
    pub fn run(&mut self, req: &SkillRun, pid: &Arc<AtomicU32>) -> Result<Collected, String> {
        self.active = Some(req.name.clone());
        self.runs += 1;
        let h = &self.host;
        let (_, mut policy, dir) = self.effective(&req.name, &req.task_tools)?;
        let inside = skill_dir(&req.name);
        // Relative paths in the skill's policy were made absolute; the
        // skill's own files are the mount, not a read path.
        policy.filesystem.read.retain(|p| *p != PathSpec::Absolute(dir.display().to_string()));
        let ctx = Context {
            workspace: h.workspace.clone(),
            host_home: h.host_home.clone(),
            host_env: h.env.clone(),
            extra_env: vec![],
            default_changes: Changes::Direct,
        };
        let mut plan = clawcage_policy::plan(&policy, &ctx);
        plan.mounts.push(MountAt { src: dir, dst: inside.clone() });
        let egress = plan.network.as_ref().map(|_| EgressStart {
            policy_toml: policy.to_toml(),
            policy_name: format!("skill {}'s declared needs (within {})", req.name, h.policy_name),
            sandbox: req.task.clone(),
            state_dir: h.state_dir.clone(),
        });
        let args: Vec<&str> = h.helper.args.iter().map(String::as_str).collect();
        let mut client = Client::spawn_with(&h.helper.program, &args, &plan, false, egress)
            .map_err(|e| format!("skill sandbox: {e}"))?;
        pid.store(client.pid(), Ordering::SeqCst);
        let spec = ExecSpec {
            argv: req.argv.clone(),
            cwd: Some(inside),
            timeout: Some(req.timeout),
            output_limit: Some(req.output_limit),
            ..ExecSpec::default()
        };
        let result = client.exec_collect(&spec, b"").map_err(|e| format!("skill sandbox: {e}"));
        let stopped = client.stop();
        pid.store(0, Ordering::SeqCst);
        let c = result?;
        stopped.map_err(|e| format!("skill sandbox stop: {e}"))?;
        Ok(c)
    }

    /// The audit record of a run of `name` (what it was given).
    pub fn run_record(&self, name: &str, task_tools: &[String]) -> Result<Value, String> {
        let (eff, policy, _) = self.effective(name, task_tools)?;
        let hash = self.find(name)?.hash.clone();
        let specs = |v: &[PathSpec]| v.iter().map(|p| String::from(p.clone())).collect::<Vec<_>>();
        Ok(json!({
            "name": name,
            "hash": hash,
            "network": policy.network.allow,
            "secrets": eff.secrets,
            "read": specs(&policy.filesystem.read),
            "write": specs(&policy.filesystem.write),
            "tools": eff.tools,
            "dropped": serde_json::to_value(&eff.notes).unwrap_or(Value::Null),
        }))
    }
}

/// One `run_skill` call.
#[derive(Debug, Clone)]
pub struct SkillRun {
    /// The task (names the egress proxy's records).
    pub task: String,
    /// The skill.
    pub name: String,
    /// Program and arguments (a relative program path with a `/` is made
    /// absolute under `/skills/NAME`).
    pub argv: Vec<String>,
    /// Wall-clock limit.
    pub timeout: std::time::Duration,
    /// Output limit.
    pub output_limit: u64,
    /// The tools the task offers (for the `tools` intersection).
    pub task_tools: Vec<String>,
}

/// `/skills/NAME`.
pub fn skill_dir(name: &str) -> PathBuf {
    Path::new(SKILLS_DIR).join(name)
}

/// `command` of a `run_skill` call, with a relative script path made
/// absolute under the skill's directory.
pub fn skill_argv(name: &str, command: &[String]) -> Vec<String> {
    let mut argv = command.to_vec();
    if let Some(first) = argv.first_mut() {
        if !first.starts_with('/') && first.contains('/') {
            *first = skill_dir(name).join(first.trim_start_matches("./")).display().to_string();
        }
    }
    argv
}

/// The approved skills in the store, as the catalog wants them.
pub fn approved(store: &clawcage_store::Store) -> Result<Vec<Approved>, clawcage_store::StoreError> {
    Ok(store.skills()?.into_iter().map(|s| Approved { name: s.name, hash: s.hash }).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_held_task_makes_a_skills_writes_read_only_and_a_tool_need_is_enforced() {
        let root = std::env::temp_dir().join(format!("clawcage-agent-skills-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (skills, ws) = (root.join("skills"), root.join("ws"));
        std::fs::create_dir_all(skills.join("w")).unwrap();
        std::fs::create_dir_all(ws.join("out")).unwrap();
        std::fs::write(
            skills.join("w/SKILL.md"),
            "---\nname: w\ndescription: writes out\nclawcage:\n  write: [out]\n  tools: [bash]\n---\nbody\n",
        )
        .unwrap();
        let hash = clawcage_skills::hash::hash_dir(&skills.join("w")).unwrap();
        let policy = clawcage_policy::parse_str("[filesystem]\nwrite = [\".\"]\n", "task.toml").unwrap();
        let host = |held| SkillHost {
            policy: policy.clone(),
            policy_name: "task.toml".into(),
            workspace: ws.clone(),
            host_home: "/nonexistent".into(),
            env: Default::default(),
            helper: HelperCommand { program: "/bin/false".into(), args: vec![] },
            state_dir: root.clone(),
            held,
        };
        let approved = [Approved { name: "w".into(), hash }];
        let out = PathSpec::Absolute(ws.join("out").display().to_string());
        let tools = vec!["bash".to_string(), "write_file".to_string()];
        for held in [false, true] {
            let mut t = TaskSkills::prepare(&skills, &approved, &root, host(held));
            assert!(t.refused().is_empty(), "{:?}", t.refused());
            let (eff, p, _) = t.effective("w", &tools).unwrap();
            assert_eq!(p.filesystem.write.contains(&out), !held, "{:?} {:?}", p.filesystem, eff.notes);
            assert_eq!(p.filesystem.read.contains(&out), held);
            assert_eq!(eff.notes.iter().any(|n| n.outcome.contains("holds its changes for review")), held);
            assert_eq!(t.mounts()[0].dst, PathBuf::from("/skills/w"));
            // Before the skill is used every tool is fine; after, only bash.
            assert!(t.allowed("write_file").is_ok());
            t.load("w").unwrap();
            assert!(t.allowed("bash").is_ok() && t.allowed("run_skill").is_ok());
            assert!(t.allowed("write_file").unwrap_err().contains("does not declare the tool \"write_file\""));
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn script_paths_resolve_under_the_skill_directory() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(skill_argv("csv", &v(&["scripts/r.sh", "a/b"])), v(&["/skills/csv/scripts/r.sh", "a/b"]));
        assert_eq!(skill_argv("csv", &v(&["./scripts/r.sh"])), v(&["/skills/csv/scripts/r.sh"]));
        assert_eq!(skill_argv("csv", &v(&["python3", "x.py"])), v(&["python3", "x.py"]));
        assert_eq!(skill_argv("csv", &v(&["/bin/sh"])), v(&["/bin/sh"]));
    }
}
