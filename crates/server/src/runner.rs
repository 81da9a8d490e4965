//! What the server asks of the agent runtime: run one task to its end.
//!
//! The production [`TaskRunner`] is the agent (crates/agent): the model loop
//! on the host, every tool call in the task's sandbox. The server owns
//! everything around it: which task runs when (the queue), what it may
//! touch (the group's policy), where its output goes (live events, the
//! conversation's reply), and its record (store and audit log).

use crate::config::Group;
use crate::hub::Hub;
use clawcage_store::{Task, TaskStatus};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// One task to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// The task as stored (status `running`).
    pub task: Task,
    /// Its group: policy, workspace, model, memory, skills.
    pub group: Arc<Group>,
    /// What the person asked (the task's title).
    pub prompt: String,
    /// The conversation it belongs to (`telegram:<chat>`, `schedule:<id>`, ...).
    pub conversation: Option<String>,
    /// The state directory (store, audit log, `tasks/<id>/` review dirs).
    pub state_dir: PathBuf,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `succeeded`, `failed` or `cancelled`.
    pub status: TaskStatus,
    /// One line for people (why it failed, what it did).
    pub detail: Option<String>,
    /// The answer to post back to the conversation, if any.
    pub reply: Option<String>,
}

/// A boxed future, as [`TaskRunner::run`] returns it.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs tasks. See the module docs.
pub trait TaskRunner: Send + Sync + 'static {
    /// Run `job` to its end, reporting output through `events`, stopping
    /// (sandbox stopped, outcome `cancelled`) soon after `cancel` fires.
    fn run(&self, job: Job, events: Events, cancel: Cancel) -> BoxFuture<Outcome>;
}

/// Where a running task's live output goes (the web UI's SSE stream).
#[derive(Clone)]
pub struct Events {
    hub: Arc<Hub>,
    task: String,
}

impl Events {
    pub(crate) fn new(hub: Arc<Hub>, task: &str) -> Events {
        Events { hub, task: task.to_string() }
    }

    /// Model text as it streams.
    pub fn text(&self, text: &str) {
        self.hub.emit(&self.task, "text", text);
    }

    /// A tool call and a one-line summary of its result.
    pub fn tool(&self, name: &str, summary: &str) {
        self.hub.emit(&self.task, "tool", &format!("{name}: {summary}"));
    }

    /// Anything else worth showing (an approval asked, a retry).
    pub fn note(&self, text: &str) {
        self.hub.emit(&self.task, "note", text);
    }
}

/// Fires when the task must stop (asked by a person, or the server shuts down).
#[derive(Clone, Debug)]
pub struct Cancel(watch::Receiver<bool>);

impl Cancel {
    pub(crate) fn new(rx: watch::Receiver<bool>) -> Cancel {
        Cancel(rx)
    }

    /// The underlying receiver (for runtimes that take one).
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }

    /// Whether it has fired.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once it fires.
    pub async fn cancelled(&mut self) {
        // An error means the sender is gone: nobody can cancel any more,
        // so wait forever rather than report a cancel that did not happen.
        if self.0.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
