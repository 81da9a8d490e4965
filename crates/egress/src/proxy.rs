//! The proxy server: one tokio runtime on its own thread per sandbox,
//! accepting on the listener init handed out.
//!
//! Per client connection (HTTP/1.1, hyper):
//! - `CONNECT host:port`: decide, connect, `200`, then either tunnel bytes
//!   untouched or, for a secret-bound host, terminate TLS with a leaf of our
//!   CA and forward the requests inside over verified TLS to the host;
//! - `GET http://host[:port]/...` (absolute form): the Host header must name
//!   the same destination; decide, connect (one upstream connection reused
//!   while the destination stays the same), forward;
//! - anything else: `400`.
//!
//! "Decide" is one sequence ([`State::open`]): allow rule (or the unlisted
//! hook), resolution (`[network.hosts]`, then the resolver), the address
//! check of every address, the audit record, and only then the connect, to
//! an address that was checked.
//! A connect or upstream TLS that fails is recorded as a deny. A secret's
//! use is recorded once the connection it goes over is up and verified,
//! and before the request carrying it is written ([`State::forward`]).

use crate::body::{BoxError, OnBlock, Scanned, BUFFER_MAX};
use crate::host::{parse_authority, Host, Target};
use crate::io::{Budget, Counted, Counters};
use crate::rules::check_address;
use crate::secrets::{Applied, BodyApplied};
use crate::tunnel::Tunnel;
use crate::{Config, EgressError, SharedSink, Verdict};
use bytes::Bytes;
use clawcage_policy::event::{Decision, SecretAction};
use clawcage_policy::{Event, SinkError};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, Limited};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

type Body = BoxBody<Bytes, BoxError>;

/// Set (to the secret's name) when a streamed request body was cut off for
/// carrying a foreign placeholder.
type BlockFlag = Arc<std::sync::Mutex<Option<String>>>;

/// Starting the proxy.
pub struct Proxy;

/// The running proxy; [`ProxyHandle::shutdown`] (or drop) stops it.
pub struct ProxyHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyHandle {
    /// Stop accepting, close every connection, and join the proxy's thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl Proxy {
    /// Serve `listener` (the socket from `Sandbox::take_proxy_listener`, or
    /// any TCP listener) with `config`, on a new thread running its own
    /// tokio runtime; decisions go to `sink`.
    pub fn spawn(
        config: Config,
        listener: std::net::TcpListener,
        sink: SharedSink,
    ) -> Result<ProxyHandle, EgressError> {
        listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let st = Arc::new(State {
            budget: Arc::new(Budget::new(config.max_bytes)),
            cfg: config,
            sink,
            open: AtomicU64::new(0),
        });
        let thread = std::thread::Builder::new().name("clawcage-egress".into()).spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                tokio::pin!(rx);
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        r = listener.accept() => match r {
                            Ok((stream, _)) => { tokio::spawn(st.clone().client(stream)); }
                            // Out of descriptors and the like: back off, keep serving.
                            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                        },
                    }
                }
            });
        })?;
        Ok(ProxyHandle { stop: Some(tx), thread: Some(thread) })
    }
}

struct State {
    cfg: Config,
    sink: SharedSink,
    budget: Arc<Budget>,
    open: AtomicU64,
}

/// A client connection's place under `max_connections`, shared by all
/// that serve it (the HTTP layer, then its tunnel): freed when the last goes.
struct Place(Arc<State>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn text(status: StatusCode, msg: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg)).map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = status;
    r
}

/// How a forwarding connection reaches its destination.
#[derive(Debug, Clone, Copy)]
enum Wire {
    /// Plain HTTP over TCP.
    Plain,
    /// TLS verified against the upstream roots (secret-bound hosts).
    Tls,
}

/// The upstream connection a client connection currently forwards to.
struct Upstream {
    target: Target,
    sender: SendRequest<Body>,
}

impl State {
    fn log(&self, line: &str) {
        if let Some(log) = &self.cfg.log {
            log(line);
        }
    }

    /// Record `event` (durably: the sink may fsync, so off the runtime thread).
    async fn record(&self, event: Event) -> Result<(), SinkError> {
        let sink = self.sink.clone();
        tokio::task::spawn_blocking(move || sink.record(&event))
            .await
            .unwrap_or_else(|e| Err(SinkError(format!("recording thread: {e}"))))
    }

