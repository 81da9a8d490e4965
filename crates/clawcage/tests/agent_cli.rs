//! `clawcage agent` options: `--changes review|direct` over the policy's
//! `[filesystem] changes`, and refusals of bad values (exit 125).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_common;

use agent_common::*;
use clawcage_agent::testing::*;
use serde_json::json;

fn write_note() -> Vec<Reply> {
    vec![
        steps(vec![tool("w1", "write_file", json!({"path": "note.txt", "content": "from the agent\n"}))]),
        steps(vec![text("wrote it")]),
    ]
}

#[test]
fn changes_direct_writes_through_although_agent_tasks_default_to_review() {
    let fx = AgentFixture::new("chg-direct");
    let server = FakeServer::start(FakeWire::Anthropic, write_note()).unwrap();
    let out = fx.run(&server, &["--changes", "direct", "write a note"]);
    out.expect(0);
    assert_eq!(fx.read("note.txt"), "from the agent\n");
    assert!(!out.stderr.contains("held for review"), "{}", out.stderr);
    let system = server.requests()[0].body["system"].as_str().unwrap().to_string();
    assert!(system.contains("written directly to the real workspace"), "{system}");
}

#[test]
fn changes_review_holds_changes_although_the_policy_says_direct() {
    let fx = AgentFixture::new("chg-review").policy("[filesystem]\nchanges = \"direct\"\n");
    let server = FakeServer::start(FakeWire::Anthropic, write_note()).unwrap();
    let out = fx.run(&server, &["--changes", "review", "write a note"]);
    out.expect(0);
    assert!(!fx.ws.join("note.txt").exists(), "held, not written");
    let task = fx.only_task();
    assert!(out.stderr.contains(&format!("clawcage diff {}", task.id)), "{}", out.stderr);
    let diff = fx.clawcage(&["diff", &task.id]);
    assert!(diff.stdout.contains("+from the agent"), "{}", diff.stdout);
    let system = server.requests()[0].body["system"].as_str().unwrap().to_string();
    assert!(system.contains("held for review"), "{system}");

    // Resuming it with direct changes would hide what it holds: refused.
    let again = FakeServer::start(FakeWire::Anthropic, vec![steps(vec![text("ok")])]).unwrap();
    let out = fx.run(&again, &["--resume", &task.id, "--changes", "direct", "more"]);
    out.expect(125);
    assert!(out.stderr.contains("holds reviewed changes (1 change: 1 added"), "{}", out.stderr);
    assert!(again.requests().is_empty(), "refused before the model was asked");
}

#[test]
fn a_bad_changes_value_is_refused_before_anything_starts() {
    let fx = AgentFixture::new("chg-bad");
    let server = FakeServer::start(FakeWire::Anthropic, write_note()).unwrap();
    let out = fx.run(&server, &["--changes", "sideways", "write a note"]);
    out.expect(125);
    assert!(out.stderr.contains("--changes \"sideways\": expected \"review\" or \"direct\""), "{}", out.stderr);
    assert!(server.requests().is_empty());
    assert!(!fx.state.join("clawcage.db").exists(), "no task was created");
}

/// `clawcage agent ARGS...` with only the fixture's own environment: no
/// provider variables unless `env` names them.
fn agent_bare(fx: &AgentFixture, env: &[(&str, &str)], args: &[&str]) -> Out {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clawcage"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLAWCAGE_HOME", &fx.state)
        .env("HOME", &fx.home)
        .envs(env.iter().copied())
        .arg("agent")
        .arg("--workspace")
        .arg(&fx.ws)
        .args(args)
        .stdin(std::process::Stdio::null());
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let out = wait_output(child, std::time::Duration::from_secs(120));
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fake that answers every request with some text.
fn answering(wire: FakeWire) -> FakeServer {
    FakeServer::start_with(wire, vec![], Some(steps(vec![text("hello")]))).unwrap()
}

