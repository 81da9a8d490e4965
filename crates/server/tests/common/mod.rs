//! Test support: a server on 127.0.0.1 with a fresh state directory and a
//! runner standing in for the agent (crates/agent is another crate; these
//! tests are about the queue, the API and the scheduler around it).
#![allow(dead_code)]

use clawcage_server::config::{self, Config};
use clawcage_server::{Cancel, Events, Job, Outcome, Server, State, TaskRunner};
use clawcage_store::{StatePaths, TaskStatus};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Semaphore};

pub const TOKEN: &str = "test-token-0123456789";

pub struct Tmp(pub PathBuf);
impl Tmp {
    pub fn new(tag: &str) -> Tmp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "clawcage-serve-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("ws")).unwrap();
        std::fs::write(p.join("policy.toml"), "extends = \"default\"\n").unwrap();
        Tmp(p)
    }
    pub fn state(&self) -> StatePaths {
        StatePaths::new(&self.0.join("state"))
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn config(t: &Tmp, concurrency: usize, extra: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\nconcurrency = {concurrency}\n\n\
         [groups.dev]\npolicy = \"policy.toml\"\nworkspace = \"ws\"\n\n\
         [groups.ops]\npolicy = \"policy.toml\"\nworkspace = \"ws\"\n{extra}"
    );
    config::parse(&text, "serve.toml", &t.0, &|v| std::env::var(v).ok()).unwrap()
}

/// Stands in for the agent: records each run, streams a line of text,
/// holds tasks whose prompt contains "hold" until released (or cancelled),
/// fails those containing "fail".
pub struct TestRunner {
    pub runs: Mutex<Vec<(String, String)>>,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub release: Arc<Semaphore>,
    pub started: Mutex<Vec<oneshot::Sender<String>>>,
}

impl TestRunner {
    pub fn new() -> Arc<TestRunner> {
        Arc::new(TestRunner {
            runs: Mutex::default(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            release: Arc::new(Semaphore::new(0)),
            started: Mutex::default(),
        })
    }
    pub fn prompts(&self) -> Vec<String> {
        self.runs.lock().unwrap().iter().map(|(_, p)| p.clone()).collect()
    }
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }
}

/// The runner as the server holds it.
pub struct Shared(pub Arc<TestRunner>);

impl TaskRunner for Shared {
    fn run(&self, job: Job, events: Events, mut cancel: Cancel) -> clawcage_server::runner::BoxFuture<Outcome> {
        let me = Arc::clone(&self.0);
        Box::pin(async move {
            me.runs.lock().unwrap().push((job.task.id.clone(), job.prompt.clone()));
            let now = me.running.fetch_add(1, Ordering::SeqCst) + 1;
            me.max_running.fetch_max(now, Ordering::SeqCst);
            events.text(&format!("working on: {}", job.prompt));
            events.tool("bash", "exit 0");
            let mut outcome = Outcome {
                status: TaskStatus::Succeeded,
                detail: Some("done".into()),
                reply: Some(format!("answer to {}", job.prompt)),
            };
            if job.prompt.contains("hold") {
                tokio::select! {
                    p = me.release.acquire() => { if let Ok(p) = p { p.forget(); } }
                    _ = cancel.cancelled() => {
                        outcome = Outcome { status: TaskStatus::Cancelled, detail: None, reply: None };
                    }
                }
            }
            if job.prompt.contains("fail") {
                outcome = Outcome { status: TaskStatus::Failed, detail: Some("it failed".into()), reply: None };
            }
            me.running.fetch_sub(1, Ordering::SeqCst);
            outcome
        })
    }
}

pub struct Running {
    pub url: String,
    pub state: Arc<State>,
    pub stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<Result<(), clawcage_server::ServerError>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.done.await.unwrap().unwrap();
    }
}

pub async fn start(t: &Tmp, config: Config, runner: Arc<dyn TaskRunner>) -> Running {
    let server = Server::bind(config, t.state(), None, runner).await.unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let state = server.state();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running { url, state, stop: Some(tx), done }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Poll `f` until it returns Some, for up to 20 s (a hang fails the test; no timing is asserted).
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..2000 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
