// Drives the dashboard's approvals, rerun and fork in Debian's Chromium through playwright-core.
//
//   node approvals.mjs <baseUrl> <screenshotPath> <token>
//
// Agent jobs with `approve: ["http"]` (the Brain runs them against the fake Messages API):
// the first is approved from the "Waiting for approval" panel and completes; the second is
// denied with a note, and its conversation shows the denial; the third is answered behind the
// page's back just before its Approve click reaches the API, so the page shows the 409. Then
// the first job is rerun and forked from its tool result with the page's buttons, and the new
// jobs' views name their source. Saves a full-page screenshot of the fork's view and prints a
// JSON summary line. Exit 0 on success; on any failure a message on stderr and exit 1 (with
// AGENT_DEBUG=1 in the environment, the page's HTML too).
import { chromium } from "playwright-core";

const WAIT_MS = 30_000;
const CHROMIUM = process.env.BAKER_CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function fail(message) {
  process.stderr.write(`approvals.mjs: ${message}\n`);
  process.exit(1);
}

const [baseArg, screenshotPath, token] = process.argv.slice(2);
if (!baseArg || !screenshotPath || !token) fail("usage: node approvals.mjs <baseUrl> <screenshotPath> <token>");
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

const dispatchWaiting = async () => (await call("POST", "/api/jobs",
  { type: "agent", payload: { prompt: "How is the disk?", approve: ["http"] } })).id;
