//! Usage: clawcage-bench-live WORKSPACE [K] [M] [-- CMD ARG...]
//! Starts one sandbox (default profile) and times K execs of CMD (default
//! `/bin/true`) into it, then starts M sandboxes at once (none when M is 0),
//! leaves them idle and measures their memory.
//! Prints `key=value` lines for bench/spawn.sh.
use clawcage_policy::{builtin, plan, Changes, Context};
use clawcage_sandbox::{ExecSpec, Options, Sandbox};
use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let ws = std::fs::canonicalize(args.get(1).ok_or("usage: clawcage-bench-live WORKSPACE [K] [M]")?)?;
    let k: usize = args.get(2).map_or(Ok(500), |s| s.parse())?;
    let m: usize = args.get(3).map_or(Ok(20), |s| s.parse())?;
    let argv: Vec<String> = match args.iter().position(|a| a == "--") {
        Some(i) if i + 1 < args.len() => args[i + 1..].to_vec(),
        _ => vec!["/bin/true".into()],
    };
    let policy = builtin("default").ok_or("no default profile")?;
    let ctx = Context {
        workspace: ws,
        host_home: std::env::var_os("HOME").map_or_else(|| PathBuf::from("/nonexistent"), PathBuf::from),
        host_env: std::env::vars().collect(),
        extra_env: vec![],
        default_changes: Changes::Direct,
    };
    let plan = plan(&policy, &ctx);
    let opts = Options::default();

    // 1. Exec latency into one live sandbox.
    let mut sb = Sandbox::start(&plan, &opts)?;
    println!("live.mechanism={:?}", sb.limits_mechanism());
    let spec = ExecSpec { argv: argv.clone(), ..ExecSpec::default() };
    let mut times = Vec::with_capacity(k);
    for i in 0..k + k / 10 {
        let t = Instant::now();
        let out = sb.exec_collect(&spec, b"")?;
        let dt = t.elapsed();
        if out.outcome.exit_code() != 0 {
            return Err(format!("exec {argv:?}: {:?}", out.outcome).into());
        }
        if i >= k / 10 {
            times.push(dt.as_secs_f64() * 1e3); // the first k/10 are warm-up
        }
    }
    sb.stop()?;
    times.sort_by(f64::total_cmp);
    println!("live.exec_k={k}");
    println!("live.exec_median_ms={:.3}", pct(&times, 0.5));
    println!("live.exec_p90_ms={:.3}", pct(&times, 0.9));
    if m == 0 {
        return Ok(());
    }

    // 2. M idle sandboxes: supervisor-side memory.
    let self_before = kib("/proc/self/status", "VmRSS:")?;
    let kern_before = kernel_kib()?;
    let mut live = Vec::with_capacity(m);
    for _ in 0..m {
        live.push(Sandbox::start(&plan, &opts)?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let self_after = kib("/proc/self/status", "VmRSS:")?;
    let kern_after = kernel_kib()?;
    let my_pidns = std::fs::read_link("/proc/self/ns/pid")?;
    let (mut n_init, mut init_rss, mut init_pss, mut n_other, mut other_rss, mut other_pss) = (0, 0, 0, 0, 0, 0);
    for pid in children()? {
        let rss = kib(&format!("/proc/{pid}/status"), "VmRSS:")?;
        let pss = kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:")?;
        // Init lives in a new pid namespace; anything else (the cgroup watcher) does not.
        if std::fs::read_link(format!("/proc/{pid}/ns/pid"))? != my_pidns {
            (n_init, init_rss, init_pss) = (n_init + 1, init_rss + rss, init_pss + pss);
        } else {
            (n_other, other_rss, other_pss) = (n_other + 1, other_rss + rss, other_pss + pss);
        }
    }
    let self_pss = kib("/proc/self/smaps_rollup", "Pss:")?;
    let d_self = self_after.saturating_sub(self_before);
    let mib = |kib: u64| kib as f64 / 1024.0 / m as f64;
    println!("live.m={m}");
    println!("live.inits={n_init}");
    println!("live.other_children={n_other}");
    println!("live.self_rss_delta_kib={d_self}");
    println!("live.self_pss_kib={self_pss}");
    println!("live.init_rss_mib_each={:.3}", mib(init_rss));
    println!("live.init_pss_mib_each={:.3}", mib(init_pss));
    println!("live.other_rss_mib_each={:.3}", mib(other_rss));
    println!("live.other_pss_mib_each={:.3}", mib(other_pss));
    println!("live.rss_mib_per_sandbox={:.3}", mib(d_self + init_rss + other_rss));
    println!("live.pss_mib_per_sandbox={:.3}", mib(d_self + init_pss + other_pss));
    println!("live.kernel_mib_per_sandbox={:.3}", (kern_after - kern_before) as f64 / 1024.0 / m as f64);
    for sb in live {
        sb.stop()?;
    }
    Ok(())
}

/// Value in kB of the line starting with `key` in a /proc file.
fn kib(path: &str, key: &str) -> Res<u64> {
    let text = std::fs::read_to_string(path)?;
    let line = text.lines().find(|l| l.starts_with(key)).ok_or_else(|| format!("{path}: no {key}"))?;
    Ok(line[key.len()..].trim().trim_end_matches("kB").trim().parse()?)
}

/// Kernel-side memory (KiB) that sandboxes cost beyond RSS: slab (namespaces,
/// mounts, inodes), kernel stacks, page tables. System-wide, so noisy.
fn kernel_kib() -> Res<i64> {
    let keys = ["Slab:", "KernelStack:", "PageTables:"];
    keys.iter().try_fold(0i64, |sum, k| Ok(sum + kib("/proc/meminfo", k)? as i64))
}

/// Pids of this process's children (every thread's list).
fn children() -> Res<Vec<u32>> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let text = std::fs::read_to_string(task?.path().join("children"))?;
        for p in text.split_whitespace() {
            pids.push(p.parse()?);
        }
    }
    Ok(pids)
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN)
}
