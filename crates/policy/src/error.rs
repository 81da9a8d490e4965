//! The one error type of the crate: what is wrong, and where in which file.

use std::ops::Range;

/// A policy that cannot be loaded. `Display` is one line that names the file,
/// the line and column, and (for invalid values) the field:
///
/// ```text
/// policy.toml:7:10: field `limits.memory`: "1 gigs" is not a size (expected e.g. 512MiB, 2GiB, 1000000)
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read (missing, unreadable, not UTF-8, too large).
    #[error("{file}: cannot read the policy file: {source}")]
    Io {
        /// The path as given.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// File name used in messages.
        file: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// What the TOML parser expected, on one line.
        message: String,
    },
    /// Valid TOML, but a key or value is not acceptable.
    #[error("{file}:{line}:{column}: field `{field}`: {message}")]
    Invalid {
        /// File name used in messages.
        file: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column (in characters) of the offending key or value.
        column: usize,
        /// Dotted field path, e.g. `limits.memory` or `filesystem.read`.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl PolicyError {
    /// The file name the error refers to.
    pub fn file(&self) -> &str {
        match self {
            PolicyError::Io { file, .. } | PolicyError::Syntax { file, .. } | PolicyError::Invalid { file, .. } => file,
        }
    }

    /// 1-based line, when the error points into the file.
    pub fn line(&self) -> Option<usize> {
        match self {
            PolicyError::Io { .. } => None,
            PolicyError::Syntax { line, .. } | PolicyError::Invalid { line, .. } => Some(*line),
        }
    }

    /// 1-based column in characters, when the error points into the file.
    pub fn column(&self) -> Option<usize> {
        match self {
            PolicyError::Io { .. } => None,
            PolicyError::Syntax { column, .. } | PolicyError::Invalid { column, .. } => Some(*column),
        }
    }

    /// The dotted field path (`limits.memory`), for invalid keys and values.
    pub fn field(&self) -> Option<&str> {
        match self {
            PolicyError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// An invalid key or value at byte range `span` of `text`.
    pub(crate) fn invalid(file: &str, text: &str, span: &Range<usize>, field: &str, message: String) -> Self {
        let (line, column) = line_col(text, span.start);
        PolicyError::Invalid { file: file.to_string(), line, column, field: field.to_string(), message }
    }

    /// A TOML syntax (or document shape) error from the `toml` crate.
    pub(crate) fn syntax(file: &str, text: &str, err: &toml_edit::TomlError) -> Self {
        let (line, column) = line_col(text, err.span().map_or(0, |s| s.start));
        // The parser's message may span several lines; keep the contract of one.
        let message = err.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
        PolicyError::Syntax { file: file.to_string(), line, column, message }
    }
}

/// 1-based line and column (counted in characters) of byte `offset` in
/// `text`, as errors about TOML files (the policy, the model config) name them.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_col(text, 12), (2, 6));
        assert_eq!(line_col(text, 999), (3, 1));
    }
}
