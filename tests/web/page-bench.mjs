// How long the page takes to show a change: benches/web_page.rs runs this against a
// `serve` with a board (CLAUDE_EDITOR_HOOK_BOARD) and a demo agent.
//
//   URL=http://127.0.0.1:PORT/?token=… TOKEN=… AGENT=w1 N=50 node tests/web/page-bench.mjs
//
// Two kinds of change, N of each, one at a time (each waits until the page shows it):
// - a board task added (POST /api/v1/board/tasks): the board's progress line changes;
// - a task sent to AGENT: its row goes working, then idle.
// The page records, with a MutationObserver, when each change became visible (epoch µs,
// the same clock the event log's `at_us` uses). The last stdout line is the JSON
// `{"board": [µs…], "status": [{"status", "seen_us"}…]}`; the Rust side pairs each with
// the log event that made it.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.URL;
const token = process.env.TOKEN;
const agent = process.env.AGENT;
const n = Number(process.env.N || 50);
const base = new URL(url).origin;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const profile = mkdtempSync(join(tmpdir(), 'ceh-bench-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(url);
  await page.waitForSelector(`[data-agent="${agent}"] .status`, { timeout: 30000 });
  await page.evaluate((agent) => {
    window.__seen = { board: [], status: [] };
    const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
    const boardBox = document.getElementById('board');
    let lastBoard = boardBox.textContent;
    new MutationObserver(() => {
      const t = boardBox.textContent;
      if (t !== lastBoard) {
        lastBoard = t;
        window.__seen.board.push({ text: t, seen_us: now() });
      }
    }).observe(boardBox, { subtree: true, childList: true, characterData: true });
    const agents = document.getElementById('agents');
    let lastStatus = null;
    new MutationObserver(() => {
      const st = agents.querySelector(`[data-agent="${agent}"] .status`);
      const s = st && st.textContent;
      if (s && s !== lastStatus) {
        lastStatus = s;
        window.__seen.status.push({ status: s, seen_us: now() });
      }
    }).observe(agents, { subtree: true, childList: true, characterData: true });
  }, agent);

  const post = async (path, body) => {
    const r = await fetch(base + path, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (r.status >= 300) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  };
  // A function, not a string: the page's CSP allows no eval.
  const waitFor = async (what, cond, arg) => {
    try {
      await page.waitForFunction(cond, arg, { timeout: 30000 });
    } catch (e) {
      throw new Error(`page-bench: ${what} never showed: ${e.message}`);
    }
  };

  for (let i = 0; i < n; i++) {
    const before = await page.evaluate(() => window.__seen.board.length);
    await post('/api/v1/board/tasks', { title: `bench task ${i}` });
    await waitFor(`board change ${i}`, (n) => window.__seen.board.length > n, before);
  }
  for (let i = 0; i < n; i++) {
    const before = await page.evaluate(() => window.__seen.status.filter((s) => s.status === 'idle').length);
    await post('/api/v1/send', { target: agent, prompt: `bench ${i}`, background: true });
    await waitFor(
      `task ${i} done`,
      (n) => window.__seen.status.filter((s) => s.status === 'idle').length > n,
      before,
    );
  }
  const seen = await page.evaluate(() => window.__seen);
  console.log(JSON.stringify({ board: seen.board.map((b) => b.seen_us), status: seen.status }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
