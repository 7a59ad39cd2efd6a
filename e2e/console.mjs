// End-to-end test of the console in headless Chromium against the real server binary.
//
// Starts `xingqu serve --demo` on a free port over a temporary SQLite file, then:
//   1. an unauthenticated visit to a console page lands on the sign-in page;
//   2. the operator signs in, the campaign overview draws its charts, the live hot list shows;
//   3. an order is placed and paid through the API, and the hot list on the open page changes
//      without a reload (server-sent events);
//   4. the demo merchant signs in and sees only their shop's orders and figures;
//   5. the operator's experience-score table ranks the shops that sold; a new shop's 安心购 request
//      is approved from the operator's queue;
//   6. the operator creates a zone through the campaign form (a duplicate name shows the API's
//      error next to the form), edits its traffic target, and sees it listed;
//   7. the merchant enters a SKU into that zone through their form (a price not below the 30-day
//      low shows `not_below_reference_price`), the operator approves it in the review queue, and
//      the merchant's page shows it approved.
// Every wait is for a condition (with a generous cap so a broken build fails instead of
// hanging); nothing asserts on elapsed time.
//
// Usage: node e2e/console.mjs   (XINGQU_BIN, CHROMIUM to override the binary and browser;
// E2E_SCREENSHOTS=DIR saves a picture of each page for a person to look at)

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.XINGQU_BIN || resolve(here, "../target/debug/xingqu");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const PASSWORD = "xingqu-demo";
const WAIT_MS = 30_000;
const SHOTS = process.env.E2E_SCREENSHOTS;

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

let passed = 0;
let failed = 0;

async function step(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`not ok - ${name}\n  ${String(error && error.stack ? error.stack : error).replaceAll("\n", "\n  ")}`);
    throw error;
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Polls `check` until it returns a truthy value; fails after WAIT_MS. */
async function until(what, check) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

