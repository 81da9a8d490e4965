//! Origin servers on 127.0.0.1 for the egress tests: HTTP/1.1 (and HTTPS
//! with a test CA made with rcgen), recording every request they get.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A test CA and a leaf for some names.
pub struct TestCa {
    pub pem: String,
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "clawcage test origin CA");
        let cert = p.self_signed(&key).unwrap();
        TestCa { pem: cert.pem(), key, cert }
    }

    fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let p = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], der)
            .unwrap();
        Arc::new(cfg)
    }
}

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// A running origin. It answers `GET /big/N` with N bytes, serves files
/// under `root` when set, and otherwise `origin=NAME path=PATH auth=...`
/// where auth is `match` when the Authorization header carries `secret`.
/// With both `root` and `secret`, files are served only to requests whose
/// Authorization carries `secret` (others get 401), as a private registry does.
pub struct Origin {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

pub struct OriginOpts {
    pub name: &'static str,
    pub addr: &'static str,
    pub port: u16,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub secret: Option<String>,
    pub root: Option<PathBuf>,
    /// Close the connection after every response (saying so in `Connection: close`).
    pub close_each: bool,
}

impl OriginOpts {
    pub fn http(name: &'static str) -> OriginOpts {
        OriginOpts { name, addr: "127.0.0.1", port: 0, tls: None, secret: None, root: None, close_each: false }
    }
    pub fn https(name: &'static str, ca: &TestCa, names: &[&str]) -> OriginOpts {
        OriginOpts { tls: Some(ca.server_config(names)), ..OriginOpts::http(name) }
    }
}

impl Origin {
    pub fn start(o: OriginOpts) -> Origin {
        let listener = TcpListener::bind((o.addr, o.port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, o) = (seen.clone(), Arc::new(o));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, o) = (s.clone(), o.clone());
                std::thread::spawn(move || serve(stream, &o, &s));
            }
        });
        Origin { port, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, o: &OriginOpts, seen: &Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(20)));
    match &o.tls {
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg.clone()) else { return };
            let mut tls = rustls::StreamOwned::new(conn, stream);
            exchange(&mut tls, o, seen);
        }
        None => {
            let mut s = stream;
            exchange(&mut s, o, seen);
        }
    }
}

fn exchange<S: Read + Write>(s: &mut S, o: &OriginOpts, seen: &Mutex<Vec<Seen>>) {
    loop {
        let mut r = BufReader::new(&mut *s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        let req = Seen { head: head.clone(), body: Vec::new() };
        let len: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        drop(r);
        let req = Seen { head, body };
        seen.lock().unwrap().push(req.clone());
        let path = req.head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (status, payload) = respond(&path, &req, o);
        let close = o.close_each || req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        // Directories are served as their index.html (see `respond`).
        let html = o.root.is_some() && (path.ends_with('/') || path.ends_with(".html"));
        let hdr = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: {}\r\n{}\r\n",
            payload.len(),
            if html { "text/html" } else { "text/plain" },
            if close { "Connection: close\r\n" } else { "" }
        );
        if s.write_all(hdr.as_bytes()).and_then(|_| s.write_all(&payload)).and_then(|_| s.flush()).is_err() || close {
            return;
        }
    }
}

fn respond(path: &str, req: &Seen, o: &OriginOpts) -> (&'static str, Vec<u8>) {
    if let Some(n) = path.strip_prefix("/big/") {
        return ("200 OK", vec![b'x'; n.parse().unwrap_or(0)]);
    }
    if let Some(root) = &o.root {
        if let Some(secret) = &o.secret {
            if !req.header("authorization").is_some_and(|v| v.contains(secret.as_str())) {
                return ("401 Unauthorized", b"token required\n".to_vec());
            }
        }
        let rel = path.split('?').next().unwrap_or("").trim_start_matches('/');
        if rel.contains("..") {
            return ("403 Forbidden", b"no\n".to_vec());
        }
        // A directory is its index.html (a PEP 503 simple index is one).
        let file =
            if rel.is_empty() || rel.ends_with('/') { root.join(rel).join("index.html") } else { root.join(rel) };
        return match std::fs::read(file) {
            Ok(data) => ("200 OK", data),
            Err(_) => ("404 Not Found", b"not found\n".to_vec()),
        };
    }
    let auth = match (req.header("authorization"), &o.secret) {
        (None, _) => "none".to_string(),
        (Some(v), Some(s)) if v.contains(s.as_str()) => "match".to_string(),
        (Some(_), _) => "other".to_string(),
    };
    ("200 OK", format!("origin={} path={path} auth={auth}\n", o.name).into_bytes())
}
