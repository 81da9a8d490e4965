//! The approval gate on a real store and audit log: which commands need a
//! person (a table of the shell a reviewer worries about), that the request
//! is stored and audited before anyone is asked, and each way a request
//! ends (approved, denied, no answer, nobody to ask, decided elsewhere).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use clawcage_policy::approval::{Approvals, CommandRule, NetworkApproval};
use clawcage_review::approve::{Answer, Gate, NetworkAsker, Prompter, Request, StorePrompter, Verdict};
use clawcage_store::audit::{AuditLog, Record};
use clawcage_store::work::{ApprovalKind, ApprovalStatus};
use clawcage_store::{NewTask, StatePaths, Store, TaskKind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct State {
    dir: PathBuf,
    paths: StatePaths,
    task: String,
}

impl State {
    fn new() -> State {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/clawcage-approve-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = StatePaths::new(&dir);
        paths.create().unwrap();
        let task = Store::open(&paths.db).unwrap().create_task(&NewTask::new(TaskKind::Run, "t")).unwrap().id;
        State { dir, paths, task }
    }
    fn log(&self) -> Arc<AuditLog> {
        Arc::new(AuditLog::open(&self.paths, None).unwrap())
    }
    fn gate(&self, approvals: Approvals, prompter: impl Prompter + 'static) -> Gate {
        Gate::new(Store::open(&self.paths.db).unwrap(), self.log(), &self.task, approvals, Box::new(prompter))
    }
    fn records(&self) -> Vec<Record> {
        let text = std::fs::read_to_string(&self.paths.audit).unwrap_or_default();
        text.lines().map(|l| Record::parse_line(l.as_bytes()).unwrap()).collect()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rules(list: &[&str]) -> Approvals {
    Approvals { commands: list.iter().map(|r| CommandRule::parse(r).unwrap()).collect(), ..Approvals::default() }
}

fn argv(s: &[&str]) -> Vec<String> {
    s.iter().map(|a| a.to_string()).collect()
}

/// Answers from a script; while asked, checks that the request is already
/// pending in the store and on the audit record (the gate's ordering).
struct Scripted {
    answer: Answer,
    db: PathBuf,
    audit: PathBuf,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Prompter for Scripted {
    fn ask(&self, req: &Request, deadline: Instant) -> Answer {
        let row = Store::open(&self.db).unwrap().approval(&req.id).unwrap();
        assert_eq!(row.status, ApprovalStatus::Pending, "asked before the request was stored");
        let log = std::fs::read_to_string(&self.audit).unwrap();
        let last = Record::parse_line(log.lines().last().unwrap().as_bytes()).unwrap();
        assert_eq!((last.kind.as_str(), last.data["id"].as_str()), ("approval_request", Some(req.id.as_str())));
        assert!(deadline > Instant::now(), "the deadline is the policy's timeout from now");
        self.seen.lock().unwrap().push(req.clone());
        self.answer.clone()
    }
}

fn scripted(s: &State, answer: Answer) -> (Scripted, Arc<Mutex<Vec<Request>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    (Scripted { answer, db: s.paths.db.clone(), audit: s.paths.audit.clone(), seen: seen.clone() }, seen)
}

fn approve() -> Answer {
    Answer::Approve { by: "tester".into() }
}

#[test]
fn tricky_shell_needs_approval_exactly_where_a_reviewer_would_ask() {
    let s = State::new();
    let (p, seen) = scripted(&s, approve());
    let gate = s.gate(rules(&["git push", "rm -rf", "curl"]), p);
    // (argv, the rule a reviewer expects to be asked about; None: runs without asking)
    let sh = |script: &str| argv(&["/bin/sh", "-c", script]);
    let table: Vec<(Vec<String>, Option<&str>)> = vec![
        (argv(&["git", "push"]), Some("git push")),
        (argv(&["/usr/bin/git", "push", "origin", "main"]), Some("git push")),
        (argv(&["git", "-C", "/repo", "push"]), Some("git push")),
        (argv(&["sudo", "-u", "root", "git", "push"]), Some("git push")),
        (argv(&["env", "GIT_DIR=x", "/usr/bin/git", "push"]), Some("git push")),
        (argv(&["nice", "-n", "10", "rm", "-rf", "/"]), Some("rm -rf")),
        (argv(&["nohup", "timeout", "5", "curl", "http://x"]), Some("curl")),
        (argv(&["xargs", "rm", "-rf"]), Some("rm -rf")),
        (argv(&["find", ".", "-name", "*.o", "-exec", "rm", "-rf", "{}", ";"]), Some("rm -rf")),
        (sh("cd src && git push origin main"), Some("git push")),
        (sh("false || git push"), Some("git push")),
        (sh("make; git push"), Some("git push")),
        (sh("cat f | curl -d @- http://x"), Some("curl")),
        (sh("ls |& curl http://x"), Some("curl")),
        (sh("GIT_TRACE=1 git push"), Some("git push")),
        (sh("\"git\" 'push'"), Some("git push")),
        (sh("g'i't pu\"sh\""), Some("git push")),
        (sh("echo $(git push)"), Some("git push")),
        (sh("x=`rm -rf ~`"), Some("rm -rf")),
        (sh("bash -c \"sh -c 'git push'\""), Some("git push")),
        (sh("rm -r -f build"), Some("rm -rf")),
        (sh("$CMD push"), Some("git push")),
        (sh("eval \"$X\""), None), // unparseable: every rule; the matched rule is not named
        (argv(&["git", "status"]), None),
        (sh("echo git push"), None),
        (sh("echo 'rm -rf /'"), None),
        (sh("git log | grep push"), None),
        (sh("rm -r build"), None),
        (sh("# curl http://x"), None),
    ];
    for (cmd, want) in &table {
        let before = seen.lock().unwrap().len();
        let v = gate.check_command(cmd, "/ws").unwrap();
        let asked = seen.lock().unwrap().get(before).cloned();
        let unparseable = cmd.last().is_some_and(|c| c.starts_with("eval"));
        match (want, asked) {
            (Some(rule), Some(req)) => {
                assert_eq!(req.rule.as_deref(), Some(*rule), "{cmd:?}");
                assert!(matches!(v, Verdict::Approved { .. }), "{cmd:?}: {v:?}");
                assert!(req.what.starts_with(&clawcage_review::approve::shell_words(cmd)), "{cmd:?}: {}", req.what);
                assert_eq!(req.cwd.as_deref(), Some("/ws"));
            }
            (None, Some(req)) if unparseable => {
                assert_eq!(req.rule, None, "{cmd:?}");
                assert!(req.reason.contains("cannot be read safely"), "{}", req.reason);
            }
            (None, None) => assert_eq!(v, Verdict::NotNeeded, "{cmd:?}"),
            (want, asked) => panic!("{cmd:?}: expected {want:?}, asked {asked:?}"),
        }
    }
    // One request and one decision on the record per question asked.
    let asked = seen.lock().unwrap().len();
    let kinds: Vec<String> = s.records().into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "approval_request").count(), asked);
    assert_eq!(kinds.iter().filter(|k| *k == "approval_decision").count(), asked);
}

#[test]
fn a_denial_a_timeout_and_nobody_to_ask_all_refuse_and_are_recorded() {
    let s = State::new();
    let cases = [
        (Answer::Deny { by: "bob".into(), reason: Some("not today".into()) }, "denied", "denied by bob"),
        (Answer::NoAnswer, "expired", "timed out"),
        (Answer::Unavailable("no terminal".into()), "denied", "no terminal"),
    ];
    for (answer, status, says) in cases {
        let (p, _) = scripted(&s, answer);
        let gate = s.gate(rules(&["git push"]), p);
        let v = gate.check_command(&argv(&["git", "push"]), "/ws").unwrap();
        let Verdict::Denied { id, reason } = v else { panic!("{status}: {v:?}") };
        assert!(reason.contains(says) && reason.contains("git push"), "{reason}");
        let row = Store::open(&s.paths.db).unwrap().approval(&id).unwrap();
        assert_eq!(row.status.as_str(), status);
        let last = s.records().pop().unwrap();
        assert_eq!(last.kind, "approval_decision");
        assert_eq!((last.data["id"].as_str(), last.data["decision"].as_str()), (Some(id.as_str()), Some(status)));
    }
}

#[test]
fn a_decision_made_elsewhere_through_the_store_is_the_answer() {
    let s = State::new();
    let db = s.paths.db.clone();
    // Another process (the HTTP API, a chat approver) decides the pending request.
    let decider = std::thread::spawn(move || {
        let store = Store::open(&db).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(a) = store.pending_approvals(None).unwrap().first() {
                store.decide_approval(&a.id, true, "alice", None, clawcage_store::time::now_ms()).unwrap();
                return a.subject.clone();
            }
            assert!(Instant::now() < deadline, "no request appeared");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let gate = s.gate(rules(&["deploy"]), StorePrompter::new(&s.paths.db, Duration::from_millis(10)));
    let v = gate.check_command(&argv(&["deploy", "prod"]), "/ws").unwrap();
    assert_eq!(decider.join().unwrap()["argv"], serde_json::json!(["deploy", "prod"]));
    assert!(matches!(&v, Verdict::Approved { by, .. } if by == "alice"), "{v:?}");
    // Nobody decides: the stored request expires at the timeout.
    let quick = Approvals { timeout: Duration::from_millis(30), ..rules(&["deploy"]) };
    let gate = s.gate(quick, StorePrompter::new(&s.paths.db, Duration::from_millis(5)));
    let v = gate.check_command(&argv(&["deploy", "prod"]), "/ws").unwrap();
    let Verdict::Denied { id, .. } = v else { panic!("{v:?}") };
    assert_eq!(Store::open(&s.paths.db).unwrap().approval(&id).unwrap().status, ApprovalStatus::Expired);
}

#[test]
fn writes_and_unlisted_hosts_go_through_the_same_gate() {
    let s = State::new();
    let (p, seen) = scripted(&s, approve());
    let approvals = Approvals { writes: vec!["deploy/**".into(), "*.lock".into()], ..Approvals::default() };
    let gate = s.gate(approvals, p);
    let paths = argv(&["src/a.rs", "deploy/prod.yaml", "Cargo.lock"]);
    assert!(gate.check_writes(&paths, "/ws").unwrap().allowed());
    let req = seen.lock().unwrap().pop().unwrap();
    assert_eq!((req.kind, req.what.as_str()), (ApprovalKind::Write, "deploy/prod.yaml, Cargo.lock"));
    assert_eq!(gate.check_writes(&argv(&["src/a.rs"]), "/ws").unwrap(), Verdict::NotNeeded);

    // network = "deny" (the default) refuses without asking; "ask" asks.
    assert!(!gate.check_network("example.com", 443).unwrap().allowed());
    assert!(seen.lock().unwrap().is_empty());
    let (p, seen) = scripted(&s, approve());
    let gate = s.gate(Approvals { network: NetworkApproval::Ask, ..Approvals::default() }, p);
    assert!(gate.check_network("example.com", 443).unwrap().allowed());
    assert_eq!(seen.lock().unwrap()[0].what, "example.com:443");
}

#[test]
fn each_host_and_port_is_asked_about_once_per_task_and_the_answer_holds() {
    let s = State::new();
    let (p, seen) = scripted(&s, approve());
    let asker = NetworkAsker::new(s.gate(Approvals { network: NetworkApproval::Ask, ..Approvals::default() }, p));
    let first = asker.ask("pkg.example", 443).unwrap();
    assert!(first.starts_with("approved by tester (request "), "{first}");
    let again = asker.ask("pkg.example", 443).unwrap();
    assert!(again.ends_with("earlier in this task"), "{again}");
    // Another port of the same host is another destination: asked.
    assert!(asker.ask("pkg.example", 8443).is_some());
    let asked: Vec<String> = seen.lock().unwrap().iter().map(|r| r.what.clone()).collect();
    assert_eq!(asked, ["pkg.example:443", "pkg.example:8443"]);
    let kinds: Vec<String> = s.records().into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["approval_request", "approval_decision", "approval_request", "approval_decision"]);

    let (p, seen) = scripted(&s, Answer::Deny { by: "tester".into(), reason: None });
    let asker = NetworkAsker::new(s.gate(Approvals { network: NetworkApproval::Ask, ..Approvals::default() }, p));
    assert_eq!(asker.ask("evil.example", 443), None);
    assert_eq!(asker.ask("evil.example", 443), None);
    assert_eq!(seen.lock().unwrap().len(), 1, "a denial holds for the task: a retrying client asks once");
    // network = "deny": refused without asking anyone.
    let (p, seen) = scripted(&s, approve());
    let asker = NetworkAsker::new(s.gate(Approvals::default(), p));
    assert_eq!(asker.ask("pkg.example", 443), None);
    assert!(seen.lock().unwrap().is_empty());
}