const dispatchedData = async (id) => (await call("GET", `/api/jobs/${id}/history`)).events[0].data;

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
    await step("the event stream is live", page.locator('#stream-status[data-state="live"]').waitFor());
    await step("the approvals panel loads", page.locator('#approvals[data-state="ready"]').waitFor({ state: "attached" }));
    const row = (id) => page.locator(`#jobs tr[data-job-id="${id}"]`);
    const waiting = (id) => page.locator(`#approvals-list li[data-job-id="${id}"]`);
    const summary = {};

    // 1. Approved from the panel: the job runs its tool and completes.
    const approved = await dispatchWaiting();
    await step("the first job appears in the waiting panel", waiting(approved).waitFor());
    await step("its row says waiting", row(approved).locator('[data-status="waiting"]').waitFor());
    summary.approved = {
      id: approved,
      tool: await waiting(approved).locator("[data-tool]").textContent(),
      input: await waiting(approved).locator("[data-input]").textContent(),
      count: await page.locator("#approval-count").textContent(),
    };
    await waiting(approved).getByRole("button", { name: /^Approve/ }).click();
    await step("the answered job leaves the panel", waiting(approved).waitFor({ state: "detached" }));
    await step("the approved job completes on the page", row(approved).locator('[data-status="completed"]').waitFor());
    summary.approved.message = await page.locator("#approvals-msg").textContent();
    summary.approved.apiStatus = (await call("GET", `/api/jobs/${approved}`)).status;

    // 2. Denied with a note: the conversation shows the denial and the tool's error return.
    const denied = await dispatchWaiting();
    await step("the second job appears in the waiting panel", waiting(denied).waitFor());
    await waiting(denied).getByLabel(/note/i).fill("not today");
    await waiting(denied).getByRole("button", { name: /^Deny/ }).click();
    await step("the denied job completes on the page", row(denied).locator('[data-status="completed"]').waitFor());
    await row(denied).click();
    const conv = page.locator("#conversation");
    await step("the conversation shows the denial", conv.locator('li[data-type="AgentApprovalDenied"]').waitFor());
    await step("the conversation shows the tool's error", conv.locator('li[data-kind="toolResult"] [data-output]').waitFor());
    summary.denied = {
      id: denied,
      asked: await conv.locator('li[data-type="AgentApprovalRequested"]').textContent(),
      denial: await conv.locator('li[data-type="AgentApprovalDenied"]').textContent(),
      output: await conv.locator('li[data-kind="toolResult"] [data-output]').textContent(),
      apiStatus: (await call("GET", `/api/jobs/${denied}`)).status,
    };

    // 3. Answered elsewhere just before the page's answer arrives: the API's 409 on the page.
    const stale = await dispatchWaiting();
    await step("the third job appears in the waiting panel", waiting(stale).waitFor());
    await page.route(`**/api/jobs/${stale}/approve`, async (route) => {
      await call("POST", `/api/jobs/${stale}/approve`, { approve: false, note: "answered elsewhere" });
      await route.continue();
    });
    await waiting(stale).getByRole("button", { name: /^Approve/ }).click();
    await step("the page shows the refusal", page.locator("#approvals-msg.error").waitFor());
    summary.stale = { id: stale, message: await page.locator("#approvals-msg").textContent() };
    await page.unroute(`**/api/jobs/${stale}/approve`);
    await step("the stale entry leaves the panel", waiting(stale).waitFor({ state: "detached" }));

    // 4. Rerun of the approved job from its view; the source shows nothing special.
    await row(approved).click();
    const meta = page.locator("#timeline-meta");
    await step("the source's view is open", page.locator("#timeline-title").filter({ hasText: approved }).waitFor());
    await step("Rerun is offered for a finished job", page.locator("#rerun-job").waitFor({ state: "visible" }));
    const sourceOrigins = await meta.locator("[data-origin]").count();
    await page.getByRole("button", { name: "Rerun" }).click();
    await step("the rerun's view names its source", meta.locator('[data-origin="rerun"]').waitFor());
    const rerunTitle = await page.locator("#timeline-title").textContent();
    const rerunId = rerunTitle.replace(/^Timeline of /, "");
    summary.rerun = {
      id: rerunId, sourceOrigins, origin: await meta.locator("[data-origin]").textContent(),
      source: await meta.locator("[data-origin] a").getAttribute("data-open"),
      rerunOf: (await dispatchedData(rerunId)).rerunOf,
    };
    await step("the rerun waits for approval like its source", waiting(rerunId).waitFor());

    // 5. Back to the source through the link; fork it from its tool result with a system prompt.
    await meta.locator("[data-origin] a").click();
    await step("the link opens the source", page.locator("#timeline-title").filter({ hasText: approved }).waitFor());
    const result = conv.locator('li[data-kind="toolResult"]');
    await step("the source's conversation loads", result.locator("button[data-fork-step]").waitFor());
    const fromStep = Number(await result.getAttribute("data-step"));
    await page.getByLabel(/fork with system prompt/i).fill("Be brief.");
    await result.getByRole("button", { name: /^Fork from here/ }).click();
    await step("the fork's view names its source", meta.locator('[data-origin="fork"]').waitFor());
    const forkId = (await page.locator("#timeline-title").textContent()).replace(/^Timeline of /, "");
    await step("the fork completes", meta.locator(".status .badge.completed").waitFor());
    await step("the fork's own answer shows", conv.locator('li[data-kind="model"]:not(.copied) [data-block="text"]').waitFor());
    summary.fork = {
      id: forkId, fromStep, origin: await meta.locator("[data-origin]").textContent(),
      source: await meta.locator("[data-origin] a").getAttribute("data-open"),
      copied: await conv.locator("li.copied").evaluateAll((items) => items.map((li) => [li.dataset.type, Number(li.dataset.step)])),
      own: await conv.locator("li[data-kind]:not(.copied)").evaluateAll((items) => items.map((li) => [li.dataset.type, Number(li.dataset.step)])),
      answer: await conv.locator('li[data-kind="model"]:not(.copied) [data-block="text"]').textContent(),
      forkOf: (await dispatchedData(forkId)).forkOf,
      apiStatus: (await call("GET", `/api/jobs/${forkId}`)).status,
    };

    if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join("; ")}`);
    await page.locator("#approvals").scrollIntoViewIfNeeded();
    await step("screenshot", page.screenshot({ path: screenshotPath, fullPage: true }));
    process.stdout.write(`${JSON.stringify({ ok: true, ...summary })}\n`);
  } catch (error) {
    if (process.env.AGENT_DEBUG) {
      const pages = browser.contexts().flatMap((c) => c.pages());
      for (const p of pages) process.stderr.write(`${await p.locator("main").innerHTML().catch((e) => e.message)}\n${pageErrors.join("; ")}\n`);
    }
    throw error;
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => fail("gave up after 150 s"), 150_000);
watchdog.unref();
main().then(() => process.exit(0), (error) => fail(error.message));