    async fn deny(&self, host: String, port: u16, reason: String, status: StatusCode, body: String) -> Response<Body> {
        self.log(&format!("deny {host}:{port}: {reason}"));
        let event = Event::Network {
            sandbox: self.cfg.sandbox.clone(),
            host,
            port,
            decision: Decision::Deny,
            rule: None,
            reason,
        };
        // Refused either way; a failed record cannot make it worse.
        let _ = self.record(event).await;
        text(status, body)
    }

    fn not_allowed_body(&self, t: &Target) -> String {
        format!(
            "clawcage egress: {t} is not allowed by the policy.\nTo allow it, add \"{t}\" to [network] allow in {}.\n",
            self.cfg.policy_file
        )
    }

    /// The whole decision for one destination, then the connect.
    async fn open(&self, t: &Target) -> Result<(TcpStream, Arc<Counters>), Response<Body>> {
        let forbidden = |r: String| (r.clone(), StatusCode::FORBIDDEN, format!("clawcage egress: {t} refused: {r}\n"));
        let result: Result<(String, Vec<SocketAddr>), (String, StatusCode, String)> = async {
            let rule = match self.cfg.allow.find(t) {
                Some(r) => r.text().to_string(),
                None => {
                    let hook = self.cfg.unlisted.clone();
                    let target = t.clone();
                    match tokio::task::spawn_blocking(move || hook.decide(&target)).await {
                        Ok(Verdict::Allow(why)) => why,
                        _ => {
                            let body = self.not_allowed_body(t);
                            return Err(("not in [network] allow".to_string(), StatusCode::FORBIDDEN, body));
                        }
                    }
                }
            };
            let ips = match &t.host {
                Host::Ip(ip) => vec![*ip],
                Host::Name(n) => match self.cfg.hosts.get(n) {
                    Some(ip) => vec![*ip],
                    None => match self.cfg.resolver.resolve(n, t.port).await {
                        Ok(ips) if !ips.is_empty() => ips,
                        Ok(_) => return Err(forbidden_dns(t, "no address")),
                        Err(e) => return Err(forbidden_dns(t, &e.to_string())),
                    },
                },
            };
            // Every address must pass: a name that resolves to one forbidden
            // address is refused whole.
            for ip in &ips {
                if let Some(why) = check_address(*ip, &self.cfg.allow_ips) {
                    return Err(forbidden(why));
                }
            }
            let addrs = ips.into_iter().map(|ip| SocketAddr::new(ip.to_canonical(), t.port)).collect();
            Ok((rule, addrs))
        }
        .await;
        let (rule, addrs) = match result {
            Ok(x) => x,
            Err((reason, status, body)) => return Err(self.deny(t.host_name(), t.port, reason, status, body).await),
        };
        let reason = format!(
            "allowed; connecting to {}",
            addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")
        );
        let event = Event::Network {
            sandbox: self.cfg.sandbox.clone(),
            host: t.host_name(),
            port: t.port,
            decision: Decision::Allow,
            rule: Some(rule.clone()),
            reason,
        };
        if let Err(e) = self.record(event).await {
            self.log(&format!("deny {t}: audit failed: {e}"));
            return Err(text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("clawcage egress: {t} refused: the decision could not be recorded ({e})\n"),
            ));
        }
        self.log(&format!("allow {t} ({rule})"));
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, Arc::new(Counters::default())));
                }
                Err(e) => last = Some(e),
            }
        }
        let why = format!("cannot connect to {t}: {}", last.map(|e| e.to_string()).unwrap_or_default());
        self.failed(t, &why).await;
        Err(text(StatusCode::BAD_GATEWAY, format!("clawcage egress: {why}\n")))
    }

    /// Record that the upstream side of an allowed connection failed (no
    /// connection, or TLS that did not verify): nothing was sent on it.
    async fn failed(&self, t: &Target, why: &str) {
        let event = Event::Network {
            sandbox: self.cfg.sandbox.clone(),
            host: t.host_name(),
            port: t.port,
            decision: Decision::Deny,
            rule: None,
            reason: why.to_string(),
        };
        let _ = self.record(event).await; // refused either way
    }

    async fn end(&self, t: &Target, c: &Counters) {
        let (received, sent) = c.get();
        let event = Event::NetworkEnd {
            sandbox: self.cfg.sandbox.clone(),
            host: t.host_name(),
            port: t.port,
            bytes_sent: sent,
            bytes_received: received,
        };
        let _ = self.record(event).await; // the effect is over; nothing left to refuse
    }

    /// Serve one client connection from the sandbox.
    async fn client(self: Arc<Self>, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let n = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let place = Arc::new(Place(self.clone()));
        // Once the byte budget is spent, a new connection is only read far
        // enough to be told so (every request on it gets 429).
        let budget = (!self.budget.tripped()).then(|| self.budget.clone());
        let io = TokioIo::new(Counted::new(stream, Arc::new(Counters::default()), budget));
        let over = self.cfg.max_connections.is_some_and(|max| n > max);
        let conn: Arc<Mutex<Option<Upstream>>> = Arc::new(Mutex::new(None));
        let st = self.clone();
        let svc = service_fn(move |req| {
            let (st, conn, place) = (st.clone(), conn.clone(), place.clone());
            async move {
                if over {
                    let max = st.cfg.max_connections.unwrap_or(0);
                    let body = format!("clawcage egress: too many connections ([network] max_connections = {max})\n");
                    let why = "max_connections reached".to_string();
                    let mut r = st.deny(String::new(), 0, why, StatusCode::TOO_MANY_REQUESTS, body).await;
                    // Closed after the answer: a refused connection holds nothing open.
                    r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                    return Ok::<_, Infallible>(r);
                }
                Ok(st.handle(req, conn, place).await)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).with_upgrades().await;
        if self.budget.tripped() {
            let max = self.cfg.max_bytes.unwrap_or(0);
            self.log(&format!("max_bytes {max} reached"));
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<Mutex<Option<Upstream>>>,
        place: Arc<Place>,
    ) -> Response<Body> {
        if self.budget.tripped() {
            let max = self.cfg.max_bytes.unwrap_or(0);
            let body = format!("clawcage egress: byte limit reached ([network] max_bytes = {max})\n");
            return self.deny(String::new(), 0, "max_bytes reached".into(), StatusCode::TOO_MANY_REQUESTS, body).await;
        }
        if req.method() == Method::CONNECT {
            return self.connect(req, place).await;
        }
        match req.uri().scheme_str() {
            Some("http") => self.plain(req, conn).await,
            Some(_) => text(
                StatusCode::BAD_REQUEST,
                "clawcage egress: only http:// URLs are forwarded; https goes through CONNECT\n".into(),
            ),
            None => text(
                StatusCode::BAD_REQUEST,
                "clawcage egress: this is a proxy: send absolute-form requests or CONNECT\n".into(),
            ),
        }
    }

    /// Parse a request's destination, recording a refusal for junk.
    async fn target(&self, raw: &str, default_port: Option<u16>) -> Result<Target, Response<Body>> {
        match parse_authority(raw, default_port) {
            Ok(t) => Ok(t),
            Err(e) => {
                let body = format!("clawcage egress: {e}\n");
                Err(self.deny(raw.to_string(), 0, e.to_string(), StatusCode::FORBIDDEN, body).await)
            }
        }
    }

    /// CONNECT: the tunnel (or terminated TLS) holds `place` for its whole life.
    async fn connect(self: Arc<Self>, req: Request<Incoming>, place: Arc<Place>) -> Response<Body> {
        let raw = req.uri().authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let t = match self.target(&raw, None).await {
            Ok(t) => t,
            Err(r) => return r,
        };
        let (up, counters) = match self.open(&t).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let mitm = matches!(t.host, Host::Name(_)) && self.cfg.secrets.any_bound(&t.host);
        let st = self.clone();
        tokio::spawn(async move {
            let _place = place;
            let Ok(upgraded) = hyper::upgrade::on(req).await else {
                st.end(&t, &counters).await;
                return;
            };
            if mitm {
                // Each upstream connection (this first one, and any reconnect)
                // records its own end.
                st.terminate(&t, TokioIo::new(upgraded), (up, counters)).await;
            } else {
                // The client's own socket back from the HTTP layer: the
                // tunnel splices between the two sockets.
                match upgraded.downcast::<TokioIo<Counted<TcpStream>>>() {
                    Ok(parts) => {
                        let (client, budget) = parts.io.into_inner().into_parts();
                        let tunnel =
                            Tunnel { client, early: parts.read_buf, host: up, counters: counters.clone(), budget };
                        let _ = tunnel.run().await;
                    }
                    Err(_) => st.log(&format!("tunnel to {t}: the client connection is not a TCP socket")),
                }
                st.end(&t, &counters).await;
            }
        });
        empty(StatusCode::OK)
    }

    /// HTTPS to a secret-bound host: TLS with the client under a leaf of our
    /// CA, verified TLS to the host, requests forwarded one by one. When the
    /// host closes its connection, the next request opens a new one through
    /// the whole decision again ([`State::open`]: rule, resolution, address
    /// check, record).
    async fn terminate(
        self: &Arc<Self>,
        t: &Target,
        client: TokioIo<hyper::upgrade::Upgraded>,
        first: (TcpStream, Arc<Counters>),
    ) {
        let (Host::Name(name), Some(ca)) = (&t.host, &self.cfg.ca) else {
            return self.end(t, &first.1).await;
        };
        let Ok(server_cfg) = ca.server_config(name) else { return self.end(t, &first.1).await };
        let Ok(client_tls) = tokio_rustls::TlsAcceptor::from(server_cfg).accept(client).await else {
            return self.end(t, &first.1).await;
        };
        let slot = Arc::new(Mutex::new(match self.dial(t, Wire::Tls, first).await {
            Ok(sender) => Some(Upstream { target: t.clone(), sender }),
            Err(e) => {
                self.log(&format!("upstream {t}: {e}"));
                None
            }
        }));
        let st = self.clone();
        let target = t.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let (st, t, slot) = (st.clone(), target.clone(), slot.clone());
            async move {
                if let Err(r) = st.check_host_header(&req, &t, 443).await {
                    return Ok::<_, Infallible>(r);
                }
                Ok(st.forward(req, &t, Wire::Tls, &slot).await)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(client_tls), svc).await;
    }

    /// An HTTP/1.1 client connection to `t` over `stream` (a fresh decision
    /// and connect when `stream` is `None`), TLS-verified for [`Wire::Tls`].
    /// Its end is recorded when it closes.
    async fn dial(
        self: &Arc<Self>,
        t: &Target,
        wire: Wire,
        (stream, counters): (TcpStream, Arc<Counters>),
    ) -> Result<SendRequest<Body>, String> {
        let io = Counted::new(stream, counters.clone(), None);
        let handshake = match wire {
            Wire::Plain => hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map(|(s, c)| {
                let (st, t) = (self.clone(), t.clone());
                tokio::spawn(async move {
                    let _ = c.await;
                    st.end(&t, &counters).await;
                });
                s
            }),
            Wire::Tls => {
                let Host::Name(name) = &t.host else { return Err(format!("{t}: TLS needs a name")) };
                let sn = match rustls::pki_types::ServerName::try_from(name.clone()) {
                    Ok(sn) => sn,
                    Err(e) => {
                        self.end(t, &counters).await;
                        return Err(e.to_string());
                    }
                };
                let tls = match tokio_rustls::TlsConnector::from(self.cfg.upstream_tls.clone()).connect(sn, io).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        let why = format!("TLS to {t} failed: {e}");
                        self.failed(t, &why).await;
                        self.end(t, &counters).await;
                        return Err(why);
                    }
                };
                hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map(|(s, c)| {
                    let (st, t) = (self.clone(), t.clone());
                    tokio::spawn(async move {
                        let _ = c.await;
                        st.end(&t, &counters).await;
                    });
                    s
                })
            }
        };
        handshake.map_err(|e| e.to_string())
    }

    /// The Host header, when present, must name the request's destination.
    async fn check_host_header(
        &self,
        req: &Request<Incoming>,
        t: &Target,
        default_port: u16,
    ) -> Result<(), Response<Body>> {
        let Some(h) = req.headers().get(HOST) else { return Ok(()) };
        let raw = String::from_utf8_lossy(h.as_bytes()).into_owned();
        match parse_authority(&raw, Some(default_port)) {
            Ok(ht) if ht == *t => Ok(()),
            _ => {
                let reason = format!("Host header {raw:?} does not match the request target {t}");
                let body = format!("clawcage egress: refused: {reason}\n");
                Err(self.deny(t.host_name(), t.port, reason, StatusCode::FORBIDDEN, body).await)
            }
        }
    }

    /// Plain HTTP in absolute form.
    async fn plain(self: Arc<Self>, req: Request<Incoming>, conn: Arc<Mutex<Option<Upstream>>>) -> Response<Body> {
        let raw = req.uri().authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let t = match self.target(&raw, Some(80)).await {
            Ok(t) => t,
            Err(r) => return r,
        };
        if let Err(r) = self.check_host_header(&req, &t, 80).await {
            return r;
        }
        self.forward(req, &t, Wire::Plain, &conn).await
    }

    /// A sender to `t` that is ready, and whether it was used before: the
    /// one in `slot` when it still is, else a new connection through the
    /// whole decision ([`State::open`]).
    async fn ready_sender<'a>(
        self: &Arc<Self>,
        slot: &'a mut Option<Upstream>,
        t: &Target,
        wire: Wire,
    ) -> Result<(&'a mut SendRequest<Body>, bool), Response<Body>> {
        let reused = match slot.as_mut() {
            Some(u) if u.target == *t => u.sender.ready().await.is_ok(),
            _ => false,
        };
        if !reused {
            *slot = None;
            let opened = self.open(t).await?;
            let sender = self
                .dial(t, wire, opened)
                .await
                .map_err(|e| text(StatusCode::BAD_GATEWAY, format!("clawcage egress: {t}: {e}\n")))?;
            *slot = Some(Upstream { target: t.clone(), sender });
        }
        match slot.as_mut() {
            Some(u) => Ok((&mut u.sender, reused)),
            None => Err(text(StatusCode::BAD_GATEWAY, "clawcage egress: no upstream\n".into())),
        }
    }

    /// Forward one request to `t` over the connection in `slot` (reopened
    /// when closed): origin-form target, hop-by-hop headers dropped, secrets
    /// applied (or the request blocked).
    async fn forward(
        self: &Arc<Self>,
        req: Request<Incoming>,
        t: &Target,
        wire: Wire,
        slot: &Mutex<Option<Upstream>>,
    ) -> Response<Body> {
        let flag: BlockFlag = Arc::default();
        let (mut upstream_req, mut injected) = match self.prepare(req, t, &flag).await {
            Ok(r) => r,
            Err(r) => return r,
        };
        let mut guard = slot.lock().await;
        // A connection the host closed between our readiness check and the
        // write gives the request back unsent: it goes once more, on a new
        // one. So does a bodiless request of a method safe to repeat (RFC
        // 9110 §9.2.2) that a reused connection failed before any answer:
        // the host's idle timeout raced it.
        let mut replay = replayable(&upstream_req);
        for attempt in 0..2 {
            let (sender, reused) = match self.ready_sender(&mut guard, t, wire).await {
                Ok(s) => s,
                Err(r) => return r,
            };
            // The connection is up (and its TLS verified): the use of the
            // secrets is recorded now, before the request carrying them is
            // written, once per request; one that cannot be recorded is not sent.
            if !injected.is_empty() {
                if let Err(r) = self.injected(&std::mem::take(&mut injected), t).await {
                    return r;
                }
            }
            let sent = sender.try_send_request(upstream_req).await;
            // A streamed body cut off for a foreign placeholder: whatever the
            // host answered, the client is told why (the record is made by the body).
            if let Some(name) = flag.lock().ok().and_then(|f| f.clone()) {
                return blocked(&name, t);
            }
            match sent {
                Ok(resp) => {
                    let (mut parts, body) = resp.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    return Response::from_parts(parts, body.map_err(Into::into).boxed());
                }
                Err(mut e) => match (e.take_message(), replay.take()) {
                    (Some(again), _) if attempt == 0 => {
                        *guard = None;
                        upstream_req = again;
                    }
                    (None, Some(again)) if attempt == 0 && reused => {
                        *guard = None;
                        upstream_req = again;
                    }
                    _ => return text(StatusCode::BAD_GATEWAY, format!("clawcage egress: {t}: {}\n", e.error())),
                },
            }
        }
        text(StatusCode::BAD_GATEWAY, format!("clawcage egress: the connection to {t} closed\n"))
    }

    /// The request as it goes upstream: origin-form target, hop-by-hop
    /// headers dropped, secrets applied — or the response that refuses it.
    /// The names of the secrets put in come back with it, to be recorded
    /// once the connection they go over is up ([`State::forward`]).
    async fn prepare(
        self: &Arc<Self>,
        req: Request<Incoming>,
        t: &Target,
        flag: &BlockFlag,
    ) -> Result<(Request<Body>, Vec<String>), Response<Body>> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
        parts.uri = match path.parse::<Uri>() {
            Ok(u) => u,
            Err(_) => return Err(text(StatusCode::BAD_REQUEST, "clawcage egress: bad request target\n".into())),
        };
        strip_hop_by_hop(&mut parts.headers);
        let mut injected = match self.cfg.secrets.apply(&t.host, &mut parts) {
            Applied::None => Vec::new(),
            Applied::Blocked(name) => return Err(self.block(&name, t).await),
            Applied::Injected(names) => names,
        };
        let body = match self.cfg.secrets.is_empty() {
            true => body.map_err(Into::into).boxed(),
            false => self.scan_body(&mut parts, body, t, flag, &mut injected).await?,
        };
        if !parts.headers.contains_key(HOST) {
            let default = if matches!(t.port, 80 | 443) { t.host.to_string() } else { t.to_string() };
            if let Ok(v) = HeaderValue::from_str(&default) {
                parts.headers.insert(HOST, v);
            }
        }
        Ok((Request::from_parts(parts, body), injected))
    }

    /// Record that the placeholder of secret `name` was stopped toward `t`; the answer.
    async fn block(&self, name: &str, t: &Target) -> Response<Body> {
        self.log(&format!("blocked secret {name} toward {t}"));
        let _ = self.record(self.secret_event(name, t, SecretAction::Blocked)).await;
        blocked(name, t)
    }

    /// Record the secrets put into a request; a use that cannot be recorded refuses it.
    async fn injected(&self, names: &[String], t: &Target) -> Result<(), Response<Body>> {
        for name in names {
            if let Err(e) = self.record(self.secret_event(name, t, SecretAction::Injected)).await {
                return Err(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("clawcage egress: refused: the secret use could not be recorded ({e})\n"),
                ));
            }
        }
        Ok(())
    }

    /// The request body toward `t`, searched for placeholders (see
    /// [`crate::body`]); the secrets put into it are added to `injected`.
    async fn scan_body(
        self: &Arc<Self>,
        parts: &mut http::request::Parts,
        body: Incoming,
        t: &Target,
        flag: &BlockFlag,
        injected: &mut Vec<String>,
    ) -> Result<Body, Response<Body>> {
        let len = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if body.is_end_stream() || len.is_some_and(|n| n <= BUFFER_MAX) {
            let whole = match Limited::new(body, BUFFER_MAX as usize).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return Err(text(
                        StatusCode::BAD_REQUEST,
                        format!("clawcage egress: reading the request body: {e}\n"),
                    ))
                }
            };
            return match self.cfg.secrets.apply_body(&t.host, &whole) {
                BodyApplied::Unchanged => Ok(full(whole)),
                BodyApplied::Blocked(name) => Err(self.block(&name, t).await),
                BodyApplied::Injected(names, out) => {
                    injected.extend(names);
                    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
                    Ok(full(Bytes::from(out)))
                }
            };
        }
        let foreign = self.cfg.secrets.foreign(&t.host);
        if foreign.is_empty() {
            return Ok(body.map_err(Into::into).boxed());
        }
        let (st, target, flag) = (self.clone(), t.clone(), flag.clone());
        let on_block: OnBlock = Box::new(move |name: String| {
            if let Ok(mut f) = flag.lock() {
                *f = Some(name.clone());
            }
            tokio::spawn(async move {
                let _ = st.block(&name, &target).await;
            });
        });
        Ok(Scanned::new(body, foreign, on_block).boxed())
    }

    fn secret_event(&self, name: &str, t: &Target, action: SecretAction) -> Event {
        Event::Secret { sandbox: self.cfg.sandbox.clone(), name: name.to_string(), host: t.host_name(), action }
    }
}

