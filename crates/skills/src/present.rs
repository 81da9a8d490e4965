//! How a skill's needs are shown to the person approving it, like an app's
//! permissions, and how they compare with what was approved before.

use crate::manifest::{Manifest, Needs};
use std::fmt::Write as _;

/// A verb, the declared items, and how to find the same kind in older needs.
type Row<'a> = (&'a str, &'a [String], fn(&Needs) -> &[String]);

/// The approval screen for `manifest` (hash `hash`). `previous`: the hash and
/// needs approved before, when the skill is being replaced.
pub fn approval_text(manifest: &Manifest, hash: &str, previous: Option<(&str, &Needs)>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Skill {} ({})", manifest.name, &hash[..hash.len().min(16)]);
    let _ = writeln!(s, "  {}", manifest.description);
    if let Some((old_hash, _)) = previous {
        if old_hash == hash {
            let _ = writeln!(s, "  unchanged since it was approved");
        } else {
            let _ = writeln!(s, "  CHANGED since it was approved (was {})", &old_hash[..old_hash.len().min(16)]);
        }
    }
    let _ = writeln!(s, "It asks for:");
    if manifest.needs.is_empty() {
        let _ = writeln!(s, "  nothing: its scripts run with the system directories only, no network, no secrets");
    }
    let old = previous.map(|(_, n)| n);
    let rows: [Row<'_>; 5] = [
        ("connect to", &manifest.needs.network, |n| &n.network),
        ("use the secret", &manifest.needs.secrets, |n| &n.secrets),
        ("read", &manifest.needs.read, |n| &n.read),
        ("write", &manifest.needs.write, |n| &n.write),
        ("use the tool", &manifest.needs.tools, |n| &n.tools),
    ];
    for (verb, items, get) in rows {
        for item in items {
            let new = old.is_some_and(|o| !get(o).contains(item));
            let _ = writeln!(s, "  {verb} {item}{}", if new { "   (new)" } else { "" });
        }
        if let Some(o) = old {
            for gone in get(o).iter().filter(|i| !items.contains(i)) {
                let _ = writeln!(s, "  no longer: {verb} {gone}");
            }
        }
    }
    let _ = writeln!(s, "A task's policy still bounds all of this: a skill never gets more than its task has.");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn needs_are_listed_and_changes_marked() {
        let m = crate::manifest::parse(
            "---\nname: a\ndescription: Does a.\nclawcage:\n  network: [x.com, y.com]\n  secrets: [tok]\n---\n",
            "SKILL.md",
        )
        .unwrap();
        let text = approval_text(&m, &"1".repeat(64), None);
        assert!(text.contains("connect to x.com\n") && text.contains("use the secret tok\n"), "{text}");
        let old = Needs { network: vec!["x.com".into(), "z.com".into()], ..Needs::default() };
        let text = approval_text(&m, &"1".repeat(64), Some((&"2".repeat(64), &old)));
        assert!(text.contains("CHANGED since it was approved"), "{text}");
        assert!(text.contains("connect to y.com   (new)"), "{text}");
        assert!(text.contains("no longer: connect to z.com"), "{text}");
        assert!(text.contains("use the secret tok   (new)"), "{text}");
    }
}
