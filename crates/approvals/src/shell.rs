//! A conservative reading of shell command strings, for approval rules.
//!
//! Approval rules match commands on their argv. A tool call often arrives as
//! a shell string (`bash -c "cd src && git push origin main"`), so the string
//! is split into the simple commands it would run. This is not a shell: it
//! understands a small, safe subset and says so when a script goes beyond it.
//!
//! - Words: unquoted, `'single'`, `"double"` (with `\"`, `\\`, `\$`, `` \` ``
//!   escapes), backslash escapes, and their concatenations.
//! - Separators: `;`, `&`, `&&`, `||`, `|`, `|&`, newlines; `(`…`)` and
//!   `{`…`}` groups; the keywords `if then elif else fi while until do done !`.
//! - Redirections (`>`, `>>`, `<`, `2>&1`, `&>`, `<<<`, ...) are dropped with
//!   their target; leading `NAME=value` assignments are dropped.
//! - `$(…)`, `` `…` ``, `<(…)` and `>(…)` are parsed recursively: the commands
//!   inside are commands too, and the word containing them is unknown.
//! - A word the shell would expand (`$VAR`, `${…}`, `$((…))`, globs `* ? [`,
//!   `~`, brace lists) is [`Word::Unknown`]: it may be anything, so it matches
//!   any rule token.
//!
//! Anything else — here-documents, `case`, `for`, function definitions,
//! `eval`, unbalanced quotes or parentheses — makes the whole script
//! [`Parsed::Unparseable`], which approval rules treat as matching.

/// One word of a command as the shell would pass it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// The exact text the program would receive.
    Lit(String),
    /// The shell would compute this word at run time: it could be anything.
    Unknown,
}

impl Word {
    /// The literal text, if known.
    pub fn lit(&self) -> Option<&str> {
        match self {
            Word::Lit(s) => Some(s),
            Word::Unknown => None,
        }
    }
}

/// What a script would run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Every simple command the script can run, in order of appearance.
    Commands(Vec<Vec<Word>>),
    /// The script uses shell syntax outside the understood subset.
    Unparseable(String),
}

/// Split `script` into the simple commands it runs (see the module docs).
pub fn parse(script: &str) -> Parsed {
    let mut p = Parser { s: script.as_bytes(), i: 0, out: Vec::new(), depth: 0 };
    match p.list(None) {
        Ok(()) => Parsed::Commands(p.out),
        Err(why) => Parsed::Unparseable(why),
    }
}

/// Nesting limit for groups and substitutions (a script is not a stress test).
const MAX_DEPTH: usize = 32;

const KEYWORDS_AS_SEPARATORS: &[&str] = &["if", "then", "elif", "else", "fi", "while", "until", "do", "done", "!"];
const REFUSED_KEYWORDS: &[&str] = &["case", "esac", "for", "select", "function", "coproc", "[[", "]]", "eval"];

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    out: Vec<Vec<Word>>,
    depth: usize,
}

/// A token between separators.
enum Tok {
    Word(Word),
    /// A separator or operator that ends a simple command.
    Sep,
    /// A redirection operator; the next word is its target.
    Redirect,
    Open(u8),
    Close(u8),
    End,
}

