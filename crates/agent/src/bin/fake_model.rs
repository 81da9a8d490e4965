//! `clawcage-fake-model`: a fake model provider on 127.0.0.1 for the
//! benchmark (bench/agent.sh) and for trying `clawcage agent` without an
//! API key. It replays one session: N turns that each call the `bash` tool
//! with COMMAND, then a final text answer; then it answers 500.
//!
//! Usage: clawcage-fake-model [--wire anthropic|openai] [--tool-calls N] [--command CMD]
//! Prints the base URL on its first line, serves until stdin closes.

use clawcage_agent::testing::{steps, text, tool, FakeServer, FakeWire};
use std::io::{BufRead, Write};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawcage-fake-model: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut wire, mut n, mut command) = (FakeWire::Anthropic, 10usize, "true".to_string());
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--wire" => {
                wire = match value()?.as_str() {
                    "anthropic" => FakeWire::Anthropic,
                    "openai" => FakeWire::OpenAi,
                    other => return Err(format!("--wire {other:?}: anthropic or openai")),
                }
            }
            "--tool-calls" => n = value()?.parse().map_err(|e| format!("--tool-calls: {e}"))?,
            "--command" => command = value()?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut script: Vec<_> = (0..n)
        .map(|i| steps(vec![tool(&format!("call_{i}"), "bash", serde_json::json!({ "command": command }))]))
        .collect();
    script.push(steps(vec![text("done")]));
    let server = FakeServer::start_unrecorded(wire, script).map_err(|e| format!("listen: {e}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", server.base_url()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    // Serve until stdin ends.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    Ok(())
}
