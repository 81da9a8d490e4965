//! The syntax of single values: sizes, durations, paths, hosts, variable
//! names. Each parser returns the message of the error (without location);
//! the caller adds the file, line and field. Also the inverse printers used by
//! [`Policy::to_toml`](crate::Policy::to_toml).

use crate::model::{Cidr, PathSpec, SecretSource};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;
const GIB: u64 = MIB * 1024;
const TIB: u64 = GIB * 1024;

/// Size units; a unit alone (`K`, `M`, `G`, `T`) is binary.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("K", KIB),
    ("KiB", KIB),
    ("KB", 1000),
    ("M", MIB),
    ("MiB", MIB),
    ("MB", 1_000_000),
    ("G", GIB),
    ("GiB", GIB),
    ("GB", 1_000_000_000),
    ("T", TIB),
    ("TiB", TIB),
    ("TB", 1_000_000_000_000),
];

/// `"512MiB"`, `"2G"`, `"1000000"` → bytes (greater than zero).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size (expected e.g. 512MiB, 2GiB, 1000000)");
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let unit = unit.trim_start();
    let number: u64 = number.parse().map_err(|_| bad())?;
    let (_, scale) = SIZE_UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
    let bytes = number.checked_mul(*scale).ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("{s:?} must be greater than zero (use \"none\" for no limit)"));
    }
    Ok(bytes)
}

/// Bytes as the shortest exact binary unit (`"4GiB"`), or a plain number.
pub(crate) fn format_size(bytes: u64) -> String {
    for (unit, scale) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes % scale == 0 && bytes >= scale {
            return format!("\"{}{unit}\"", bytes / scale);
        }
    }
    bytes.to_string()
}

/// `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"1h30m"` → a non-zero duration.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (expected e.g. 30s, 10m, 1h30m, 500ms)");
    let mut rest = s;
    let mut millis: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60 * 1000,
            "h" => 60 * 60 * 1000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        millis = number
            .checked_mul(scale)
            .and_then(|m| m.checked_add(millis))
            .ok_or_else(|| format!("{s:?} is too long"))?;
    }
    if millis == 0 {
        return Err(format!("{s:?} must be greater than zero (use \"none\" for no limit)"));
    }
    Ok(Duration::from_millis(millis))
}