function startServer(port, dir) {
  const logs = [];
  const child = spawn(
    BIN,
    ["--database-url", `sqlite://${join(dir, "xingqu.db")}`, "serve", "--demo", "--listen", `127.0.0.1:${port}`],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  child.stdout.on("data", (d) => logs.push(d.toString()));
  child.stderr.on("data", (d) => logs.push(d.toString()));
  return { child, logs };
}

function client(base) {
  return async function call(method, path, { token, body, headers = {} } = {}) {
    const response = await fetch(base + path, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: response.status, body: json, text };
  };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "xingqu-e2e-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const call = client(base);
  const server = startServer(port, dir);
  let browser;
  try {
    await until("the server to be ready", async () => (await call("GET", "/readyz")).status === 200);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });

    const login = async (email) => {
      const reply = await call("POST", "/v1/auth/login", { body: { email, password: PASSWORD } });
      assert(reply.status === 200, `login ${email}: ${reply.text}`);
      return reply.body;
    };

    // Shops: the demo merchant's own, and another one.
    const merchantSession = await login("merchant@xingqu.demo");
    const ownShop = merchantSession.user.merchant_id;
    assert(ownShop, "the demo merchant works for a shop");
    // A SKU with stock of a listed product whose shop passes `filter` (listings carry no SKUs:
    // each candidate is read whole).
    const skuOf = async (query, filter) => {
      const products = await call("GET", `/v1/products?limit=100${query}`);
      for (const summary of products.body.items.filter((p) => filter(p.merchant_id))) {
        const product = (await call("GET", `/v1/products/${summary.id}`)).body;
        const sku = (product.skus || []).find((s) => s.stock > 5);
        if (sku) return { sku: sku.id, merchant: product.merchant_id };
      }
      throw new Error("no listed product with stock");
    };
    const other = await skuOf("", (m) => m !== ownShop);
    const own = await skuOf(`&merchant_id=${ownShop}`, (m) => m === ownShop);

    const operatorContext = await browser.newContext();
    const page = await operatorContext.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    // The demo merchant signed in through the form, in a browser context of their own, on their
    // shop's page once it is ready.
    const signInMerchant = async () => {
      const context = await browser.newContext();
      const shopPage = await context.newPage();
      shopPage.on("pageerror", (e) => pageErrors.push(e.message));
      await shopPage.goto(`${base}/console/login`);
      await shopPage.fill("#email", "merchant@xingqu.demo");
      await shopPage.fill("#password", PASSWORD);
      await shopPage.click("#login-submit");
      await shopPage.waitForURL(/\/console\/merchant$/, { timeout: WAIT_MS });
      await shopPage.locator("body[data-ready='true']").waitFor({ timeout: WAIT_MS });
      return { context, shopPage };
    };

    await step("an unauthenticated visit shows the sign-in page", async () => {
      await page.goto(`${base}/console/operator`);
      await page.waitForURL(/\/console\/login/, { timeout: WAIT_MS });
      await page.locator("#login-form").waitFor({ timeout: WAIT_MS });
    });

    await step("the operator signs in and the overview draws its charts", async () => {
      await page.fill("#email", "operator@xingqu.demo");
      await page.fill("#password", PASSWORD);
      await page.click("#login-submit");
      await page.waitForURL(/\/console\/operator$/, { timeout: WAIT_MS });
      await page.locator("body[data-ready='true']").waitFor({ timeout: WAIT_MS });
      for (const id of ["gmv-chart", "regions-chart", "domestic-chart", "zones-chart"]) {
        await page.locator(`#${id}[data-rendered='true']`).waitFor({ timeout: WAIT_MS });
        const painted = await page.evaluate((canvasId) => {
          const canvas = document.getElementById(canvasId);
          const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
          let n = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n += 1;
          return { n, width: canvas.width, height: canvas.height };
        }, id);
        assert(painted.width > 0 && painted.height > 0 && painted.n > 0, `${id} is drawn: ${JSON.stringify(painted)}`);
      }
      // The demo festival's zones are listed with their traffic targets.
      await page.locator("#zones tbody tr[data-zone]").first().waitFor({ timeout: WAIT_MS });
      const zones = await page.$$eval("#zones tbody tr[data-zone]", (rows) => rows.map((r) => r.cells[0].textContent));
      assert(zones.includes("风味延边") && zones.length === 3, `the campaign's zones are shown: ${zones}`);
      const gmvCard = await page.locator("[data-testid='gmv'] .value").textContent();
      assert(gmvCard.startsWith("¥"), `the GMV card shows money: ${gmvCard}`);
    });

    let before;
    let gmvBefore;
    await step("the live hot list is shown", async () => {
      gmvBefore = await page.locator("[data-testid='gmv'] .value").textContent();
      await page.locator("#hot-status.live").waitFor({ timeout: WAIT_MS });
      await page.locator("#hot-list[data-updates]").waitFor({ timeout: WAIT_MS });
      before = await page.$$eval("#hot-list tbody tr[data-sku]", (rows) =>
        Object.fromEntries(rows.map((r) => [r.dataset.sku, Number(r.dataset.value)])),
      );
      await page.evaluate(() => {
        window.__noReload = "still here";
      });
    });

    const buyer = (await login("consumer@xingqu.demo")).token;
    const address = { name: "金顺姬", phone: "13800000000", region_code: "222401", detail: "延吉市光明街 1 号" };
    const placeAndPay = async (sku, quantity, key) => {
      const created = await call("POST", "/v1/orders", {
        token: buyer,
        headers: { "Idempotency-Key": key },
        body: { lines: [{ sku_id: sku, quantity }], address },
      });
      assert(created.status === 201, `order created: ${created.text}`);
      const orderId = created.body.orders[0].id;
      const payment = await call("POST", `/v1/orders/${orderId}/pay`, { token: buyer });
      assert(payment.status === 200, `payment started: ${payment.text}`);
      const paid = await call("POST", "/v1/payments/simulated/callback", { body: payment.body.simulated_callback });
      assert(paid.status === 200 && paid.body.outcome === "paid", `paid: ${paid.text}`);
      return orderId;
    };

    let otherOrder;
    let ownOrder;
    await step("a paid order changes the hot list on the open page without a reload", async () => {
      const quantity = 3;
      otherOrder = await placeAndPay(other.sku, quantity, `e2e-other-${Date.now()}`);
      const expected = (before[String(other.sku)] || 0) + quantity;
      await page.locator(`#hot-list tbody tr[data-sku='${other.sku}'][data-value='${expected}']`).waitFor({ timeout: WAIT_MS });
      assert((await page.evaluate(() => window.__noReload)) === "still here", "the page was not reloaded");
      // The figures follow the list: the GMV card moves on without a reload too.
      await until("the GMV card to change", async () => (await page.locator("[data-testid='gmv'] .value").textContent()) !== gmvBefore);
      ownOrder = await placeAndPay(own.sku, 1, `e2e-own-${Date.now()}`);
      await page.locator(`#hot-list tbody tr[data-sku='${own.sku}']`).waitFor({ timeout: WAIT_MS });
      assert((await page.evaluate(() => window.__noReload)) === "still here", "the page was not reloaded");
      await shot(page, "operator");
    });

    await step("the merchant sees only their own shop", async () => {
      const { context, shopPage } = await signInMerchant();
      await shopPage.locator(`#orders tbody tr[data-order='${ownOrder}']`).waitFor({ timeout: WAIT_MS });
      const shops = await shopPage.$$eval("#orders tbody tr[data-merchant]", (rows) => rows.map((r) => Number(r.dataset.merchant)));
      assert(shops.length > 0 && shops.every((m) => m === ownShop), `only shop ${ownShop}'s orders: ${shops}`);
      assert((await shopPage.locator(`#orders tbody tr[data-order='${otherOrder}']`).count()) === 0, "another shop's order is not shown");
      const scope = await shopPage.locator("#cards").getAttribute("data-merchant-id");
      assert(Number(scope) === ownShop, `figures are the shop's own: ${scope}`);
      await shopPage.locator("#gmv-chart[data-rendered='true']").waitFor({ timeout: WAIT_MS });
      await shot(shopPage, "merchant");
      // The operator's page is not theirs: they are sent back to their shop.
      await shopPage.goto(`${base}/console/operator`);
      await shopPage.waitForURL(/\/console\/merchant$/, { timeout: WAIT_MS });
      // And the API refuses another shop's figures.
      const token = await shopPage.evaluate(() => sessionStorage.getItem("xingqu.token"));
      const refused = await call("GET", `/v1/analytics/overview?merchant_id=${other.merchant}`, { token });
      assert(refused.status === 403, `another shop's analytics are refused: ${refused.status}`);
      await context.close();
    });

    await step("the experience scores rank the shops that sold", async () => {
      // The figures refresh after the paid orders above: both shops are scored.
      for (const shop of [ownShop, other.merchant]) {
        await page.locator(`#scores tbody tr[data-merchant='${shop}']`).waitFor({ timeout: WAIT_MS });
      }
      const rows = await page.$$eval("#scores tbody tr[data-merchant]", (trs) => trs.map((r) => ({ rank: Number(r.cells[0].textContent), overall: r.dataset.overall })));
      assert(rows.every((r, i) => r.rank === i + 1), `ranks run 1..n: ${JSON.stringify(rows)}`);
      assert(rows.every((r) => r.overall !== "" && Number(r.overall) >= 0 && Number(r.overall) <= 10000), `overall scores are basis points: ${JSON.stringify(rows)}`);
    });

    await step("a shop's 安心购 request is approved from the operator's queue", async () => {
      // A new shop applies through the API: registered, qualified by the operator, then asks.
      const registered = await call("POST", "/v1/auth/register", {
        body: { email: "e2e-shop@example.com", password: PASSWORD, display_name: "E2E 店主", role: "consumer" },
      });
      assert(registered.status === 201, `registered: ${registered.text}`);
      const categories = (await call("GET", "/v1/categories")).body.items;
      const leaf = categories.find((c) => !categories.some((d) => d.parent_id === c.id));
      const shop = await call("POST", "/v1/merchants", {
        token: registered.body.token,
        body: { shop_name: "E2E 安心小店", region_code: "222401", category_ids: [leaf.id] },
      });
      assert(shop.status === 201, `shop applied: ${shop.text}`);
      const operatorToken = (await login("operator@xingqu.demo")).token;
      const qualified = await call("POST", `/v1/merchants/${shop.body.id}/qualification`, { token: operatorToken, body: { decision: "approve" } });
      assert(qualified.status === 200, `shop qualified: ${qualified.text}`);
      const staff = (await login("e2e-shop@example.com")).token;
      const services = ["authenticity_guarantee", "seven_day_return", "express_refund", "return_shipping_insurance", "door_pickup"];
      const asked = await call("PUT", `/v1/merchants/${shop.body.id}/assurance`, {
        token: staff,
        body: { services, insurance_premium_fen: 50, insurance_cap_fen: 1000 },
      });
      assert(asked.status === 200 && asked.body.status === "pending", `安心购 requested: ${asked.text}`);
      await page.reload();
      await page.locator("body[data-ready='true']").waitFor({ timeout: WAIT_MS });
      const row = page.locator(`#assurance-queue tbody tr[data-merchant='${shop.body.id}']`);
      await row.waitFor({ timeout: WAIT_MS });
      await row.locator("button[data-action=approve]").click();
      await until("the request to leave the queue", async () => (await row.count()) === 0);
      const decided = await call("GET", `/v1/merchants/${shop.body.id}/assurance`, { token: staff });
      assert(decided.body.status === "approved", `approved: ${decided.text}`);
    });

    const zoneName = "E2E 本店专区";
    await step("the operator creates a zone through the form and sees it listed", async () => {
      await page.click("#campaigns-link");
      await page.waitForURL(/\/console\/campaigns$/, { timeout: WAIT_MS });
      await page.locator("body[data-ready='true']").waitFor({ timeout: WAIT_MS });
      await page.locator("#zones tbody tr[data-zone]").first().waitFor({ timeout: WAIT_MS });
      const form = page.locator("#zone-form");
      await form.locator("input[name=name]").fill(zoneName);
      await form.locator("input[name=merchant_ids]").fill(String(ownShop));
      await form.locator("input[name=traffic_target]").fill("1");
      await form.locator("button[type=submit]").click();
      const row = page.locator("#zones tbody tr[data-zone]", { hasText: zoneName });
      await row.waitFor({ timeout: WAIT_MS });
      assert((await row.textContent()).includes(`shops ${ownShop}`), `the rule is shown: ${await row.textContent()}`);
      // The same name again: the API's 409 is shown next to the form.
      await form.locator("input[name=name]").fill(zoneName);
      await form.locator("button[type=submit]").click();
      await form.locator(".error[data-code='zone_exists']").waitFor({ timeout: WAIT_MS });
      // Editing its traffic target (PUT /v1/zones/{id}).
      await row.locator("button[data-action=edit]").click();
      await form.locator("input[name=traffic_target]").fill("2.5");
      await form.locator("button[type=submit]").click();
      await page.locator("#zones tbody tr[data-zone]", { hasText: "2.50%" }).filter({ hasText: zoneName }).waitFor({ timeout: WAIT_MS });
      await shot(page, "campaigns");
    });

    await step("the merchant enters a SKU, the operator approves it, the merchant sees it approved", async () => {
      const { context, shopPage } = await signInMerchant();
      const form = shopPage.locator("#entry-form[data-ready='true']");
      await form.waitFor({ timeout: WAIT_MS });
      await form.locator("select[name=zone_id]").selectOption({ label: zoneName });
      await form.locator("select[name=sku_id]").selectOption(String(own.sku));
      const priceFen = Number(await form.locator(`select[name=sku_id] option[value='${own.sku}']`).getAttribute("data-price"));
      // Not below the 30-day low: refused, and the refusal is shown by the form.
      await form.locator("input[name=price]").fill((priceFen / 100).toFixed(2));
      await form.locator("button[type=submit]").click();
      await form.locator(".error[data-code='not_below_reference_price']").waitFor({ timeout: WAIT_MS });
      const campaignFen = Math.max(1, Math.floor(priceFen / 2));
      await form.locator("input[name=price]").fill((campaignFen / 100).toFixed(2));
      await form.locator("button[type=submit]").click();
      await shopPage.locator(`#entries tbody tr[data-sku='${own.sku}'][data-status='pending']`).waitFor({ timeout: WAIT_MS });
      assert(await form.locator(".error").isHidden(), "the error is cleared once the entry is accepted");

      // The operator's review queue shows it; approving takes it off the queue.
      await page.reload();
      await page.locator("body[data-ready='true']").waitFor({ timeout: WAIT_MS });
      const queued = page.locator(`#review-queue tbody tr[data-sku='${own.sku}']`);
      await queued.waitFor({ timeout: WAIT_MS });
      await queued.locator("button[data-action=approve]").click();
      await until("the entry to leave the review queue", async () => (await queued.count()) === 0);

      await shopPage.reload();
      await shopPage.locator("body[data-ready='true']").waitFor({ timeout: WAIT_MS });
      const approved = shopPage.locator(`#entries tbody tr[data-sku='${own.sku}'][data-status='approved']`, { hasText: zoneName });
      await approved.waitFor({ timeout: WAIT_MS });
      await shot(shopPage, "merchant-entries");
      await context.close();
    });

    await step("the merchant ends a running flash sale early, with a reason", async () => {
      const { context, shopPage } = await signInMerchant();
      await shopPage.locator("#flash-sales[data-loaded='true']").waitFor({ timeout: WAIT_MS });
      const running = shopPage.locator("#flash-sales tbody tr[data-status='running']").first();
      await running.waitFor({ timeout: WAIT_MS });
      const id = Number(await running.getAttribute("data-flash-sale"));
      // No reason: refused by the API, and the refusal is shown; the sale runs on.
      await running.locator("button[data-action=end]").click();
      await shopPage.locator("#flash-error[data-code='empty']").waitFor({ timeout: WAIT_MS });
      assert((await call("GET", `/v1/flash-sales/${id}`)).body.status === "running", "a refused end changes nothing");
      await running.locator("input.reason").fill("价格设错");
      await running.locator("button[data-action=end]").click();
      await shopPage.locator(`#flash-sales tbody tr[data-flash-sale='${id}'][data-status='ended']`).waitFor({ timeout: WAIT_MS });
      assert(await shopPage.locator("#flash-error").isHidden(), "the error is cleared once the sale is ended");
      const sale = (await call("GET", `/v1/flash-sales/${id}`)).body;
      assert(sale.status === "ended" && sale.ended_early && sale.ended_early.reason === "价格设错", `ended with its reason: ${JSON.stringify(sale)}`);
      await shot(shopPage, "merchant-flash-sales");
      await context.close();
    });

    await step("no script errors on the pages", async () => {
      assert(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
    });
    await operatorContext.close();
  } catch (error) {
    if (failed === 0) {
      failed += 1;
      console.log(`not ok - setup\n  ${error && error.stack ? error.stack : error}`);
    }
    console.log("server output:\n" + server.logs.join(""));
  } finally {
    if (browser) await browser.close();
    server.child.kill("SIGTERM");
    await new Promise((r) => {
      const timer = setTimeout(() => {
        server.child.kill("SIGKILL");
        r();
      }, 10_000);
      server.child.on("exit", () => {
        clearTimeout(timer);
        r();
      });
    });
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main();
