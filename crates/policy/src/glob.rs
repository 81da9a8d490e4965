//! Globs on workspace-relative paths, as `deny`, `protect` and
//! `[approvals] writes` use them: `**` spans any number of components, `*`
//! and `?` stay within one, `[abc]` / `[!abc]` / `[a-z]` are classes.

/// Match a relative path (components separated by `/`) against a glob.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let comps: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match_components(&pat, &comps)
}

/// Match one word (no `/` semantics) against a glob of `*`, `?` and classes.
pub fn glob_match_word(pattern: &str, word: &str) -> bool {
    match_one(pattern.as_bytes(), word.as_bytes())
}

fn match_components(pat: &[&str], comps: &[&str]) -> bool {
    match pat.split_first() {
        None => comps.is_empty(),
        Some((&"**", rest)) => (0..=comps.len()).any(|i| match_components(rest, &comps[i..])),
        Some((p, rest)) => match comps.split_first() {
            Some((c, crest)) => match_one(p.as_bytes(), c.as_bytes()) && match_components(rest, crest),
            None => false,
        },
    }
}

fn match_one(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => (0..=s.len()).any(|i| match_one(&p[1..], &s[i..])),
        (Some(b'?'), Some(_)) => match_one(&p[1..], &s[1..]),
        (Some(b'['), Some(&c)) => match p.iter().position(|&b| b == b']') {
            Some(end) if end > 1 => {
                let (neg, set) = match p[1] {
                    b'!' | b'^' => (true, &p[2..end]),
                    _ => (false, &p[1..end]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && match_one(&p[end + 1..], &s[1..])
            }
            _ => c == b'[' && match_one(&p[1..], &s[1..]),
        },
        (Some(a), Some(b)) => a == b && match_one(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_words() {
        assert!(glob_match("**/.env", ".env"));
        assert!(glob_match("**/.env", "a/b/.env"));
        assert!(!glob_match("**/.env", "a/.envrc"));
        assert!(glob_match("*.pem", "key.pem"));
        assert!(!glob_match("*.pem", "d/key.pem"));
        assert!(glob_match("secrets/**", "secrets/x/y"));
        assert!(glob_match(".env*", ".env.local"));
        assert!(glob_match("[a-c]?.txt", "bx.txt"));
        assert!(!glob_match("[!a-c]?.txt", "bx.txt"));
        assert!(glob_match_word("python3*", "python3.11"));
        assert!(!glob_match_word("python3*", "python"));
        assert!(glob_match_word("a/*", "a/b/c"), "a word glob has no component rule");
    }
}
