// The dashboard in a real browser (headless Chromium, driven by
// playwright-core), against a running demo: what a user sees. Run by
// scripts/browser-test, which starts the demo and sets
// DASHBOARD_URL (the controller's viz API), CHROMIUM and ARTIFACTS.
// Every wait has a deadline; a missing prerequisite fails, never skips.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const need = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} must be set (run scripts/browser-test)`);
  return v;
};
const URL = need("DASHBOARD_URL");
const ARTIFACTS = need("ARTIFACTS");
const AUTHORS = "http://authors.booksapp.svc.cluster.local:7001";
// The demo's workloads' outbound proxies (explicit mode: HTTP_PROXY).
const OUTBOUND = { webapp: "127.0.9.4", books: "127.0.9.3", traffic: "127.0.9.5" };

let browser;
let page;
let load;

// One request from `client`'s app through its proxy; resolves to the status.
function request(client, reqPath) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: OUTBOUND[client], port: 4140, path: AUTHORS + reqPath, headers: { host: "authors.booksapp.svc.cluster.local:7001" }, timeout: 5000 },
      (rsp) => {
        rsp.resume();
        rsp.on("end", () => resolve(rsp.statusCode));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${client} ${reqPath}: no answer within 5s`)));
    req.on("error", reject);
    req.end();
  });
}

async function shot(name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${path.resolve(file)}`);
}

async function shotOf(selector, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.locator(selector).screenshot({ path: file });
  console.log(`screenshot: ${path.resolve(file)}`);
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: need("CHROMIUM"),
    headless: true,
    // As root (CI) Chromium needs --no-sandbox.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const offsite = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(URL)) offsite.push(r.url());
  });
  page.offsite = offsite;
  await page.goto(`${URL}/dashboard`);
  // Some traffic for the signals, the edges and the routes...
  for (let i = 0; i < 5; i++) {
    assert.equal(await request("webapp", "/authors.json"), 200);
    assert.equal(await request("books", `/authors/${i}`), 200);
  }
  // ... and more while the page looks (stat measures over 2 s).
  load = setInterval(() => {
    request("webapp", "/authors.json").catch(() => {});
    request("books", "/authors/1").catch(() => {});
  }, 200);
});

after(async () => {
  clearInterval(load);
  if (page) await shot("dashboard").catch((e) => console.error(`final screenshot: ${e}`));
  if (browser) await browser.close();
});

test("the page lists the demo's workloads with their golden signals", async () => {
  const rows = page.locator("#workloads-table tr.workload");
  for (const name of ["authors", "books", "webapp", "traffic"]) {
    await rows.filter({ hasText: `externalworkload/${name}` }).first().waitFor({ timeout: 20000 });
  }
  // authors serves the requests above: a success rate and an mTLS share.
  const authors = rows.filter({ hasText: "externalworkload/authors" }).first();
  await page.waitForFunction(() => {
    const r = [...document.querySelectorAll("#workloads-table tr.workload")].find((r) => r.textContent.includes("externalworkload/authors"));
    return r && /%/.test(r.cells[3].textContent) && /%/.test(r.cells[8].textContent);
  }, null, { timeout: 30000, polling: 500 }).catch(async (e) => {
    // Keep the signals flowing while stat's 2 s window looks.
    throw new Error(`authors' signals never showed: ${await authors.textContent()} (${e.message})`);
  });
  await shotOf("#workloads", "workloads");
});

test("an mTLS edge is drawn in green to authors", async () => {
  const edge = page.locator('#edge-graph line.edge.mtls[data-dst*="authors"]').first();
  await edge.waitFor({ state: "attached", timeout: 20000 });
  const box = await edge.boundingBox();
  assert.ok(box && box.width + box.height > 20, `the edge has no length: ${JSON.stringify(box)}`);
  const stroke = await edge.evaluate((e) => getComputedStyle(e).stroke);
  assert.equal(stroke, "rgb(30, 142, 62)", "mTLS edges are green");
  assert.equal(await edge.getAttribute("data-tls"), "true");
  await shotOf("#edges", "edges");
});

test("a denial is shown with its reason", async () => {
  const row = page.locator("#denials-table tr.denial", { hasText: "traffic.booksapp" }).first();
  // The page has looked (the demo's own denial may be there) ...
  await page.waitForFunction(() => /updated/.test(document.querySelector("#updated").textContent), null, { timeout: 20000 });
  // ... then traffic, whose identity is not authorized for authors'
  // routes, is denied: the row shows it as recent.
  assert.equal(await request("traffic", "/authors.json"), 403);
  await page.waitForFunction(() => {
    const r = [...document.querySelectorAll("#denials-table tr.denial")].find((r) => r.textContent.includes("traffic.booksapp"));
    return r && /^\+[1-9]/.test(r.cells[4].textContent);
  }, null, { timeout: 20000, polling: 250 });
  const reason = await row.locator("td.reason").textContent();
  assert.match(reason, /no authorization on server\/authors .*admits traffic\.booksapp/);
  // ... and counted in authors' DENIED column.
  await page.waitForFunction(() => {
    const r = [...document.querySelectorAll("#workloads-table tr.workload")].find((r) => r.textContent.includes("externalworkload/authors"));
    return r && Number(r.cells[9].textContent) > 0;
  }, null, { timeout: 20000, polling: 500 });
  await shotOf("#denials", "denials");
});

test("a tapped request appears live with its status", async () => {
  await page.waitForFunction(() => /tapping/.test(document.querySelector("#tap-status").textContent), null, { timeout: 10000 });
  const unique = `/authors/${Date.now()}`;
  const row = page.locator(`#tap-table tr.tap-row[data-path="${unique}"]`).first();
  const deadline = Date.now() + 20000;
  // The stream subscribes to each proxy asynchronously: ask until seen.
  for (;;) {
    assert.equal(await request("books", unique), 200);
    if (await row.isVisible()) break;
    assert.ok(Date.now() < deadline, `${unique} never appeared in the live tap: ${await page.locator("#tap").textContent()}`);
    await page.waitForTimeout(500);
  }
  await page.waitForFunction((p) => {
    const r = document.querySelector(`#tap-table tr.tap-row[data-path="${p}"] .status`);
    return r && r.textContent === "200";
  }, unique, { timeout: 10000 });
  await shotOf("#tap", "tap");
});

test("the compliance report is rendered, each check with its status", async () => {
  const checks = page.locator("#compliance-report .check");
  await checks.first().waitFor({ timeout: 30000 }).catch(async (e) => {
    throw new Error(`no compliance checks: ${await page.locator("#compliance").textContent()} (${e.message})`);
  });
  const statuses = await checks.evaluateAll((cs) => cs.map((c) => c.dataset.status));
  assert.ok(statuses.every((s) => ["pass", "warn", "fail"].includes(s)), `statuses: ${statuses}`);
  await shotOf("#compliance", "compliance");
});

test("nothing is fetched from anywhere but the controller", () => {
  assert.deepEqual(page.offsite, []);
});
