// Drives the dashboard's schedules panel in Debian's Chromium through playwright-core.
//
//   node schedules.mjs <baseUrl> <screenshotPath> <token>
//
// Adds a schedule through the page's form (every second, `echo`), watches its fired count grow
// on the page (live, from the schedule events), pauses it (the page says paused; the API shows
// no next slot and the same count, still the same after another schedule fired three times),
// meets the API's 400 for a bad cron and its 409 for a taken
// name, adds a cron schedule in another zone, opens a job the first one fired and reads its
// schedule line, then deletes the first through the in-page confirmation (Keep first, then
// Delete). Saves a full-page screenshot and prints a JSON summary line. Exit 0 on success; on
// any failure a message on stderr and exit 1 (with AGENT_DEBUG=1, the page's HTML too).
import { chromium } from "playwright-core";

const WAIT_MS = 30_000;
const CHROMIUM = process.env.BAKER_CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function fail(message) {
  process.stderr.write(`schedules.mjs: ${message}\n`);
  process.exit(1);
}

const [baseArg, screenshotPath, token] = process.argv.slice(2);
if (!baseArg || !screenshotPath || !token) fail("usage: node schedules.mjs <baseUrl> <screenshotPath> <token>");
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

const apiSchedule = async (name) => (await call("GET", "/api/schedules")).schedules.find((s) => s.name === name) ?? null;
const firedJobs = async (name) => (await call("GET", "/api/events?type=JobDispatched&limit=500")).events
  .filter((e) => e.data?.schedule?.name === name);

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
    await step("the schedules panel loads", page.locator('#schedules[data-state="ready"]').waitFor({ state: "attached" }));
    await step("the schedule stream is live", page.locator('#schedules[data-stream="live"]').waitFor({ state: "attached" }));
    const form = page.locator("#schedule-form");
    const msg = page.locator("#schedules-msg");
    const row = (name) => page.locator(`#schedules-list tr[data-schedule="${name}"]`);
    const firedOnPage = async (name) => Number(await row(name).locator("[data-fired]").getAttribute("data-fired"));
    const summary = { empty: await page.locator("#schedules-list tr.empty").textContent() };

    // 1. Added through the form: every second, a command job.
    await form.getByLabel("Name").fill("pulse");
    await form.getByLabel(/every N seconds/i).fill("1");
    await form.getByLabel("Command job").fill("echo from-pulse");
    await form.getByRole("button", { name: "Add schedule" }).click();
    await step("the new schedule's row appears", row("pulse").waitFor());
    summary.added = {
      message: await msg.textContent(), messageClass: await msg.getAttribute("class"),
      cells: await row("pulse").locator("td").evaluateAll((tds) => tds.slice(0, 5).map((td) => td.textContent)),
      next: await row("pulse").locator("[data-next]").getAttribute("data-next"),
      formCleared: await form.getByLabel("Name").inputValue() === "",
    };

    // 2. Its fired count grows on the page, without a reload.
    await step("the page shows a first fired slot", page.waitForFunction(() =>
      Number(document.querySelector('#schedules-list tr[data-schedule="pulse"] [data-fired]')?.dataset.fired) >= 1));
    const first = await firedOnPage("pulse");
    await step("the page shows the count growing", page.waitForFunction((n) =>
      Number(document.querySelector('#schedules-list tr[data-schedule="pulse"] [data-fired]')?.dataset.fired) > n, first));
    summary.grew = { first, then: await firedOnPage("pulse") };

    // 3. Paused from the page; the API agrees and has no next slot for it.
    await row("pulse").getByRole("button", { name: "Pause schedule pulse" }).click();
    await step("the row says paused", row("pulse").locator('[data-status="paused"]').waitFor());
    await step("Resume is offered", row("pulse").getByRole("button", { name: "Resume schedule pulse" }).waitFor());
    const paused = await apiSchedule("pulse");
    // The page reads the list after the pause's own event: it shows what the API holds now.
    await step("the page shows the API's count", page.waitForFunction((n) =>
      document.querySelector('#schedules-list tr[data-schedule="pulse"] [data-fired]')?.dataset.fired === String(n), paused.fired));
    summary.paused = {
      apiStatus: paused.status, apiFired: paused.fired, apiNext: paused.nextSlot ?? null,
      pageFired: await firedOnPage("pulse"), pageNext: await row("pulse").locator("[data-next]").textContent(),
      message: await msg.textContent(),
    };
    // The Brain's own clock says time went by: another every-second schedule, added through
    // the API, fires three times (seen live on the page); pulse, were it still active, would
    // have fired in those seconds too. Then that one is deleted behind the page's back.
    await call("POST", "/api/schedules", { name: "tick", everySeconds: 1, job: { type: "command", payload: { command: "echo tick" } } });
    await step("the other schedule fires three times on the page", page.waitForFunction(() =>
      Number(document.querySelector('#schedules-list tr[data-schedule="tick"] [data-fired]')?.dataset.fired) >= 3));
    const later = await apiSchedule("pulse");
    summary.stillPaused = { tick: await firedOnPage("tick"), apiFired: later.fired, pageFired: await firedOnPage("pulse"),
                            jobs: (await firedJobs("pulse")).length };
    await call("DELETE", "/api/schedules/tick");
    await step("a schedule deleted elsewhere leaves the page", row("tick").waitFor({ state: "detached" }));

    // 4. A bad cron: the API's 400 reason on the page; a taken name: its 409.
    await form.getByLabel("Name").fill("bad");
    await form.getByLabel(/cron/i).fill("61 * * * *");
    await form.getByLabel("Command job").fill("date");
    await form.getByRole("button", { name: "Add schedule" }).click();
    await step("the 400 is shown", page.locator("#schedules-msg.error").waitFor());
    summary.badCron = { message: await msg.textContent(), rows: await page.locator("#schedules-list tr[data-schedule]").count(),
                        formKept: await form.getByLabel(/cron/i).inputValue() };
    await form.getByLabel("Name").fill("pulse");
    await form.getByLabel(/cron/i).fill("");
    await form.getByLabel(/every N seconds/i).fill("60");
    await form.getByRole("button", { name: "Add schedule" }).click();
    await step("the 409 is shown", page.locator("#schedules-msg.error").filter({ hasText: "409" }).waitFor());
    summary.taken = { message: await msg.textContent() };

    // 5. A cron schedule in another zone, shown with its zone and next slot.
    await form.getByLabel("Name").fill("nightly");
    await form.getByLabel(/every N seconds/i).fill("");
    await form.getByLabel(/cron/i).fill("30 3 * * 1-5");
    await form.getByLabel(/time zone/i).fill("Europe/London");
    await form.getByLabel("Command job").fill("df -h");
    await form.getByRole("button", { name: "Add schedule" }).click();
    await step("the cron schedule's row appears", row("nightly").waitFor());
    summary.cron = {
      cells: await row("nightly").locator("td").evaluateAll((tds) => tds.slice(0, 5).map((td) => td.textContent)),
      next: await row("nightly").locator("[data-next]").getAttribute("data-next"),
      apiNext: (await apiSchedule("nightly")).nextSlot,
      order: await page.locator("#schedules-list tr[data-schedule]").evaluateAll((trs) => trs.map((tr) => tr.dataset.schedule)),
    };

    // 6. A job the schedule fired names it and its slot in the job view.
    const fired = await firedJobs("pulse");
    if (!fired.length) throw new Error("the API lists no job fired by pulse");
    const job = fired[0];
    const jobRow = page.locator(`#jobs tr[data-job-id="${job.aggregateId}"]`);
    await step("the fired job is in the jobs list", jobRow.waitFor());
    await jobRow.click();
    const origin = page.locator('#timeline-meta [data-origin="schedule"]');
    await step("the job view names its schedule", origin.waitFor());
    summary.job = {
      id: job.aggregateId, slot: job.data.schedule.slot, text: await origin.textContent(),
      dataSlot: await origin.getAttribute("data-slot"), dataSchedule: await origin.getAttribute("data-schedule"),
    };

    if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join("; ")}`);
    await page.locator("#schedules").scrollIntoViewIfNeeded();
    await step("screenshot", page.screenshot({ path: screenshotPath, fullPage: true }));

    // 7. Delete asks in the page: Keep leaves it, Delete removes it.
    await row("pulse").getByRole("button", { name: "Delete schedule pulse" }).click();
    const question = await step("the confirmation appears", row("pulse").locator(".confirm").textContent());
    await row("pulse").getByRole("button", { name: "Keep schedule pulse" }).click();
    await step("Keep restores the buttons", row("pulse").getByRole("button", { name: "Resume schedule pulse" }).waitFor());
    const keptInApi = (await apiSchedule("pulse")) !== null;
    await row("pulse").getByRole("button", { name: "Delete schedule pulse" }).click();
    await row("pulse").getByRole("button", { name: "Yes, delete schedule pulse" }).click();
    await step("the deleted schedule leaves the page", row("pulse").waitFor({ state: "detached" }));
    summary.deleted = { question, keptInApi, inApi: (await apiSchedule("pulse")) !== null, message: await msg.textContent(),
                        left: await page.locator("#schedules-list tr[data-schedule]").evaluateAll((trs) => trs.map((tr) => tr.dataset.schedule)) };

    if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join("; ")}`);
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
