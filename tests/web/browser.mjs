// The dashboard in a real browser: Debian's Chromium, driven by playwright-core.
//
//   URL=http://127.0.0.1:PORT/?token=… SCREENSHOT=out.png AGENT=web1 SLOW_AGENT=slow \
//     node tests/web/browser.mjs
//
// AGENT is a quick demo agent, SLOW_AGENT one whose task runs for a long time
// (`agent-wrap NAME --demo --demo-delay-ms 60000`). CHROMIUM overrides /usr/bin/chromium.
// Each step waits for its condition with a deadline; nothing sleeps a fixed time.
// Progress goes to stderr; the last stdout line is the JSON summary, with
// `change_to_page_ms`: from the click on a task's cancel button to the page showing the
// agent idle again (the cancel request, the agent stopping, the event stream, the render).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, basename, extname } from 'node:path';
import { chromium } from 'playwright-core';

const STEP_MS = Number(process.env.STEP_TIMEOUT_MS || 30000);
const TOTAL_MS = Number(process.env.TOTAL_TIMEOUT_MS || 240000);

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`browser.mjs: set ${name} (see the top of the script)`);
    process.exit(2);
  }
  return v;
}

const url = need('URL');
const screenshot = need('SCREENSHOT');
const agent = need('AGENT');
const slow = need('SLOW_AGENT');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const wideShot = join(dirname(screenshot), `${basename(screenshot, extname(screenshot))}-wide${extname(screenshot) || '.png'}`);

const started = Date.now();
const log = (msg) => console.error(`[browser ${((Date.now() - started) / 1000).toFixed(2)}s] ${msg}`);

// The whole run has a deadline too, should a step hang outside playwright's waits.
const watchdog = setTimeout(() => {
  console.error(`browser.mjs: FAILED: the whole run took over ${TOTAL_MS} ms`);
  process.exit(1);
}, TOTAL_MS);
watchdog.unref();

const sel = (name) => `[data-agent="${name.replace(/["\\]/g, '\\$&')}"]`;

let page;
const pageErrors = [];
/** A path whose failed request the current step expects. */
let expectFailure = null;

/** Runs one named step; a failure names it and shows what the page showed. */
async function step(name, fn) {
  log(`step: ${name}`);
  try {
    return await fn();
  } catch (e) {
    const err = new Error(`step "${name}" failed: ${e.message.split('\n')[0]}`);
    err.step = name;
    throw err;
  }
}

/** Waits until `fn(arg)` is truthy in the page; returns its value. */
async function until(what, fn, arg, timeout = STEP_MS) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout });
    return await handle.jsonValue();
  } catch (e) {
    if (e.name !== 'TimeoutError') throw new Error(`while waiting for ${what}: ${e.message.split('\n')[0]}`);
    throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
  }
}

/** What the page shows, for a failure message. */
async function pageDump() {
  if (!page) return '(no page)';
  try {
    return await page.evaluate(() => {
      const t = (id) => (document.getElementById(id) || { innerText: '(missing)' }).innerText.trim();
      return [
        `url: ${location.href}`,
        `#conn: ${t('conn')}`,
        `#agents:\n${t('agents')}`,
        `#send-status: ${t('send-status')}`,
        `#send-result:\n${t('send-result')}`,
        `#tickets:\n${t('tickets')}`,
        `#events (newest first):\n${t('events').split('\n').slice(0, 15).join('\n')}`,
      ].join('\n');
    });
  } catch (e) {
    return `(could not read the page: ${e.message})`;
  }
}

/** Sends `prompt` to `target` from the send box; returns the ticket's task id. */
async function send(target, prompt) {
  await page.selectOption('#send-target', target);
  await page.fill('#send-prompt', prompt);
  const before = await page.$eval('#send-status', (e) => e.textContent);
  await page.click('#send-submit');
  const status = await until(
    `#send-status to say "task … sent to @${target}"`,
    ({ target, before }) => {
      const s = document.getElementById('send-status').textContent;
      if (s === before) return null;
      if (document.getElementById('send-status').classList.contains('send-error')) throw new Error(`the send failed: ${s}`);
      return s.startsWith('task ') && s.endsWith(` sent to @${target}`) ? s : null;
    },
    { target, before },
  );
  return status.split(' ')[1];
}

const statusOf = (name) => until(
  `the row of @${name} to exist`,
  (s) => document.querySelector(`${s} .status`)?.textContent,
  sel(name),
);

