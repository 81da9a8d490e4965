//! What the policy allows: `[network] allow` rules on canonical targets, and
//! the address ranges that are refused after resolution unless `allow_ips`
//! names them.

use crate::host::{normalise_host, Host, Target};
use clawcage_policy::Cidr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ports a rule without `:port` allows.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// This host exactly.
    Exact(Host),
    /// Any name ending in `.suffix` (not `suffix` itself); holds `.suffix`.
    Suffix(String),
}

/// One `[network] allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    text: String,
    pattern: Pattern,
    port: Option<u16>,
}

impl Rule {
    /// Parse an entry as the policy crate validated it (`host`, `*.suffix`,
    /// an IP or `[v6]`, each with an optional `:port`).
    pub fn parse(text: &str) -> Result<Rule, crate::host::HostError> {
        let bad = |why| crate::host::HostError { input: text.to_string(), why };
        let (host, port) = match text.strip_prefix('[') {
            Some(_) => match text.rsplit_once("]:") {
                Some((h, p)) => (format!("{h}]"), Some(p)),
                None => (text.to_string(), None),
            },
            None if text.matches(':').count() > 1 => (format!("[{text}]"), None),
            None => match text.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (text.to_string(), None),
            },
        };
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("bad port"))?),
            None => None,
        };
        let pattern = match host.strip_prefix("*.") {
            Some(suffix) => match normalise_host(suffix)? {
                Host::Name(n) => Pattern::Suffix(format!(".{n}")),
                Host::Ip(_) => return Err(bad("a wildcard cannot stand before an address")),
            },
            None => Pattern::Exact(normalise_host(&host)?),
        };
        Ok(Rule { text: text.to_string(), pattern, port })
    }

    /// The rule as written in the policy.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this rule allows `t`.
    pub fn matches(&self, t: &Target) -> bool {
        let port_ok = match self.port {
            Some(p) => p == t.port,
            None => DEFAULT_PORTS.contains(&t.port),
        };
        port_ok
            && match (&self.pattern, &t.host) {
                (Pattern::Exact(h), host) => h == host,
                (Pattern::Suffix(s), Host::Name(n)) => n.ends_with(s.as_str()),
                (Pattern::Suffix(_), Host::Ip(_)) => false,
            }
    }
}

/// `[network] allow`, in policy order.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    rules: Vec<Rule>,
}

impl Allowlist {
    /// The rules of a policy's `[network] allow`.
    pub fn new(entries: &[String]) -> Result<Allowlist, crate::host::HostError> {
        Ok(Allowlist { rules: entries.iter().map(|e| Rule::parse(e)).collect::<Result<_, _>>()? })
    }

    /// The first rule that allows `t`.
    pub fn find(&self, t: &Target) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(t))
    }
}

/// Why an address is refused unless `[network] allow_ips` names it, or `None`
/// for an ordinary public address. IPv4 carried in IPv6 (mapped, compatible,
/// NAT64) is judged as the IPv4 address.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (10, _, _) => "private (RFC 1918, 10.0.0.0/8)",
        (172, 16..=31, _) => "private (RFC 1918, 172.16.0.0/12)",
        (192, 168, _) => "private (RFC 1918, 192.168.0.0/16)",
        (100, 64..=127, _) => "carrier-grade NAT (100.64.0.0/10)",
        (169, 254, _) => "link-local, cloud metadata (169.254.0.0/16)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (255, 255, 255) if ip == Ipv4Addr::BROADCAST => "broadcast (255.255.255.255)",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) carry an IPv4 address.
    let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // Conservative: refused whatever it carries (name the IPv4 form to allow it).
        return Some(v4_range(embedded).unwrap_or("IPv4-embedding IPv6 (::/96, 64:ff9b::/96)"));
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        x if x & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        x if x & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        x if x & 0xff00 == 0xff00 => "multicast (ff00::/8)",
        0x2001 if s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        _ => return None,
    })
}

/// `None` when `ip` may be connected to; otherwise why not, with the hint.
pub fn check_address(ip: IpAddr, allow_ips: &[Cidr]) -> Option<String> {
    let why = forbidden_range(ip)?;
    if allow_ips.iter().any(|c| c.contains(ip)) {
        return None;
    }
    Some(format!("{} is {why}; add it to [network] allow_ips if that is intended", ip.to_canonical()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::host::parse_authority;

    fn t(s: &str) -> Target {
        parse_authority(s, None).unwrap()
    }

    #[test]
    fn rules_match_exact_suffix_and_ports() {
        let list = Allowlist::new(&[
            "API.example.com".to_string(),
            "*.pypi.org:443".to_string(),
            "10.0.0.1:8080".to_string(),
            "[::1]:9".to_string(),
        ])
        .unwrap();
        let rule = |s: &str| list.find(&t(s)).map(|r| r.text().to_string());
        assert_eq!(rule("api.example.com:443").as_deref(), Some("API.example.com"));
        assert_eq!(rule("api.example.com.:80").as_deref(), Some("API.example.com"));
        assert_eq!(rule("api.example.com:8443"), None, "no port: 80 and 443 only");
        assert_eq!(rule("evil-api.example.com:443"), None);
        assert_eq!(rule("files.pypi.org:443").as_deref(), Some("*.pypi.org:443"));
        assert_eq!(rule("a.b.pypi.org:443").as_deref(), Some("*.pypi.org:443"));
        assert_eq!(rule("pypi.org:443"), None, "a wildcard does not match its apex");
        assert_eq!(rule("evilpypi.org:443"), None);
        assert_eq!(rule("files.pypi.org:80"), None);
        assert_eq!(rule("167772161:8080").as_deref(), Some("10.0.0.1:8080"), "an IP rule matches every spelling");
        assert_eq!(rule("[::1]:9").as_deref(), Some("[::1]:9"));
        assert_eq!(rule("1.2.3.4:443"), None);
    }

    #[test]
    fn private_and_special_ranges_are_refused_unless_named() {
        for bad in [
            "127.0.0.1",
            "127.255.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::1.1.1.1", // IPv4 inside IPv6 is refused whatever it carries
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(check_address(ip, &[]).is_some(), "{bad}");
        }
        for good in ["1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert_eq!(check_address(good.parse().unwrap(), &[]), None, "{good}");
        }
        let allow = [Cidr { addr: "127.0.0.1".parse().unwrap(), prefix: 32 }];
        assert_eq!(check_address("127.0.0.1".parse().unwrap(), &allow), None);
        assert_eq!(check_address("::ffff:127.0.0.1".parse().unwrap(), &allow), None);
        let msg = check_address("127.0.0.2".parse().unwrap(), &allow).unwrap();
        assert!(msg.contains("loopback") && msg.contains("allow_ips"), "{msg}");
    }
}
