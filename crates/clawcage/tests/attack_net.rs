//! Attacks on the network from inside the sandbox: the host's loopback
//! services, its other addresses, abstract unix sockets, raw access. The
//! sandbox's network namespace has loopback only; a server and client both
//! inside it is the legitimate use that must keep working.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;

/// A TCP service on the host's 127.0.0.1 that answers one line to anyone.
fn host_service() -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = conn.write_all(b"host-service-secret\n");
        }
    });
    (port, hits)
}

const CONNECT_PY: &str = r#"
import socket, sys
for host in sys.argv[2:]:
    try:
        s = socket.create_connection((host, int(sys.argv[1])), timeout=3)
        print(host, "connected", s.recv(100))
    except OSError as e:
        print(host, "refused", e.errno)
"#;

#[test]
fn a_service_on_the_hosts_loopback_is_unreachable() {
    let (port, hits) = host_service();
    // Control: the service answers on the host.
    let mut probe = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut line = String::new();
    probe.read_to_string(&mut line).unwrap();
    assert_eq!(line, "host-service-secret\n");
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);

    let fx = Fixture::new("net-lo");
    let port_s = port.to_string();
    let run = fx.run(&["python3", "-c", CONNECT_PY, &port_s, "127.0.0.1", "127.1.2.3", "::1", "localhost"]);
    run.expect_code(0);
    assert!(!run.stdout.contains("connected"), "reached the host's loopback service:\n{}", run.stdout);
    assert_eq!(run.stdout.matches("refused").count(), 4, "{}{}", run.stdout, run.stderr);
    // The same with the shell's /dev/tcp and curl, the tools an agent reaches for.
    let script = format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo tcp=ok || echo tcp=err; \
         curl -s -m 3 http://127.0.0.1:{port}/ && echo curl=ok || echo curl=err"
    );
    let run = fx.sh(&script);
    let v = kv(&run.stdout);
    assert_eq!(v["tcp"], "err");
    assert_eq!(v["curl"], "err");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before, "the host service saw a connection");
}

#[test]
fn the_hosts_other_addresses_and_the_outside_world_are_unreachable() {
    let fx = Fixture::new("net-out");
    // Every non-loopback IPv4 address of the host, plus the metadata address.
    let addrs = std::process::Command::new("sh")
        .args(["-c", "ip -4 -o addr show | awk '{print $4}' | cut -d/ -f1 | grep -v '^127\\.'"])
        .output()
        .unwrap();
    let mut targets: Vec<String> =
        String::from_utf8_lossy(&addrs.stdout).split_whitespace().map(str::to_string).collect();
    targets.extend(["169.254.169.254".to_string(), "1.1.1.1".to_string()]);
    let mut argv = vec!["python3", "-c", CONNECT_PY, "80"];
    argv.extend(targets.iter().map(String::as_str));
    let run = fx.run(&argv);
    run.expect_code(0);
    assert!(!run.stdout.contains("connected"), "{}", run.stdout);
    assert_eq!(run.stdout.matches("refused").count(), targets.len(), "{}{}", run.stdout, run.stderr);
    // Only loopback exists, and it is up.
    let run =
        fx.sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; cat /sys/class/net/lo/operstate 2>/dev/null");
    assert_eq!(run.stdout.trim(), "lo", "{}", run.stdout);
}

#[test]
fn a_hosts_abstract_unix_socket_is_unreachable() {
    let name = unique_mark("clawcage-abstract");
    let script = "import socket, sys, time\n\
                  s = socket.socket(socket.AF_UNIX); s.bind('\\0' + sys.argv[1]); s.listen(5)\n\
                  print('ready', flush=True); time.sleep(30)\n";
    let mut server = std::process::Command::new("python3")
        .args(["-c", script, &name])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    server.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    let client = "import socket, sys\n\
                  s = socket.socket(socket.AF_UNIX)\n\
                  try:\n    s.connect('\\0' + sys.argv[1]); print('connected')\n\
                  except OSError as e:\n    print('refused', e.errno)\n";
    // Control from the host, then from inside.
    let host = std::process::Command::new("python3").args(["-c", client, &name]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout).trim(), "connected");
    let fx = Fixture::new("net-abstract");
    let run = fx.run(&["python3", "-c", client, &name]);
    let _ = server.kill();
    let _ = server.wait();
    run.expect_code(0);
    assert!(run.stdout.starts_with("refused"), "{}{}", run.stdout, run.stderr);
}

#[test]
fn loopback_inside_the_sandbox_works() {
    let fx = Fixture::new("net-legit");
    let script = "import socket, threading\n\
                  srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)\n\
                  port = srv.getsockname()[1]\n\
                  def serve():\n    c, _ = srv.accept(); c.sendall(b'inside-ok'); c.close()\n\
                  threading.Thread(target=serve).start()\n\
                  print(socket.create_connection(('127.0.0.1', port)).recv(100).decode())\n\
                  u = socket.socket(socket.AF_UNIX); u.bind('\\0inside'); u.listen(1)\n\
                  v = socket.socket(socket.AF_UNIX); v.connect('\\0inside'); print('unix-ok')\n";
    let run = fx.run(&["python3", "-c", script]);
    run.expect_code(0);
    assert_eq!(run.stdout, "inside-ok\nunix-ok\n", "{}", run.stderr);
}
