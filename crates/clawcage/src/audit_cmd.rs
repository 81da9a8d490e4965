//! `clawcage audit verify | show [--task T] | export --format jsonl`.
//!
//! Exit status of `audit verify`: 0 the log is intact (notes about a crashed
//! writer's traces may be printed); 1 the log or its head was tampered with
//! or damaged (the first bad record is named); 125 the check could not run.

use anyhow::{bail, Result};
use clawcage_store::audit::{self, Record, SigningKey};
use clawcage_store::paths::state_dir_from_env;
use clawcage_store::{StatePaths, Store};
use std::io::Write as _;
use std::process::ExitCode;

/// Exit status of `audit verify` for a tampered or invalid log.
const EXIT_TAMPERED: u8 = 1;

/// The state directory's paths, without creating anything.
fn paths() -> Result<StatePaths> {
    Ok(StatePaths::new(&state_dir_from_env()?))
}

/// `audit verify`.
pub fn verify() -> Result<ExitCode> {
    let paths = paths()?;
    let key = SigningKey::from_env()?;
    let log = paths.audit.display();
    match (paths.audit.exists(), paths.db.exists()) {
        (false, false) => {
            println!("ok: {log}: no audit records yet");
            return Ok(ExitCode::SUCCESS);
        }
        (true, false) => {
            println!("TAMPERED: {log}: the store {} (which holds the head) is missing", paths.db.display());
            return Ok(ExitCode::from(EXIT_TAMPERED));
        }
        _ => {}
    }
    let store = Store::open(&paths.db)?;
    let rep = audit::verify(&paths.audit, &store, key.as_ref())?;
    for note in &rep.notes {
        println!("note: {note}");
    }
    match &rep.problem {
        None => {
            let end = match &rep.last {
                Some((seq, hash)) => format!("{} records, last seq {seq} ({hash})", rep.lines),
                None => "no records".into(),
            };
            let signed = if rep.signed { "head signature valid" } else { "head not signature-checked" };
            println!("ok: {log}: {end}; {signed}");
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            println!("TAMPERED: {log}: {p}");
            match rep.lines {
                0 => {}
                n => println!("the {n} line(s) before it verify"),
            }
            Ok(ExitCode::from(EXIT_TAMPERED))
        }
    }
}

/// `audit show [--task T]`: one line per record for people.
pub fn show(task: Option<&str>) -> Result<ExitCode> {
    let paths = paths()?;
    if let Some(t) = task {
        let known = paths.db.exists() && Store::open(&paths.db)?.find_task(t)?.is_some();
        if !known {
            bail!("unknown task {t:?} (see `clawcage tasks`)");
        }
    }
    let mut out = std::io::stdout().lock();
    let res = audit::for_each_line(&paths.audit, |n, line| match Record::parse_line(line) {
        Ok(r) if task.is_none() || r.task.as_deref() == task => writeln!(out, "{}", describe(&r)),
        Ok(_) => Ok(()),
        Err(e) => writeln!(out, "line {n}: not a valid record ({e}); run `clawcage audit verify`"),
    });
    quiet_on_broken_pipe(res)
}

/// `audit export --format F`: the log as it is, one JSON object per line.
pub fn export(format: &str) -> Result<ExitCode> {
    if format != "jsonl" {
        bail!("--format {format:?}: unknown format (expected jsonl)");
    }
    let paths = paths()?;
    let mut out = std::io::stdout().lock();
    quiet_on_broken_pipe(audit::export_lines(&paths.audit, &mut out))
}

/// A reader that went away (`| head`) is not an error.
fn quiet_on_broken_pipe(res: std::result::Result<(), audit::AuditError>) -> Result<ExitCode> {
    match res {
        Err(audit::AuditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

/// `seq  time  task  kind  key=value ...`, values as compact JSON (plain
/// strings unquoted).
fn describe(r: &Record) -> String {
    let fields = match &r.data {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    format!("{:>6}  {}  {:<12}  {:<12}  {fields}", r.seq, &r.ts, r.task.as_deref().unwrap_or("-"), r.kind)
}
