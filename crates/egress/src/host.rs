//! Destination names as the proxy matches and audits them: one canonical
//! spelling per destination, so that no rule can be dodged by writing the
//! same host another way.
//!
//! - names: IDNA/UTS 46 to ASCII (which also lowercases and maps full-width
//!   dots and digits), one trailing dot dropped;
//! - IPv4 in every spelling browsers and `inet_aton` accept (`2130706433`,
//!   `0x7f.1`, `0177.0.0.1`, `127.1`) is that address; a name whose last
//!   label is numeric but is no valid IPv4 address is refused;
//! - IPv6 in brackets; IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`) is the IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A destination host in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: ASCII (punycode), lowercase, no trailing dot.
    Name(String),
    /// An IP address (IPv4-mapped IPv6 is stored as IPv4).
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A destination: canonical host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The host.
    pub host: Host,
    /// The port.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Target {
    /// The host as audit records name it (IPv6 without brackets).
    pub fn host_name(&self) -> String {
        match &self.host {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

/// Why a host or authority was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an acceptable destination: {why}")]
pub struct HostError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

fn err(input: &str, why: &'static str) -> HostError {
    HostError { input: input.to_string(), why }
}

/// Parse `host[:port]` (a CONNECT target, a URI authority or a Host header).
/// `default_port` applies when no port is written; `None` makes the port
/// mandatory. User info (`user@host`) is refused.
pub fn parse_authority(input: &str, default_port: Option<u16>) -> Result<Target, HostError> {
    if input.contains('@') {
        return Err(err(input, "user information is not allowed"));
    }
    let (host, port) = if let Some(rest) = input.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(|| err(input, "`[` without `]`"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| err(input, "text after `]`"))?),
        };
        (&input[..v6.len() + 2], port)
    } else {
        match input.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (input, None),
        }
    };
    let port = match port {
        Some(p) => parse_port(p).ok_or_else(|| err(input, "the port must be a number from 1 to 65535"))?,
        None => default_port.ok_or_else(|| err(input, "a port is required"))?,
    };
    Ok(Target { host: normalise_host(host)?, port })
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n > 0)
}

