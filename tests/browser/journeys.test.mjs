// Browser journeys through the admin console and the learner page, in headless
// Chromium (Debian's /usr/bin/chromium, driven by playwright-core), against the
// real `passage serve` binary on a loopback port with a temporary data folder.
//
//   PASSAGE_BINARY=build/release/app/passage node tests/browser/journeys.test.mjs
//
// Environment: PASSAGE_BINARY (required), PASSAGE_CHROMIUM (default
// /usr/bin/chromium), PASSAGE_BROWSER_ARTIFACTS (screenshots; default a temp
// folder). A missing browser or binary fails the run: nothing is skipped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const binary = process.env.PASSAGE_BINARY;
const browserPath = process.env.PASSAGE_CHROMIUM || '/usr/bin/chromium';
const artifacts = process.env.PASSAGE_BROWSER_ARTIFACTS || mkdtempSync(path.join(tmpdir(), 'passage-artifacts-'));
const ownerKey = 'pk_browser_test_owner_' + Math.random().toString(36).slice(2);
const wait = { timeout: 15000 };

let server;
let base;
let browser;
let dataDir;
const browserErrors = [];

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0',
      '--kafka-brokers', 'none', '--claim-limit-per-ip', '0', '--claim-limit-per-email', '0'], {
      env: { ...process.env, PASSAGE_OWNER_TOKEN: ownerKey }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let seen = '';
    const onData = (chunk) => {
      seen += chunk.toString();
      const m = seen.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { child.stderr.off('data', onData); resolve({ child, url: m[1] }); }
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', () => {});
    child.on('exit', (code) => reject(new Error('passage serve exited with ' + code + ':\n' + seen)));
    setTimeout(() => reject(new Error('passage serve did not start:\n' + seen)), 30000);
  });
}

async function apiCall(method, p, body) {
  const res = await fetch(base + p, {
    method, headers: { Authorization: 'Bearer ' + ownerKey, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true, ...options });
  const page = await context.newPage();
  page.on('console', (msg) => { if (msg.type() === 'error') browserErrors.push(page.url() + ': ' + msg.text()); });
  page.on('pageerror', (err) => browserErrors.push(page.url() + ': ' + err.message));
  return page;
}

// Runs a journey; on failure, screenshots every open page before rethrowing.
async function journey(name, body) {
  try {
    await body();
  } catch (e) {
    let i = 0;
    for (const context of browser.contexts()) {
      for (const page of context.pages()) await shot(page, 'failure-' + name + '-' + i++).catch(() => {});
    }
    throw e;
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, name + '.png'), fullPage: true });
}

// Signs in with the keyboard alone: the key field has focus, Enter submits.
async function signIn(page) {
  await page.goto(base + '/console');
  await page.keyboard.type(ownerKey);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Invites', level: 1 }).waitFor(wait);
}

before(async () => {
  assert.ok(binary && existsSync(binary), 'PASSAGE_BINARY must name the built passage binary (got ' + binary + ')');
  assert.ok(existsSync(browserPath), 'Chromium is missing at ' + browserPath + ': run scripts/setup.sh (installs the chromium package)');
  mkdirSync(artifacts, { recursive: true });
  dataDir = mkdtempSync(path.join(tmpdir(), 'passage-browser-'));
  const started = await startServer();
  server = started.child;
  base = started.url;
  browser = await chromium.launch({ executablePath: browserPath, headless: true, args: ['--no-sandbox'] });
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    server.removeAllListeners('exit');
    server.kill('SIGTERM');
    await new Promise((r) => { server.once('exit', r); setTimeout(r, 10000); });
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  console.log('browser artifacts: ' + artifacts);
});

