// Drives the dashboard's queue panel in Debian's Chromium through playwright-core.
//
//   node queue.mjs <baseUrl> <screenshotPath> <token>
//
// Turns the queue's switch off (paused), dispatches a low-priority job through the API, waits
// for the panel to count it queued on the low lane while the API still says `dispatched`,
// turns the switch on again and waits for the job's row to complete; dispatches two jobs of a
// concurrency key with limit 1 and waits for the second's row to say it is held; saves a screenshot and
// prints a JSON summary line. Exit 0 on success; on failure a message on stderr and exit 1.
import { chromium } from "playwright-core";

const WAIT_MS = 30_000;
const CHROMIUM = process.env.BAKER_CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function fail(message) {
  process.stderr.write(`queue.mjs: ${message}\n`);
  process.exit(1);
}

const [baseArg, screenshotPath, token] = process.argv.slice(2);
if (!baseArg || !screenshotPath || !token) fail("usage: node queue.mjs <baseUrl> <screenshotPath> <token>");
const base = baseArg.replace(/\/+$/, "");
const auth = { Authorization: `Bearer ${token}` };

async function step(name, promise) {
  try {
    return await promise;
  } catch (error) {
    throw new Error(`${name}: ${error.message.split("\n")[0]}`);
  }
}

async function call(method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method, headers: { "Content-Type": "application/json", ...auth },
    body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(WAIT_MS),
  });
  const doc = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status} ${JSON.stringify(doc)}`);
  return doc;
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: WAIT_MS });
  const pageErrors = [];
  try {
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await step("open the page", page.goto(`${base}/`, { waitUntil: "domcontentloaded" }));
    await step("the token field appears", page.locator("#auth").waitFor({ state: "visible" }));
    await page.getByLabel(/bearer token/i).fill(token);
    await page.getByRole("button", { name: "Use token" }).click();
    await step("the jobs table loads", page.locator('#jobs[data-state="ready"]').waitFor({ state: "attached" }));

    const sw = page.locator('#queue-switch[role="switch"]');
    await step("the switch says the queue takes jobs", page.locator('#queue-switch[aria-checked="true"]:enabled').waitFor());
    await sw.click();
    await step("the switch turns to paused", page.locator('#queue-switch[aria-checked="false"]:enabled').waitFor());
    const paused = await call("GET", "/api/queue");

    const { id } = await step("dispatch a low-priority job", call("POST", "/api/jobs",
      { type: "command", payload: { command: "echo held" }, priority: "low" }));
    await step("the panel counts it on the low lane",
      page.locator('#queue tr[data-lane="low"] td[data-queued="1"]').waitFor());
    const held = (await call("GET", `/api/jobs/${id}`)).status;
    const note = await page.locator("#queue-note").textContent();

    await sw.click();
    await step("the switch turns back on", page.locator('#queue-switch[aria-checked="true"]:enabled').waitFor());
    const row = page.locator(`#jobs tr[data-job-id="${id}"]`);
    await step(`row ${id} reaches completed`, row.locator('[data-status="completed"]').waitFor());
    await step("the panel counts the low lane empty again",
      page.locator('#queue tr[data-lane="low"] td[data-queued="0"]').waitFor());
    const resumed = await call("GET", "/api/queue");

    // concurrency keys: the second job of a key with limit 1 waits, its row says why
    const keyed = { type: "command", payload: { command: "sleep 60" }, concurrencyKey: "page-key", concurrencyLimit: 1 };
    const first = (await call("POST", "/api/jobs", keyed)).id;
    const second = (await call("POST", "/api/jobs", keyed)).id;
    const heldCell = page.locator(`#jobs tr[data-job-id="${second}"] .held`);
    await step("the held job's row says why it waits", heldCell.waitFor());
    const heldNote = await heldCell.textContent();
    if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join("; ")}`);
    await step("screenshot", page.screenshot({ path: screenshotPath, fullPage: true }));
    for (const job of [second, first]) await call("POST", `/api/jobs/${job}/cancel`);
    process.stdout.write(`${JSON.stringify({ ok: true, id, held, note, paused: paused.state, pausedBy: paused.by,
      resumed: resumed.state, heldNote })}\n`);
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => fail("gave up after 120 s"), 120_000);
watchdog.unref();
main().then(() => process.exit(0), (error) => fail(error.message));
