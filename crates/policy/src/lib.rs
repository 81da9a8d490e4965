//! clawcage policy: the file model, its validation, and the pure translation
//! into a sandbox plan. No I/O besides reading the policy file
//! ([`load_file`]).
//!
//! ```
//! let policy = clawcage_policy::parse_str("extends = \"dev\"\n[limits]\ntimeout = \"5m\"\n", "p.toml")?;
//! assert_eq!(policy.extends, "dev");
//! # Ok::<(), clawcage_policy::PolicyError>(())
//! ```

pub mod approval;
pub mod error;
pub mod event;
pub mod glob;
pub mod model;
pub mod parse;
pub mod plan;
mod print;
pub mod profiles;
mod values;

pub use error::PolicyError;
pub use event::{Event, EventSink, SinkError};
pub use glob::glob_match;
pub use model::*;
pub use parse::{load_file, parse_str};
pub use plan::{
    plan, Bind, Context, MountAt, Plan, PlanLimits, PlanNetwork, ReviewLayers, DEFAULT_PATH, PROXY_PORT,
    SANDBOX_CA_FILE, SANDBOX_HOME, SYSTEM_CA_BUNDLES,
};
pub use profiles::{builtin, PROFILES};

/// Parse one `read`/`write` path as a policy file would (no globs): for
/// other files that name paths in the policy's syntax, such as a skill's
/// declared needs. The error is the message without a location.
pub fn parse_path_spec(s: &str) -> Result<PathSpec, String> {
    values::parse_path(s, false)
}

/// Check one `[network] allow` pattern as a policy file would (`host`,
/// `*.suffix`, an IP, each with an optional `:port`).
pub fn check_host_pattern(s: &str) -> Result<(), String> {
    values::check_host(s)
}
