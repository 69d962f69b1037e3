// Drives the dashboard's agent views in Debian's Chromium through playwright-core.
//
//   node agent.mjs <baseUrl> <screenshotPath> <token>
//
// Dispatches an agent job through the API (the Brain runs it against the fake Messages API),
// waits for its row to complete, opens it and reads the conversation step by step and the job's
// usage figures, compares them with the read model (GET /api/jobs/{id}), waits for the usage
// panel to chart a cost for today, saves a full-page screenshot and prints a JSON summary line.
// Exit 0 on success; on any failure a message on stderr and exit 1 (with AGENT_DEBUG=1 in the
// environment, the page's HTML too).
import { chromium } from "playwright-core";

const WAIT_MS = 30_000;
const CHROMIUM = process.env.BAKER_CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function fail(message) {
  process.stderr.write(`agent.mjs: ${message}\n`);
  process.exit(1);
}

const [baseArg, screenshotPath, token] = process.argv.slice(2);
if (!baseArg || !screenshotPath || !token) fail("usage: node agent.mjs <baseUrl> <screenshotPath> <token>");
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
    await step("the event stream is live", page.locator('#stream-status[data-state="live"]').waitFor());

    const { id } = await step("dispatch an agent job", call("POST", "/api/jobs",
      { type: "agent", payload: { prompt: "Is the disk fine?", model: "my-model" } }));
    const row = page.locator(`#jobs tr[data-job-id="${id}"]`);
    await step(`row ${id} reaches completed`, row.locator('[data-status="completed"]').waitFor());
    await row.click();

    const conv = page.locator("#conversation");
    await step("the conversation shows the final answer",
      conv.locator('li[data-kind="model"][data-step="4"] [data-block="text"]').waitFor());
    const steps = await conv.locator("li[data-kind]").evaluateAll((items) => items.map((li) => ({
      kind: li.dataset.kind, step: Number(li.dataset.step),
      text: [...li.querySelectorAll('[data-block="text"]')].map((n) => n.textContent).join(" "),
      toolUse: li.querySelector('[data-block="tool_use"]')?.textContent || "",
      tool: li.querySelector("[data-tool]")?.dataset.tool || "",
      input: li.querySelector("pre")?.textContent || "",
      output: li.querySelector("[data-output]")?.textContent || "",
      tokens: li.querySelector("[data-tokens]")?.textContent || "",
      duration: li.querySelector("[data-duration]")?.textContent || "",
    })));
    const shown = Object.fromEntries(await conv.locator("#conversation-usage [data-field]")
      .evaluateAll((nodes) => nodes.map((n) => [n.dataset.field, n.textContent])));
    const job = await call("GET", `/api/jobs/${id}`);

    // The usage panel charts today's cost once its next refresh sees the job.
    const today = new Date().toISOString().slice(0, 10);
    const bar = page.locator(`#usage svg rect[data-day="${today}"]:not([data-cost="0"])`);
    await step("the usage panel charts today's cost", bar.waitFor());
    const usage = {
      barCost: Number(await bar.getAttribute("data-cost")),
      cost: await page.locator('#usage [data-total="costUsd"]').textContent(),
      jobs: await page.locator('#usage [data-total="jobs"]').textContent(),
      models: await page.locator("#usage li[data-model]").evaluateAll((items) => items.map((li) => li.dataset.model)),
    };
    if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join("; ")}`);
    await conv.scrollIntoViewIfNeeded();
    await step("screenshot", page.screenshot({ path: screenshotPath, fullPage: true }));
    const row_ = { inputTokens: job.inputTokens, outputTokens: job.outputTokens, costUsd: job.costUsd, steps: job.steps };
    process.stdout.write(`${JSON.stringify({ ok: true, id, steps, shown, row: row_, usage })}\n`);
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

const watchdog = setTimeout(() => fail("gave up after 120 s"), 120_000);
watchdog.unref();
main().then(() => process.exit(0), (error) => fail(error.message));
