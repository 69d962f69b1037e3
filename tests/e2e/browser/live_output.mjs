// The dashboard's job view showing an agent job's text grow, in Debian's Chromium.
//
//   node live_output.mjs <baseUrl> <screenshotPath> <token>
//
// Dispatches an agent job from Node, opens its timeline in the page and talks to the test
// over stdin/stdout, one JSON line each way: it prints {"following": id} once the job's
// stream is open (the test then lets the fake model begin), {"held": text} once the first
// words show while the rest of the reply is held (the test then releases it), and finally a
// summary with the whole text and a screenshot. Exit 0 on success, else a message and 1.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const WAIT_MS = 30_000;
const CHROMIUM = process.env.BAKER_CHROMIUM || "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"];

function fail(message) {
  process.stderr.write(`live_output.mjs: ${message}\n`);
  process.exit(1);
}

const [baseArg, screenshotPath, token] = process.argv.slice(2);
if (!baseArg || !screenshotPath || !token) fail("usage: node live_output.mjs <baseUrl> <screenshotPath> <token>");
const base = baseArg.replace(/\/+$/, "");
const auth = { Authorization: `Bearer ${token}` };
const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function tell(doc) {
  process.stdout.write(`${JSON.stringify(doc)}\n`);
  const { value, done } = await answers.next(); // the test answers "go" once it acted
  if (done || value.trim() !== "go") throw new Error(`the test answered ${JSON.stringify(value)}`);
}

async function step(name, promise) {
  try {
    return await promise;
  } catch (error) {
    throw new Error(`${name}: ${error.message.split("\n")[0]}`);
  }
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: WAIT_MS });
  const pageErrors = [];
  try {
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await step("open the page", page.goto(`${base}/`, { waitUntil: "domcontentloaded" }));
    await step("the token field appears", page.locator("#auth").waitFor({ state: "visible" }));
    await page.getByLabel(/bearer token/i).fill(token);
    await page.getByRole("button", { name: "Use token" }).click();
    await step("the jobs table loads", page.locator('#jobs[data-state="ready"]').waitFor({ state: "attached" }));

    const res = await fetch(`${base}/api/jobs`, {
      method: "POST", headers: { "Content-Type": "application/json", ...auth },
      body: JSON.stringify({ type: "agent", payload: { prompt: "Say something slowly" } }),
    });
    const { id: jobId } = await res.json();
    if (res.status !== 202 || !jobId) throw new Error(`POST /api/jobs answered ${res.status}`);
    const row = page.locator(`#jobs tr[data-job-id="${jobId}"]`);
    await step(`row ${jobId} appears`, row.waitFor());
    await row.click();
    const output = page.locator("#timeline-output");
    await step("the job's stream opens", page.locator('#timeline-output[data-following="true"]').waitFor({ state: "attached" }));
    await tell({ following: jobId });

    await step("the first words show", output.waitFor({ state: "visible" }));
    const held = await output.textContent();
    const status = await page.locator("#timeline-meta .status").textContent();
    await tell({ held, status });

    await step("the text grows to the whole answer", page.waitForFunction(
      () => { const n = document.querySelector("#timeline-output"); return n && n.textContent.endsWith("end."); }));
    await step("the timeline shows the job completed", page.locator('#timeline tr[data-type="JobCompleted"]').waitFor());
    const text = await output.textContent();
    if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join("; ")}`);
    await step("screenshot", page.screenshot({ path: screenshotPath, fullPage: true }));
    process.stdout.write(`${JSON.stringify({ ok: true, jobId, held, text })}\n`);
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => fail("gave up after 120 s"), 120_000);
watchdog.unref();
main().then(() => process.exit(0), (error) => fail(error.message));
