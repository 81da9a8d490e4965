//! Package managers inside the sandbox, through the proxy, unchanged: pip
//! from a PEP 503 simple index and npm from a registry, both served on
//! 127.0.0.1 and named through `[network.hosts]`; the package is fetched,
//! installed and imported. And the same index is unreachable when the
//! policy does not list it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;
mod egress_support;

use common::{command, TempDir};
use egress_support::{Origin, OriginOpts, TestCa};
use std::path::Path;
use std::process::{Command, Stdio};

/// Build the served files with the host's python3: a wheel and its simple
/// index, and an npm package tarball with its registry document (which
/// names the tarball's URL, hence `port`).
fn build_packages(root: &Path, port: u16) {
    let script = format!(
        r#"
import base64, hashlib, io, json, os, tarfile, zipfile
root = {root:?}
port = {port}
# --- a wheel and a PEP 503 simple index ---
os.makedirs(f"{{root}}/simple/clawdemo", exist_ok=True)
os.makedirs(f"{{root}}/files", exist_ok=True)
name = "clawdemo-1.0-py3-none-any.whl"
files = {{
    "clawdemo/__init__.py": b'VALUE = "hello-from-pip"\n',
    "clawdemo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: clawdemo\nVersion: 1.0\n",
    "clawdemo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: clawcage-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}}
record = ""
for path, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += f"{{path}},sha256={{digest}},{{len(data)}}\n"
record += "clawdemo-1.0.dist-info/RECORD,,\n"
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    for path, data in files.items():
        z.writestr(path, data)
    z.writestr("clawdemo-1.0.dist-info/RECORD", record)
wheel = buf.getvalue()
open(f"{{root}}/files/{{name}}", "wb").write(wheel)
sha = hashlib.sha256(wheel).hexdigest()
open(f"{{root}}/simple/index.html", "w").write('<!DOCTYPE html><html><body><a href="clawdemo/">clawdemo</a></body></html>')
open(f"{{root}}/simple/clawdemo/index.html", "w").write(
    f'<!DOCTYPE html><html><body><a href="../../files/{{name}}#sha256={{sha}}">{{name}}</a></body></html>')
# --- an npm tarball and its registry document ---
tgz = io.BytesIO()
with tarfile.open(fileobj=tgz, mode="w:gz") as t:
    for path, data in {{
        "package/package.json": json.dumps({{"name": "clawdemo", "version": "1.0.0", "main": "index.js"}}).encode(),
        "package/index.js": b'module.exports = "hello-from-npm";\n',
    }}.items():
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
tarball = tgz.getvalue()
os.makedirs(f"{{root}}/tarballs", exist_ok=True)
open(f"{{root}}/tarballs/clawdemo-1.0.0.tgz", "wb").write(tarball)
integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
doc = {{
    "name": "clawdemo",
    "dist-tags": {{"latest": "1.0.0"}},
    "versions": {{"1.0.0": {{
        "name": "clawdemo", "version": "1.0.0", "main": "index.js",
        "dist": {{
            "tarball": f"http://npm.test:{{port}}/tarballs/clawdemo-1.0.0.tgz",
            "integrity": integrity,
            "shasum": hashlib.sha1(tarball).hexdigest(),
        }},
    }}}},
}}
open(f"{{root}}/clawdemo", "w").write(json.dumps(doc))
"#,
        root = root.display().to_string(),
    );
    let st = Command::new("python3").arg("-c").arg(&script).status().unwrap();
    assert!(st.success(), "building the test packages failed");
}

struct Served {
    _dir: TempDir,
    origin: Origin,
}

/// The packages over HTTP, or over HTTPS with a leaf of `ca` for `names`.
fn serve_packages(tls: Option<(&TestCa, &[&str])>) -> Served {
    let dir = TempDir::new("egress-pkg-served");
    let mut o = match tls {
        Some((ca, names)) => OriginOpts::https("pkg", ca, names),
        None => OriginOpts::http("pkg"),
    };
    o.root = Some(dir.path().to_path_buf());
    let origin = Origin::start(o);
    build_packages(dir.path(), origin.port);
    Served { _dir: dir, origin }
}

fn run(ws: &TempDir, policy: &str, script: &str) -> common::Run {
    let mut cmd = command(ws.path(), Some(policy), &["/bin/sh", "-c", script]);
    common::output(cmd.stdin(Stdio::null()))
}

fn requested(o: &Origin) -> Vec<String> {
    o.requests().iter().map(|s| s.head.lines().next().unwrap_or("").to_string()).collect()
}

#[test]
fn pip_downloads_and_installs_from_an_https_simple_index_through_the_proxy() {
    let ws = TempDir::new("egress-pip");
    // HTTPS as the real index is: the CONNECT tunnel, verified by pip
    // against the index's CA. (pip's --cert/PIP_CERT loses to
    // REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE, which the sandbox points at its bundle; a private
    // index's CA is named by unsetting it.)
    let ca = TestCa::new();
    ws.write("index-ca.pem", &ca.pem);
    let pkg = serve_packages(Some((&ca, &["pypi.test"])));
    let p = pkg.origin.port;
    let policy = format!(
        "[network]\nallow = [\"pypi.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"pypi.test\" = \"127.0.0.1\"\n"
    );
    let index = format!("https://pypi.test:{p}/simple/");
    let script = format!(
        "unset REQUESTS_CA_BUNDLE CURL_CA_BUNDLE; export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_CERT=$PWD/index-ca.pem; \
         /usr/bin/python3 -m pip download -q --no-deps -d /tmp/dl --index-url {index} clawdemo && ls /tmp/dl && \
         /usr/bin/python3 -m pip install -q --no-deps --target /tmp/site --index-url {index} clawdemo && \
         PYTHONPATH=/tmp/site /usr/bin/python3 -c 'import clawdemo; print(clawdemo.VALUE)'"
    );
    let r = run(&ws, &policy, &script);
    r.expect_code(0);
    assert_eq!(r.stdout, "clawdemo-1.0-py3-none-any.whl\nhello-from-pip\n", "{}", r.stderr);
    let seen = requested(&pkg.origin);
    assert!(seen.iter().any(|l| l.starts_with("GET /simple/clawdemo/")), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("GET /files/clawdemo-1.0-py3-none-any.whl")), "{seen:?}");

    // The same index, not listed: pip gets nowhere and nothing is fetched.
    let before = seen.len();
    let closed = format!("[network]\nallow = [\"other.test:{p}\"]\n[network.hosts]\n\"pypi.test\" = \"127.0.0.1\"\n");
    let script = format!(
        "unset REQUESTS_CA_BUNDLE CURL_CA_BUNDLE; PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=$PWD/index-ca.pem /usr/bin/python3 -m pip download --retries 0 --timeout 5 --no-deps -d /tmp/dl --index-url {index} clawdemo"
    );
    let r = run(&ws, &closed, &script);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert_eq!(requested(&pkg.origin).len(), before, "an unlisted index was reached");
}

#[test]
fn npm_installs_from_a_registry_through_the_proxy() {
    let ws = TempDir::new("egress-npm");
    let pkg = serve_packages(None);
    let p = pkg.origin.port;
    let policy = format!(
        "[network]\nallow = [\"npm.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"npm.test\" = \"127.0.0.1\"\n"
    );
    let script = format!(
        "mkdir -p /tmp/app && cd /tmp/app && echo '{{\"name\":\"app\",\"version\":\"0.0.0\"}}' > package.json && \
         npm install --registry http://npm.test:{p}/ --no-audit --no-fund --no-update-notifier --loglevel=error clawdemo >/dev/null && \
         node -e 'console.log(require(\"clawdemo\"))' && \
         node -e 'console.log(require(\"./package-lock.json\").packages[\"node_modules/clawdemo\"].resolved)'"
    );
    let r = run(&ws, &policy, &script);
    r.expect_code(0);
    assert_eq!(r.stdout, format!("hello-from-npm\nhttp://npm.test:{p}/tarballs/clawdemo-1.0.0.tgz\n"), "{}", r.stderr);
    let seen = requested(&pkg.origin);
    assert!(seen.iter().any(|l| l.starts_with("GET /clawdemo ")), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("GET /tarballs/clawdemo-1.0.0.tgz")), "{seen:?}");
}

