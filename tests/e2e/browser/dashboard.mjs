// Drives the Brain's dashboard in Debian's Chromium through playwright-core.
//
//   node dashboard.mjs <baseUrl> <screenshotPath> [token]
//
// Opens the page (entering the token in its token field when one is given), dispatches a
// command job through the API from Node, waits for the page to show it completed without a
// reload, opens its timeline, saves a full-page screenshot and prints a JSON summary line.
// Exit 0 on success; on any failure a message on stderr and exit 1.
import { chromium } from "playwright-core";

const WAIT_MS = 30_000;
const CHROMIUM = process.env.BAKER_CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function fail(message) {
  process.stderr.write(`dashboard.mjs: ${message}\n`);
  process.exit(1);
}

const [baseArg, screenshotPath, token] = process.argv.slice(2);
if (!baseArg || !screenshotPath) fail("usage: node dashboard.mjs <baseUrl> <screenshotPath> [token]");
const base = baseArg.replace(/\/+$/, "");
const auth = token ? { Authorization: `Bearer ${token}` } : {};

async function step(name, promise) {
  try {
    return await promise;
  } catch (error) {
    throw new Error(`${name}: ${error.message.split("\n")[0]}`);
  }
}

async function dispatch(command) {
  const res = await fetch(`${base}/api/jobs`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...auth },
    body: JSON.stringify({ type: "command", payload: { command } }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status !== 202 || !body.id) throw new Error(`POST /api/jobs answered ${res.status} ${JSON.stringify(body)}`);
  return body.id;
}

async function main() {
  const started = Date.now();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: WAIT_MS });
  const pageErrors = [];
  let consoleErrors = 0;
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("pageerror", (error) => pageErrors.push(error.message));
    page.on("console", (msg) => { if (msg.type() === "error") consoleErrors += 1; });
    let navigations = 0;
    page.on("framenavigated", (frame) => { if (frame === page.mainFrame()) navigations += 1; });

    await step("open the page", page.goto(`${base}/`, { waitUntil: "domcontentloaded" }));

    if (token) {
      // The API answers 401 without the token: the page must ask for it.
      await step("the token field appears", page.locator("#auth").waitFor({ state: "visible" }));
      await page.getByLabel(/bearer token/i).fill(token);
      await page.getByRole("button", { name: "Use token" }).click();
      await step("the token field goes away", page.locator("#auth").waitFor({ state: "hidden" }));
    }
    await step("the jobs table loads", page.locator('#jobs[data-state="ready"]').waitFor({ state: "attached" }));
    await step("the event stream is live", page.locator('#stream-status[data-state="live"]').waitFor());
    await page.evaluate(() => { window.__marker = 1; });
    const navigationsBefore = navigations;

    const jobId = await step("dispatch through the API", dispatch("echo from-the-browser-test"));
    const row = page.locator(`#jobs tr[data-job-id="${jobId}"]`);
    await step(`row ${jobId} appears`, row.waitFor());
    await step(`row ${jobId} reaches completed`,
      row.locator('[data-status="completed"]').waitFor());

    const marker = await page.evaluate(() => window.__marker);
    if (marker !== 1 || navigations !== navigationsBefore) {
      throw new Error(`the page was reloaded (marker ${marker}, navigations ${navigationsBefore} -> ${navigations})`);
    }

    await row.click();
    const timeline = page.locator("#timeline");
    await step("the timeline opens", timeline.waitFor({ state: "visible" }));
    await step("the timeline lists JobCompleted", timeline.locator('tr[data-type="JobCompleted"]').waitFor());
    const types = await timeline.locator("tr[data-type]").evaluateAll((rows) => rows.map((r) => r.dataset.type));
    if (types[0] !== "JobDispatched" || !types.includes("JobStarted")) {
      throw new Error(`unexpected timeline: ${types.join(", ")}`);
    }
    if (await page.locator("#cancel-job").isVisible()) throw new Error("cancel offered for a completed job");
    await step("the health panel loads", page.locator('#health [data-check="nats"]').waitFor());
    await step("the handoff panel loads", page.locator("#handoff dl").waitFor());
    await step("the extensions panel loads", page.locator("#extensions .stamp:not(:empty)").waitFor());
    await page.waitForTimeout(1300); // let the row highlight fade before the screenshot
    if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join("; ")}`);

    await step("screenshot", page.screenshot({ path: screenshotPath, fullPage: true }));
    const summary = {
      ok: true, jobId, status: "completed", timeline: types, reloaded: false,
      tokenEntered: Boolean(token), consoleErrors, elapsedMs: Date.now() - started, screenshot: screenshotPath,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => fail("gave up after 120 s"), 120_000);
watchdog.unref();
main().then(() => process.exit(0), (error) => fail(error.message));
