//! The proxy driven directly (no sandbox), for what needs a configurable
//! part: a rebinding resolver, a sink that fails, the unlisted-host hook,
//! and the connection and byte limits. Real servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clawcage_egress::{Config, Lookup, Proxy, ProxyHandle, Resolve, SecretTable, Target, UnlistedHost, Verdict};
use clawcage_policy::event::MemorySink;
use clawcage_policy::event::{Decision, SecretAction};
use clawcage_policy::{Event, EventSink, SinkError};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An origin on `addr:port` that counts connections and answers every
/// request with `origin=<addr>` or, for `/big`, 100 000 bytes.
fn origin(addr: &str, port: u16) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind((addr, port)).unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let (h, name) = (hits.clone(), addr.to_string());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let name = name.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = if head.starts_with(b"GET /big") {
                    vec![b'x'; 100_000]
                } else {
                    format!("origin={name}").into_bytes()
                };
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = s.write_all(&body);
            });
        }
    });
    (port, hits)
}

/// Answers first 127.0.0.1, then 127.0.0.2, alternating: the DNS-rebinding attacker.
struct Rebinding(AtomicUsize);

impl Resolve for Rebinding {
    fn resolve(&self, _: &str, _: u16) -> Lookup<'_> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let ip: IpAddr = if n % 2 == 0 { "127.0.0.1" } else { "127.0.0.2" }.parse().unwrap();
        Box::pin(async move { Ok(vec![ip]) })
    }
}

struct Failing;

impl EventSink for Failing {
    fn record(&self, _: &Event) -> Result<(), SinkError> {
        Err(SinkError("disk full".into()))
    }
}

struct AskAlice;

impl UnlistedHost for AskAlice {
    fn decide(&self, t: &Target) -> Verdict {
        if t.host_name() == "asked.test" {
            Verdict::Allow("approved by alice".into())
        } else {
            Verdict::Deny
        }
    }
}

fn config(policy: &str) -> Config {
    let policy = clawcage_policy::parse_str(policy, "test-policy.toml").unwrap();
    Config::new(&policy, "sb", "test-policy.toml", SecretTable::default(), None).unwrap()
}

fn start(cfg: Config, sink: Arc<dyn EventSink>) -> (ProxyHandle, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (Proxy::spawn(cfg, l, sink).unwrap(), port)
}

/// One request through the proxy; returns the status code and body.
fn get(proxy: u16, url: &str, host: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// The allow/deny decisions recorded, in order.
fn decisions(sink: &MemorySink) -> Vec<Decision> {
    sink.events()
        .into_iter()
        .filter_map(|e| if let Event::Network { decision, .. } = e { Some(decision) } else { None })
        .collect()
}

#[test]
fn a_rebinding_resolver_cannot_move_the_connection_to_a_checked_out_address() {
    let (port, good) = origin("127.0.0.1", 0);
    let (_, evil) = origin("127.0.0.2", port);
    let mut cfg = config(&format!("[network]\nallow = [\"rebind.test:{port}\"]\nallow_ips = [\"127.0.0.1\"]\n"));
    let resolver = Arc::new(Rebinding(AtomicUsize::new(0)));
    cfg.resolver = resolver.clone();
    let sink = Arc::new(MemorySink::default());
    let (proxy, pp) = start(cfg, sink.clone());
    let url = format!("http://rebind.test:{port}/");
    let host = format!("rebind.test:{port}");
    // First lookup says 127.0.0.1 (allowed): the connection goes there, and
    // only there — a second lookup would have said 127.0.0.2.
    assert_eq!(get(pp, &url, &host), (200, "origin=127.0.0.1".to_string()));
    // The next lookup says 127.0.0.2: refused, never connected.
    let (code, body) = get(pp, &url, &host);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("127.0.0.2 is loopback"), "{body}");
    proxy.shutdown();
    assert_eq!(resolver.0.load(Ordering::SeqCst), 2, "one lookup per decision");
    assert_eq!(good.load(Ordering::SeqCst), 1);
    assert_eq!(evil.load(Ordering::SeqCst), 0, "the rebound address was never connected to");
    assert_eq!(decisions(&sink), [Decision::Allow, Decision::Deny]);
}