/// A sparse cargo registry under `root` for `https://reg.test:{port}/`:
/// `index/config.json`, the index file of crate `clawdemo` (1.0.0, with the
/// sha256 of its .crate), and the .crate itself (a real gzipped tarball).
fn build_registry(root: &Path, port: u16, auth_required: bool) {
    let script = format!(
        r#"
import hashlib, io, json, os, tarfile
root = {root:?}
port = {port}
os.makedirs(f"{{root}}/index/cl/aw", exist_ok=True)
os.makedirs(f"{{root}}/dl", exist_ok=True)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    for path, data in {{
        "clawdemo-1.0.0/Cargo.toml": b'[package]\nname = "clawdemo"\nversion = "1.0.0"\nedition = "2021"\n',
        "clawdemo-1.0.0/src/lib.rs": b'pub const VALUE: &str = "hello-from-cargo";\n',
    }}.items():
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
crate = buf.getvalue()
open(f"{{root}}/dl/clawdemo-1.0.0.crate", "wb").write(crate)
line = {{"name": "clawdemo", "vers": "1.0.0", "deps": [], "features": {{}}, "yanked": False,
         "cksum": hashlib.sha256(crate).hexdigest()}}
open(f"{{root}}/index/cl/aw/clawdemo", "w").write(json.dumps(line) + "\n")
config = {{"dl": f"https://reg.test:{{port}}/dl/{{{{crate}}}}-{{{{version}}}}.crate"}}
if {auth}:
    config["auth-required"] = True
open(f"{{root}}/index/config.json", "w").write(json.dumps(config))
"#,
        root = root.display().to_string(),
        auth = if auth_required { "True" } else { "False" },
    );
    let st = Command::new("python3").arg("-c").arg(&script).status().unwrap();
    assert!(st.success(), "building the test registry failed");
}

