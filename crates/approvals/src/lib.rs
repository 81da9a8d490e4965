//! Approval rule matching: whether a tool call waits for a person.
//!
//! The rules themselves (`[approvals]` of the policy file) are parsed and
//! located by `clawcage-policy`; this crate reads commands and paths against
//! them. Approval rules are a layer above the OS sandbox, never a substitute
//! for it: everything a command could do is already confined; a rule only
//! adds "ask first" for actions the operator wants to see (a push, a deploy).
//!
//! # Command rules
//! A rule is a command prefix, written as shell words: `"git push"`,
//! `"rm -rf"`, `"kubectl * delete"`. A command matches when
//! - its program is the rule's first word (by base name: `/usr/bin/git`
//!   is `git`; a rule word with a `/` must equal the path);
//! - each further rule word matches, in order, the command's arguments, where
//!   options may come in between (`git -C dir push` matches `git push`: an
//!   argument after an option may be that option's value), a short-option
//!   word matches by its letters anywhere (`-rf` matches `-r -f` and `-fr`),
//!   a long option anywhere, and `*` / `?` / `[…]` are globs within one word;
//! - anything may follow (a rule is a prefix; a trailing `*` says so too).
//!
//! Commands are looked for where a reviewer would: in shell strings
//! (`bash -c "cd x && git push"`, see [`shell`]), behind wrappers
//! (`env`, `command`, `exec`, `nice`, `nohup`, `time`, `timeout`, `stdbuf`,
//! `setsid`, `sudo`, `doas`, `xargs`, `busybox`), and in `find -exec`. A word
//! the shell computes at run time (`$X`, `$(…)`, globs) matches any rule word,
//! and a script that cannot be parsed safely matches every rule.

pub mod shell;

use clawcage_policy::approval::Approvals;
use clawcage_policy::glob::glob_match_word;
use clawcage_policy::glob_match;
use shell::{Parsed, Word};

/// A command that needs approval, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMatch {
    /// The rule that matched (as written), or `None` when the command could not be read safely.
    pub rule: Option<String>,
    /// The simple command that matched, normalised (`…` for words computed at run time).
    pub command: String,
    /// One line for the approver.
    pub reason: String,
}

/// Whether running `argv` needs approval, and the first rule it matches.
pub fn command_match(approvals: &Approvals, argv: &[String]) -> Option<CommandMatch> {
    if approvals.commands.is_empty() {
        return None;
    }
    let words: Vec<Word> = argv.iter().map(|a| Word::Lit(a.clone())).collect();
    let commands = match expand(words, 0) {
        Ok(c) => c,
        Err(why) => {
            return Some(CommandMatch {
                rule: None,
                command: display(&argv.iter().map(|a| Word::Lit(a.clone())).collect::<Vec<_>>()),
                reason: format!("the command cannot be read safely ({why}), so every approval rule applies"),
            })
        }
    };
    for cmd in &commands {
        if let Some(rule) = approvals.commands.iter().find(|r| rule_matches(r.words(), cmd)) {
            return Some(CommandMatch {
                rule: Some(rule.text().to_string()),
                command: display(cmd),
                reason: format!("matches approval rule {:?}", rule.text()),
            });
        }
    }
    None
}

/// Whether a file tool's write to `rel` (relative to the workspace) needs approval.
pub fn write_match<'a>(approvals: &'a Approvals, rel: &str) -> Option<&'a str> {
    approvals.writes.iter().find(|g| glob_match(g, rel)).map(String::as_str)
}

/// Limit on how deep `sh -c "sh -c ..."` nesting is followed.
const MAX_NESTING: usize = 8;
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "posh"];