#[test]
fn an_allow_that_cannot_be_recorded_is_a_deny() {
    let (port, hits) = origin("127.0.0.1", 0);
    let cfg = config(&format!(
        "[network]\nallow = [\"ok.test:{port}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"ok.test\" = \"127.0.0.1\"\n"
    ));
    let (proxy, pp) = start(cfg, Arc::new(Failing));
    let (code, body) = get(pp, &format!("http://ok.test:{port}/"), &format!("ok.test:{port}"));
    proxy.shutdown();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("could not be recorded") && body.contains("disk full"), "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[test]
fn the_unlisted_host_hook_decides_and_its_answer_is_recorded_as_the_rule() {
    let (port, hits) = origin("127.0.0.1", 0);
    let mut cfg = config(
        "[network]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"asked.test\" = \"127.0.0.1\"\n\"other.test\" = \"127.0.0.1\"\n[approvals]\nnetwork = \"ask\"\n",
    );
    cfg.unlisted = Arc::new(AskAlice);
    let sink = Arc::new(MemorySink::default());
    let (proxy, pp) = start(cfg, sink.clone());
    assert_eq!(get(pp, &format!("http://asked.test:{port}/"), &format!("asked.test:{port}")).0, 200);
    assert_eq!(get(pp, &format!("http://other.test:{port}/"), &format!("other.test:{port}")).0, 403);
    proxy.shutdown();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let rules: Vec<Option<String>> = sink
        .events()
        .into_iter()
        .filter_map(|e| if let Event::Network { rule, .. } = e { Some(rule) } else { None })
        .collect();
    assert_eq!(rules, [Some("approved by alice".to_string()), None]);
}

#[test]
fn connection_and_byte_limits_hold() {
    let (port, _) = origin("127.0.0.1", 0);
    let policy = format!(
        "[network]\nallow = [\"ok.test:{port}\"]\nallow_ips = [\"127.0.0.1\"]\nmax_connections = 1\nmax_bytes = 20000\n\
         [network.hosts]\n\"ok.test\" = \"127.0.0.1\"\n"
    );
    let (proxy, pp) = start(config(&policy), Arc::new(MemorySink::default()));
    let (url, host) = (format!("http://ok.test:{port}/"), format!("ok.test:{port}"));
    // One connection held open: a second one is refused.
    let held = TcpStream::connect(("127.0.0.1", pp)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (code, body) = get(pp, &url, &host);
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("max_connections = 1"), "{body}");
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(pp, &url, &host).0, 200, "the slot is free again");
    // 100 000 bytes do not fit in 20 000: cut off, and then nothing more.
    let (_, body) = get(pp, &format!("http://ok.test:{port}/big"), &host);
    assert!(body.len() < 100_000, "got {} bytes", body.len());
    let (code, body) = get(pp, &url, &host);
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("max_bytes = 20000"), "{body}");
    proxy.shutdown();
}

/// An origin that echoes everything it reads, then closes once the client
/// has finished sending.
fn echo_origin() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                let _ = std::io::copy(&mut r, &mut w);
                let _ = w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// CONNECT through the proxy, with `early` sent in the same write as the
