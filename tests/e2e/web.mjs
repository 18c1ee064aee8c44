// The web application as a person uses it, in headless Chromium:
// sign up, log in, search with filters and page through, rate three movies,
// see "For you" change, log out; a normal user gets 403 on admin pages; an
// admin triggers a batch and sees the run. A screenshot of every page goes
// to $SCREENSHOT_DIR. Exits non-zero with the reason on the first failure.
//
// Environment: BASE_URL, ADMIN_USER, ADMIN_PASSWORD, SCREENSHOT_DIR,
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.BASE_URL;
const shots = process.env.SCREENSHOT_DIR;
const adminUser = process.env.ADMIN_USER;
const adminPassword = process.env.ADMIN_PASSWORD;
if (!base || !shots || !adminUser || !adminPassword) {
  console.error('set BASE_URL, SCREENSHOT_DIR, ADMIN_USER and ADMIN_PASSWORD');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'movierec-chromium-')), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1200, height: 900 },
});
const page = context.pages()[0] ?? await context.newPage();
page.setDefaultTimeout(30_000);
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));
// Statuses are checked where they matter; "Failed to load resource" repeats them.
page.on('console', (m) => {
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
});

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}
async function go(path, expectStatus = 200) {
  const response = await page.goto(base + path);
  check(response.status() === expectStatus, `GET ${path}: status ${response.status()}, expected ${expectStatus}`);
  return response;
}
async function forYou() {
  await go('/');
  const source = await page.getAttribute('#for-you-source', 'data-source');
  const titles = await page.$$eval('#for-you tr.movie-row td:first-child a', (as) => as.map((a) => a.textContent));
  return { source, titles };
}
async function logIn(user, password) {
  await go('/login');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  check((await page.textContent('#who'))?.trim() === user, `logged in as ${user}`);
}
async function logOut() {
  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
  check(await page.isVisible('#login-link'), 'logged out: the login link is back');
}