/// A duration as `"1h30m"`, `"45s"` or `"500ms"` (millisecond precision).
pub(crate) fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis % 1000 != 0 {
        return format!("\"{millis}ms\"");
    }
    let secs = millis / 1000;
    let mut out = String::new();
    for (value, unit) in [(secs / 3600, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    format!("\"{out}\"")
}

/// One `[filesystem]` entry. Globs (`*`, `?`, `[`) only when `allow_glob`.
pub(crate) fn parse_path(s: &str, allow_glob: bool) -> Result<PathSpec, String> {
    if s.is_empty() {
        return Err("an empty path is not allowed (use \".\" for the workspace)".into());
    }
    if s.contains('\0') {
        return Err(format!("{s:?} contains a NUL byte"));
    }
    if s.contains(['*', '?', '[']) {
        if !allow_glob {
            return Err(format!("{s:?} is a glob; globs are only allowed in filesystem.deny and filesystem.protect"));
        }
        return check_glob(s).map(|()| PathSpec::Glob(s.to_string()));
    }
    if let Some(rest) = s.strip_prefix('/') {
        if rest.split('/').any(|c| c == "..") {
            return Err(format!("{s:?}: `..` is not allowed in absolute paths"));
        }
        let parts: Vec<&str> = rest.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        return Ok(PathSpec::Absolute(format!("/{}", parts.join("/"))));
    }
    if s == "~" || s.starts_with("~/") {
        let rest = normalise_relative(&s[1..]).ok_or_else(|| format!("{s:?} climbs out of the home directory"))?;
        return Ok(PathSpec::Home(rest));
    }
    if s.starts_with('~') {
        return Err(format!("{s:?}: ~user paths are not supported (use ~/... or an absolute path)"));
    }
    match normalise_relative(s) {
        Some(rel) if rel.is_empty() => Ok(PathSpec::Workspace(".".into())),
        Some(rel) => Ok(PathSpec::Workspace(rel)),
        None => Err(format!("{s:?} climbs out of the workspace")),
    }
}

/// Lexically normalise a relative path; `None` when `..` climbs above its start.
fn normalise_relative(s: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// A glob is relative, has no `..`, and its brackets are closed and not nested.
pub(crate) fn check_glob(s: &str) -> Result<(), String> {
    if s.starts_with('/') || s.starts_with('~') {
        return Err(format!("{s:?}: globs are matched relative to the workspace; start them with a name or **/"));
    }
    if s.split('/').any(|c| c == "..") {
        return Err(format!("{s:?}: `..` is not allowed in globs"));
    }
    let mut open: Option<usize> = None; // characters inside the current `[...]`
    for c in s.chars() {
        open = match (open, c) {
            (None, '[') => Some(0),
            (None, ']') => return Err(format!("{s:?}: `]` without a matching `[`")),
            (Some(_), '[') => return Err(format!("{s:?}: `[` inside `[...]`")),
            (Some(_), '/') => return Err(format!("{s:?}: `/` inside `[...]`")),
            (Some(0), ']') => return Err(format!("{s:?}: empty `[]`")),
            (Some(_), ']') => None,
            (Some(n), _) => Some(n + 1),
            (None, _) => None,
        };
    }
    if open.is_some() {
        return Err(format!("{s:?}: `[` is not closed"));
    }
    Ok(())
}

/// A `[network] allow` entry: `host`, `*.suffix`, an IP, `[v6]`, each with an
/// optional `:port`. Returned as written.
pub(crate) fn check_host(s: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!("{s:?} is not a host pattern: {why} (expected e.g. api.github.com, *.pypi.org:443, 10.0.0.1:8080)")
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
        v6.parse::<Ipv6Addr>().map_err(|_| bad("not an IPv6 address"))?;
        match after {
            "" => return Ok(()),
            _ => (None, after.strip_prefix(':').ok_or_else(|| bad("text after `]`"))?),
        }
    } else if s.matches(':').count() > 1 {
        s.parse::<Ipv6Addr>().map_err(|_| bad("not an IPv6 address"))?;
        return Ok(());
    } else {
        match s.split_once(':') {
            Some((h, p)) => (Some(h), p),
            None => (Some(s), ""),
        }
    };
    if !port.is_empty() || s.ends_with(':') {
        let ok = port.bytes().all(|b| b.is_ascii_digit()) && matches!(port.parse::<u16>(), Ok(p) if p >= 1);
        if !ok {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
    }
    let Some(host) = host else { return Ok(()) };
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    if name.is_empty() || name.len() > 253 {
        return Err(bad("the host name must have 1 to 253 characters"));
    }
    for label in name.split('.') {
        let chars_ok = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty() || label.len() > 63 || !chars_ok {
            return Err(bad("labels are 1 to 63 letters, digits or `-`, separated by `.`"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label cannot start or end with `-`"));
        }
    }
    let numeric = name.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if numeric && (wildcard || name.parse::<Ipv4Addr>().is_err()) {
        return Err(bad("not an IPv4 address"));
    }
    Ok(())
}

/// A `[network.hosts]` name: a plain DNS name (no wildcard, no port, not numeric).
pub(crate) fn check_host_name(s: &str) -> Result<(), String> {
    if s.starts_with("*.") || s.contains([':', '[']) {
        return Err(format!("{s:?} is not a host name (no wildcard or port here)"));
    }
    check_host(s)?;
    if s.parse::<Ipv4Addr>().is_ok() {
        return Err(format!("{s:?} is an address, not a name"));
    }
    Ok(())
}

/// A `[secrets.NAME] hosts` entry: `host` or `*.suffix`, without a port.
pub(crate) fn check_secret_host(s: &str) -> Result<(), String> {
    if s.contains([':', '[']) {
        return Err(format!("{s:?}: secret hosts take no port or IPv6 address (expected e.g. api.github.com)"));
    }
    check_host(s)
}

/// `[network] allow_ips` entry: an IP or a CIDR (`10.0.0.0/8`); host bits must be zero.
pub(crate) fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let bad = |why: &str| format!("{s:?} is not an IP or CIDR: {why} (expected e.g. 10.1.2.3, 10.0.0.0/8, fd00::/8)");
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
    let full: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => full,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= full && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(bad(&format!("the prefix must be 0 to {full}"))),
        },
    };
    let cidr = Cidr { addr, prefix };
    let host_bits_zero = match addr {
        IpAddr::V4(a) => u32::from(a).checked_shl(u32::from(prefix)).unwrap_or(0) == 0,
        IpAddr::V6(a) => u128::from(a).checked_shl(u32::from(prefix)).unwrap_or(0) == 0,
    };
    if !host_bits_zero {
        return Err(bad("host bits are set after the prefix"));
    }
    Ok(cidr)
}

/// `[secrets.NAME] from`: `env:VAR` or `file:/absolute/path`.
pub(crate) fn parse_secret_source(s: &str) -> Result<SecretSource, String> {
    if let Some(var) = s.strip_prefix("env:") {
        check_env_name(var)?;
        return Ok(SecretSource::Env(var.to_string()));
    }
    if let Some(path) = s.strip_prefix("file:") {
        return match parse_path(path, false)? {
            PathSpec::Absolute(p) => Ok(SecretSource::File(p)),
            _ => Err(format!("{s:?}: the file must be an absolute host path")),
        };
    }
    Err(format!("{s:?} is not a secret source (expected \"env:VAR\" or \"file:/path\")"))
}

/// `[secrets.NAME] header`: `Name: text` with exactly one `{}` in the text.
pub(crate) fn check_header_template(s: &str) -> Result<(), String> {
    let bad =
        |why: &str| format!("{s:?} is not a header template: {why} (expected e.g. \"Authorization: Bearer {{}}\")");
    let (name, value) = s.split_once(':').ok_or_else(|| bad("no `:`"))?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad("the header name must be a token"));
    }
    if value.matches("{}").count() != 1 {
        return Err(bad("the value must contain `{}` exactly once"));
    }
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad("control characters"));
    }
    Ok(())
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn check_env_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!("{s:?} is not a variable name (letters, digits and `_`, not starting with a digit)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_size("2G"), Ok(2 * GIB));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("10 KB"), Ok(10_000));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("1T"), Ok(TIB));
        for bad in ["", "GiB", "1 gigs", "1.5GiB", "-1", "1gib", "0MiB", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        for n in [1, 1000, 1024, 4 * GIB, 3 * MIB + 1, 5 * TIB] {
            let printed = format_size(n);
            assert_eq!(parse_size(printed.trim_matches('"')), Ok(n), "{printed}");
        }
        assert_eq!(format_size(4 * GIB), "\"4GiB\"");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "10 minutes", "m", "1h30", "0s", "1.5h", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for secs in [1, 59, 60, 600, 3600, 5400, 3601, 90000] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(format_duration(d).trim_matches('"')), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "\"1h30m\"");
        assert_eq!(format_duration(Duration::from_millis(1500)), "\"1500ms\"");
    }

    #[test]
    fn paths() {
        use PathSpec::*;
        let ok = |s: &str| parse_path(s, true).unwrap();
        assert_eq!(ok("/usr//lib/./x/"), Absolute("/usr/lib/x".into()));
        assert_eq!(ok("/"), Absolute("/".into()));
        assert_eq!(ok("~"), Home("".into()));
        assert_eq!(ok("~/.ssh/"), Home(".ssh".into()));
        assert_eq!(ok("."), Workspace(".".into()));
        assert_eq!(ok("./src/../build/"), Workspace("build".into()));
        assert_eq!(ok("**/.env"), Glob("**/.env".into()));
        assert_eq!(ok("secrets/**"), Glob("secrets/**".into()));
        assert_eq!(ok("*.[pP]em"), Glob("*.[pP]em".into()));
        for bad in [
            "",
            "a\0b",
            "../x",
            "a/../../b",
            "/usr/../etc",
            "~/../x",
            "~root/x",
            "/etc/*.conf",
            "../**",
            "[abc",
            "*a]",
            "[]x",
            "[a/b]",
            "~/*.pem",
        ] {
            assert!(parse_path(bad, true).is_err(), "{bad:?}");
        }
        assert!(parse_path("*.pem", false).is_err());
    }

    #[test]
    fn hosts() {
        for good in [
            "api.github.com",
            "*.pypi.org:443",
            "localhost",
            "10.0.0.1:8080",
            "[::1]:443",
            "[2001:db8::1]",
            "::1",
            "a-b.example",
        ] {
            assert_eq!(check_host(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "*",
            "*.",
            "https://x.org",
            "x.org:0",
            "x.org:65536",
            "x.org:",
            "x..org",
            "-x.org",
            "x_y.org",
            "*.10.0.0.1",
            "300.1.1.1",
            "[::1",
            "[nope]:1",
            "a.org/path",
            "a.org:44x",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        assert_eq!(check_env_name("RUST_LOG"), Ok(()));
        assert_eq!(check_env_name("_x1"), Ok(()));
        for bad in ["", "1A", "A-B", "A=B", "A B"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }
}