test('console: create an invite, learner claims through the lead form and plays to the limit, claim shows live, edit keeps the claim, delete keeps access', () => journey('console', async () => {
  const admin = await newPage();
  await admin.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });

  // A wrong key is refused next to the field.
  await admin.goto(base + '/console');
  await admin.getByLabel('API key').fill('not-a-key');
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await admin.getByText('This API key is not valid.').waitFor(wait);
  assert.equal(await admin.getByLabel('API key').getAttribute('aria-invalid'), 'true');
  await shot(admin, 'console-sign-in');
  await signIn(admin);

  // Tracks editor.
  await admin.getByRole('link', { name: 'Tracks' }).click();
  for (const [id, title, pausable] of [['k8s-basics', 'Kubernetes basics', true], ['helm-intro', 'Helm introduction', false]]) {
    await admin.getByLabel('Track id').fill(id);
    await admin.getByLabel('Title').fill(title);
    if (pausable) await admin.getByLabel('Pausable').check();
    await admin.getByRole('button', { name: 'Register track' }).click();
    await admin.getByRole('cell', { name: title }).waitFor(wait);
  }
  await admin.getByLabel('Track id').fill('k8s-basics');
  await admin.getByLabel('Title').fill('Again');
  await admin.getByRole('button', { name: 'Register track' }).click();
  await admin.locator('[data-field=track_id] .field-error').waitFor(wait);
  await shot(admin, 'console-tracks');

  // Lead-form editor: one extra required field.
  await admin.getByRole('link', { name: 'Lead form' }).click();
  await admin.getByRole('button', { name: 'Add field' }).click();
  await admin.getByLabel('Field name').fill('company');
  await admin.getByLabel('Label shown to learners').fill('Company');
  await admin.getByLabel('Required').check();
  await admin.getByRole('button', { name: 'Save lead form' }).click();
  await admin.getByText('Lead form saved.').waitFor(wait);
  assert.equal((await apiCall('GET', '/v1/lead-form')).body.fields[0].name, 'company');

  // Create: the API's field errors appear next to the fields.
  await admin.getByRole('link', { name: 'New invite' }).click();
  await admin.getByRole('button', { name: 'Create invite' }).click();
  const titleError = admin.locator('[data-field=title] .field-error');
  await titleError.waitFor(wait);
  assert.match(await titleError.textContent(), /Title/);
  assert.equal(await admin.getByLabel('Title', { exact: true }).getAttribute('aria-invalid'), 'true');
  await admin.getByLabel('Title', { exact: true }).fill('Kubernetes 101 workshop');
  await admin.getByLabel('Access duration').fill('P2Q');
  await admin.getByRole('button', { name: 'Create invite' }).click();
  await admin.locator('[data-field=access_duration] .field-error').waitFor(wait);
  await shot(admin, 'console-invite-form-errors');
  await admin.getByLabel('Access duration').fill('P30D');
  await admin.getByLabel('Public description').fill('Two hands-on tracks to get you started with Kubernetes.');
  await admin.getByLabel('Internal description').fill('INTERNAL-ONLY note for the sales team');
  await admin.getByLabel('Track', { exact: true }).first().selectOption('k8s-basics');
  await admin.getByRole('button', { name: 'Add track' }).click();
  assert.equal(await admin.getByLabel('Track', { exact: true }).nth(1).inputValue(), 'helm-intro', 'a new row takes an unused track');
  assert.equal(await admin.getByLabel('Pausable', { exact: true }).nth(1).isDisabled(), true, 'helm-intro cannot be pausable');
  await admin.getByLabel('Pausable', { exact: true }).first().check();
  await admin.getByLabel('Plays per track').fill('2');
  await admin.getByLabel('Claim limit').fill('5');
  await admin.getByLabel('Who may claim').selectOption('lead_form');
  await admin.getByLabel('Show a share button').check();
  await admin.getByRole('button', { name: 'Create invite' }).click();
  await admin.getByRole('heading', { name: 'Kubernetes 101 workshop', level: 1 }).waitFor(wait);
  await admin.getByText('Live', { exact: true }).waitFor(wait);
  await shot(admin, 'console-invite-detail-empty');

  // Copy link.
  await admin.getByRole('button', { name: 'Copy link of Kubernetes 101 workshop' }).click();
  await admin.getByText(/Link copied/).waitFor(wait);
  const link = await admin.evaluate(() => navigator.clipboard.readText());
  assert.match(link, new RegExp('^' + base + '/i/[A-Z0-9]{7}$'));
  const code = link.slice(-7);

  // The learner opens the link.
  const learner = await newPage();
  await learner.goto(link);
  await learner.getByRole('heading', { name: 'Kubernetes 101 workshop', level: 1 }).waitFor(wait);
  assert.deepEqual(await learner.locator('ol.tracks li').allTextContents(), ['k8s-basics', 'helm-intro']);
  assert.equal(await learner.getByText('INTERNAL-ONLY').count(), 0, 'internal description never shown');
  await shot(learner, 'learner-invite');
  await learner.getByLabel('Email').fill('ada@example.com');
  await learner.getByLabel('First name').fill('Ada');
  await learner.getByLabel('Last name').fill('Lovelace');
  await learner.getByRole('button', { name: 'Get access' }).click();
  await learner.getByText('Please fill in the required details.').waitFor(wait);
  assert.equal(await learner.getByLabel(/Company/).getAttribute('aria-invalid'), 'true');
  await learner.getByLabel(/Company/).fill('Analytical Engines Ltd');
  await learner.getByRole('button', { name: 'Get access' }).click();
  await learner.getByRole('heading', { name: 'Your tracks' }).waitFor(wait);
  assert.equal(await learner.locator('#claim').isHidden(), true);

  // The claim appears live in the console's acceptance list.
  await admin.locator('#acceptance-list').getByText('ada@example.com').waitFor(wait);

  // Plays: 2 per track, pause and resume for the pausable one.
  const k8s = learner.locator('.claim-tracks li', { hasText: 'k8s-basics' });
  await k8s.getByText('2 plays left').waitFor(wait);
  await k8s.getByRole('button', { name: 'Play k8s-basics' }).click();
  await k8s.getByText('1 play left').waitFor(wait);
  await k8s.getByRole('button', { name: 'Pause' }).click();
  await k8s.getByText('paused').waitFor(wait);
  await k8s.getByRole('button', { name: 'Resume' }).click();
  await k8s.getByRole('button', { name: 'Play k8s-basics' }).click();
  await k8s.getByText('0 plays left').waitFor(wait);
  assert.equal(await k8s.getByRole('button', { name: 'Play k8s-basics' }).isDisabled(), true);
  const helm = learner.locator('.claim-tracks li', { hasText: 'helm-intro' });
  assert.equal(await helm.getByRole('button', { name: 'Pause' }).count(), 0, 'helm-intro is not pausable here');
  await learner.getByRole('button', { name: 'Copy link' }).waitFor(wait);
  await shot(learner, 'learner-tracks');

  await admin.getByText('Plays').first().waitFor(wait);
  await admin.locator('.figure', { hasText: 'Plays' }).getByText('2', { exact: true }).waitFor(wait);
  assert.equal(await admin.locator('.chart svg rect.bar').count() >= 1, true, 'claims chart drawn');
  await shot(admin, 'console-invite-detail');

  // CSV download of the acceptance list.
  const [download] = await Promise.all([admin.waitForEvent('download'), admin.getByRole('button', { name: 'Download CSV' }).click()]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(csv, /ada@example\.com/);

  // Edit: the invite changes, the existing claim does not.
  await admin.getByRole('link', { name: 'Edit Kubernetes 101 workshop' }).click();
  await admin.getByLabel('Plays per track').fill('5');
  await admin.getByLabel('Title', { exact: true }).fill('Kubernetes 101 (autumn)');
  await admin.getByRole('button', { name: 'Save changes' }).click();
  await admin.getByRole('heading', { name: 'Kubernetes 101 (autumn)', level: 1 }).waitFor(wait);
  assert.match(await admin.locator('.card').first().textContent(), /5 plays per track/);
  await learner.reload();
  await learner.getByRole('heading', { name: 'Kubernetes 101 (autumn)', level: 1 }).waitFor(wait);
  await learner.locator('.claim-tracks li', { hasText: 'k8s-basics' }).getByText('0 plays left').waitFor(wait);
  await learner.locator('.claim-tracks li', { hasText: 'helm-intro' }).getByText('2 plays left').waitFor(wait);

  // The list: filters, badges, deactivate and reactivate.
  await admin.getByRole('link', { name: 'Invites', exact: true }).click();
  await admin.getByRole('link', { name: 'Kubernetes 101 (autumn)', exact: true }).waitFor(wait);
  await admin.getByLabel('Search').fill('no such title');
  await admin.getByText('No invites match these filters.').waitFor(wait);
  await admin.getByLabel('Search').fill('autumn');
  await admin.getByRole('link', { name: 'Kubernetes 101 (autumn)', exact: true }).waitFor(wait);
  await admin.getByRole('button', { name: 'Deactivate Kubernetes 101 (autumn)' }).click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Deactivate' }).click();
  await admin.locator('tr', { hasText: 'autumn' }).locator('.badge.deactivated').waitFor(wait);
  await admin.getByLabel('Status').selectOption('active');
  await admin.getByText('No invites match these filters.').waitFor(wait);
  await admin.getByLabel('Status').selectOption('');
  await admin.getByRole('button', { name: 'Reactivate Kubernetes 101 (autumn)' }).click();
  await admin.locator('tr', { hasText: 'autumn' }).locator('.badge.active').waitFor(wait);

  // Duplicate opens the copy's form.
  await admin.getByRole('button', { name: 'Duplicate Kubernetes 101 (autumn)' }).click();
  await admin.getByRole('heading', { name: 'Edit “Kubernetes 101 (autumn) (Copy)”' }).waitFor(wait);
  await admin.getByRole('link', { name: 'Invites', exact: true }).click();
  await admin.getByRole('link', { name: 'Kubernetes 101 (autumn) (Copy)', exact: true }).waitFor(wait);
  // Clearing the search reloads the list 250 ms later (typing is debounced) and replaces
  // its rows: wait for that reload, or a Delete clicked meanwhile opens a dialog the new
  // rows then drop.
  const relisted = admin.waitForResponse((r) => r.request().method() === 'GET' &&
    r.url().includes('/v1/invites?') && !new URL(r.url()).searchParams.has('q'));
  await admin.getByLabel('Search').fill('');
  await (await relisted).finished();
  // Leaving the search box does not load the list again (that reload replaced the rows
  // under a click on one of them, which was then lost).
  const again = admin.waitForRequest((r) => r.method() === 'GET' && r.url().includes('/v1/invites?'),
    { timeout: 1000 }).then(() => true, () => false);
  await admin.getByRole('heading', { name: 'Invites', exact: true }).click();
  assert.equal(await again, false, 'no list reload when the search box loses focus');
  await admin.getByRole('link', { name: 'Kubernetes 101 (autumn)', exact: true }).waitFor(wait);
  await shot(admin, 'console-invite-list');

  // Delete with confirmation: the link stops working, the learner keeps access.
  await admin.getByRole('button', { name: 'Delete Kubernetes 101 (autumn)', exact: true }).click();
  await admin.getByRole('dialog').waitFor(wait);
  await admin.keyboard.press('Escape');
  await admin.getByRole('dialog').waitFor({ state: 'detached', ...wait });
  await admin.getByRole('link', { name: 'Kubernetes 101 (autumn)', exact: true }).waitFor(wait);
  await admin.getByRole('button', { name: 'Delete Kubernetes 101 (autumn)', exact: true }).click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await admin.getByText('Invite deleted.').waitFor(wait);
  await admin.getByRole('link', { name: 'Kubernetes 101 (autumn)', exact: true }).waitFor({ state: 'detached', ...wait });
  const gone = await learner.goto(base + '/i/' + code);
  assert.equal(gone.status(), 404);
  const stillThere = await learner.evaluate(async (c) => {
    const mine = JSON.parse(localStorage.getItem('passage.claim.' + c));
    const res = await fetch('/v1/public/claims/' + mine.claim_id, { headers: { Authorization: 'Bearer ' + mine.learner_token } });
    return { status: res.status, body: await res.json() };
  }, code);
  assert.equal(stillThere.status, 200);
  assert.deepEqual(stillThere.body.tracks.map((t) => [t.track_id, t.plays_remaining]), [['k8s-basics', 0], ['helm-intro', 2]]);

  // Live activity shows the journey's events.
  await admin.getByRole('link', { name: 'Live activity' }).click();
  await admin.locator('.feed li[data-type=InviteDeleted]').waitFor(wait);
  await admin.locator('.feed li[data-type=InviteClaimed]').first().waitFor(wait);
  await shot(admin, 'console-activity');
  await admin.context().close();
  await learner.context().close();
}));

