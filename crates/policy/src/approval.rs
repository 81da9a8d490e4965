//! `[approvals]`: which tool calls wait for a person. The rules are data
//! here, parsed and located with the rest of the policy file; the matching
//! (argv, shell strings, wrappers) lives in the `clawcage-approvals` crate.
//!
//! A command rule is a command prefix written as literal shell words
//! (`"git push"`, `"rm -rf"`, `"kubectl * delete"`): quotes and backslash
//! escapes are understood, `*` / `?` / `[…]` are globs within one word, and
//! anything else a shell would treat specially (operators, redirections,
//! expansions, comments, leading assignments or keywords) is refused.

use serde::Serialize;
use std::time::Duration;

/// Unanswered approval requests are denied after this long unless the policy says otherwise.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// `[approvals]` of a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approvals {
    /// Command rules (prefixes of argv, written as shell words).
    pub commands: Vec<CommandRule>,
    /// What happens on the first connection to a host `[network] allow` does not list.
    pub network: NetworkApproval,
    /// Globs (relative to the workspace) of paths whose writes by file tools wait for approval.
    pub writes: Vec<String>,
    /// How long a request waits before it is denied.
    #[serde(serialize_with = "ser_secs")]
    pub timeout: Duration,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals {
            commands: Vec::new(),
            network: NetworkApproval::Deny,
            writes: Vec::new(),
            timeout: DEFAULT_APPROVAL_TIMEOUT,
        }
    }
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}s", d.as_secs_f64()))
}

/// `[approvals] network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkApproval {
    /// Unlisted hosts are refused (403).
    Deny,
    /// The first connection to an unlisted host asks instead of failing.
    Ask,
}

/// One command rule, as written and split into words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct CommandRule {
    text: String,
    words: Vec<String>,
}

impl From<CommandRule> for String {
    fn from(r: CommandRule) -> String {
        r.text
    }
}

impl CommandRule {
    /// Parse a rule: literal shell words (quotes allowed), no operators or expansions.
    pub fn parse(text: &str) -> Result<CommandRule, String> {
        let bad = |why: &str| format!("{text:?} is not a command rule: {why} (expected words such as \"git push\")");
        // Globs are rule syntax here, not file names: quote them like literal text.
        let quoted: String = text
            .split_whitespace()
            .map(|w| if w.contains(['*', '?', '[']) { format!("'{}'", w.replace('\'', "")) } else { w.to_string() })
            .collect::<Vec<_>>()
            .join(" ");
        let mut lits = split_words(&quoted).map_err(|why| bad(&why))?;
        if lits.is_empty() {
            return Err(bad("it is empty"));
        }
        while lits.last().is_some_and(|w| w == "*") {
            lits.pop(); // a trailing `*` is what a prefix rule means anyway
        }
        if lits.is_empty()
            || lits[0].contains(['*', '?', '['])
            || NOT_PROGRAMS.contains(&lits[0].as_str())
            || is_assignment(&lits[0])
        {
            return Err(bad("the first word must name a program"));
        }
        Ok(CommandRule { text: text.to_string(), words: lits })
    }

    /// The rule as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The rule's words, quotes removed, without a trailing `*`.
    pub fn words(&self) -> &[String] {
        &self.words
    }
}

/// Words a shell would not treat as a program when they come first.
const NOT_PROGRAMS: &[&str] = &[
    "if", "then", "elif", "else", "fi", "while", "until", "do", "done", "!", "case", "esac", "for", "select",
    "function", "coproc", "[[", "]]", "eval",
];

/// Split a rule into literal shell words: blanks separate, `'…'`, `"…"` and
/// `\x` quote; whatever else a shell would act on is an error.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    const EXPANSION: &str = "it uses shell expansions";
    const GROUPS: &str = "shell groups and comments are not part of a rule";
    let mut words = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&first) = it.peek() {
        match first {
            ' ' => {
                it.next();
                continue;
            }
            '#' => return Err(GROUPS.into()),
            '~' => return Err(EXPANSION.into()),
            _ => {}
        }
        let mut w = String::new();
        while let Some(c) = it.next_if(|&c| c != ' ') {
            match c {
                '\'' => loop {
                    match it.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                },
                '"' => loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.peek() {
                            Some(&e @ ('"' | '\\' | '$' | '`')) => {
                                w.push(e);
                                it.next();
                            }
                            _ => w.push('\\'),
                        },
                        Some('$' | '`') => return Err(EXPANSION.into()),
                        Some(c) => w.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                },
                '\\' => w.push(it.next().ok_or("a trailing backslash")?),
                '$' | '`' => return Err(EXPANSION.into()),
                '{' => {
                    let body: String = it.clone().take_while(|&c| c != '}').collect();
                    let closed = it.clone().any(|c| c == '}');
                    if closed && !body.contains(' ') && (body.contains(',') || body.contains("..")) {
                        return Err(EXPANSION.into());
                    }
                    w.push('{');
                }
                ';' | '&' | '|' | '<' | '>' | '(' | ')' | '\n' => {
                    return Err("it holds shell operators or more than one command".into())
                }
                c => w.push(c),
            }
        }
        if w == "{" || w == "}" {
            return Err(GROUPS.into());
        }
        words.push(w);
    }
    Ok(words)
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_reject() {
        assert_eq!(CommandRule::parse("git push *").unwrap().words, ["git", "push"]);
        assert_eq!(CommandRule::parse("kubectl * delete").unwrap().words, ["kubectl", "*", "delete"]);
        assert_eq!(CommandRule::parse("'my tool' run").unwrap().words, ["my tool", "run"]);
        for bad in ["", "  ", "git push; rm", "git $X", "* push", "a && b"] {
            assert!(CommandRule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
