//! Live output of tasks, for SSE subscribers: each task has a numbered
//! event stream with a bounded backlog (so a page opened mid-task sees what
//! came before) and a broadcast to the subscribers that are connected.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Events kept per task for late subscribers.
const BACKLOG_EVENTS: usize = 2000;
/// Bytes of event text kept per task for late subscribers.
const BACKLOG_BYTES: usize = 1 << 20;
/// Ended streams kept before the oldest are dropped (they are in the store).
const KEEP_ENDED: usize = 256;

/// One event of a task's live output.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TaskEvent {
    /// Position in the task's stream, from 1.
    pub seq: u64,
    /// `text`, `tool`, `note`, `status` or `end`.
    pub kind: String,
    /// The content: untrusted (it comes from the model or the sandbox).
    pub text: String,
}

struct Stream {
    next: u64,
    backlog: VecDeque<TaskEvent>,
    bytes: usize,
    tx: broadcast::Sender<TaskEvent>,
    ended: bool,
}

/// See the module docs.
#[derive(Default)]
pub struct Hub {
    streams: Mutex<HashMap<String, Stream>>,
    ended: Mutex<VecDeque<String>>,
}

/// What a subscriber gets: the backlog, then the live receiver.
pub struct Subscription {
    /// Events so far.
    pub backlog: Vec<TaskEvent>,
    /// Events from now on (none once `ended`).
    pub live: broadcast::Receiver<TaskEvent>,
    /// The stream had ended when subscribing.
    pub ended: bool,
}

impl Hub {
    fn with<T>(&self, task: &str, f: impl FnOnce(&mut Stream) -> T) -> T {
        let mut map = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry(task.to_string()).or_insert_with(|| Stream {
            next: 1,
            backlog: VecDeque::new(),
            bytes: 0,
            tx: broadcast::channel(1024).0,
            ended: false,
        });
        f(s)
    }

    /// Add an event to `task`'s stream.
    pub fn emit(&self, task: &str, kind: &str, text: &str) {
        self.with(task, |s| {
            if s.ended {
                return;
            }
            let ev = TaskEvent { seq: s.next, kind: kind.to_string(), text: text.to_string() };
            s.next += 1;
            s.bytes += ev.text.len();
            s.backlog.push_back(ev.clone());
            while s.backlog.len() > BACKLOG_EVENTS || (s.bytes > BACKLOG_BYTES && s.backlog.len() > 1) {
                if let Some(old) = s.backlog.pop_front() {
                    s.bytes -= old.text.len();
                }
            }
            // No receivers is fine: nobody is watching.
            let _ = s.tx.send(ev);
        });
    }

    /// End `task`'s stream with an `end` event carrying its final status.
    pub fn end(&self, task: &str, status: &str) {
        self.emit(task, "end", status);
        self.with(task, |s| s.ended = true);
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        ended.push_back(task.to_string());
        while ended.len() > KEEP_ENDED {
            if let Some(old) = ended.pop_front() {
                self.streams.lock().unwrap_or_else(|p| p.into_inner()).remove(&old);
            }
        }
    }

    /// Subscribe to `task`'s stream (created empty if it has none yet).
    pub fn subscribe(&self, task: &str) -> Subscription {
        self.with(task, |s| Subscription {
            backlog: s.backlog.iter().cloned().collect(),
            live: s.tx.subscribe(),
            ended: s.ended,
        })
    }
}
