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
pub mod shell;
mod values;

pub use error::PolicyError;
pub use event::{Event, EventSink, SinkError};
pub use glob::glob_match;
pub use model::*;
pub use parse::{load_file, parse_str};
pub use plan::{
    plan, Bind, Context, Plan, PlanLimits, PlanNetwork, ReviewLayers, DEFAULT_PATH, PROXY_PORT, SANDBOX_CA_FILE,
    SANDBOX_HOME, SYSTEM_CA_BUNDLES,
};
pub use profiles::{builtin, PROFILES};

#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod plan_tests;
