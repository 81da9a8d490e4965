// The serve web UI in headless Chromium (driven by crates/server/tests/web.rs,
// which starts the server and plants an approval and a reviewed change).
// Env: URL, TOKEN, DIFF_TASK, APPROVAL. Exit 0 when every check holds.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { URL: base, TOKEN, DIFF_TASK, APPROVAL } = process.env;
const XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
const profile = mkdtempSync(join(tmpdir(), "clawcage-ui-"));
// A fresh profile directory each run (Playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
function check(cond, what) {
  console.log((cond ? "ok   " : "FAIL ") + what);
  if (!cond) failed = true;
}
try {
  const page = await browser.newPage();
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.setDefaultTimeout(15000);

  const resp = await page.goto(base + "/");
  check(resp.headers()["content-security-policy"]?.includes("script-src 'self'"), "CSP header on the page");

  // A wrong token is refused; the right one signs in.
  await page.fill("#token", "wrong-token-wrong-token");
  await page.click("#login-form button");
  await page.waitForSelector("#login-error:has-text('Sign-in failed')");
  check(await page.isVisible("#login"), "a wrong token does not sign in");
  await page.fill("#token", TOKEN);
  await page.click("#login-form button");
  await page.waitForSelector("#app:not([hidden])");

  // A task whose output carries markup: live output shows it as text.
  await page.fill("#new-task-prompt", "hold " + XSS);
  await page.click("#new-task button");
  await page.waitForSelector("#task-output span.text");
  const out = await page.textContent("#task-output");
  check(out.includes("working on: hold " + XSS), "agent output is shown verbatim, as text");
  check(await page.locator("#task-output img, #task-output script").count() === 0, "no element was made from agent output");
  check(await page.locator("#tasks tr", { hasText: "<img src=x" }).count() === 1, "the task list shows the prompt as text");
  await page.waitForSelector("#task-status:has-text('running')");
  await page.click("#task-cancel");
  await page.waitForSelector("#task-output span.end");
  check((await page.textContent("#task-status")) === "cancelled", "cancel from the UI ends the task, live");

  // Reviewed changes: diff shown as text, then applied.
  await page.click(`#tasks tr[data-id="${DIFF_TASK}"]`);
  await page.waitForSelector("#task-diff:not([hidden])");
  await page.click("#task-diff");
  await page.waitForSelector("#task-diff-text:not([hidden])");
  const diff = await page.textContent("#task-diff-text");
  check(diff.includes("+<script>window.__xss=4</script>"), "the diff shows the new file's content as text");
  check(await page.locator("#task-diff-text script").count() === 0, "no script element from the diff");
  await page.click("#task-apply");
  await page.waitForSelector("#task-review-result:has-text('Applied 1 change')");
  check(true, "apply from the UI");

  // Approvals: the planted request, approved from the UI.
  await page.click("button[data-tab=approvals]");
  const arow = page.locator("#approvals tr", { hasText: APPROVAL });
  await arow.waitFor();
  check((await arow.textContent()).includes("<img src=x onerror=window.__xss=3>"), "the approval's command is shown as text");
  await arow.locator("button.approve").click();
  await page.waitForSelector(`#approvals tr:has-text("${APPROVAL}")`, { state: "detached" });
  const decided = await page.evaluate(async ([id, t]) => {
    const r = await fetch("/api/audit?limit=1000", { headers: { Authorization: "Bearer " + t } });
    return (await r.json()).find((x) => x.kind === "approval_decision" && x.data.approval === id)?.data.decision;
  }, [APPROVAL, TOKEN]);
  check(decided === "approved", "the approval decision is on the audit record");

  // Audit log with its verify status.
  await page.click("button[data-tab=audit]");
  await page.waitForSelector("#audit-verify.ok");
  check((await page.textContent("#audit-verify")).startsWith("intact"), "audit chain shown intact");
  check(await page.locator("#audit tr", { hasText: "approval_decision" }).count() >= 1, "audit records listed");

  // Schedules: add one, see it, delete it.
  await page.click("button[data-tab=schedules]");
  await page.fill("#new-schedule-cron", "0 9 * * 1-5");
  await page.fill("#new-schedule-prompt", "weekday report");
  await page.click("#new-schedule button");
  const srow = page.locator("#schedules tr", { hasText: "weekday report" });
  await srow.waitFor();
  check((await srow.textContent()).includes("T09:00:00Z"), "the schedule shows its next run");
  await page.fill("#new-schedule-cron", "whenever");
  await page.click("#new-schedule button");
  await page.waitForSelector("#error:has-text('cron:')");
  check(true, "a bad cron expression is refused with its field");
  await srow.locator("button.delete").click();
  await srow.waitFor({ state: "detached" });
  check(true, "the schedule is deleted");

  const xss = await page.evaluate(() => window.__xss);
  check(xss === undefined && dialogs.length === 0, "no injected script ran");
  check(errors.length === 0, "no page errors: " + errors.join("; "));
} catch (e) {
  console.log("FAIL " + (e && e.stack || e));
  failed = true;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