try {
  const user = `e2e${Date.now() % 1_000_000}`;
  const password = 'e2e password 123';
  const steps = [];

  // Anonymous home.
  await go('/');
  check(await page.isVisible('#top tr.movie-row'), 'the home page lists top movies');
  await shot('01-home-anonymous');

  // Sign up, log out, log in.
  await page.click('#signup-link');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.fill('#password2', password);
  await shot('02-signup');
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  check((await page.textContent('#who'))?.trim() === user, 'signed up and logged in');
  steps.push('signed up');
  await logOut();
  await go('/login');
  await shot('03-login');
  await logIn(user, password);
  steps.push('logged in');

  // Search with filters, then page through.
  await go('/movies');
  await page.selectOption('select[name=genre]', 'Comedy');
  await page.fill('input[name=year_from]', '1990');
  await page.fill('input[name=year_to]', '2005');
  await page.fill('input[name=min_count]', '20');
  await page.selectOption('select[name=sort]', '-rating');
  await Promise.all([page.waitForNavigation(), page.click('#filters button[type=submit]')]);
  const firstPage = await page.$$eval('tr.movie-row', (rows) => rows.map((r) => ({
    href: r.querySelector('a').getAttribute('href'),
    genres: r.children[1].textContent,
    year: Number(r.children[2].textContent),
    count: Number(r.children[4].textContent),
  })));
  check(firstPage.length === 20, `a full first page, got ${firstPage.length}`);
  for (const row of firstPage) {
    check(row.genres.includes('Comedy') && row.year >= 1990 && row.year <= 2005 && row.count >= 20,
      `a row outside the filters: ${JSON.stringify(row)}`);
  }
  await shot('04-browse-page-1');
  await Promise.all([page.waitForNavigation(), page.click('#next')]);
  const url = new URL(page.url());
  for (const [k, v] of [['genre', 'Comedy'], ['year_from', '1990'], ['year_to', '2005'], ['min_count', '20'], ['sort', '-rating'], ['page', '2']]) {
    check(url.searchParams.get(k) === v, `page 2 keeps ${k}=${v}: ${page.url()}`);
  }
  check(await page.inputValue('select[name=genre]') === 'Comedy', 'the form still shows the genre');
  const secondPage = await page.$$eval('tr.movie-row a', (as) => as.map((a) => a.getAttribute('href')));
  check(secondPage.length > 0 && !secondPage.includes(firstPage[0].href), 'page 2 shows other movies');
  await shot('05-browse-page-2');
  steps.push('searched with filters and paged');

  // "For you" before rating: popular movies.
  const before = await forYou();
  check(before.source === 'popularity', `before rating, For you is popularity: ${before.source}`);

  // Rate three movies from the filtered list.
  for (const [i, row] of firstPage.slice(0, 3).entries()) {
    await go(row.href);
    await page.selectOption('#rating', '5.0');
    await Promise.all([page.waitForNavigation(), page.click('#rate-button')]);
    check((await page.textContent('#flash'))?.includes('Thanks'), `rating ${i + 1} confirmed`);
    check((await page.textContent('#your-rating'))?.includes('5.0'), `rating ${i + 1} shown`);
    if (i === 0) await shot('06-movie-rated');
  }
  steps.push('rated three movies');

  const after = await forYou();
  check(after.source === 'fold-in', `after three ratings, For you is personal: ${after.source}`);
  check(after.titles.length > 0 && after.titles.join('|') !== before.titles.join('|'),
    `For you changed: before ${before.titles.slice(0, 3)} after ${after.titles.slice(0, 3)}`);
  await shot('07-home-for-you');
  steps.push('For you changed');

  await go('/me/ratings');
  check((await page.textContent('#rated-count'))?.startsWith('3 movies rated'), 'my ratings lists three');
  await shot('08-my-ratings');
  await go('/stats');
  check(await page.locator('#chart-distribution svg rect').count() >= 5, 'the rating distribution chart');
  check(await page.locator('#chart-time svg polyline').count() === 1, 'the ratings-over-time chart');
  check(await page.locator('#chart-genres svg rect').count() >= 5, 'the genres chart');
  await shot('09-stats');

  // A normal user: 403 on admin pages.
  for (const path of ['/admin', '/admin/users', '/admin/runs', '/admin/dead-letters', '/admin/models']) {
    await go(path, 403);
  }
  await shot('10-admin-forbidden');
  steps.push('403 on admin pages');
  await logOut();
  steps.push('logged out');

  // An admin runs a batch and sees the run.
  await logIn(adminUser, adminPassword);
  await go('/admin/runs');
  const runsBefore = await page.locator('#runs tr.run').count();
  await Promise.all([page.waitForNavigation(), page.click('#run-now')]);
  check((await page.textContent('#flash'))?.includes('batch run started'), 'the batch started');
  const deadline = Date.now() + 240_000;
  let runsAfter = runsBefore;
  while (runsAfter <= runsBefore && Date.now() < deadline) {
    await page.waitForTimeout(2000);
    await go('/admin/runs');
    runsAfter = await page.locator('#runs tr.run').count();
  }
  check(runsAfter === runsBefore + 1, `a new run appears (${runsBefore} -> ${runsAfter})`);
  const status = await page.textContent('#runs tr.run:first-child td.status');
  check(status?.trim() === 'succeeded', `the new run succeeded: ${status}`);
  await shot('11-admin-runs');
  for (const [path, name] of [['/admin/users', '12-admin-users'], ['/admin/models', '13-admin-models'], ['/admin/dead-letters', '14-admin-dead-letters']]) {
    await go(path);
    await shot(name);
  }
  check(await page.locator('#models tr').count() >= 0, 'models page');
  steps.push('admin ran a batch and saw it');
  check(errors.length === 0, `browser errors: ${errors.join('; ')}`);
  console.log(JSON.stringify({ ok: true, steps }));
} catch (error) {
  await shot('failure').catch(() => {});
  console.error(`E2E FAILED at ${page.url()}: ${error.message}`);
  process.exitCode = 1;
} finally {
  await context.close();
}