test('learner: every rejection reason has its own message', async () => {
  const day = 24 * 3600 * 1000;
  const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const make = async (title, extra) => {
    const res = await apiCall('POST', '/v1/invites', { title, public_description: 'Helm for platform teams.', tracks: [{ track_id: 'helm-intro' }], ...extra });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body;
  };
  const expired = await make('Helm clinic (spring)', { expires_at: iso(Date.now() - day) });
  const startsAt = Date.now() + 3 * day;
  const upcoming = await make('Helm live Q&A', { type: 'live_event', starts_at: iso(startsAt), ends_at: iso(startsAt + 2 * 3600 * 1000) });
  const full = await make('Helm 1:1 session', { claim_limit: 1 });
  assert.equal((await fetch(base + '/v1/public/invites/' + full.code + '/claims', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"email":"first@example.com"}' })).status, 201);
  const allowed = await make('Helm for Example Corp', { access: 'allowed', allowed_domains: ['example.com'] });
  const deactivated = await make('Helm (paused)', {});
  assert.equal((await apiCall('POST', '/v1/invites/' + deactivated.id + '/deactivate')).status, 200);

  const cases = [
    [expired, 'This invite has expired.', 'learner-rejected-expired'],
    [upcoming, /This invite is not open yet\. It opens on/, 'learner-rejected-not-open-yet'],
    [full, 'Sorry, this invite is full: every spot has been taken.', 'learner-rejected-full'],
    [allowed, 'This invite is not available for your email address.', 'learner-rejected-not-allowed'],
    [deactivated, 'This invite is not available at the moment.', null],
  ];
  const page = await newPage();
  for (const [invite, message, name] of cases) {
    await page.goto(base + '/i/' + invite.code);
    await page.getByLabel('Email').fill('grace@elsewhere.org');
    await page.getByRole('button', { name: 'Get access' }).click();
    const result = page.locator('#result');
    await result.getByText(message).waitFor(wait);
    assert.equal(await result.getAttribute('aria-live'), 'polite');
    if (name) await shot(page, name);
  }
  // Server-side, without a claim attempt: why the invite is closed, with the opening time.
  await page.goto(base + '/i/' + upcoming.code);
  assert.match(await page.locator('#closed').textContent(), /not open yet\. It opens on .+, 24 hours before the event starts/);
  await page.context().close();

  const rejections = await apiCall('GET', '/v1/invites/' + full.id + '/rejections');
  assert.deepEqual(rejections.body.rejections.map((r) => r.reason), ['full']);
});

test('console: issue an API key with a contact email, then an invite that mails its creator new claims', () => journey('keys', async () => {
  await apiCall('POST', '/v1/tracks', { track_id: 'digest-track', title: 'Digest track' });
  const owner = await newPage();
  await owner.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await signIn(owner);
  await owner.getByRole('link', { name: 'API keys' }).click();
  await owner.getByRole('heading', { name: 'API keys', level: 1 }).waitFor(wait);

  // A bad address is refused next to its field; nothing is issued.
  const before = (await apiCall('GET', '/v1/api-keys')).body.api_keys.length;
  await owner.getByLabel('Name').fill('Prof. Digest');
  await owner.getByLabel('Contact email').fill('not an address');
  await owner.getByRole('button', { name: 'Issue key' }).click();
  await owner.locator('[data-field=email] .field-error').waitFor(wait);
  assert.equal(await owner.getByLabel('Contact email').getAttribute('aria-invalid'), 'true');
  assert.equal((await apiCall('GET', '/v1/api-keys')).body.api_keys.length, before);

  await owner.getByLabel('Contact email').fill('Prof.Digest@Example.org');
  await owner.getByLabel('Role').selectOption('admin');
  await owner.getByRole('button', { name: 'Issue key' }).click();
  await owner.getByText(/Copy it now: it is not shown again/).waitFor(wait);
  const key = await owner.locator('#issued-key').textContent();
  assert.match(key, /^psk_/);
  await owner.getByRole('cell', { name: 'prof.digest@example.org' }).waitFor(wait);
  await shot(owner, 'console-api-keys');
  const issued = (await apiCall('GET', '/v1/api-keys')).body.api_keys.find((k) => k.name === 'Prof. Digest');
  assert.equal(issued.email, 'prof.digest@example.org');
  assert.equal(issued.role, 'admin');

  // The contact email is edited in place: a bad address is refused there and stores
  // nothing; a good one is saved (PATCH /v1/api-keys/{id}).
  await owner.getByRole('button', { name: 'Edit the email of Prof. Digest' }).click();
  const edit = owner.getByLabel('Email of Prof. Digest');
  await edit.fill('not an address');
  await owner.getByRole('button', { name: 'Save', exact: true }).click();
  await owner.getByText(/not a valid email address/).waitFor(wait);
  assert.equal((await apiCall('GET', '/v1/api-keys')).body.api_keys.find((k) => k.id === issued.id).email, 'prof.digest@example.org');
  await edit.fill('Digest.Desk@Example.org');
  await owner.getByRole('button', { name: 'Save', exact: true }).click();
  // The server's answer first: the cell alone, matched as a substring ignoring case, passes
  // while it still holds the form with 'Digest.Desk@Example.org' typed in.
  await owner.getByText('Contact email saved.').waitFor(wait);
  await owner.getByRole('cell', { name: 'digest.desk@example.org' }).waitFor(wait);
  assert.equal((await apiCall('GET', '/v1/api-keys')).body.api_keys.find((k) => k.id === issued.id).email, 'digest.desk@example.org');

  // The owner key has no contact email: asking for digests is refused next to the box.
  await owner.getByRole('navigation').getByRole('link', { name: 'New invite' }).click();
  await owner.getByLabel('Title', { exact: true }).fill('Digest from the owner');
  await owner.getByLabel('Mail me a digest of new claims').check();
  await owner.getByRole('button', { name: 'Create invite' }).click();
  await owner.locator('[data-field=notify_on_claim] .field-error').waitFor(wait);
  assert.equal(await owner.getByLabel('Mail me a digest of new claims').getAttribute('aria-invalid'), 'true');
  await owner.context().close();

  // Signed in with the new key, the same invite asks for digests, and an edit turns them off.
  const prof = await newPage();
  await prof.goto(base + '/console');
  await prof.keyboard.type(key);
  await prof.keyboard.press('Enter');
  await prof.getByRole('heading', { name: 'Invites', level: 1 }).waitFor(wait);
  await prof.getByRole('navigation').getByRole('link', { name: 'New invite' }).click();
  await prof.getByLabel('Title', { exact: true }).fill('Digest from the professor');
  await prof.getByLabel('Track', { exact: true }).first().selectOption('digest-track');
  await prof.getByLabel('Mail me a digest of new claims').check();
  await prof.getByRole('button', { name: 'Create invite' }).click();
  await prof.getByRole('heading', { name: 'Digest from the professor', level: 1 }).waitFor(wait);
  const id = prof.url().split('#/invites/')[1];
  assert.equal((await apiCall('GET', '/v1/invites/' + id)).body.notify_on_claim, true);
  await prof.goto(base + '/console#/invites/' + id + '/edit');
  const box = prof.getByLabel('Mail me a digest of new claims');
  await box.waitFor(wait);
  assert.equal(await box.isChecked(), true, 'the edit form shows the setting');
  await box.uncheck();
  await prof.getByRole('button', { name: 'Save changes' }).click();
  await prof.getByText('Changes saved.').waitFor(wait);
  assert.equal((await apiCall('GET', '/v1/invites/' + id)).body.notify_on_claim, false);
  await prof.context().close();
}));

test('learner page works without JavaScript, and no page breaks its content security policy', async () => {
  const invite = (await apiCall('POST', '/v1/invites', { title: 'No script needed', public_description: 'Plain HTML first.', tracks: [{ track_id: 'k8s-basics' }], show_share_button: true })).body;
  const page = await newPage({ javaScriptEnabled: false });
  const res = await page.goto(base + '/i/' + invite.code);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /script-src 'self'/);
  await page.getByRole('heading', { name: 'No script needed', level: 1 }).waitFor(wait);
  await page.getByText('Plain HTML first.').waitFor(wait);
  await page.getByLabel('Email (optional)').waitFor(wait);
  await page.getByRole('link', { name: '/i/' + invite.code }).waitFor(wait);
  assert.equal(await page.getByRole('button', { name: 'Copy link' }).count(), 0, 'the copy button needs script');
  await shot(page, 'learner-no-script');

  // The form posts to the page itself: a claim, then the same claim again.
  await page.getByLabel('Email (optional)').fill('lin@example.com');
  const [claimed] = await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Get access' }).click()]);
  assert.equal(claimed.status(), 201);
  await page.getByText('You have access.').waitFor(wait);
  await page.locator('#access').getByText('k8s-basics').waitFor(wait);
  await page.locator('#access').getByText('Unlimited plays · No expiry').waitFor(wait);
  await shot(page, 'learner-no-script-claimed');
  await page.goto(base + '/i/' + invite.code);
  await page.getByLabel('Email (optional)').fill('lin@example.com');
  const [again] = await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Get access' }).click()]);
  assert.equal(again.status(), 200);
  await page.getByText('Welcome back: you already have access.').waitFor(wait);

  // Refusals without script keep what was typed.
  const closed = (await apiCall('POST', '/v1/invites', { title: 'Closed', tracks: [{ track_id: 'k8s-basics' }], access: 'allowed', allowed_domains: ['example.com'] })).body;
  await page.goto(base + '/i/' + closed.code);
  await page.getByLabel('Email').fill('mallory@elsewhere.org');
  const [refused] = await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Get access' }).click()]);
  assert.equal(refused.status(), 403);
  await page.locator('#result').getByText('This invite is not available for your email address.').waitFor(wait);
  assert.equal(await page.getByLabel('Email').inputValue(), 'mallory@elsewhere.org');
  await page.context().close();

  // With script, a claim made by the form post is taken over: play works.
  const scripted = await newPage();
  await scripted.goto(base + '/i/' + invite.code);
  await scripted.getByLabel('Email (optional)').fill('lin@example.com');
  // form.submit() skips the script's submit handler: the page's own post, as without script.
  await Promise.all([scripted.waitForNavigation(), scripted.evaluate(() => document.getElementById('claim').submit())]);
  await scripted.getByText('Welcome back: you already have access.').waitFor(wait);
  assert.equal(await scripted.locator('#access').getAttribute('data-learner-token'), null, 'the token leaves the DOM');
  await scripted.getByRole('button', { name: 'Play k8s-basics' }).click();
  await scripted.getByText('Playing k8s-basics.').waitFor(wait);
  await scripted.context().close();
  const csp = browserErrors.filter((e) => /Content Security Policy|Refused to/i.test(e));
  assert.deepEqual(csp, []);
  const unexpected = browserErrors.filter((e) => !/status of (4\d\d)/.test(e));
  assert.deepEqual(unexpected, [], 'no script errors in any page');
});
