// The web UI in headless Chromium, as its users use it, against a running `octoflow serve`
// prepared by `browser.rs` (which starts this script and reads its exit code):
// log in, start a flow from its form (a bad value shown at its field), watch a step's log
// lines arrive live (the whole run's and the step's own), a run's progress change without a
// reload, cancel a run (its process gone), retry a failed run from its failed step, add and
// pause a schedule, a viewer without buttons, a form without its CSRF token refused; then
// every page — a running run and the refusal page too — at 1280 and 375 px, light and dark:
// an accessibility scan of each, no page wider than a phone, and screenshots.
//
// Settings, from the environment: OCTOFLOW_URL, OCTOFLOW_DATA (the node's data directory),
// OCTOFLOW_TEST_BROWSER_MODULES (a directory whose node_modules has playwright-core and
// axe-core), OCTOFLOW_TEST_CHROMIUM (the browser), OCTOFLOW_UI_SHOTS (where screenshots go).
// Users: `ada` (admin, password `ada-password`) and `vic` (viewer, `vic-password`).
"use strict";

import assert from "node:assert/strict";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

function setting(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const base = setting("OCTOFLOW_URL");
const data = setting("OCTOFLOW_DATA");
const shots = setting("OCTOFLOW_UI_SHOTS");
const modules = createRequire(path.join(setting("OCTOFLOW_TEST_BROWSER_MODULES"), "index.js"));
const { chromium } = modules("playwright-core");
const axeSource = fs.readFileSync(modules.resolve("axe-core/axe.min.js"), "utf8");

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 740 };
const SOON = 15_000;

function step(text) {
  console.log(`- ${text}`);
}

/// Waits until `check` returns a truthy value (polled), or fails with `what`.
async function until(what, check, timeout = SOON) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/// Scans the page with axe-core; fails on any serious or critical violation.
async function scan(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ["violations"] }),
  );
  const grave = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  const described = grave.map(
    (v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
  );
  assert.deepEqual(described, [], `accessibility of ${name}`);
  const minor = result.violations.length - grave.length;
  step(`axe: ${name} has no serious or critical violation${minor ? ` (${minor} minor)` : ""}`);
}

/// A full-page screenshot, `<name>-<width>[-dark].png`.
async function shoot(page, name, dark = false) {
  const width = page.viewportSize().width;
  const file = `${name}-${width}${dark ? "-dark" : ""}.png`;
  await page.screenshot({ path: path.join(shots, file), fullPage: true });
}

/// Fails when the page is wider than its viewport (it would scroll sideways on a phone).
async function fits(page, name) {
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(overflow <= 0, `${name} fits ${page.viewportSize().width} px (${overflow} px over)`);
}

/// Submits the header's logout form stripped of its CSRF token: the refusal page.
async function refusal(page) {
  await page.goto(`${base}/ui/`);
  await page.evaluate(() => {
    for (const field of document.querySelectorAll('input[name="csrf"]')) {
      field.remove();
    }
  });
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/ui/logout")),
    page.getByRole("button", { name: "Log out" }).click(),
  ]);
  assert.equal(answer.status(), 403);
  await page.getByText("CSRF token").waitFor();
}

/// Logs `user` in through the login form of a fresh context.
async function logIn(browser, user, options = {}) {
  const context = await browser.newContext({
    viewport: DESKTOP,
    timezoneId: "Europe/Brussels",
    locale: "en-GB",
    ...options,
  });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, "/ui/login", "an anonymous browser is sent to log in");
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(`${user}-password`);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(`${base}/ui/`);
  return { context, page };
}

/// The status a run page shows, once its record says it ended (the page reloads itself).
async function endedStatus(page) {
  return until("the run to end", async () => {
    const text = await page.locator("dl.facts dd").first().textContent();
    const status = text.trim().split(/\s|—/)[0];
    return ["succeeded", "failed", "cancelled", "timed_out"].includes(status) && status;
  });
}

function running(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.OCTOFLOW_TEST_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  try {
    const runs = await asAdmin(browser);
    await asViewer(browser, runs);
    await everyPage(browser, runs, PHONE, "light");
    await everyPage(browser, runs, DESKTOP, "dark");
    await everyPage(browser, runs, PHONE, "dark");
    await cancel(browser, runs.running);
  } finally {
    await browser.close();
  }
}