async function main() {
  const profile = mkdtempSync(join(tmpdir(), 'ceh-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1100, height: 800 },
    }).catch((e) => {
      throw new Error(`cannot start Chromium (${executablePath}): ${e.message.split('\n')[0]}`);
    });
    page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const where = m.location()?.url || '';
      // The browser's own favicon request (the page has no icon), and the failure
      // the error step below provokes on purpose.
      if (/\/favicon\.ico$/.test(where)) return;
      if (expectFailure && where.endsWith(expectFailure)) return;
      pageErrors.push(`console error: ${m.text()} (${where})`);
    });

    await step('open the URL: 303 to the page, the cookie set, the token out of the address bar', async () => {
      const resp = await page.goto(url, { waitUntil: 'load', timeout: STEP_MS });
      if (!resp || resp.status() !== 200) throw new Error(`the page answered ${resp && resp.status()}`);
      const chain = [];
      for (let r = resp.request().redirectedFrom(); r; r = r.redirectedFrom()) {
        chain.push((await r.response())?.status());
      }
      if (!chain.includes(303)) throw new Error(`no 303 before the page (redirects: ${JSON.stringify(chain)})`);
      if (page.url().includes('token=')) throw new Error(`the token stayed in the address bar: ${page.url()}`);
      const cookies = await context.cookies();
      const c = cookies.find((k) => k.name === 'ceh_token');
      if (!c) throw new Error('no ceh_token cookie');
      if (!c.httpOnly || c.sameSite !== 'Strict') throw new Error(`the cookie is not HttpOnly SameSite=Strict: ${JSON.stringify(c)}`);
    });

    await step('the event stream is live', () =>
      until('#conn to say "live"', () => document.getElementById('conn').textContent === 'live'));

    await step(`the row of @${agent} shows idle`, () =>
      until(`@${agent} idle`, (s) => document.querySelector(`${s} .status`)?.textContent === 'idle', sel(agent)));
    await step(`the row of @${slow} shows idle`, () =>
      until(`@${slow} idle`, (s) => document.querySelector(`${s} .status`)?.textContent === 'idle', sel(slow)));

    // Every status each row shows from now on, and when: a quick agent's `working`
    // may last a few frames only.
    await page.evaluate(() => {
      const seen = {};
      const record = () => {
        for (const row of document.querySelectorAll('#agents [data-agent]')) {
          const name = row.dataset.agent;
          const s = row.querySelector('.status')?.textContent ?? '';
          const list = (seen[name] ||= []);
          if (!list.length || list[list.length - 1].status !== s) list.push({ status: s, at: performance.now() });
        }
      };
      record();
      new MutationObserver(record).observe(document.getElementById('agents'), {
        subtree: true, childList: true, characterData: true, attributes: true,
      });
      window.__statuses = seen;
      // The moment of a click on a cancel button, in the same clock.
      document.addEventListener('click', (e) => {
        const b = e.target.closest && e.target.closest('button.cancel');
        if (b) window.__cancelClickAt = { at: performance.now(), task: b.dataset.task };
      }, true);
    });

    const title = `web page check ${process.pid}-${Date.now()}`;
    const id = await step(`send "${title}" to @${agent}`, () => send(agent, title));
    log(`task ${id} sent to @${agent}`);

    await step(`the answer of ${id} shows in #send-result`, () =>
      until(
        `#send-result to hold "demo agent @${agent} is working on: ${title}"`,
        ({ id, line }) => {
          const box = document.querySelector(`#send-result [data-task="${id}"]`);
          return box && box.textContent.includes(line) && box.querySelector('.outcome')?.textContent === 'ok';
        },
        { id, line: `demo agent @${agent} is working on: ${title}` },
      ));

    await step(`@${agent} back to idle, after showing working`, async () => {
      await until(`@${agent} idle again`, ({ s, name }) => {
        const list = window.__statuses[name] || [];
        return list.some((x) => x.status === 'working') && document.querySelector(`${s} .status`)?.textContent === 'idle';
      }, { s: sel(agent), name: agent });
      const shown = await page.evaluate((name) => window.__statuses[name].map((x) => x.status), agent);
      log(`@${agent} showed: ${shown.join(' → ')}`);
      const cls = await page.$eval(`${sel(agent)} .status`, (e) => e.className);
      if (!cls.split(' ').includes('status-idle')) throw new Error(`the status has class "${cls}", not status-idle`);
    });

    await step(`the result of ${id} is marked delivered (POST results)`, () =>
      until(
        `a result_delivered event for ${id} and the ticket gone from #tickets`,
        (id) => document.querySelector(`#events li.kind-result_delivered[data-task="${id}"]`)
          && !document.querySelector(`#tickets [data-task="${id}"]`),
        id,
      ));

    const slowTitle = `slow web page check ${process.pid}-${Date.now()}`;
    const slowId = await step(`send "${slowTitle}" to @${slow}`, () => send(slow, slowTitle));
    log(`task ${slowId} sent to @${slow}`);

    await step(`@${slow} shows working on ${slowId} with a cancel button`, () =>
      until(
        `@${slow} working with button.cancel[data-task=${slowId}]`,
        ({ s, id }) => {
          const row = document.querySelector(s);
          return row && row.querySelector('.status')?.textContent === 'working'
            && row.querySelector('.task')?.textContent.includes(id)
            && row.querySelector(`button.cancel[data-task="${id}"]`);
        },
        { s: sel(slow), id: slowId },
      ));

    await step('the elapsed time ticks', async () => {
      const before = await page.$eval(`${sel(slow)} .elapsed`, (e) => e.textContent);
      if (!/^\d+[smhd]/.test(before)) throw new Error(`the elapsed time reads "${before}"`);
      await until('the elapsed time of a working agent to change', ({ s, before }) =>
        document.querySelector(`${s} .elapsed`)?.textContent !== before, { s: sel(slow), before }, 5000);
    });

    await step(`cancel ${slowId} from its button`, () =>
      page.click(`${sel(slow)} button.cancel[data-task="${slowId}"]`, { timeout: STEP_MS }));

    const changeMs = await step(`@${slow} back to idle after the cancel`, async () => {
      await until(`@${slow} idle after the click`, ({ s }) =>
        document.querySelector(`${s} .status`)?.textContent === 'idle', { s: sel(slow) });
      return page.evaluate(({ name, id }) => {
        const click = window.__cancelClickAt;
        if (!click || click.task !== id) throw new Error(`no click on the cancel button of ${id} was seen`);
        const idle = (window.__statuses[name] || []).find((x) => x.status === 'idle' && x.at >= click.at);
        if (!idle) throw new Error(`no idle after the click (${JSON.stringify(window.__statuses[name])})`);
        return Math.round((idle.at - click.at) * 10) / 10;
      }, { name: slow, id: slowId });
    });
    log(`from the click to @${slow} idle on the page: ${changeMs} ms`);

    await step(`#events shows task_finished ${slowId} cancelled`, () =>
      until(
        `a task_finished … cancelled line for ${slowId} in #events`,
        (id) => [...document.querySelectorAll(`#events li[data-task="${id}"]`)].some(
          (li) => li.textContent.includes('task_finished') && li.textContent.includes('cancelled')),
        slowId,
      ));

    await step(`#send-result shows ${slowId} cancelled`, () =>
      until(
        `the result box of ${slowId} with outcome cancelled`,
        (id) => document.querySelector(`#send-result [data-task="${id}"] .outcome`)?.textContent === 'cancelled',
        slowId,
      ));

    await step('a send to an unknown agent shows the server\'s error in #send-status', async () => {
      // The select lists known agents only: add one the server does not know.
      await page.evaluate(() => {
        const o = document.createElement('option');
        o.value = 'nobody-here';
        o.textContent = '@nobody-here';
        document.getElementById('send-target').append(o);
      });
      expectFailure = '/api/v1/send';
      await page.selectOption('#send-target', 'nobody-here');
      await page.fill('#send-prompt', 'to nobody');
      await page.click('#send-submit');
      const shown = await until('#send-status to show an error', () => {
        const s = document.getElementById('send-status');
        return s.classList.contains('send-error') && s.textContent;
      });
      expectFailure = null;
      if (!/nobody-here/.test(shown)) throw new Error(`the error does not name the agent: "${shown}"`);
      const kept = await page.$eval('#send-prompt', (e) => e.value);
      if (kept !== 'to nobody') throw new Error('the prompt was not kept after a failed send');
      log(`the page showed: ${shown}`);
    });

    await step(`a wide screenshot to ${wideShot}`, () => page.screenshot({ path: wideShot, fullPage: true }));

    await step('a phone-sized screen (375x800): no horizontal scroll, rows as cards', async () => {
      await page.setViewportSize({ width: 375, height: 800 });
      const m = await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => {
        const head = document.querySelector('.agents-head');
        done({
          scrollWidth: document.documentElement.scrollWidth,
          bodyScrollWidth: document.body.scrollWidth,
          head: head ? getComputedStyle(head).display : 'none',
          wide: [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > 375.5 && getComputedStyle(e).position !== 'fixed')
            .slice(0, 5)
            .map((e) => `${e.tagName.toLowerCase()}.${e.className}`),
        });
      }))));
      if (m.scrollWidth > 375 || m.bodyScrollWidth > 375) {
        throw new Error(`the page is ${m.scrollWidth}px wide at 375px (wider: ${m.wide.join(', ')})`);
      }
      if (m.head !== 'none') throw new Error('the table header still shows: the rows did not become cards');
    });

    await step(`a full-page screenshot to ${screenshot}`, () => page.screenshot({ path: screenshot, fullPage: true }));

    if (pageErrors.length) throw new Error(`the page logged errors:\n  ${pageErrors.join('\n  ')}`);

    console.log(JSON.stringify({
      ok: true,
      change_to_page_ms: changeMs,
      task: id,
      cancelled_task: slowId,
      statuses: await page.evaluate(() => Object.fromEntries(
        Object.entries(window.__statuses).map(([k, v]) => [k, v.map((x) => x.status)]))),
      screenshot,
      wide_screenshot: wideShot,
    }));
  } catch (e) {
    const dump = await pageDump();
    if (page) await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    if (pageErrors.length) console.error(`the page logged:\n  ${pageErrors.join('\n  ')}`);
    console.error(`browser.mjs: FAILED: ${e.message}\n--- the page showed:\n${dump}\n--- (screenshot: ${screenshot})`);
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

await main();
clearTimeout(watchdog);