/// request (so the HTTP layer has read it before the tunnel starts).
fn tunnel(proxy: u16, host: &str, early: &[u8]) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
    req.extend_from_slice(early);
    s.write_all(&req).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "proxy closed during the CONNECT answer");
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The tunnel's `network_end` once it was recorded.
fn tunnel_end(sink: &MemorySink) -> (u64, u64) {
    for _ in 0..500 {
        let end = sink.events().into_iter().find_map(|e| match e {
            Event::NetworkEnd { bytes_sent, bytes_received, .. } => Some((bytes_sent, bytes_received)),
            _ => None,
        });
        if let Some(end) = end {
            return end;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no network_end recorded: {:?}", sink.events());
}

#[test]
fn a_tunnel_moves_every_byte_both_ways_in_order_and_counts_them() {
    let port = echo_origin();
    let policy = format!(
        "[network]\nallow = [\"echo.test:{port}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"echo.test\" = \"127.0.0.1\"\n"
    );
    let sink = Arc::new(MemorySink::default());
    let (proxy, pp) = start(config(&policy), sink.clone());
    let data = pattern(3 << 20);
    let (mut s, head) = tunnel(pp, &format!("echo.test:{port}"), &data[..1000]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut w = s.try_clone().unwrap();
    let rest = data[1000..].to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&rest).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the bytes came back changed or out of order");
    let n = data.len() as u64;
    assert_eq!(tunnel_end(&sink), (n, n), "sent and received as recorded");
    proxy.shutdown();
}

#[test]
fn the_byte_budget_cuts_a_tunnel_off() {
    let port = echo_origin();
    let policy = format!(
        "[network]\nallow = [\"echo.test:{port}\"]\nallow_ips = [\"127.0.0.1\"]\nmax_bytes = 100000\n\
         [network.hosts]\n\"echo.test\" = \"127.0.0.1\"\n"
    );
    let sink = Arc::new(MemorySink::default());
    let (proxy, pp) = start(config(&policy), sink.clone());
    let (mut s, head) = tunnel(pp, &format!("echo.test:{port}"), b"");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // The proxy stops reading: the write fails or stalls once it is cut off.
        let _ = w.write_all(&pattern(4 << 20));
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    // Each direction asks for at most one byte past what is left.
    assert!(back.len() <= 100_001, "{} bytes came back through a 100 000-byte budget", back.len());
    drop(s);
    writer.join().unwrap();
    let (sent, received) = tunnel_end(&sink);
    assert!(sent + received <= 2 * 100_001, "sent {sent} received {received}");
    // Spent: the next connection is refused.
    let (code, body) = get(pp, &format!("http://echo.test:{port}/"), &format!("echo.test:{port}"));
    assert_eq!(code, 429, "{body}");
    proxy.shutdown();
}

/// Bytes through an open tunnel to the echo origin come back.
fn echoes(s: &mut TcpStream, msg: &[u8]) -> bool {
    let mut back = vec![0u8; msg.len()];
    s.write_all(msg).is_ok() && s.read_exact(&mut back).is_ok() && back == msg
}

#[test]
fn open_tunnels_hold_their_place_under_max_connections_for_their_whole_life() {
    let port = echo_origin();
    let policy = format!(
        "[network]\nallow = [\"echo.test:{port}\"]\nallow_ips = [\"127.0.0.1\"]\nmax_connections = 2\n\
         [network.hosts]\n\"echo.test\" = \"127.0.0.1\"\n"
    );
    let (proxy, pp) = start(config(&policy), Arc::new(MemorySink::default()));
    let target = format!("echo.test:{port}");
    // The attack: open tunnels and hold them, past the HTTP exchange that set them up.
    let mut held = Vec::new();
    for i in 0..2 {
        let (mut s, head) = tunnel(pp, &target, b"");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(echoes(&mut s, format!("tunnel {i}").as_bytes()));
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    let (mut refused, head) = tunnel(pp, &target, b"");
    assert!(head.starts_with("HTTP/1.1 429"), "a third tunnel got through: {head}");
    // The proxy closes a refused connection after its answer.
    let mut rest = Vec::new();
    refused.read_to_end(&mut rest).unwrap();
    assert!(String::from_utf8_lossy(&rest).contains("max_connections = 2"));
    // The two held ones still work, and closing one frees its place.
    assert!(echoes(&mut held[1], b"still here"));
    drop(held.remove(0));
    let mut freed = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        let (mut s, head) = tunnel(pp, &target, b"");
        if head.starts_with("HTTP/1.1 200") {
            assert!(echoes(&mut s, b"after"));
            freed = true;
            break;
        }
    }
    assert!(freed, "the closed tunnel's place was never freed");
    proxy.shutdown();
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(std::path::PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("clawcage-egress-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// How a TLS origin ends its connections.
#[derive(Clone, Copy)]
enum Hangup {
    /// After each response, saying so (`Connection: close`).
    Announced,
    /// After each response, without a word: the response says keep-alive.
    Silent,
    /// When the second request on a connection arrives, unanswered (an idle
    /// timeout that fired just as the client sent it).
    OnNext,
}

/// An HTTPS origin on `addr:port` for `api.test` (leaf from `ca`) that
/// answers `origin=<addr> auth=<Authorization>` and hangs up after each
/// response as `hangup` says; counts connections (and, in `heads`, the
/// requests it read).
fn tls_origin(addr: &str, port: u16, ca: &clawcage_egress::tls::Ca, hangup: Hangup) -> (u16, Arc<AtomicUsize>) {
    tls_origin_counting(addr, port, ca, hangup, Arc::default())
}

fn tls_origin_counting(
    addr: &str,
    port: u16,
    ca: &clawcage_egress::tls::Ca,
    hangup: Hangup,
    heads: Arc<AtomicUsize>,
) -> (u16, Arc<AtomicUsize>) {
    let cfg = ca.server_config("api.test").unwrap();
    let l = TcpListener::bind((addr, port)).unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let (h, name) = (hits.clone(), addr.to_string());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let (cfg, name, heads) = (cfg.clone(), name.clone(), heads.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                heads.fetch_add(1, Ordering::SeqCst);
                if matches!(hangup, Hangup::OnNext) {
                    // Answer this one, then read the next request and hang up.
                    let _ = write!(tls, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    let _ = tls.flush();
                    let mut next = Vec::new();
                    while !next.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut b) {
                            Ok(1) => next.push(b[0]),
                            _ => return,
                        }
                    }
                    return;
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let auth = head
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
                    .unwrap_or("none");
                let body = format!("origin={name} auth={auth}");
                let close = if matches!(hangup, Hangup::Announced) { "Connection: close\r\n" } else { "" };
                let _ = write!(tls, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{close}\r\n{body}", body.len());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, hits)
}

/// A proxy for `api.test:{port}` with secret `gh` bound to it, the origin
/// CA trusted upstream; returns it with the CA the client must trust.
fn mitm_proxy(
    dir: &std::path::Path,
    port: u16,
    resolver: Option<Arc<dyn Resolve>>,
    sink: Arc<dyn EventSink>,
) -> (ProxyHandle, u16, Arc<clawcage_egress::tls::Ca>, String) {
    std::fs::write(dir.join("token"), "ghp_real_value").unwrap();
    let hosts = if resolver.is_some() { "" } else { "[network.hosts]\n\"api.test\" = \"127.0.0.1\"\n" };
    let text = format!(
        "[network]\nallow = [\"api.test:{port}\"]\nallow_ips = [\"127.0.0.1\"]\nca = [\"{origin}\"]\n{hosts}\
         [secrets.gh]\nfrom = \"file:{token}\"\nhosts = [\"api.test\"]\n",
        origin = dir.join("origin/ca.pem").display(),
        token = dir.join("token").display(),
    );
    let policy = clawcage_policy::parse_str(&text, "test-policy.toml").unwrap();
    let (env, table) = clawcage_egress::Secrets::prepare(&policy).unwrap();
    let placeholder = env.into_iter().next().unwrap().1;
    let ca = Arc::new(clawcage_egress::tls::Ca::load_or_create(&dir.join("proxy")).unwrap());
    let mut cfg = Config::new(&policy, "sb", "test-policy.toml", table, Some(ca.clone())).unwrap();
    if let Some(r) = resolver {
        cfg.resolver = r;
    }
    let (proxy, pp) = start(cfg, sink);
    (proxy, pp, ca, placeholder)
}

/// A client's TLS session with `api.test:{port}` through the proxy's CONNECT.
fn mitm_client(
    pp: u16,
    port: u16,
    ca: &clawcage_egress::tls::Ca,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let (s, head) = tunnel(pp, &format!("api.test:{port}"), b"");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut roots = rustls::RootCertStore::empty();
    let pem = ca.cert_pem().as_bytes().to_vec();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(clawcage_egress::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), "api.test".try_into().unwrap()).unwrap();
    rustls::StreamOwned::new(conn, s)
}

/// One keep-alive request on `tls`; the status and the body.
fn mitm_get(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    port: u16,
    path: &str,
    auth: &str,
) -> (u16, String) {
    write!(tls, "GET {path} HTTP/1.1\r\nHost: api.test:{port}\r\nAuthorization: Bearer {auth}\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tls.read(&mut b).unwrap(), 1, "the proxy closed the client's connection");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_reconnect_to_a_secret_bound_host_rechecks_the_address_and_refuses_a_rebound_one() {
    let dir = scratch("rebind-mitm");
    let origin_ca = clawcage_egress::tls::Ca::load_or_create(&dir.join("origin")).unwrap();
    let (port, good) = tls_origin("127.0.0.1", 0, &origin_ca, Hangup::Announced);
    let (_, evil) = tls_origin("127.0.0.2", port, &origin_ca, Hangup::Announced);
    let resolver = Arc::new(Rebinding(AtomicUsize::new(0)));
    let sink = Arc::new(MemorySink::default());
    let (proxy, pp, ca, placeholder) = mitm_proxy(&dir, port, Some(resolver.clone()), sink.clone());
    let mut tls = mitm_client(pp, port, &ca);
    // The first connection: resolved to 127.0.0.1, checked, the secret put in.
    assert_eq!(
        mitm_get(&mut tls, port, "/one", &placeholder),
        (200, "origin=127.0.0.1 auth=Bearer ghp_real_value".into())
    );
    // The host hung up; the next request needs a new connection, and the
    // name now resolves to 127.0.0.2: refused, never connected to.
    let (code, body) = mitm_get(&mut tls, port, "/two", &placeholder);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("127.0.0.2 is loopback"), "{body}");
    proxy.shutdown();
    assert_eq!(resolver.0.load(Ordering::SeqCst), 2, "one lookup per connection");
    assert_eq!(good.load(Ordering::SeqCst), 1);
    assert_eq!(evil.load(Ordering::SeqCst), 0, "the rebound address was never connected to");
    assert_eq!(decisions(&sink), [Decision::Allow, Decision::Deny]);
}

#[test]
fn a_secret_bound_host_that_drops_a_keep_alive_connection_is_reconnected() {
    let dir = scratch("keepalive-mitm");
    let origin_ca = clawcage_egress::tls::Ca::load_or_create(&dir.join("origin")).unwrap();
    let (port, hits) = tls_origin("127.0.0.1", 0, &origin_ca, Hangup::Silent);
    let sink = Arc::new(MemorySink::default());
    let (proxy, pp, ca, placeholder) = mitm_proxy(&dir, port, None, sink.clone());
    let mut tls = mitm_client(pp, port, &ca);
    let want = (200, "origin=127.0.0.1 auth=Bearer ghp_real_value".to_string());
    // Right after the answer (the hang-up may not have been seen yet), and
    // after a pause (it has): each time a new connection, decided anew.
    assert_eq!(mitm_get(&mut tls, port, "/one", &placeholder), want);
    assert_eq!(mitm_get(&mut tls, port, "/two", &placeholder), want);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(mitm_get(&mut tls, port, "/three", &placeholder), want);
    assert_eq!(mitm_get(&mut tls, port, "/four", &placeholder), want);
    proxy.shutdown();
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    let allows =
        sink.events().into_iter().filter(|e| matches!(e, Event::Network { decision: Decision::Allow, .. })).count();
    assert_eq!(allows, 4);
}

#[test]
fn a_request_that_meets_a_keep_alive_connection_as_the_host_drops_it_is_sent_again_on_a_new_one() {
    let dir = scratch("idle-mitm");
    let origin_ca = clawcage_egress::tls::Ca::load_or_create(&dir.join("origin")).unwrap();
    let (port, hits) = tls_origin("127.0.0.1", 0, &origin_ca, Hangup::OnNext);
    let sink = Arc::new(MemorySink::default());
    let (proxy, pp, ca, placeholder) = mitm_proxy(&dir, port, None, sink.clone());
    let mut tls = mitm_client(pp, port, &ca);
    // Each connection answers one request and drops the next unanswered:
    // that next one (a GET, safe to repeat) goes again on a new connection.
    for path in ["/one", "/two", "/three"] {
        assert_eq!(mitm_get(&mut tls, port, path, &placeholder), (200, "ok".to_string()), "{path}");
    }
    proxy.shutdown();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let allows =
        sink.events().into_iter().filter(|e| matches!(e, Event::Network { decision: Decision::Allow, .. })).count();
    assert_eq!(allows, 3, "each connection decided anew");
}

#[test]
fn a_secret_bound_host_whose_certificate_no_trusted_ca_signed_gets_no_request() {
    let dir = scratch("untrusted-mitm");
    // The policy trusts the CA in origin/; the host presents a leaf of another.
    let _trusted = clawcage_egress::tls::Ca::load_or_create(&dir.join("origin")).unwrap();
    let rogue = clawcage_egress::tls::Ca::load_or_create(&dir.join("rogue")).unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let (port, hits) = tls_origin_counting("127.0.0.1", 0, &rogue, Hangup::Silent, heads.clone());
    let sink = Arc::new(MemorySink::default());
    let (proxy, pp, ca, placeholder) = mitm_proxy(&dir, port, None, sink.clone());
    let mut tls = mitm_client(pp, port, &ca);
    let (code, body) = mitm_get(&mut tls, port, "/", &placeholder);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("TLS to api.test") && body.contains("certificate"), "{body}");
    proxy.shutdown();
    assert!(hits.load(Ordering::SeqCst) >= 1, "the host was dialled");
    assert_eq!(heads.load(Ordering::SeqCst), 0, "a request (with the secret) reached an unverified host");
    // The log holds the failure, and no use of the secret (none happened).
    assert_eq!(secret_uses(&sink), [], "a use of the secret was recorded though none happened");
    let failures: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Network { decision: Decision::Deny, reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(!failures.is_empty(), "the failed connection left no record");
    assert!(failures.iter().all(|r| r.contains("TLS to api.test") && r.contains("certificate")), "{failures:?}");
}

/// A memory sink that notes, for each secret use it records, how many
/// requests the origin had read by then.
struct Watching {
    events: MemorySink,
    heads: Arc<AtomicUsize>,
    heads_at_use: std::sync::Mutex<Vec<usize>>,
}

impl EventSink for Watching {
    fn record(&self, event: &Event) -> Result<(), SinkError> {
        if matches!(event, Event::Secret { .. }) {
            self.heads_at_use.lock().unwrap().push(self.heads.load(Ordering::SeqCst));
        }
        self.events.record(event)
    }
}

fn secret_uses(sink: &MemorySink) -> Vec<(String, SecretAction)> {
    sink.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Secret { name, action, .. } => Some((name, action)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_secret_use_is_recorded_before_the_origin_sees_the_request() {
    let dir = scratch("recorded-secret-mitm");
    let origin_ca = clawcage_egress::tls::Ca::load_or_create(&dir.join("origin")).unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let (port, _) = tls_origin_counting("127.0.0.1", 0, &origin_ca, Hangup::Silent, heads.clone());
    let sink =
        Arc::new(Watching { events: MemorySink::default(), heads: heads.clone(), heads_at_use: Default::default() });
    let (proxy, pp, ca, placeholder) = mitm_proxy(&dir, port, None, sink.clone());
    let mut tls = mitm_client(pp, port, &ca);
    let want = (200, "origin=127.0.0.1 auth=Bearer ghp_real_value".to_string());
    assert_eq!(mitm_get(&mut tls, port, "/one", &placeholder), want);
    assert_eq!(mitm_get(&mut tls, port, "/two", &placeholder), want);
    proxy.shutdown();
    assert_eq!(
        secret_uses(&sink.events),
        [("gh".into(), SecretAction::Injected), ("gh".into(), SecretAction::Injected)]
    );
    // Each use was on record while the origin had read only the requests before it.
    assert_eq!(*sink.heads_at_use.lock().unwrap(), [0, 1]);
}

#[test]
fn a_secret_use_that_cannot_be_recorded_is_not_sent() {
    let dir = scratch("unrecordable-secret-mitm");
    let origin_ca = clawcage_egress::tls::Ca::load_or_create(&dir.join("origin")).unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let (port, _) = tls_origin_counting("127.0.0.1", 0, &origin_ca, Hangup::Silent, heads.clone());
    let (proxy, pp, ca, placeholder) = mitm_proxy(&dir, port, None, Arc::new(SecretsFail(MemorySink::default())));
    let mut tls = mitm_client(pp, port, &ca);
    let (code, body) = mitm_get(&mut tls, port, "/", &placeholder);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("secret use could not be recorded"), "{body}");
    proxy.shutdown();
    assert_eq!(heads.load(Ordering::SeqCst), 0, "the request with the secret reached the host unrecorded");
}

/// Records everything but secret uses.
struct SecretsFail(MemorySink);

impl EventSink for SecretsFail {
    fn record(&self, event: &Event) -> Result<(), SinkError> {
        match event {
            Event::Secret { .. } => Err(SinkError("disk full".into())),
            e => self.0.record(e),
        }
    }
}