async function asAdmin(browser) {
  step("the login page");
  {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(`${base}/ui/login`);
    await scan(page, "login");
    await shoot(page, "login");
    await page.getByLabel("User name").fill("ada");
    await page.getByLabel("Password").fill("wrong");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByText("Wrong user name or password.").waitFor();
    await context.close();
  }

  const { context, page } = await logIn(browser, "ada");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "octoflow_session");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true, "the session cookie is HttpOnly");
  assert.equal(session.sameSite, "Strict", "the session cookie is SameSite=Strict");
  step("logged in as ada: HttpOnly, SameSite=Strict session cookie");

  await scan(page, "flows");
  const time = page.locator("time[datetime]").first();
  const utc = await time.getAttribute("datetime");
  assert.match(await time.getAttribute("title"), /\(UTC\)$/, "the UTC time on hover");
  assert.notEqual(await time.textContent(), utc, "times shown in the browser's zone");

  step("keyboard: the first Tab reaches the skip link, which moves to the main content");
  await page.keyboard.press("Tab");
  assert.equal(
    await page.evaluate(() => document.activeElement.textContent),
    "Skip to the main content",
  );
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main");

  step("a flow started from its form, a bad value shown at its field");
  await page.getByRole("link", { name: "Run deploy" }).click();
  await page.waitForURL(`${base}/ui/flows/deploy#run`);
  await page.locator('input[name="p.count"]').fill("many");
  await page.locator('select[name="p.env"]').selectOption("prod");
  await page.getByRole("button", { name: "Run deploy" }).click();
  const countField = page.locator('input[name="p.count"]');
  assert.equal(await countField.getAttribute("aria-invalid"), "true");
  const error = page.locator("#err-count");
  await error.waitFor();
  assert.match(await error.textContent(), /integer/);
  assert.equal(await countField.inputValue(), "many", "what was typed is kept");
  assert.equal(await page.locator('select[name="p.env"]').inputValue(), "prod");
  await scan(page, "flow (with a field error)");
  await shoot(page, "flow");
  await countField.fill("3");
  await page.getByRole("button", { name: "Run deploy" }).click();
  await page.waitForURL(/\/ui\/runs\/[0-9a-f-]{36}$/);
  assert.equal(await endedStatus(page), "succeeded");
  await page.getByText("deploying 3 to prod").first().waitFor();
  const deployUrl = page.url();
  await scan(page, "run");
  await shoot(page, "run");

  step("a running step's log lines appear live, then a cancel ends its process");
  await page.goto(`${base}/ui/flows/slow`);
  await page.getByRole("button", { name: "Run slow" }).click();
  await page.waitForURL(/\/ui\/runs\/[0-9a-f-]{36}$/);
  await page.evaluate(() => {
    window.stillTheSamePage = true;
  });
  await page.locator("#log").getByText("tick 1").waitFor({ timeout: SOON });
  await page.locator("#log").getByText("tick 2").waitFor({ timeout: SOON });
  assert.equal(
    await page.evaluate(() => window.stillTheSamePage),
    true,
    "the lines came without a reload",
  );
  const ticks = page.locator("details.step-log", { hasText: "ticks" });
  await ticks.locator("summary").click();
  const stepLog = ticks.locator("pre.log");
  await stepLog.getByText(/^tick \d+$/).first().waitFor({ timeout: SOON });
  const shown = await stepLog.locator("div").count();
  await until("a new line in the step's own log", async () => (await stepLog.locator("div").count()) > shown);
  assert.equal(await page.evaluate(() => window.stillTheSamePage), true, "no reload");
  step("the step's own log follows it live");
  await scan(page, "run (running, its step's log open)");
  const pid = Number(fs.readFileSync(path.join(data, "slow.pid"), "utf8").trim());
  assert.ok(running(pid), `the step's process ${pid} runs`);
  await page.getByRole("button", { name: "Cancel" }).click();
  assert.equal(await endedStatus(page), "cancelled");
  await until(`process ${pid} to be gone`, () => !running(pid));
  step(`cancelled; process ${pid} is gone`);

  step("a failed run retried from its failed step");
  await page.goto(`${base}/ui/flows/flaky`);
  await page.getByRole("button", { name: "Run flaky" }).click();
  await page.waitForURL(/\/ui\/runs\/[0-9a-f-]{36}$/);
  assert.equal(await endedStatus(page), "failed");
  const failedUrl = page.url();
  fs.writeFileSync(path.join(data, "flaky.ok"), "");
  await page.getByRole("button", { name: "Retry from the failed step" }).click();
  await page.waitForURL((url) => url.href !== failedUrl && /\/ui\/runs\/[0-9a-f-]{36}$/.test(url.href));
  assert.equal(await endedStatus(page), "succeeded");
  const counted = fs.readFileSync(path.join(data, "flaky.count"), "utf8").trim().split("\n");
  assert.equal(counted.length, 1, "the step before the failed one ran once");

  step("a form without its CSRF token is refused and changes nothing");
  const runsBefore = await runCount(page);
  await page.goto(failedUrl);
  await page.evaluate(() => {
    for (const field of document.querySelectorAll('input[name="csrf"]')) {
      field.remove();
    }
  });
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/retry")),
    page.getByRole("button", { name: "Retry", exact: true }).click(),
  ]);
  assert.equal(answer.status(), 403);
  await page.getByText("CSRF token").waitFor();
  await scan(page, "refusal (no CSRF token)");
  assert.equal(await runCount(page), runsBefore, "no run was started");

  step("a run's progress changes without a reload");
  await page.goto(`${base}/ui/flows/progress`);
  await page.getByRole("button", { name: "Run progress" }).click();
  await page.waitForURL(/\/ui\/runs\/[0-9a-f-]{36}$/);
  const runningUrl = page.url();
  await page.evaluate(() => {
    window.stillTheSamePage = true;
  });
  const progress = page.locator("#progress");
  await progress.getByText("1 of 3 — copying").waitFor({ timeout: SOON });
  fs.writeFileSync(path.join(data, "progress.gate"), "");
  await progress.getByText("2 of 3 — checking").waitFor({ timeout: SOON });
  assert.equal(
    await page.evaluate(() => window.stillTheSamePage),
    true,
    "the progress came without a reload",
  );
  await scan(page, "run (running, with progress)");

  step("the runs page, filtered");
  await page.goto(`${base}/ui/runs`);
  await page.locator('select[name="status"]').selectOption("failed");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/status=failed/);
  assert.equal(await page.locator("tbody tr").count(), 1, "one failed run");
  await page.goto(`${base}/ui/runs`);
  await scan(page, "runs");
  await shoot(page, "runs");

  step("a schedule added, then paused");
  await page.goto(`${base}/ui/schedules`);
  await page.locator('select[name="flow"]').selectOption("deploy");
  await page.getByRole("textbox", { name: "Every seconds" }).fill("3600");
  await page.getByRole("textbox", { name: /^Params/ }).fill('{"env": "dev"}');
  await page.getByRole("button", { name: "Add the schedule" }).click();
  await page.getByText("every 3600 s").waitFor();
  const nightly = page.locator("tr", { hasText: "nightly" });
  await nightly.getByRole("button", { name: /^Pause/ }).click();
  await page.waitForURL(`${base}/ui/schedules`);
  await page.locator("tr", { hasText: "nightly" }).getByText("paused").waitFor();
  await scan(page, "schedules");
  await shoot(page, "schedules");

  step("locks, users and tokens");
  await page.goto(`${base}/ui/locks`);
  await scan(page, "locks");
  await shoot(page, "locks");
  await page.goto(`${base}/ui/access`);
  await scan(page, "access");
  await shoot(page, "access");

  await page.goto(`${base}/ui/`);
  await shoot(page, "flows");

  step("log out");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(`${base}/ui/login`);
  await page.goto(`${base}/ui/runs`);
  assert.equal(new URL(page.url()).pathname, "/ui/login", "logged out for good");
  await context.close();
  return { deploy: deployUrl, running: runningUrl };
}

