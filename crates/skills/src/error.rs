//! The crate's error type.

use std::path::PathBuf;

/// Why a skill cannot be read, installed or used. `Display` is one line;
/// for bad input it names the file, the line and the field.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    /// `SKILL.md` is malformed.
    #[error("{file}:{line}: {}{message}", field_prefix(field))]
    Invalid {
        /// The file (path as given).
        file: String,
        /// 1-based line.
        line: usize,
        /// Dotted field path (`clawcage.network`), empty when not about one field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The skill directory holds something a skill may not hold.
    #[error("{}: {reason}", path.display())]
    Content {
        /// The offending path.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A file system step failed.
    #[error("{step} {}: {source}", path.display())]
    Io {
        /// What was being done.
        step: &'static str,
        /// The path involved.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Fetching a skill archive failed.
    #[error("fetch {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The installed skill no longer matches the approved hash.
    #[error("skill {name} was changed since it was approved (approved {approved}, now {actual}); review it and run `clawcage skill add` again")]
    Tampered {
        /// Skill name.
        name: String,
        /// Approved SHA-256.
        approved: String,
        /// SHA-256 of what is there now.
        actual: String,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}

impl SkillError {
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SkillError {
        let path = path.into();
        move |source| SkillError::Io { step, path, source }
    }
}