#[test]
fn the_config_in_the_state_directory_gives_model_base_url_and_key_variable() {
    let fx = AgentFixture::new("cfg-home");
    let server = answering(FakeWire::Anthropic);
    std::fs::create_dir_all(&fx.state).unwrap();
    std::fs::write(
        fx.state.join("config.toml"),
        format!(
            "model = \"anthropic:claude-from-config\"\n[providers.anthropic]\nbase_url = \"{}\"\napi_key_env = \"CORP_KEY\"\n",
            server.base_url()
        ),
    )
    .unwrap();
    agent_bare(&fx, &[("CORP_KEY", "sk-corp-1")], &["hi"]).expect(0);
    let r = &server.requests()[0];
    assert_eq!(r.header("x-api-key"), Some("sk-corp-1"));
    assert_eq!(r.body["model"], "claude-from-config");
    assert_eq!(fx.only_task().model.as_deref(), Some("anthropic:claude-from-config"));

    // The environment and flags override the file.
    let other = answering(FakeWire::Anthropic);
    let env = [
        ("CORP_KEY", "sk-corp-1"),
        ("ANTHROPIC_API_KEY", "sk-env"),
        ("ANTHROPIC_BASE_URL", &other.base_url()),
        ("CLAWCAGE_MODEL", "anthropic:from-env"),
    ];
    agent_bare(&fx, &env, &["hi"]).expect(0);
    let r = &other.requests()[0];
    assert_eq!((r.header("x-api-key"), r.body["model"].as_str()), (Some("sk-env"), Some("from-env")));
    agent_bare(&fx, &env, &["--model", "anthropic:from-flag", "hi"]).expect(0);
    assert_eq!(other.requests()[1].body["model"], "from-flag");
    assert_eq!(server.requests().len(), 1, "the file's base_url was overridden");
}

#[test]
fn a_config_flag_names_a_provider_of_our_own_with_a_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let fx = AgentFixture::new("cfg-flag");
    let server = answering(FakeWire::OpenAi);
    let key = fx.root.join("lab.key");
    std::fs::write(&key, "sk-lab-7\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = fx.root.join("models.toml");
    std::fs::write(
        &cfg,
        format!(
            "[providers.my-lab]\nwire = \"openai\"\nbase_url = \"{}\"\napi_key_file = \"{}\"\nmodel = \"qwen-coder\"\n",
            server.base_url(),
            key.display()
        ),
    )
    .unwrap();
    let cfg_arg = cfg.display().to_string();
    agent_bare(&fx, &[], &["--config", &cfg_arg, "--model", "my-lab", "hi"]).expect(0);
    let r = &server.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer sk-lab-7"));
    assert_eq!(r.body["model"], "qwen-coder");
    assert_eq!(fx.only_task().model.as_deref(), Some("my-lab:qwen-coder"));

    // MY_LAB_API_KEY overrides the file's key source.
    agent_bare(&fx, &[("MY_LAB_API_KEY", "sk-env")], &["--config", &cfg_arg, "--model", "my-lab:other", "hi"])
        .expect(0);
    assert_eq!(server.requests()[1].header("authorization"), Some("Bearer sk-env"));

    // A key file others can read is refused, naming where the config points to it.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = agent_bare(&fx, &[], &["--config", &cfg_arg, "--model", "my-lab", "hi"]);
    out.expect(125);
    let want = format!("{cfg_arg}:4:16: providers.my-lab.api_key_file: {}: mode 644", key.display());
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    assert_eq!(server.requests().len(), 2, "nothing was sent");
}

#[test]
fn bad_configs_exit_125_naming_file_line_column_and_field() {
    let fx = AgentFixture::new("cfg-bad");
    let server = answering(FakeWire::Anthropic);
    std::fs::create_dir_all(&fx.state).unwrap();
    let file = fx.state.join("config.toml");
    let cases = [
        (
            "model = \"anthropic:x\"\n[providers.anthropic]\napi_key = \"sk-ant-inline\"\n",
            "config.toml:3:11: providers.anthropic.api_key: the key is never written in the config",
            vec![],
        ),
        (
            "[providers.anthropic]\nbase_url = \"http://x\"\ntimeout = 3\n",
            "config.toml:3:1: providers.anthropic.timeout: unknown field `timeout`",
            vec![],
        ),
        (
            "model = \"anthropic:x\"\n[providers.anthropic]\napi_key_env = \"NOT_SET_ANYWHERE\"\n",
            "config.toml:3:15: providers.anthropic.api_key_env: NOT_SET_ANYWHERE is not set",
            vec![],
        ),
    ];
    for (text, want, env) in cases {
        std::fs::write(&file, text).unwrap();
        let out = agent_bare(&fx, &env, &["hi"]);
        out.expect(125);
        assert!(out.stderr.contains(&format!("{}/{want}", fx.state.display())), "{want}\n{}", out.stderr);
        assert!(!out.stderr.contains("sk-ant-inline"), "the key is not echoed: {}", out.stderr);
    }
    // --config with a file that does not exist.
    let out = agent_bare(&fx, &[], &["--config", "/nonexistent/models.toml", "--model", "anthropic:x", "hi"]);
    out.expect(125);
    assert!(out.stderr.contains("/nonexistent/models.toml"), "{}", out.stderr);
    assert!(server.requests().is_empty());
}