/// The canonical form of a host (see the module docs).
pub fn normalise_host(input: &str) -> Result<Host, HostError> {
    if let Some(inner) = input.strip_prefix('[') {
        let v6 = inner.strip_suffix(']').ok_or_else(|| err(input, "`[` without `]`"))?;
        let ip: Ipv6Addr = v6.parse().map_err(|_| err(input, "not an IPv6 address"))?;
        return Ok(Host::Ip(IpAddr::V6(ip).to_canonical()));
    }
    if input.is_empty() || input.len() > 1024 {
        return Err(err(input, "empty or too long"));
    }
    if input.contains(['%', '\\', '/', ':', ' ']) || input.chars().any(|c| c.is_control()) {
        return Err(err(input, "characters that no host name contains"));
    }
    let ascii = idna::domain_to_ascii(input).map_err(|_| err(input, "not a valid (internationalised) domain name"))?;
    let name = ascii.strip_suffix('.').unwrap_or(&ascii);
    if name.is_empty() || name.len() > 253 {
        return Err(err(input, "a host name has 1 to 253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(err(input, "empty label"));
    }
    if labels.last().is_some_and(|l| looks_numeric(l)) {
        return parse_ipv4_loose(&labels)
            .map(|ip| Host::Ip(IpAddr::V4(ip)))
            .ok_or_else(|| err(input, "a numeric host that is no valid IPv4 address"));
    }
    let ok =
        labels.iter().all(|l| l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    if !ok {
        return Err(err(input, "labels are up to 63 letters, digits, `-` or `_`"));
    }
    Ok(Host::Name(name.to_string()))
}

/// A label that the WHATWG URL parser treats as a number: decimal digits or `0x` hex.
fn looks_numeric(label: &str) -> bool {
    let hex = label.strip_prefix("0x").or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// IPv4 the way `inet_aton` and browsers read it: 1 to 4 parts, each
/// decimal, octal (leading 0) or hex (0x); the last part fills the
/// remaining bytes.
fn parse_ipv4_loose(labels: &[&str]) -> Option<Ipv4Addr> {
    if labels.is_empty() || labels.len() > 4 {
        return None;
    }
    let mut parts = Vec::with_capacity(labels.len());
    for l in labels {
        parts.push(parse_part(l)?);
    }
    let (last, init) = parts.split_last()?;
    let mut value: u64 = 0;
    for (i, p) in init.iter().enumerate() {
        if *p > 255 {
            return None;
        }
        value |= p << (8 * (3 - i));
    }
    let room = 8 * (4 - init.len() as u32);
    if room < 64 && *last >= 1u64 << room {
        return None;
    }
    Some(Ipv4Addr::from((value | last) as u32))
}

fn parse_part(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return (radix == 16).then_some(0); // "0x" alone is 0, as browsers read it
    }
    if digits.len() > 20 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().filter(|v| *v <= u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    #[test]
    fn every_spelling_of_loopback_is_loopback() {
        for s in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "0177.0000.0000.0001",
            "127.1",
            "127.0.1",
            "0x7F.1",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "127.0.0.1.",
            "１２７.０.０.１",
        ] {
            assert_eq!(normalise_host(s), Ok(ip("127.0.0.1")), "{s}");
        }
        assert_eq!(normalise_host("169.254.43518"), Ok(ip("169.254.169.254")));
        assert_eq!(normalise_host("0xa9fea9fe"), Ok(ip("169.254.169.254")));
        assert_eq!(normalise_host("[::1]"), Ok(ip("::1")));
        assert_eq!(normalise_host("0"), Ok(ip("0.0.0.0")));
    }

    #[test]
    fn names_are_canonical() {
        let name = |s: &str| Host::Name(s.to_string());
        assert_eq!(normalise_host("API.Example.COM"), Ok(name("api.example.com")));
        assert_eq!(normalise_host("api.example.com."), Ok(name("api.example.com")));
        assert_eq!(normalise_host("bücher.example"), Ok(name("xn--bcher-kva.example")));
        assert_eq!(normalise_host("XN--BCHER-KVA.example"), Ok(name("xn--bcher-kva.example")));
        assert_eq!(normalise_host("api。example。com"), Ok(name("api.example.com")));
        assert_eq!(normalise_host("ａｐｉ.example.com"), Ok(name("api.example.com")));
    }

    #[test]
    fn junk_is_refused() {
        for s in [
            "",
            "a..b",
            "example.com..",
            "256.0.0.1",
            "1.2.3.4.5",
            "4294967296",
            "1.2.65536",
            "08.0.0.1",
            "exa mple.com",
            "a%2ecom",
            "a/b",
            "[::1",
            "[nope]",
            "evil.com\0.good.com",
            "x.123",
        ] {
            assert!(normalise_host(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn authorities() {
        let t = |h: Host, port| Target { host: h, port };
        assert_eq!(parse_authority("Example.com:443", None), Ok(t(Host::Name("example.com".into()), 443)));
        assert_eq!(parse_authority("example.com", Some(80)), Ok(t(Host::Name("example.com".into()), 80)));
        assert_eq!(parse_authority("[::ffff:10.0.0.1]:8080", None), Ok(t(ip("10.0.0.1"), 8080)));
        assert_eq!(parse_authority("[::1]", Some(80)), Ok(t(ip("::1"), 80)));
        for bad in
            ["example.com", "example.com:0", "example.com:65536", "example.com:+1", "u@example.com:1", "[::1]x:1"]
        {
            assert!(parse_authority(bad, None).is_err(), "{bad}");
        }
        assert_eq!(t(ip("::1"), 443).to_string(), "[::1]:443");
        assert_eq!(t(ip("::1"), 443).host_name(), "::1");
    }
}