/// A crate `app` in `ws/app` that depends on `clawdemo = "1"`.
fn write_app(ws: &TempDir) {
    ws.write(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nclawdemo = \"1\"\n",
    );
    ws.write("app/src/main.rs", "fn main() { println!(\"{}\", clawdemo::VALUE); }\n");
}

/// The default profile's read-only directories (a `read` list replaces them).
const SYSTEM_READ: &str = r#""/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc""#;

/// The host's cargo and rustc (cargo runs `rustc -vV` even to resolve),
/// with the libraries rustc loads, linked into `dir` (`bin/`, `lib/`):
/// the toolchain lives under /root, which the sandbox cannot enter. Hard
/// links where the filesystem allows (a copy otherwise); the policy gives
/// `dir` read-only, so the sandbox cannot change the host's files through them.
fn link_toolchain(dir: &Path) {
    let o = Command::new("rustup").args(["which", "cargo"]).output().unwrap();
    assert!(o.status.success(), "rustup which cargo failed");
    let cargo = std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let tc = cargo.parent().and_then(Path::parent).unwrap().to_path_buf();
    let mut files = vec![tc.join("bin/cargo"), tc.join("bin/rustc")];
    for e in std::fs::read_dir(tc.join("lib")).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            files.push(e.path());
        }
    }
    for f in files {
        let to = dir.join(f.strip_prefix(&tc).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if std::fs::hard_link(&f, &to).is_err() {
            std::fs::copy(&f, &to).unwrap();
        }
    }
}

#[test]
fn cargo_fetches_a_crate_from_an_https_sparse_registry_through_the_proxy() {
    let ws = TempDir::new("egress-cargo");
    let tools = TempDir::new("egress-cargo-toolchain");
    link_toolchain(tools.path());
    let tc = tools.path().display();
    let ca = TestCa::new();
    ws.write("registry-ca.pem", &ca.pem);
    let dir = TempDir::new("egress-cargo-served");
    let mut o = OriginOpts::https("reg", &ca, &["reg.test"]);
    o.root = Some(dir.path().to_path_buf());
    let reg = Origin::start(o);
    let p = reg.port;
    build_registry(dir.path(), p, false);
    write_app(&ws);
    // crates.io replaced by the fake registry, as a company mirror is; its
    // CA named for cargo (the sandbox's bundle holds only the host's roots
    // and clawcage's).
    ws.write(
        "cargo-home/config.toml",
        &format!(
            "[source.crates-io]\nreplace-with = \"fake\"\n[source.fake]\nregistry = \"sparse+https://reg.test:{p}/index/\"\n"
        ),
    );
    let policy = format!(
        "[filesystem]\nread = [{SYSTEM_READ}, \"{tc}\"]\n\
         [network]\nallow = [\"reg.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"reg.test\" = \"127.0.0.1\"\n"
    );
    let env = format!("export PATH={tc}/bin:$PATH CARGO_HOME=$PWD/cargo-home CARGO_HTTP_CAINFO=$PWD/registry-ca.pem CARGO_NET_RETRY=0");
    let script = format!(
        "{env}; cd app && cargo generate-lockfile -q && cargo fetch -q && \
                  grep -A1 'name = \"clawdemo\"' Cargo.lock && \
                  cat ../cargo-home/registry/src/*/clawdemo-1.0.0/src/lib.rs"
    );
    let r = run(&ws, &policy, &script);
    r.expect_code(0);
    assert_eq!(
        r.stdout, "name = \"clawdemo\"\nversion = \"1.0.0\"\npub const VALUE: &str = \"hello-from-cargo\";\n",
        "{}",
        r.stderr
    );
    let seen = requested(&reg);
    assert!(seen.iter().any(|l| l.starts_with("GET /index/cl/aw/clawdemo ")), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("GET /dl/clawdemo-1.0.0.crate ")), "{seen:?}");

    // The registry not listed: cargo gets nowhere, nothing is fetched.
    let before = seen.len();
    let closed = format!(
        "[filesystem]\nread = [{SYSTEM_READ}, \"{tc}\"]\n\
         [network]\nallow = [\"other.test:{p}\"]\n[network.hosts]\n\"reg.test\" = \"127.0.0.1\"\n"
    );
    let script = format!("{env}; rm -rf cargo-home/registry app/Cargo.lock; cd app && cargo generate-lockfile");
    let r = run(&ws, &closed, &script);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("403"), "{}", r.stderr);
    assert_eq!(requested(&reg).len(), before, "an unlisted registry was reached");
}