/// Every simple command that running `words` would run (wrappers removed,
/// shell strings parsed). `Err` when something cannot be read safely.
fn expand(words: Vec<Word>, depth: usize) -> Result<Vec<Vec<Word>>, String> {
    if depth > MAX_NESTING {
        return Err("shells nested too deeply".into());
    }
    let mut out = Vec::new();
    let mut cmd = words;
    loop {
        let Some(Word::Lit(prog)) = cmd.first() else {
            out.push(cmd); // an unknown program: kept, it matches every rule
            return Ok(out);
        };
        let name = base(prog).to_string();
        let args = &cmd[1..];
        if SHELLS.contains(&name.as_str()) {
            return match shell_script(args) {
                Some(Word::Lit(script)) => match shell::parse(&script) {
                    Parsed::Commands(cs) => {
                        for c in cs {
                            out.extend(expand(c, depth + 1)?);
                        }
                        Ok(out)
                    }
                    Parsed::Unparseable(why) => Err(why),
                },
                Some(Word::Unknown) => Err("a shell runs a script computed at run time".into()),
                None => {
                    out.push(cmd); // `bash script.sh`: the shell itself is the command
                    Ok(out)
                }
            };
        }
        if name == "find" {
            out.extend(find_exec(args));
            out.push(cmd);
            return Ok(out);
        }
        match unwrap(&name, args)? {
            Some([]) => {
                out.push(cmd); // `env`, `nohup` alone
                return Ok(out);
            }
            Some(rest) => {
                let mut rest = rest.to_vec();
                if name == "xargs" {
                    rest.push(Word::Unknown); // xargs appends input lines
                }
                cmd = rest;
            }
            None => {
                out.push(cmd);
                return Ok(out);
            }
        }
    }
}

/// The script of `sh [options] -c SCRIPT`, if that is the form.
fn shell_script(args: &[Word]) -> Option<Word> {
    let mut it = args.iter();
    while let Some(w) = it.next() {
        match w.lit() {
            Some(o) if o.starts_with('-') && !o.starts_with("--") && o.contains('c') => return it.next().cloned(),
            Some("-o" | "+o" | "-O" | "+O") => {
                it.next();
            }
            Some(o) if o.starts_with('-') || o.starts_with('+') => {}
            _ => return None,
        }
    }
    None
}

/// Commands given to `find` by `-exec … ;` / `-execdir`, `-ok`, `-okdir`.
fn find_exec(args: &[Word]) -> Vec<Vec<Word>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if matches!(args[i].lit(), Some("-exec" | "-execdir" | "-ok" | "-okdir")) {
            let start = i + 1;
            let mut end = start;
            while end < args.len() && !matches!(args[end].lit(), Some(";" | "+")) {
                end += 1;
            }
            let cmd: Vec<Word> = args[start..end]
                .iter()
                .map(|w| if w.lit() == Some("{}") { Word::Unknown } else { w.clone() })
                .collect();
            if !cmd.is_empty() {
                out.push(cmd);
            }
            i = end;
        }
        i += 1;
    }
    out
}

/// For a wrapper program, the command it runs (its arguments after its own
/// options); `None` when `name` is not a wrapper.
fn unwrap<'a>(name: &str, args: &'a [Word]) -> Result<Option<&'a [Word]>, String> {
    // Options of each wrapper that take a separate value.
    let valued: &[&str] = match name {
        "env" => &["-u", "--unset", "-C", "--chdir"],
        "command" | "builtin" | "nohup" | "time" | "setsid" | "busybox" => &[],
        "exec" => &["-a"],
        "nice" => &["-n", "--adjustment"],
        "stdbuf" => &["-i", "-o", "-e", "--input", "--output", "--error"],
        "timeout" => &["-s", "--signal", "-k", "--kill-after"],
        "sudo" | "doas" => &["-u", "--user", "-g", "--group", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"],
        "xargs" => &["-a", "-d", "-E", "-e", "-I", "-i", "-L", "-l", "-n", "-P", "-s", "--arg-file", "--delimiter"],
        _ => return Ok(None),
    };
    let mut i = 0;
    while i < args.len() {
        let Some(w) = args[i].lit() else {
            return Ok(Some(&args[i..])); // unknown: may be the program
        };
        if name == "env" && (w.starts_with("-S") || w.starts_with("--split-string")) {
            return Err("env -S splits a string the way a shell would".into());
        }
        if w == "--" {
            i += 1;
            break;
        }
        if w.starts_with('-') && w.len() > 1 {
            i += if valued.contains(&w) { 2 } else { 1 };
            continue;
        }
        if name == "env" && w.contains('=') {
            i += 1;
            continue;
        }
        break;
    }
    let mut rest = &args[i.min(args.len())..];
    if name == "timeout" && !rest.is_empty() {
        rest = &rest[1..]; // the duration
    }
    Ok(Some(rest))
}