/// A copy of `req` to send again, when it has no body and its method is
/// idempotent.
fn replayable(req: &Request<Body>) -> Option<Request<Body>> {
    let idempotent = [Method::GET, Method::HEAD, Method::OPTIONS, Method::PUT, Method::DELETE, Method::TRACE];
    if !req.body().is_end_stream() || !idempotent.contains(req.method()) {
        return None;
    }
    let mut copy = Request::new(full(Bytes::new()));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|n: Infallible| match n {}).boxed()
}

fn blocked(name: &str, t: &Target) -> Response<Body> {
    let body = format!(
        "clawcage egress: request to {t} blocked: it carries the placeholder of secret {name:?}, which is not bound to this host\n"
    );
    text(StatusCode::FORBIDDEN, body)
}

fn forbidden_dns(t: &Target, why: &str) -> (String, StatusCode, String) {
    let reason = format!("cannot resolve {}: {why}", t.host);
    let body = format!("clawcage egress: {t} refused: {reason} (names can be fixed in [network.hosts])\n");
    (reason, StatusCode::BAD_GATEWAY, body)
}

/// Drop the headers that belong to one hop (RFC 9110 §7.6.1), including
/// those the Connection header names, and the proxy's own.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
    for n in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    ] {
        h.remove(n);
    }
}