#[test]
fn cargo_uses_a_private_registry_whose_token_only_the_proxy_holds() {
    let ws = TempDir::new("egress-cargo-auth");
    let tools = TempDir::new("egress-cargo-auth-toolchain");
    link_toolchain(tools.path());
    let tc = tools.path().display();
    let ca = TestCa::new();
    let real = format!("cio_real_{}", std::process::id());
    let dir = TempDir::new("egress-cargo-auth-served");
    let ca_file = dir.write("registry-ca.pem", &ca.pem);
    std::fs::write(dir.path().join("token"), &real).unwrap();
    let mut o = OriginOpts::https("reg", &ca, &["reg.test"]);
    o.root = Some(dir.path().join("srv"));
    o.secret = Some(real.clone());
    let reg = Origin::start(o);
    let p = reg.port;
    build_registry(&dir.path().join("srv"), p, true);
    write_app(&ws);
    ws.write(
        "cargo-home/config.toml",
        &format!(
            "[registry]\nglobal-credential-providers = [\"cargo:token\"]\n\
             [registries.fake]\nindex = \"sparse+https://reg.test:{p}/index/\"\n[source.crates-io]\nreplace-with = \"fake\"\n"
        ),
    );
    // The token is a secret bound to the registry: cargo holds only its
    // placeholder (in the variable cargo reads), the proxy terminates TLS
    // with clawcage's CA (which cargo trusts through the sandbox's
    // CARGO_HTTP_CAINFO, untouched here) and verifies the registry against
    // the policy's CA.
    let policy = format!(
        "[filesystem]\nread = [{SYSTEM_READ}, \"{tc}\"]\n\
         [network]\nallow = [\"reg.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\nca = [\"{ca}\"]\n\
         [network.hosts]\n\"reg.test\" = \"127.0.0.1\"\n\
         [secrets.registry]\nfrom = \"file:{token}\"\nhosts = [\"reg.test\"]\nheader = \"Authorization: {{}}\"\n\
         env = \"CARGO_REGISTRIES_FAKE_TOKEN\"\n",
        ca = ca_file.display(),
        token = dir.path().join("token").display(),
    );
    let script = format!(
        "export PATH={tc}/bin:$PATH CARGO_HOME=$PWD/cargo-home CARGO_NET_RETRY=0; \
         cd app && cargo generate-lockfile -q && cargo fetch -q && \
         cat ../cargo-home/registry/src/*/clawdemo-1.0.0/src/lib.rs && echo \"token=$CARGO_REGISTRIES_FAKE_TOKEN\""
    );
    let r = run(&ws, &policy, &script);
    r.expect_code(0);
    let (lib, token) = r.stdout.split_once("token=").unwrap_or_default();
    assert_eq!(lib, "pub const VALUE: &str = \"hello-from-cargo\";\n", "{}", r.stderr);
    // What cargo held was a placeholder, not the token.
    assert!(token.trim().len() > 8 && !r.stdout.contains(&real) && !r.stderr.contains(&real), "{}", r.stdout);
    let seen = reg.requests();
    let lines: Vec<String> = seen.iter().map(|s| s.head.lines().next().unwrap_or("").to_string()).collect();
    assert!(lines.iter().any(|l| l.starts_with("GET /index/cl/aw/clawdemo ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("GET /dl/clawdemo-1.0.0.crate ")), "{lines:?}");
    for s in &seen {
        assert_eq!(s.header("authorization"), Some(real.clone()), "{}", s.head);
    }
    let log = std::fs::read_to_string(common::state_dir_for(ws.path()).join("audit.jsonl")).unwrap();
    assert!(log.contains("\"action\":\"injected\""), "{log}");
    assert!(!log.contains(&real), "the token is in the audit log");
}