type R<T> = Result<T, String>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.i + n).copied()
    }

    /// Parse commands until `close` (or the end when `None`).
    fn list(&mut self, close: Option<u8>) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        let mut cmd: Vec<Word> = Vec::new();
        let mut at_start = true; // at the start of a simple command (assignments, keywords allowed)
        loop {
            match self.token()? {
                Tok::End => {
                    if close.is_some() {
                        return Err("unbalanced parentheses or braces".into());
                    }
                    self.finish(&mut cmd)?;
                    break;
                }
                Tok::Close(c) => {
                    if Some(c) != close {
                        return Err(format!("unexpected `{}`", c as char));
                    }
                    self.finish(&mut cmd)?;
                    break;
                }
                Tok::Open(c) => {
                    if !cmd.is_empty() {
                        // `name ( )` is a function definition; `echo (` is a syntax error.
                        return Err("function definitions and stray parentheses are not understood".into());
                    }
                    self.list(Some(if c == b'(' { b')' } else { b'}' }))?;
                    at_start = true;
                }
                Tok::Sep => {
                    self.finish(&mut cmd)?;
                    at_start = true;
                }
                Tok::Redirect => match self.token()? {
                    Tok::Word(_) => {}
                    _ => return Err("a redirection without a target".into()),
                },
                Tok::Word(w) => {
                    if at_start {
                        if let Word::Lit(text) = &w {
                            if KEYWORDS_AS_SEPARATORS.contains(&text.as_str()) {
                                continue;
                            }
                            if REFUSED_KEYWORDS.contains(&text.as_str()) {
                                return Err(format!("`{text}` is not understood"));
                            }
                            if is_assignment(text) {
                                continue;
                            }
                        }
                    }
                    at_start = false;
                    cmd.push(w);
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn finish(&mut self, cmd: &mut Vec<Word>) -> R<()> {
        if cmd.is_empty() {
            return Ok(());
        }
        let words = std::mem::take(cmd);
        if let Some(Word::Lit(w)) = words.first() {
            if w.ends_with("()") {
                return Err("function definitions are not understood".into());
            }
        }
        self.out.push(words);
        Ok(())
    }

    fn token(&mut self) -> R<Tok> {
        // Blanks and line continuations.
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => self.i += 1,
                Some(b'\\') if self.peek_at(1) == Some(b'\n') => self.i += 2,
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
        let Some(c) = self.peek() else { return Ok(Tok::End) };
        match c {
            b'\n' | b';' => {
                self.i += 1;
                if c == b';' && self.peek() == Some(b';') {
                    return Err("`;;` (case) is not understood".into());
                }
                Ok(Tok::Sep)
            }
            b'|' => {
                self.i += 1;
                if matches!(self.peek(), Some(b'|' | b'&')) {
                    self.i += 1;
                }
                Ok(Tok::Sep)
            }
            b'&' => {
                self.i += 1;
                match self.peek() {
                    Some(b'&') => {
                        self.i += 1;
                        Ok(Tok::Sep)
                    }
                    Some(b'>') => {
                        self.i += 1;
                        if self.peek() == Some(b'>') {
                            self.i += 1;
                        }
                        Ok(Tok::Redirect)
                    }
                    _ => Ok(Tok::Sep),
                }
            }
            b'(' => {
                self.i += 1;
                if self.peek() == Some(b'(') {
                    return Err("`((` arithmetic is not understood".into());
                }
                Ok(Tok::Open(b'('))
            }
            b')' => {
                self.i += 1;
                Ok(Tok::Close(b')'))
            }
            b'<' | b'>' => self.redirect_or_substitution(),
            b'0'..=b'9' if self.fd_redirect_ahead() => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
                self.redirect_or_substitution()
            }
            b'[' if self.s[self.i..].starts_with(b"[[")
                && matches!(self.peek_at(2), None | Some(b' ' | b'\t' | b'\n')) =>
            {
                Err("`[[` is not understood".into())
            }
            _ => {
                let w = self.word()?;
                // `{` and `}` are reserved words only when they stand alone.
                match &w {
                    Word::Lit(t) if t == "{" => Ok(Tok::Open(b'{')),
                    Word::Lit(t) if t == "}" => Ok(Tok::Close(b'}')),
                    _ => Ok(Tok::Word(w)),
                }
            }
        }
    }

    /// `2>`, `10<` …: digits directly followed by a redirection operator.
    fn fd_redirect_ahead(&self) -> bool {
        let mut j = self.i;
        while matches!(self.s.get(j), Some(b'0'..=b'9')) {
            j += 1;
        }
        matches!(self.s.get(j), Some(b'<' | b'>'))
    }

    fn redirect_or_substitution(&mut self) -> R<Tok> {
        let op = self.peek().unwrap_or(b'>');
        self.i += 1;
        match (op, self.peek()) {
            (_, Some(b'(')) => {
                // Process substitution: its commands run; the word is unknown.
                self.i += 1;
                self.list(Some(b')'))?;
                Ok(Tok::Word(Word::Unknown))
            }
            (b'<', Some(b'<')) => {
                self.i += 1;
                if self.peek() == Some(b'<') {
                    self.i += 1; // here-string: the next word is data
                    return Ok(Tok::Redirect);
                }
                Err("here-documents are not understood".into())
            }
            (b'>', Some(b'>' | b'|')) | (b'<', Some(b'>')) => {
                self.i += 1;
                Ok(Tok::Redirect)
            }
            (_, Some(b'&')) => {
                self.i += 1; // `2>&1`, `<&3`: the target is the next word
                Ok(Tok::Redirect)
            }
            _ => Ok(Tok::Redirect),
        }
    }

    /// One word, with quotes removed; `Unknown` if the shell would expand it.
    fn word(&mut self) -> R<Word> {
        let mut text = String::new();
        let mut unknown = false;
        let start = self.i;
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b')' => break,
                b'(' => {
                    // `name()` (a function) or `@(…)` extglob: not understood.
                    return Err("parentheses inside a word are not understood".into());
                }
                b'\'' => {
                    self.i += 1;
                    let end = self.find(b'\'').ok_or("unterminated single quote")?;
                    text.push_str(&self.text(self.i, end));
                    self.i = end + 1;
                }
                b'"' => {
                    self.i += 1;
                    unknown |= self.double_quoted(&mut text)?;
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'\n') => self.i += 1,
                        Some(_) => {
                            let ch = self.char_here();
                            text.push_str(&ch);
                            self.i += ch.len();
                        }
                        None => return Err("a trailing backslash".into()),
                    }
                }
                b'$' | b'`' => {
                    unknown = true;
                    self.expansion()?;
                }
                b'*' | b'?' | b'[' => {
                    unknown = true; // a glob: the shell replaces it with file names
                    self.i += 1;
                }
                b'~' if self.i == start => {
                    unknown = true;
                    self.i += 1;
                }
                b'{' if self.brace_expansion_ahead() => {
                    unknown = true;
                    self.i += 1;
                }
                _ => {
                    let ch = self.char_here();
                    text.push_str(&ch);
                    self.i += ch.len();
                }
            }
        }
        Ok(if unknown { Word::Unknown } else { Word::Lit(text) })
    }

    /// Inside `"…"` (the opening quote consumed). Returns whether it expands.
    fn double_quoted(&mut self, text: &mut String) -> R<bool> {
        let mut unknown = false;
        loop {
            match self.peek() {
                None => return Err("unterminated double quote".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(unknown);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'$' | b'`') => {
                            text.push(self.s[self.i] as char);
                            self.i += 1;
                        }
                        Some(b'\n') => self.i += 1,
                        _ => text.push('\\'),
                    }
                }
                Some(b'$' | b'`') => {
                    unknown = true;
                    self.expansion()?;
                }
                Some(_) => {
                    let ch = self.char_here();
                    text.push_str(&ch);
                    self.i += ch.len();
                }
            }
        }
    }

    /// `$NAME`, `${…}`, `$((…))`, `$(…)` or `` `…` `` at the cursor. Command
    /// substitutions are parsed, their commands recorded.
    fn expansion(&mut self) -> R<()> {
        if self.peek() == Some(b'`') {
            self.i += 1;
            let end = self.find(b'`').ok_or("unterminated backquote")?;
            let inner = self.text(self.i, end);
            self.i = end + 1;
            return self.nested(&inner);
        }
        self.i += 1; // `$`
        match self.peek() {
            Some(b'(') if self.peek_at(1) == Some(b'(') => {
                // Arithmetic: skip to the matching `))`, counting parentheses.
                let mut depth = 0usize;
                while let Some(c) = self.peek() {
                    self.i += 1;
                    match c {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                }
                Err("unterminated $((".into())
            }
            Some(b'(') => {
                self.i += 1;
                self.list(Some(b')'))
            }
            Some(b'{') => {
                let end = self.find(b'}').ok_or("unterminated ${")?;
                self.i = end + 1;
                Ok(())
            }
            _ => {
                while matches!(self.peek(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_')) {
                    self.i += 1;
                }
                if matches!(self.peek(), Some(b'@' | b'*' | b'#' | b'?' | b'-' | b'$' | b'!')) {
                    self.i += 1;
                }
                Ok(())
            }
        }
    }

    fn nested(&mut self, inner: &str) -> R<()> {
        let mut p = Parser { s: inner.as_bytes(), i: 0, out: Vec::new(), depth: self.depth };
        p.list(None)?;
        self.out.extend(p.out);
        Ok(())
    }

    /// `{a,b}` or `{1..3}` ahead (brace expansion), not a lone `{`.
    fn brace_expansion_ahead(&self) -> bool {
        let rest = &self.s[self.i..];
        let Some(end) = rest.iter().position(|&b| b == b'}') else { return false };
        let body = &rest[1..end];
        !body.iter().any(|b| b.is_ascii_whitespace()) && (body.contains(&b',') || body.windows(2).any(|w| w == b".."))
    }

    fn find(&self, b: u8) -> Option<usize> {
        self.s[self.i..].iter().position(|&c| c == b).map(|p| p + self.i)
    }

    fn text(&self, from: usize, to: usize) -> String {
        String::from_utf8_lossy(&self.s[from..to]).into_owned()
    }

    /// The (UTF-8) character at the cursor.
    fn char_here(&self) -> String {
        let len = match self.s[self.i] {
            b if b < 0x80 => 1,
            b if b >= 0xF0 => 4,
            b if b >= 0xE0 => 3,
            _ => 2,
        };
        self.text(self.i, (self.i + len).min(self.s.len()))
    }
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmds(s: &str) -> Vec<Vec<String>> {
        match parse(s) {
            Parsed::Commands(c) => c
                .into_iter()
                .map(|w| w.into_iter().map(|w| w.lit().map_or("?".to_string(), str::to_string)).collect())
                .collect(),
            Parsed::Unparseable(why) => panic!("{s:?} unparseable: {why}"),
        }
    }

    fn refused(s: &str) {
        assert!(matches!(parse(s), Parsed::Unparseable(_)), "{s:?} should be unparseable: {:?}", parse(s));
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(cmds("git push origin main"), [["git", "push", "origin", "main"]]);
        assert_eq!(cmds("git commit -m 'a b'"), [["git", "commit", "-m", "a b"]]);
        assert_eq!(cmds(r#"echo "say \"hi\"" 'it''s' a\ b"#), [["echo", "say \"hi\"", "its", "a b"]]);
        assert_eq!(cmds("g'i't pu\"sh\""), [["git", "push"]]);
        assert_eq!(cmds("echo 'héllo' wörld"), [["echo", "héllo", "wörld"]]);
    }

    #[test]
    fn separators_pipelines_groups_and_keywords() {
        assert_eq!(
            cmds("cd src && git push; ls | wc -l"),
            [vec!["cd", "src"], vec!["git", "push"], vec!["ls"], vec!["wc", "-l"]]
        );
        assert_eq!(cmds("a || b & c |& d\ne"), [["a"], ["b"], ["c"], ["d"], ["e"]]);
        assert_eq!(cmds("(cd x; make) && { git push; }"), [vec!["cd", "x"], vec!["make"], vec!["git", "push"]]);
        assert_eq!(
            cmds("if true; then git push; else echo no; fi"),
            [vec!["true"], vec!["git", "push"], vec!["echo", "no"]]
        );
        assert_eq!(cmds("while ! make; do sleep 1; done"), [vec!["make"], vec!["sleep", "1"]]);
        assert_eq!(cmds("echo a # git push\nls"), [vec!["echo", "a"], vec!["ls"]]);
    }

    #[test]
    fn assignments_and_redirections_are_dropped() {
        assert_eq!(cmds("GIT_TRACE=1 FOO='a b' git push >out 2>&1 </dev/null"), [["git", "push"]]);
        assert_eq!(cmds("git push 2>/dev/null &>>log >|f <<<'x'"), [["git", "push"]]);
        assert_eq!(cmds("x=1; echo $x=2"), [["echo", "?"]]);
    }

    #[test]
    fn expansions_are_unknown_and_substitutions_are_commands() {
        assert_eq!(cmds("git push $REMOTE"), [["git", "push", "?"]]);
        assert_eq!(cmds("$CMD push"), [["?", "push"]]);
        assert_eq!(cmds(r#"git push "${R:-origin}" *.txt ~/x {a,b}"#), [["git", "push", "?", "?", "?", "?"]]);
        assert_eq!(
            cmds("echo $(git push) `rm -rf /`"),
            [vec!["git", "push"], vec!["rm", "-rf", "/"], vec!["echo", "?", "?"]]
        );
        assert_eq!(cmds("diff <(git show) >(cat)"), [vec!["git", "show"], vec!["cat"], vec!["diff", "?", "?"]]);
        assert_eq!(cmds("echo $((1 + (2*3)))"), [["echo", "?"]]);
        assert_eq!(cmds("echo '$(not run)' \"\\$x\""), [["echo", "$(not run)", "$x"]]);
    }

    #[test]
    fn beyond_the_subset_is_unparseable() {
        refused("cat <<EOF\ngit push\nEOF");
        refused("case $x in a) git push;; esac");
        refused("for r in a b; do git push $r; done");
        refused("f() { git push; }; f");
        refused("function f { git push; }");
        refused("eval 'git push'");
        refused("echo 'unterminated");
        refused("echo \"unterminated");
        refused("(git push");
        refused("git push)");
        refused("[[ -f x ]] && git push");
        refused("(( x = 1 ))");
        refused(&"(".repeat(100));
    }
}