/// The number of runs the runs page counts.
async function runCount(page) {
  await page.goto(`${base}/ui/runs`);
  const text = await page.locator("main").textContent();
  const found = text.match(/(\d+) runs?\b/);
  assert.ok(found, "the runs page counts its runs");
  return Number(found[1]);
}

async function asViewer(browser, runs) {
  step("a viewer sees no buttons, and is refused the admin's page");
  const { context, page } = await logIn(browser, "vic");
  const buttons = async () =>
    page
      .locator("main button, main a.button")
      .evaluateAll((all) => all.map((b) => b.textContent.trim()));
  assert.deepEqual(await buttons(), [], "no run buttons on the flows page");
  await scan(page, "flows (viewer)");
  await page.goto(`${base}/ui/runs?status=failed`);
  await page.locator("tbody a").first().click();
  await page.waitForURL(/\/ui\/runs\/[0-9a-f-]{36}$/);
  assert.deepEqual(await buttons(), [], "no buttons on a run");
  await page.goto(runs.running);
  assert.deepEqual(await buttons(), [], "no cancel button on a running run");
  await scan(page, "run (viewer, running)");
  await page.goto(`${base}/ui/flows/deploy`);
  assert.deepEqual(await buttons(), [], "no run form");
  await scan(page, "flow (viewer)");
  await page.goto(`${base}/ui/schedules`);
  assert.deepEqual(await buttons(), [], "no schedule buttons");
  await scan(page, "schedules (viewer)");
  await page.goto(`${base}/ui/locks`);
  assert.deepEqual(await buttons(), [], "no lock buttons");
  const refused = await page.goto(`${base}/ui/access`);
  assert.equal(refused.status(), 403);
  await page.getByText("this needs the `admin` role").waitFor();
  await scan(page, "refusal (viewer on the admin's page)");
  await context.close();
}

