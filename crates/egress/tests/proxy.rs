//! The proxy driven directly (no sandbox), for what needs a configurable
//! part: a rebinding resolver, a sink that fails, the unlisted-host hook,
//! and the connection and byte limits. Real servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clawcage_egress::{Config, Lookup, Proxy, ProxyHandle, Resolve, SecretTable, Target, UnlistedHost, Verdict};
use clawcage_policy::event::Decision;
use clawcage_policy::event::MemorySink;
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
    let decisions: Vec<Decision> = sink
        .events()
        .into_iter()
        .filter_map(|e| if let Event::Network { decision, .. } = e { Some(decision) } else { None })
        .collect();
    assert_eq!(decisions, [Decision::Allow, Decision::Deny]);
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
    let (refused, head) = tunnel(pp, &target, b"");
    assert!(head.starts_with("HTTP/1.1 429"), "a third tunnel got through: {head}");
    drop(refused); // it holds a place too while it is open
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
