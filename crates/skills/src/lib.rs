//! clawcage skills: the Agent Skills format (a directory with `SKILL.md`
//! and its scripts and resources) with declared needs, enforced.
//!
//! - [`manifest`]: `SKILL.md` front matter, validated with file:line:field errors.
//! - [`hash`]: the content hash over a canonical walk of the directory.
//! - [`install`]: copying a directory or a fetched `.tar.gz` into the state
//!   directory, refusing links, devices and oversized trees.
//! - [`intersect`]: the policy a skill's script runs under — the task's
//!   policy intersected with the skill's needs; never wider than the task's.

pub mod catalog;
pub mod error;
pub mod hash;
pub mod install;
pub mod intersect;
pub mod manifest;
pub mod present;

pub use error::SkillError;
pub use manifest::{Manifest, Needs};