/// Every page at `viewport` in `scheme` (`light` or `dark`): each fits its width, passes the
/// accessibility scan and is shot — the login page, each page an admin sees, a running run
/// and the refusal of a form without its CSRF token.
async function everyPage(browser, runs, viewport, scheme) {
  const dark = scheme === "dark";
  const mode = `${viewport.width} px${dark ? ", dark" : ""}`;
  step(`every page at ${mode}`);
  const options = { viewport, colorScheme: scheme };
  if (viewport === PHONE) {
    Object.assign(options, { isMobile: true, hasTouch: true });
  }
  const check = async (page, name, shot = true) => {
    await fits(page, name);
    await scan(page, `${name} (${mode})`);
    // Light screenshots at 1280 px are taken by `asAdmin`, with the forms in use.
    if (shot && (dark || viewport !== DESKTOP)) {
      await shoot(page, name, dark);
    }
  };

  const anonymous = await browser.newContext(options);
  const login = await anonymous.newPage();
  await login.goto(`${base}/ui/login`);
  await check(login, "login");
  await anonymous.close();

  const { context, page } = await logIn(browser, "ada", options);
  const pages = {
    flows: "/ui/",
    flow: "/ui/flows/deploy",
    runs: "/ui/runs",
    run: new URL(runs.deploy).pathname,
    schedules: "/ui/schedules",
    locks: "/ui/locks",
    access: "/ui/access",
  };
  for (const [name, address] of Object.entries(pages)) {
    await page.goto(`${base}${address}`);
    if (name === "run") {
      await page.getByText("deploying 3 to prod").first().waitFor();
    }
    await check(page, name);
  }
  await page.goto(runs.running);
  await page.locator("#log").getByText("holding").waitFor({ timeout: SOON });
  await check(page, "run (running)", false);
  await refusal(page);
  await check(page, "refusal", false);
  await context.close();
}

/// Cancels the run at `url` (the progress run, which would hold on otherwise).
async function cancel(browser, url) {
  const { context, page } = await logIn(browser, "ada");
  await page.goto(url);
  await page.getByRole("button", { name: "Cancel" }).click();
  assert.equal(await endedStatus(page), "cancelled");
  await context.close();
}

main().then(
  () => step("the web UI works in Chromium"),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
