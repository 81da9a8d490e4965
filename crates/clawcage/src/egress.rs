//! `run`'s egress wiring: the CA bundle and secret placeholders into the
//! plan before the sandbox starts, then the proxy on the listener init
//! handed out, with decisions going to the task's audit records.

use crate::audit::{self, RunRecord};
use anyhow::{Context as _, Result};
use clawcage_egress::{tls, Config, Proxy, ProxyHandle, SecretTable, Secrets};
use clawcage_policy::{Plan, Policy};
use clawcage_sandbox::Sandbox;
use std::sync::Arc;

/// What `prepare` made for `start`.
pub struct Prepared {
    ca: Arc<tls::Ca>,
    secrets: SecretTable,
}

/// Load (or create) the installation's CA, write the sandbox's CA bundle,
/// and put secret placeholders into the plan's environment.
pub fn prepare(policy: &Policy, plan: &mut Plan) -> Result<Prepared> {
    let state = audit::state()?;
    let dir = state.dir.join("ca");
    let ca = Arc::new(tls::Ca::load_or_create(&dir).context("egress CA")?);
    let bundle = tls::write_bundle(&ca, &dir).context("egress CA bundle")?;
    plan.set_ca_bundle(bundle);
    let (env, secrets) = Secrets::prepare(policy)?;
    for (name, placeholder) in env {
        plan.set_env(&name, &placeholder);
    }
    Ok(Prepared { ca, secrets })
}

/// Serve the sandbox's egress listener.
pub fn start(
    prepared: Prepared,
    policy: &Policy,
    sandbox: &mut Sandbox,
    record: &RunRecord,
    policy_name: &str,
    log: bool,
) -> Result<ProxyHandle> {
    let listener = sandbox.take_proxy_listener().context("the sandbox has no egress listener")?;
    let mut config = Config::new(policy, record.task(), policy_name, prepared.secrets, Some(prepared.ca))?;
    if log {
        config.log = Some(Arc::new(|line: &str| eprintln!("clawcage: egress: {line}")));
    }
    Ok(Proxy::spawn(config, listener, record.sink())?)
}
