// Drives the dashboard of a running Relance in headless Chromium, as a marketer would:
// sign in, look at the seed scenario's contact, edit a rule (an error, then a fix),
// backtest and activate it, cancel a pending action, watch the live feed, check the
// phone layout; saves a screenshot of each page. Run by scripts/browser-test.sh, which
// starts the server; every check throws on failure and the process exits non-zero.
//
// Environment: RELANCE_URL, RELANCE_ADMIN_TOKEN, SCREENSHOTS (a folder), CHROMIUM
// (default /usr/bin/chromium).

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const base = process.env.RELANCE_URL;
const token = process.env.RELANCE_ADMIN_TOKEN;
const shots = process.env.SCREENSHOTS || "docs/screenshots";
assert.ok(base && token, "RELANCE_URL and RELANCE_ADMIN_TOKEN are required");
mkdirSync(shots, { recursive: true });

const api = async (method, path, body, type = "application/json") => {
  const resp = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": type },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: resp.status, json, text };
};

const step = (name) => console.log(`· ${name}`);

// --- Data: the seed scenario, and some traffic around it (after the first-run check) -----
const seed = async () => {
step("seeding events");
const who = { client_code: "CL001", email: "client@example.com" };
for (const [path, body] of [
  ["/webhook/behavior", { ...who, action: "open" }],
  ["/webhook/email", { event: "click", email: "client@example.com", "message-id": "m1", link: "https://domaine.example/cuvee" }],
  ["/webhook/behavior", { ...who, action: "purchase", metadata: { amount: 80 } }],
]) {
  const r = await api("POST", path, body);
  assert.equal(r.status, 200, `${path}: ${r.text}`);
}
const actions = ["open", "click", "page_visit", "form_submit", "purchase"];
for (let i = 0; i < 40; i++) {
  const action = actions[i % actions.length];
  const body = { email: `client${i % 13}@example.org`, action, metadata: action === "purchase" ? { amount: 20 + i * 3 } : { page: `/vins/${i}` } };
  const r = await api("POST", "/webhook/behavior", body);
  assert.equal(r.status, 200, r.text);
}
const contact = (await api("GET", "/api/contacts/client@example.com")).json;
assert.equal(contact.score, 100, "the seed scenario ends at 100");
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const problems = [];
const newPage = async (context) => {
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("dialog", (d) => d.accept());
  return page;
};

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await newPage(context);

  // --- Sign in -------------------------------------------------------------------------
  step("sign in");
  await page.goto(base + "/");
  assert.match(page.url(), /\/ui\/login\?next=/, "a visitor without a session is sent to sign in");
  // Before any user exists: no name, the admin token as the password (bootstrap).
  await page.fill("#password", "not-the-token");
  await page.click("button[type=submit]");
  await page.waitForSelector("text=Wrong name or password.");
  await page.screenshot({ path: `${shots}/sign-in.png` });
  // The refused sign-in answered 401, which Chromium logs as a failed resource.
  problems.splice(0, problems.length, ...problems.filter((p) => !p.includes("401")));
  await page.fill("#password", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("h1:has-text('Overview')");
  const cookie = (await context.cookies()).find((c) => c.name === "relance_session");
  assert.ok(cookie, "a session cookie is set");
  assert.equal(cookie.httpOnly, true, "the session cookie is HttpOnly");
  assert.equal(cookie.sameSite, "Strict", "the session cookie is SameSite=Strict");

  // --- First run: the guide, a test event in the feed, deleted ------------------------------
  step("first run and its test event");
  await page.waitForSelector("#getting-started");
  assert.match(await page.textContent("#brevo-url"), new RegExp(`^${base}/webhook/email$`), "the URL to paste into Brevo");
  await page.screenshot({ path: `${shots}/first-run.png`, fullPage: true });
  await page.waitForSelector("#feed-status:has-text('Live')");
  await Promise.all([page.waitForNavigation(), page.click("#send-test-event")]);
  await page.waitForSelector("#feed li:has-text('relance_test') .badge.test");
  assert.equal(await page.textContent("#getting-started h2"), "Getting started", "a test event is not a real one");
  await Promise.all([page.waitForNavigation(), page.click("#delete-test-events")]);
  assert.equal(await page.locator("#feed li:has-text('relance_test')").count(), 0, "the test event is deleted");
  await seed();
  await page.waitForTimeout(5500); // the overview's figures are cached for 5 s
  await page.goto(base + "/");
  assert.equal(await page.locator("#getting-started").count(), 0, "real events end the first run");

  // --- Overview and the live feed ----------------------------------------------------------
  step("overview and live feed");
  await page.waitForFunction(() => window.Chart && Chart.getChart(document.getElementById("events-chart")));
  await page.waitForSelector("#feed-status:has-text('Live')");
  const live = await api("POST", "/webhook/behavior", { email: "live.feed@example.com", action: "click" });
  assert.equal(live.status, 200, live.text);
  await page.waitForSelector("#feed li.new:has-text('live.feed@example.com')", { timeout: 10_000 });
  const rulesFired = await page.textContent("#rules-fired");
  assert.match(rulesFired, /Purchase completed/, "the rules that fired are listed by what they do");
  await page.waitForTimeout(400); // chart animation
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  // --- Contacts: search, then the seed scenario's contact -----------------------------------
  step("contacts");
  await page.click("nav >> text=Contacts");
  await page.fill("input[name=search]", "client@");
  await page.click("form.filters button[type=submit]");
  await page.waitForSelector("#contacts >> text=client@example.com");
  const rows = await page.locator("#contacts tbody tr").count();
  assert.equal(rows, 1, "the search finds exactly the one contact");
  await page.screenshot({ path: `${shots}/contacts.png` });
  await page.click("#contacts >> text=client@example.com");
  await page.waitForSelector("h1:has-text('client@example.com')");
  assert.match(await page.textContent("#score"), /100/);
  await page.waitForFunction(() => Chart.getChart(document.getElementById("contact-score-chart")));
  const points = await page.evaluate(() => Chart.getChart(document.getElementById("contact-score-chart")).data.datasets[0].data.map((p) => p.y));
  const why = (await api("GET", "/api/contacts/client@example.com/explain")).json;
  assert.deepEqual(points, [why.score.baseline, 55, 70, 100], "the score chart is drawn from history: start, open, click, purchase");
  const timeline = await page.textContent("#timeline");
  for (const expected of ["purchase", "Purchase completed", "click", "engaged"]) {
    assert.ok(timeline.includes(expected), `the timeline mentions ${expected}`);
  }
  assert.match(await page.textContent("#explain"), /Purchase completed/, "the explanation says what the rule does");
  assert.equal(await page.getAttribute("#explain span.rule >> nth=-1", "title"), "rule_purchase", "the rule's id is its title");
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${shots}/contact.png`, fullPage: true });

  // --- CSV import: checked line by line, then confirmed ----------------------------------------
  step("csv import");
  await page.goto(base + "/ui/contacts");
  await page.click("#import summary");
  await page.setInputFiles("#import-file", { name: "crm.csv", mimeType: "text/csv",
    buffer: Buffer.from("client_code;email;segment\nCL900;import.one@example.fr;VIP\nCL901;not-an-email;Standard\n") });
  await Promise.all([page.waitForNavigation(), page.click("#import button[type=submit]")]);
  assert.match(await page.textContent("#import-check"), /Ready to import: 1; rejected: 1/);
  assert.equal((await page.textContent("#import-rejected tbody td.num")).trim(), "3", "the bad row's line");
  await page.check("input[name=skip_invalid]");
  await Promise.all([page.waitForNavigation(), page.click("#import-confirm")]);
  assert.match(await page.textContent("#import-result"), /Created: 1; updated: 0; left out: 1/);
  assert.equal((await api("GET", "/api/contacts/import.one@example.fr")).status, 200);
  await page.goto(base + "/ui/contacts/client%40example.com");

  // --- Cancel a pending action --------------------------------------------------------------
  step("cancel a pending action");
  const pendingBefore = await page.locator("#pending li").count();
  assert.ok(pendingBefore > 0, "the purchase left actions pending");
  const firstPending = page.locator("#pending li").first();
  const jobId = (await firstPending.locator("a").getAttribute("href")).split("/").pop();
  await firstPending.locator("button:has-text('Cancel')").click();
  await page.waitForSelector("h1:has-text('client@example.com')");
  assert.equal(await page.locator("#pending li").count(), pendingBefore - 1, "one pending action fewer");
  const cancelled = await api("GET", `/api/actions/${jobId}`);
  assert.equal(cancelled.json.action.state, "cancelled", cancelled.text);

  // --- Rules: an error flagged on its line, then a fix, backtest, activate -----------------------
  step("rules editor");
  await page.click("nav >> text=Rules");
  await page.waitForSelector("#rules-editor");
  const versionBefore = Number(await page.textContent("#live-version"));
  const original = await page.inputValue("#rules-editor");
  const lines = original.split("\n");
  const priorityLine = lines.findIndex((l) => /^priority\s*=/.test(l)) + 1;
  assert.ok(priorityLine > 0, "the TOML has a priority line");
  lines[priorityLine - 1] = "priority = 500";
  await page.fill("#rules-editor", lines.join("\n"));
  await page.waitForSelector(`#rules-errors li:has-text('line ${priorityLine}')`, { timeout: 10_000 });
  await page.waitForSelector("#rules-gutter .err");
  assert.equal((await page.textContent("#rules-gutter .err")).trim(), `⚠ ${priorityLine}`, "the gutter marks the line");
  await page.click(`#rules-errors li button:has-text('line ${priorityLine}')`);
  const selected = await page.evaluate(() => {
    const e = document.getElementById("rules-editor");
    return e.value.slice(e.selectionStart, e.selectionEnd);
  });
  assert.equal(selected, "priority = 500", "clicking the error selects its line");
  assert.equal(await page.isDisabled("#backtest"), true, "an invalid set cannot be backtested");
  assert.equal(await page.isDisabled("#activate"), true, "an invalid set cannot be activated");
  await page.screenshot({ path: `${shots}/rules-error.png`, fullPage: true });

  // The fix: an open is worth 10 instead of 5.
  const fixed = original.replace(/score_delta = 5\b/, "score_delta = 10");
  assert.notEqual(fixed, original, "the default rules give an open 5 points");
  await page.fill("#rules-editor", fixed);
  await page.waitForSelector("#rules-status.good", { timeout: 10_000 });
  assert.equal(await page.locator("#rules-errors li").count(), 0);
  assert.equal(await page.isDisabled("#activate"), true, "activation waits for a backtest");
  await page.click("#backtest");
  await page.waitForSelector("#backtest-report h3:has-text('Backtest')", { timeout: 30_000 });
  const report = await page.textContent("#backtest-report");
  assert.match(report, /contacts ending differently/);
  assert.doesNotMatch(report, /\b0 with another score/, "opens worth more change some scores");
  assert.equal(await page.isDisabled("#activate"), false, "a backtested valid set can be activated");
  await page.screenshot({ path: `${shots}/rules-backtest.png`, fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click("#activate")]);
  await page.waitForSelector("#live-version");
  assert.equal(Number(await page.textContent("#live-version")), versionBefore + 1, "a new version is in force");
  const live2 = await api("GET", "/api/rules");
  assert.equal(live2.json.version, versionBefore + 1);
  assert.match(JSON.stringify(live2.json.rules), /"score_delta":10/);

  // Roll back to the version before.
  const previous = page.locator(`#versions tr:has(td:first-child:text-is("${versionBefore}")) button:has-text('Roll back')`);
  await Promise.all([page.waitForNavigation(), previous.click()]);
  assert.equal(Number(await page.textContent("#live-version")), versionBefore, "the earlier version is back in force");
  assert.equal((await api("GET", "/api/rules")).json.version, versionBefore);

  // --- Actions: failed and dead ones, an attempt's details ---------------------------------------
  step("actions");
  await page.goto(base + "/ui/actions");
  await page.waitForSelector("table.jobs");
  await page.screenshot({ path: `${shots}/actions.png`, fullPage: true });
  const failedLink = page.locator("table.jobs tr:has(.state-dead, .state-failed) td:nth-child(2) a").first();
  if (await failedLink.count()) {
    await failedLink.click();
    await page.waitForSelector("text=Attempts");
    await page.screenshot({ path: `${shots}/action.png`, fullPage: true });
  } else {
    problems.push("no failed or dead action to show (the test server's Brevo should refuse)");
  }

  // --- Integrations: what is set, and each Test button against the local fakes -------------------
  step("integrations");
  await page.goto(base + "/ui/integrations");
  assert.match(await page.textContent("#signing"), /set and well formed/);
  assert.doesNotMatch(await page.textContent("main"), /browser-test|sig=browser|whsec_/, "no secret on the page");
  for (const [button, expected] of [["#test-brevo", /Answered · HTTP 200[\s\S]*account cave@domaine\.example \(Domaine\)/],
    ["#test-power_automate", /Answered · HTTP 200/]]) {
    await Promise.all([page.waitForNavigation(), page.click(button)]);
    assert.match(await page.textContent(".probe"), expected, button);
  }
  await page.fill("#webhook-url", `${process.env.FAKE_URL}/hooks/relance`);
  await Promise.all([page.waitForNavigation(), page.click("#test-webhook")]);
  assert.match(await page.textContent(".probe"), /Answered · HTTP 200/, "the webhook ping");
  assert.match(await page.textContent("#brevo"), /Last failed call[\s\S]*HTTP 401/, "Brevo's refusals are shown");
  await page.screenshot({ path: `${shots}/integrations.png`, fullPage: true });

  // --- CSRF: the cookie alone cannot change anything ---------------------------------------------
  step("csrf");
  const noHeader = await page.request.put(base + "/api/rules", { data: original, headers: { "content-type": "application/toml" } });
  assert.equal(noHeader.status(), 403, "the API refuses a cookie-only change");
  const noField = await page.request.post(base + `/ui/actions/${jobId}/retry`, { form: { back: "/" } });
  assert.ok([403, 422, 400].includes(noField.status()), `a form without its token is refused (${noField.status()})`);
  const forged = await page.request.post(base + `/ui/actions/${jobId}/retry`, { form: { back: "/", csrf: "forged" } });
  assert.equal(forged.status(), 403, "a form with a wrong token is refused");

  // --- Users & keys: a key for Power Automate, a person, a revocation ----------------------------
  step("users and keys");
  await page.goto(base + "/ui/access");
  await page.fill("#key-name", "power-automate");
  await page.selectOption("#key-role", "editor");
  await Promise.all([page.waitForNavigation(), page.click("#create-key button[type=submit]")]);
  const key = (await page.textContent("#new-key-value")).trim();
  assert.match(key, /^rlk_/, "the new key is shown once");
  const withKey = await fetch(base + "/api/rules", { headers: { authorization: `Bearer ${key}` } });
  assert.equal(withKey.status, 200, "the new editor key opens the API");
  await page.fill("#user-name", "marie");
  await page.selectOption("#user-role", "editor");
  await Promise.all([page.waitForNavigation(), page.click("#add-user button[type=submit]")]);
  const password = (await page.textContent("#new-user-password")).trim();
  assert.ok(password.length >= 12, "a generated password is shown once");
  await page.screenshot({ path: `${shots}/access.png`, fullPage: true });
  const revoke = page.locator("#keys tr:has(td:first-child:text-is('power-automate')) button:has-text('Revoke')");
  await Promise.all([page.waitForNavigation(), revoke.click()]);
  await page.waitForSelector("#keys tr:has(td:first-child:text-is('power-automate')) td:has-text('revoked')");
  const revoked = await fetch(base + "/api/rules", { headers: { authorization: `Bearer ${key}` } });
  assert.equal(revoked.status, 401, "a revoked key is refused at once");

  // The person signs in by name and password, sees who they are, and no admin page.
  const theirs = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const marie = await newPage(theirs);
  await marie.goto(base + "/ui/rules");
  await marie.fill("#name", "marie");
  await marie.fill("#password", password);
  await Promise.all([marie.waitForNavigation(), marie.click("button[type=submit]")]);
  await marie.waitForSelector("h1:has-text('Rules')");
  assert.match(await marie.textContent("#signed-in-as"), /marie · editor/);
  assert.equal(await marie.locator("nav a[href='/ui/access']").count(), 0, "an editor sees no admin page");
  const forbidden = await marie.goto(base + "/ui/access");
  assert.equal(forbidden.status(), 403, "an editor cannot open Users & keys");
  problems.splice(0, problems.length, ...problems.filter((p) => !p.includes("403")));
  await theirs.close();

  // The audit page names who did what.
  await page.goto(base + "/ui/audit");
  await page.waitForSelector("#audit td:has-text('revoke')");
  assert.ok(await page.locator("#audit td:has-text('marie')").count() > 0, "marie's sign-in is in the audit log");
  await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });

  // --- Phone width ------------------------------------------------------------------------------
  step("language and time zone");
  await page.goto(base + "/ui/contacts");
  await page.click('span.lang a[hreflang="fr"]');
  await page.waitForSelector('html[lang="fr"]');
  assert.match(page.url(), /\/ui\/contacts$/, "switching the language stays on the page");
  assert.equal(await page.textContent('nav a[href="/ui/rules"]'), "Règles");
  assert.match(await page.textContent("#times-zone"), /^Heures : Europe\/Paris$/);
  await page.goto(base + "/");
  await page.waitForSelector("#events-chart");
  assert.equal(await page.textContent("#live h2"), "Fil en direct");
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${shots}/overview-fr.png`, fullPage: true });
  const feedTime = await page.textContent("#feed li time");
  assert.doesNotMatch(feedTime, /UTC/, `feed times are local and French (${feedTime})`);
  await page.click('span.lang a[hreflang="en"]');
  await page.waitForSelector('html[lang="en"]');
  assert.equal(await page.textContent('nav a[href="/ui/rules"]'), "Rules");

  // --- Every page, in both languages, on a phone and a desktop --------------------------------
  // A missing script text, a console error or a CSP refusal lands in `problems`; a page
  // wider than the screen fails here.
  step("every page in French and English at 390 and 1280 px");
  const pages = ["/", "/ui/contacts", "/ui/contacts/client%40example.com", "/ui/contacts/nobody%40example.com",
    "/ui/rules", "/ui/actions", `/ui/actions/${jobId}`, "/ui/integrations", "/ui/access", "/ui/audit"];
  const shotsOf = { fr: { 1280: { "/ui/rules": "rules-fr", "/ui/contacts/client%40example.com": "contact-fr", "/ui/integrations": "integrations-fr" } },
    en: { 390: { "/": "phone-overview", "/ui/contacts/client%40example.com": "phone-contact", "/ui/rules": "phone-rules", "/ui/access": "phone-access" } } };
  for (const lang of ["fr", "en"]) {
    for (const width of [390, 1280]) {
      const phone = width < 600;
      const ctx = await browser.newContext({ viewport: { width, height: phone ? 844 : 800 }, isMobile: phone, hasTouch: phone });
      await ctx.addCookies([cookie, { name: "relance_lang", value: lang, url: base }]);
      const view = await newPage(ctx);
      for (const path of pages) {
        const resp = await view.goto(base + path);
        const expected = path.includes("nobody") ? 404 : 200;
        assert.equal(resp.status(), expected, `${lang} ${width}px ${path}`);
        await view.waitForSelector(`html[lang="${lang}"] main h1`);
        const overflow = await view.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 1, `${path} (${lang}) fits ${width}px (overflows by ${overflow}px)`);
        const text = await view.textContent("main");
        assert.doesNotMatch(text, /\bUTC\b/, `${path} (${lang}) writes no UTC time`);
        const name = (shotsOf[lang][width] || {})[path];
        if (name) {
          await view.waitForTimeout(300);
          await view.screenshot({ path: `${shots}/${name}.png`, fullPage: !phone });
        }
      }
      await ctx.close();
    }
  }
  problems.splice(0, problems.length, ...problems.filter((p) => !p.includes("404")));

  // --- Sign out ----------------------------------------------------------------------------------
  step("sign out");
  await page.goto(base + "/");
  await page.click("form.logout button");
  await page.waitForSelector("#password");
  await page.goto(base + "/ui/contacts");
  assert.match(page.url(), /\/ui\/login/, "signed out: pages need signing in again");

  assert.deepEqual(problems, [], "no script errors, CSP refusals or missing data");
  console.log("browser tests passed; screenshots in " + shots);
} finally {
  await browser.close();
}