fn base(prog: &str) -> &str {
    prog.rsplit('/').next().unwrap_or(prog)
}

/// Whether `cmd` begins with `rule` (see the module docs).
fn rule_matches(rule: &[String], cmd: &[Word]) -> bool {
    let Some((prog, rest)) = rule.split_first() else { return false };
    match cmd.first() {
        Some(Word::Unknown) => {}
        Some(Word::Lit(p)) if prog.contains('/') => {
            if p != prog {
                return false;
            }
        }
        Some(Word::Lit(p)) => {
            if !glob_match_word(prog, base(p)) {
                return false;
            }
        }
        None => return false,
    }
    let args = &cmd[1..];
    // Options in the rule match anywhere.
    let shorts: String = args
        .iter()
        .filter_map(Word::lit)
        .filter(|a| a.starts_with('-') && !a.starts_with("--") && a.len() > 1)
        .flat_map(|a| a[1..].chars())
        .collect();
    let any_unknown = args.contains(&Word::Unknown);
    for opt in rest.iter().filter(|w| w.starts_with('-') && w.len() > 1) {
        let found = if let Some(long) = opt.strip_prefix("--") {
            args.iter().filter_map(Word::lit).any(|a| {
                a.strip_prefix("--").is_some_and(|l| l == long || l.split_once('=').is_some_and(|(k, _)| k == long))
            })
        } else {
            opt[1..].chars().all(|c| shorts.contains(c))
        };
        if !found && !any_unknown {
            return false;
        }
    }
    // Positional words in order; an argument right after an option may be its value.
    let mut i = 0;
    for want in rest.iter().filter(|w| !(w.starts_with('-') && w.len() > 1)) {
        loop {
            let Some(arg) = args.get(i) else { return false };
            i += 1;
            match arg {
                Word::Unknown => break,
                Word::Lit(a) if a.starts_with('-') && a.len() > 1 => continue,
                Word::Lit(a) if glob_match_word(want, a) => break,
                Word::Lit(_) => {
                    let after_option = i >= 2
                        && args[i - 2].lit().is_some_and(|p| p.starts_with('-') && p.len() > 1 && !p.contains('='));
                    if !after_option {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// A command as the approver reads it: shell-quoted words, `…` for computed ones.
fn display(cmd: &[Word]) -> String {
    cmd.iter().map(|w| w.lit().map_or_else(|| "…".to_string(), quote)).collect::<Vec<_>>().join(" ")
}

/// `argv` as one line a person can read (and a shell would split back):
/// words with anything but `[A-Za-z0-9_./=:,+@%-]` are single-quoted.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn quote(w: &str) -> String {
    if !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./=:,+@%-".contains(&b)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawcage_policy::approval::CommandRule;

    fn rules(list: &[&str]) -> Approvals {
        Approvals { commands: list.iter().map(|r| CommandRule::parse(r).unwrap()).collect(), ..Approvals::default() }
    }

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    fn bash(script: &str) -> Vec<String> {
        argv(&["bash", "-c", script])
    }

    fn hits(a: &Approvals, cmd: &[String]) -> bool {
        command_match(a, cmd).is_some()
    }

    #[test]
    fn plain_argv_matches_by_prefix_and_base_name() {
        let a = rules(&["git push"]);
        assert!(hits(&a, &argv(&["git", "push"])));
        assert!(hits(&a, &argv(&["git", "push", "origin", "main", "--force"])));
        assert!(hits(&a, &argv(&["/usr/bin/git", "push"])));
        assert!(hits(&a, &argv(&["git", "-C", "/repo", "--no-pager", "push"])));
        assert!(hits(&a, &argv(&["git", "-c", "push.default=current", "push"])));
        assert!(!hits(&a, &argv(&["git", "status"])));
        assert!(!hits(&a, &argv(&["git", "log", "--grep", "push"])));
        assert!(!hits(&a, &argv(&["git", "log", "push"])));
        assert!(!hits(&a, &argv(&["gitx", "push"])));
        assert!(!hits(&a, &argv(&["echo", "git", "push"])));
    }

    #[test]
    fn option_words_match_by_letters_anywhere() {
        let a = rules(&["rm -rf"]);
        for yes in [&["rm", "-rf", "x"][..], &["rm", "-fr", "x"], &["rm", "-r", "-f", "x"], &["rm", "x", "-Rrf"]] {
            assert!(hits(&a, &argv(yes)), "{yes:?}");
        }
        assert!(!hits(&a, &argv(&["rm", "-r", "x"])));
        assert!(!hits(&a, &argv(&["rm", "x"])));
        let long = rules(&["git push --force"]);
        assert!(hits(&long, &argv(&["git", "push", "origin", "--force"])));
        assert!(hits(&long, &argv(&["git", "push", "--force=yes"])));
        assert!(!hits(&long, &argv(&["git", "push", "--force-with-lease"])));
    }

    #[test]
    fn shell_strings_wrappers_and_substitutions() {
        let a = rules(&["git push *"]);
        for yes in [
            "git push",
            "cd src && git push origin main",
            "true; git push",
            "echo hi | git push",
            "GIT_TRACE=1 git push",
            "env -i PATH=/bin git push",
            "/usr/bin/git push",
            "\\git push",
            "'git' \"push\"",
            "g\"it\" pu'sh'",
            "sudo -u me git push",
            "timeout 10 git push",
            "nice -n 5 nohup git push &",
            "command git push",
            "exec git push",
            "echo $(git push)",
            "echo `git push`",
            "x=$(git push --dry-run)",
            "(cd x; git push)",
            "{ git push; }",
            "if true; then git push; fi",
            "bash -c 'git push'",
            "sh -ec \"bash -c 'git push'\"",
            "find . -name x -exec git push {} \\;",
            "echo origin | xargs git push",
            "$GIT push",
            "git $SUB",
            "g* push",
            "cat <<EOF\nhi\nEOF",
            "for r in a b; do git push $r; done",
            "eval git push",
            "f() { git push; }; f",
            "bash -c \"$SCRIPT\"",
        ] {
            assert!(hits(&a, &bash(yes)), "{yes:?} should need approval");
        }
        for no in [
            "git status",
            "echo git push",
            "echo 'git push'",
            "printf '%s\\n' \"git push\"",
            "git log --oneline | grep push",
            "ls; cat README # git push",
            "pushd x && git pull",
            "grep -r 'git push' .",
        ] {
            assert!(!hits(&a, &bash(no)), "{no:?} should not need approval");
        }
    }

    #[test]
    fn unparseable_matches_every_rule_and_no_rules_match_nothing() {
        let a = rules(&["kubectl delete"]);
        let m = command_match(&a, &bash("cat <<EOF\nx\nEOF")).unwrap();
        assert_eq!(m.rule, None);
        assert!(m.reason.contains("cannot be read safely"), "{}", m.reason);
        assert!(command_match(&Approvals::default(), &bash("cat <<EOF\nx\nEOF")).is_none());
        assert!(!hits(&a, &bash("kubectl get pods")));
        assert!(hits(&a, &bash("kubectl -n prod delete pod x")));
    }

    #[test]
    fn the_match_names_the_rule_and_the_normalised_command() {
        let a = rules(&["git push", "rm -rf"]);
        let m = command_match(&a, &bash("cd /w && FOO=1 rm -rf \"$DIR\" 'a b'")).unwrap();
        assert_eq!(m.rule.as_deref(), Some("rm -rf"));
        assert_eq!(m.command, "rm -rf … 'a b'");
    }

    #[test]
    fn write_rules_are_workspace_globs() {
        let a = Approvals { writes: vec!["src/**".into(), "*.lock".into()], ..Approvals::default() };
        assert_eq!(write_match(&a, "src/a/b.rs"), Some("src/**"));
        assert_eq!(write_match(&a, "Cargo.lock"), Some("*.lock"));
        assert_eq!(write_match(&a, "docs/x.md"), None);
    }

    #[test]
    fn rules_from_a_policy_file_match() {
        let text = "[approvals]\ncommands = [\"git push *\", \"rm -rf\"]\nwrites = [\"src/**\", \"*.lock\"]\n";
        let p = clawcage_policy::parse_str(text, "policy.toml").unwrap();
        let argv = argv(&["bash", "-c", "cd /w && /usr/bin/git -C x push origin"]);
        assert_eq!(command_match(&p.approvals, &argv).unwrap().rule.as_deref(), Some("git push *"));
        assert_eq!(write_match(&p.approvals, "Cargo.lock"), Some("*.lock"));
    }

    /// How rules were split before the policy crate had its own splitter:
    /// through the shell reader, which had to find one all-literal command.
    fn words_via_shell_reader(text: &str) -> Option<Vec<String>> {
        let quoted: String = text
            .split_whitespace()
            .map(|w| if w.contains(['*', '?', '[']) { format!("'{}'", w.replace('\'', "")) } else { w.to_string() })
            .collect::<Vec<_>>()
            .join(" ");
        let Parsed::Commands(c) = shell::parse(&quoted) else { return None };
        let [cmd] = &c[..] else { return None };
        let mut lits: Vec<String> = cmd.iter().map(|w| w.lit().map(str::to_string)).collect::<Option<_>>()?;
        while lits.last().is_some_and(|w| w == "*") {
            lits.pop();
        }
        (!lits.is_empty() && !lits[0].contains(['*', '?', '['])).then_some(lits)
    }

    #[test]
    fn the_policy_rule_splitter_agrees_with_the_shell_reader() {
        // Accepted by both, with the same words.
        for text in [
            "git push",
            "git push *",
            "kubectl * delete",
            "rm -rf",
            "'my tool' run",
            "\"my tool\" run --x=1",
            "a\\ b c",
            "g'i't pu\"sh\"",
            "git stash@{0}",
            "echo \"say \\\"hi\\\"\" 'it''s'",
            "héllo wörld",
            "/usr/bin/git push",
            "git  push\t*  *",
            "npm publish [a-z]*",
            "git a#b",
        ] {
            let new = CommandRule::parse(text).map(|r| r.words().to_vec()).ok();
            assert!(new.is_some(), "{text:?} should be a rule");
            assert_eq!(new, words_via_shell_reader(text), "{text:?}");
        }
        // Refused by both.
        for text in [
            "",
            "  ",
            "*",
            "* push",
            "git push; rm",
            "a && b",
            "a | b",
            "git $X",
            "git $(x)",
            "git `x`",
            "git \"$X\"",
            "~/bin/x",
            "echo {a,b}",
            "echo 'open",
            "echo \"open",
            "echo x\\",
            "f()",
            "echo (",
            "cat <<EOF",
            "case x",
            "eval git push",
            "for x",
            "echo {",
            "echo }",
            "echo '{'",
            "x \\}",
        ] {
            assert!(CommandRule::parse(text).is_err(), "{text:?} should be refused");
            assert_eq!(words_via_shell_reader(text), None, "{text:?}");
        }
        // Stricter than the shell reader, which silently dropped these parts:
        // the rule as written would not say what it matches.
        for (text, dropped) in [
            ("FOO=1 git push", vec!["git", "push"]),
            ("! git push", vec!["git", "push"]),
            ("if git push", vec!["git", "push"]),
            ("git push > log", vec!["git", "push"]),
            ("git push # always", vec!["git", "push"]),
            ("{ git push; }", vec!["git", "push"]),
        ] {
            assert!(CommandRule::parse(text).is_err(), "{text:?} should be refused");
            assert_eq!(words_via_shell_reader(text), Some(dropped.iter().map(|w| w.to_string()).collect()), "{text:?}");
        }
    }
}
