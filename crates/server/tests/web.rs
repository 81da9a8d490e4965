//! The web UI in headless Chromium (tests/web/ui.test.mjs, playwright-core):
//! live output, cancel, diff + apply, approvals, audit status, schedules,
//! and markup in agent output rendered as text. Needs `npm ci` in tests/web
//! and /usr/bin/chromium (scripts/test.sh installs both); fails, never
//! skips, without them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use clawcage_store::work::ApprovalKind;
use clawcage_store::{time, NewTask, TaskKind, TaskStatus};
use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_works_in_chromium_and_renders_agent_output_as_text() {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} (scripts/test.sh does)",
        web.display()
    );
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "apt-get install chromium (scripts/test.sh does)");
    let t = Tmp::new("web");
    let s = start(&t, config(&t, 2, ""), Arc::new(Shared(TestRunner::new()))).await;

    // A finished task with a reviewed change, and a task waiting on an approval.
    let ws = std::fs::canonicalize(t.0.join("ws")).unwrap();
    let (state_dir, db) = (t.state().dir.clone(), s.state.db.clone());
    let ws2 = ws.clone();
    let (diff_task, approval) = db
        .call(move |st| {
            let mut new = NewTask::new(TaskKind::Agent, "write a file");
            new.group = Some("dev".into());
            let d = st.create_task(&new)?;
            st.set_task_status(&d.id, TaskStatus::Succeeded, None)?;
            let a = st.create_task(&new)?;
            let argv = json!(["sh", "-c", "<img src=x onerror=window.__xss=3>"]);
            let ap = st.request_approval(&a.id, ApprovalKind::Command, &argv, time::now_ms() + 600_000)?;
            Ok((d.id, ap.id))
        })
        .await
        .unwrap();
    let review = clawcage_review::ReviewDir::create(
        &state_dir.join("tasks").join(&diff_task),
        &ws2,
        clawcage_review::Protect::review_defaults(),
    )
    .unwrap();
    // What the task's overlay left in its upper layer: one new file.
    std::fs::write(review.upper().join("page.html"), "<script>window.__xss=4</script>\n").unwrap();

    let url = s.url.clone();
    let (d, a) = (diff_task.clone(), approval.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("ui.test.mjs")
            .current_dir(&web)
            .env("URL", url)
            .env("TOKEN", TOKEN)
            .env("DIFF_TASK", d)
            .env("APPROVAL", a)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the UI test failed:\n{stdout}");
    assert!(!stdout.contains("FAIL"));
    assert_eq!(std::fs::read_to_string(ws.join("page.html")).unwrap(), "<script>window.__xss=4</script>\n");
    s.stop().await;
}
