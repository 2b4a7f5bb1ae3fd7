// The team's dashboard (docs/web.md, "The page"). Everything shown comes from the event
// stream `GET /api/v1/events`: a `team` event (the status document) re-renders the
// agents, the tickets and the board; a `log` event (one line of the event log) goes on
// top of the recent events. Nothing polls: the one timer ticks the elapsed times.
//
// Everything the server sends is text: it reaches the page through textContent only.
'use strict';

(() => {
  const MAX_EVENTS = 50;
  const MAX_RESULTS = 5;
  const MAX_REMEMBERED = 500;
  const STORE_KEY = 'ceh-web-tickets';

  const $ = (id) => document.getElementById(id);

  /** A new element with a class and a text. */
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  /** Sets a text only when it changed (fewer mutations, no flicker). */
  function setText(node, text) {
    const t = text === undefined || text === null ? '' : String(text);
    if (node.textContent !== t) node.textContent = t;
  }

  /** A server word made safe for a class name. */
  function word(w) {
    return String(w === undefined || w === null ? 'unknown' : w)
      .toLowerCase()
      .replace(/[^a-z0-9_-]/g, '') || 'unknown';
  }

  /** A bounded set or map: the oldest entries go first. */
  function remember(coll, key, value) {
    if (coll instanceof Map) coll.set(key, value);
    else coll.add(key);
    while (coll.size > MAX_REMEMBERED) coll.delete(coll.keys().next().value);
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  /** `hh:mm:ss` of a time in microseconds since the epoch. */
  function clock(us) {
    if (typeof us !== 'number') return '--:--:--';
    const d = new Date(us / 1000);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  /** A duration in milliseconds, short: 12s, 3m 05s, 2h 03m, 4d 2h. */
  function human(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${pad2(s % 60)}s`;
    const h = Math.floor(m / 60);
    if (h < 24) return `${h}h ${pad2(m % 60)}m`;
    return `${Math.floor(h / 24)}d ${h % 24}h`;
  }

  // ---- what the page knows ----

  /** The last status document. */
  let team = null;
  /** The page's own background tickets: task id → agent. Kept across reloads. */
  const mine = new Map(loadMine());
  /** Tickets whose result is being fetched or was shown. */
  const fetched = new Set();
  /** Tasks the log said finished (a fast agent may finish before `send` answers). */
  const finished = new Set();
  /** Log event ids already listed (a reconnect may send the backlog again). */
  const seenEvents = new Set();
  /** Task titles, from the log and the team, for events that carry none. */
  const titles = new Map();
  /** A failed action's message, per agent row. */
  const rowErrors = new Map();
  /** Tasks with a cancel request in flight. */
  const cancelling = new Set();

  function loadMine() {
    try {
      const v = JSON.parse(sessionStorage.getItem(STORE_KEY) || '[]');
      return Array.isArray(v) ? v.filter((p) => Array.isArray(p) && p.length === 2) : [];
    } catch (_) {
      return [];
    }
  }

  function saveMine() {
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify([...mine]));
    } catch (_) {
      // Storage off: the tickets of this page load only.
    }
  }

  // ---- the API ----

  /** A JSON request; throws an Error with the server's `error` line on failure. */
  async function api(method, path, body) {
    const init = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
      // The page's referrer policy is no-referrer, under which the Fetch standard
      // sends `Origin: null` with a POST (Chromium sends the origin anyway); the
      // server checks the Origin of every POST.
      init.referrerPolicy = 'same-origin';
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new Error(`the server did not answer (${e.message})`);
    }
    let data = null;
    const text = await resp.text();
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!resp.ok) {
      const why = data && typeof data.error === 'string' ? data.error : `${resp.status} ${resp.statusText}`;
      const err = new Error(why);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  // ---- agents ----

  function makeAgentRow(name) {
    const li = el('li', 'agent');
    li.dataset.agent = name;
    const who = el('div', 'who');
    who.append(el('span', 'name', name), el('span', 'meta'));
    const status = el('span', 'status');
    const task = el('div', 'task');
    const elapsed = el('span', 'elapsed');
    elapsed.title = 'time in this status';
    const latest = el('div', 'latest');
    const actions = el('div', 'actions');
    const queue = el('ul', 'queue');
    const note = el('p', 'note');
    li.append(who, status, task, elapsed, latest, actions, queue, note);
    return li;
  }

  function cancelButton(id, what) {
    const b = el('button', 'cancel', 'Cancel');
    b.type = 'button';
    b.dataset.task = id;
    b.title = `cancel ${what} ${id}`;
    b.setAttribute('aria-label', `cancel ${what} ${id}`);
    return b;
  }

  function updateAgentRow(li, a) {
    const q = (sel) => li.querySelector(sel);
    const name = a.name;

    const meta = [];
    if (a.driver) meta.push(a.driver);
    if (Array.isArray(a.roles) && a.roles.length) meta.push(a.roles.join(', '));
    if (a.tmux && a.tmux.window) meta.push(a.tmux.window);
    if (a.worktree && a.worktree.branch) meta.push(a.worktree.branch);
    if (typeof a.tokens === 'number') meta.push(`${a.tokens.toLocaleString()} tok`);
    if (typeof a.cost_usd === 'number') meta.push(`$${a.cost_usd.toFixed(2)}`);
    setText(q('.meta'), meta.join(' · '));

    const st = q('.status');
    const w = word(a.status);
    setText(st, a.status === undefined || a.status === null ? 'unknown' : a.status);
    const cls = `status status-${w}`;
    if (st.className !== cls) st.className = cls;
    const rowCls = `agent agent-${w}`;
    if (li.className !== rowCls) li.className = rowCls;

    // The current task, else the last one, dimmed.
    const task = q('.task');
    let key;
    if (a.task && a.task.id) {
      remember(titles, a.task.id, a.task.title || '');
      key = `now ${a.task.id} ${a.task.title}`;
      if (task.dataset.key !== key) {
        task.replaceChildren(el('span', 'task-id', a.task.id), el('span', 'task-title', a.task.title || ''));
        task.classList.remove('task-last');
      }
    } else if (Array.isArray(a.recent) && a.recent.length) {
      const r = a.recent[0];
      key = `last ${r.id} ${r.title} ${r.outcome}`;
      if (task.dataset.key !== key) {
        task.replaceChildren(
          el('span', 'task-label', 'last'),
          el('span', 'task-id', r.id),
          el('span', 'task-title', r.title || ''),
          el('span', `outcome outcome-${word(r.outcome)}`, r.outcome),
        );
        task.classList.add('task-last');
      }
    } else {
      key = 'none';
      if (task.dataset.key !== key) {
        task.replaceChildren(el('span', 'task-none', 'no task'));
        task.classList.remove('task-last');
      }
    }
    task.dataset.key = key;

    const elapsed = q('.elapsed');
    if (typeof a.last_active_us === 'number') elapsed.dataset.since = String(a.last_active_us);
    else delete elapsed.dataset.since;
    tickOne(elapsed, Date.now());

    const latest = q('.latest');
    setText(latest, a.latest || '');
    latest.title = a.latest || '';

    // A cancel button for the current task.
    const actions = q('.actions');
    const current = a.task && a.task.id ? a.task.id : '';
    if (actions.dataset.task !== current) {
      actions.replaceChildren(...(current ? [cancelButton(current, 'task')] : []));
      actions.dataset.task = current;
    }

    // The queue, each with its cancel button.
    const queue = q('.queue');
    const items = Array.isArray(a.queue) ? a.queue : [];
    const qkey = items.map((t) => `${t.id}\u0000${t.title}`).join('\u0001');
    if (queue.dataset.key !== qkey) {
      queue.replaceChildren(
        ...items.map((t) => {
          if (t.id) remember(titles, t.id, t.title || '');
          const item = el('li', 'queued');
          item.dataset.task = t.id;
          item.append(
            el('span', 'task-label', 'queued'),
            el('span', 'task-id', t.id),
            el('span', 'task-title', t.title || ''),
            el('span', 'queued-for'),
            cancelButton(t.id, 'queued task'),
          );
          const since = item.querySelector('.queued-for');
          if (typeof t.queued_at_us === 'number') since.dataset.since = String(t.queued_at_us);
          return item;
        }),
      );
      queue.dataset.key = qkey;
    }
    for (const s of queue.querySelectorAll('.queued-for')) tickOne(s, Date.now());

    for (const b of li.querySelectorAll('button.cancel')) {
      const busy = cancelling.has(b.dataset.task);
      b.disabled = busy;
      setText(b, busy ? 'Cancelling…' : 'Cancel');
    }

    // Why it waits, what failed.
    const notes = [];
    if (a.waiting_for) notes.push(`waits for ${a.waiting_for}`);
    if (a.error) notes.push(a.error);
    if (a.status_error) notes.push(`status file unreadable: ${a.status_error}`);
    if (rowErrors.has(name)) notes.push(rowErrors.get(name));
    const note = q('.note');
    setText(note, notes.join(' · '));
    note.classList.toggle('hidden', notes.length === 0);
    note.classList.toggle('note-error', !!(a.error || a.status_error || rowErrors.has(name)));
  }

  function renderAgents(agents) {
    const list = $('agents');
    const old = new Map();
    for (const li of list.children) old.set(li.dataset.agent, li);
    let prev = null;
    for (const a of agents) {
      if (!a || typeof a.name !== 'string') continue;
      let li = old.get(a.name);
      if (li) old.delete(a.name);
      else li = makeAgentRow(a.name);
      updateAgentRow(li, a);
      // The server's order: those that need the human first.
      const at = prev ? prev.nextSibling : list.firstChild;
      if (at !== li) list.insertBefore(li, at);
      prev = li;
    }
    for (const li of old.values()) li.remove();
    $('agents-empty').classList.toggle('hidden', list.children.length > 0);
  }

  // ---- the send box's targets ----

  function renderTargets(agents) {
    const sel = $('send-target');
    const names = agents.map((a) => a && a.name).filter((n) => typeof n === 'string');
    const roles = new Set();
    for (const a of agents) for (const r of (a && Array.isArray(a.roles) ? a.roles : [])) roles.add(r);
    const roleList = [...roles].filter((r) => !names.includes(r)).sort();
    const key = JSON.stringify([names, roleList]);
    if (sel.dataset.key === key) return;
    sel.dataset.key = key;
    const keep = sel.value;
    const opts = [];
    if (!names.length) {
      const o = el('option', null, 'no agents');
      o.value = '';
      opts.push(o);
    }
    // Alphabetical: the option list does not jump around as statuses change.
    const group = (label, values, text) => {
      const g = el('optgroup');
      g.label = label;
      for (const v of values) {
        const o = el('option', null, text(v));
        o.value = v;
        g.append(o);
      }
      return g;
    };
    if (names.length) opts.push(group('agents', [...names].sort(), (n) => `@${n}`));
    if (names.length) opts.push(group('by role', [...roleList, 'any'], (r) => (r === 'any' ? 'any idle agent' : `a ${r}`)));
    sel.replaceChildren(...opts);
    if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
    sel.disabled = !names.length;
  }

  // ---- background tickets and the board ----

  function renderTickets(background) {
    const list = $('tickets');
    const items = Array.isArray(background) ? background : [];
    if (!items.length) {
      list.replaceChildren(el('li', 'empty', 'No background tickets.'));
      return;
    }
    list.replaceChildren(
      ...items.map((t) => {
        const li = el('li', `ticket state-${word(t.state)}`);
        li.dataset.task = t.task_id || '';
        if (mine.has(t.task_id)) li.classList.add('mine');
        li.append(
          el('span', `ticket-state state-${word(t.state)}`, t.state),
          el('span', 'task-id', t.task_id),
          el('span', 'ticket-agent', `@${t.agent}`),
          el('span', 'task-title', t.title || ''),
          el('span', 'ticket-chief', mine.has(t.task_id) ? 'this page' : `chief ${t.chief}`),
        );
        return li;
      }),
    );
    // A ticket of ours that is ready: show its result (the log event may be missed
    // when the page was closed at the time).
    for (const t of items) {
      if (t.state === 'ready' && t.chief === 'web' && mine.has(t.task_id)) showResultOf(t.task_id);
    }
  }

  function renderBoard(board) {
    const box = $('board');
    if (!board) {
      box.replaceChildren(el('p', 'empty', 'No board.'));
      return;
    }
    const s = board.summary || {};
    const parts = [];
    const goal = typeof s.goal === 'string' ? s.goal.split('\n')[0] : '';
    if (goal) parts.push(el('p', 'board-goal', goal));
    if (typeof s.total === 'number' && s.total > 0) {
      const bar = el('progress', 'board-bar');
      bar.max = s.total;
      bar.value = typeof s.done === 'number' ? s.done : 0;
      bar.setAttribute('aria-label', 'tasks done');
      parts.push(bar);
    }
    parts.push(el('p', 'board-progress', board.progress || ''));
    const claims = Array.isArray(s.claims) ? s.claims : [];
    if (claims.length) {
      const ul = el('ul', 'board-claims');
      for (const c of claims.slice(0, 8)) {
        const li = el('li');
        li.append(el('span', 'task-id', c.id), el('span', 'task-title', c.title || ''), el('span', 'ticket-agent', c.worker ? `@${c.worker}` : ''));
        ul.append(li);
      }
      if (claims.length > 8) ul.append(el('li', 'more', `and ${claims.length - 8} more claimed`));
      parts.push(ul);
    }
    parts.push(el('p', 'board-path', board.path || ''));
    box.replaceChildren(...parts);
  }

  function renderTeam(doc) {
    team = doc;
    const err = $('team-error');
    setText(err, doc.error ? `the team's state could not be read: ${doc.error}` : '');
    err.classList.toggle('hidden', !doc.error);
    setText($('state-dir'), doc.state_dir || '');
    const agents = Array.isArray(doc.agents) ? doc.agents : [];
    renderAgents(agents);
    renderTargets(agents);
    renderTickets(doc.background);
    renderBoard(doc.board);
    const attention = agents.filter((a) => a && ['waiting', 'error', 'stopped'].includes(a.status)).length;
    document.title = `${attention ? `(${attention}) ` : ''}The team · claude-editor-hook`;
  }

  // ---- the recent events ----

  /** One log event as a short line: the agent, the task and what happened. */
  function describe(ev) {
    const t = ev.task ? titles.get(ev.task) : undefined;
    const title = ev.title || t || '';
    const quoted = title ? `“${title}”` : '';
    switch (ev.kind) {
      case 'task_queued':
        return [quoted, ev.background ? 'queued in the background' : 'queued'];
      case 'task_delivered':
        return ['delivered', quoted];
      case 'task_acknowledged':
        return ['acknowledged', quoted];
      case 'task_finished': {
        const out = [ev.outcome || '?', quoted];
        if (ev.reason) out.push(`(${ev.reason})`);
        // Who ended it, when it is not the usual: the agent answering.
        if (ev.finished_by && !(ev.outcome === 'ok' && ev.finished_by === 'agent')) out.push(`by ${ev.finished_by}`);
        return out;
      }
      case 'agent_status':
        return [`is ${ev.status}`];
      case 'result_delivered':
        return [`delivered to chief ${ev.chief}`, quoted];
      case 'board':
        return [ev.verb || '', `(board ${boardName(ev.board)})`];
      case 'run_finished':
        return [`run ${ev.run} ${ev.state}: ${ev.done}/${ev.total} done, ${ev.failed} failed, ${ev.blocked} blocked`];
      case 'agent_crashed': {
        const out = [`crashed: ${ev.how}`];
        if (typeof ev.restart === 'number') out.push(`restart ${ev.restart}`);
        if (ev.reason) out.push(`(${ev.reason})`);
        return out;
      }
      default:
        return [];
    }
  }

  /** A board's path, short: the directory of its `board.db`. */
  function boardName(path) {
    const parts = String(path || '').split('/').filter(Boolean);
    if (parts.length > 1 && parts[parts.length - 1] === 'board.db') return parts[parts.length - 2];
    return parts[parts.length - 1] || '?';
  }

  function addEvent(raw, id) {
    if (id) {
      if (seenEvents.has(id)) return;
      remember(seenEvents, id);
    }
    let ev;
    try {
      ev = JSON.parse(raw);
    } catch (_) {
      return;
    }
    if (!ev || typeof ev !== 'object') return;
    if (ev.task && ev.title) remember(titles, ev.task, ev.title);

    const li = el('li', `event kind-${word(ev.kind)}`);
    if (ev.task) li.dataset.task = ev.task;
    // Always the same five cells, some empty: the columns line up.
    const text = el('span', 'ev-text', describe(ev).filter(Boolean).join(' '));
    if (ev.kind === 'task_finished') text.classList.add(`outcome-${word(ev.outcome)}`);
    li.append(
      el('time', 'ev-time', clock(ev.at_us)),
      el('span', 'ev-kind', ev.kind || 'unknown'),
      el('span', 'ev-agent', ev.agent ? `@${ev.agent}` : ''),
      el('span', 'task-id', ev.task || ''),
      text,
    );
    if (ev.kind === 'board' && ev.board) li.title = ev.board;
    const list = $('events');
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();

    if (ev.kind === 'task_finished' && ev.task) {
      remember(finished, ev.task);
      if (mine.has(ev.task)) showResultOf(ev.task);
    }
  }

  // ---- sending, results, cancelling ----

  function setSendStatus(text, kind) {
    const p = $('send-status');
    setText(p, text);
    p.className = `send-status${kind ? ` send-${kind}` : ''}`;
  }

  async function onSubmit(e) {
    e.preventDefault();
    const target = $('send-target').value;
    const promptBox = $('send-prompt');
    const prompt = promptBox.value;
    if (!target) return setSendStatus('choose an agent to send to', 'error');
    if (!prompt.trim()) return setSendStatus('write the task first', 'error');
    const button = $('send-submit');
    button.disabled = true;
    setSendStatus(`sending to ${target}…`, 'busy');
    try {
      const r = await api('POST', '/api/v1/send', { target, prompt, background: true });
      mine.set(r.task_id, r.agent);
      saveMine();
      setSendStatus(`task ${r.task_id} sent to @${r.agent}`, 'ok');
      promptBox.value = '';
      if (finished.has(r.task_id)) showResultOf(r.task_id);
      else if (team) renderTickets(team.background);
    } catch (err) {
      setSendStatus(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  /** Fetches a finished ticket of ours, shows it, then marks it delivered. */
  async function showResultOf(id) {
    if (fetched.has(id)) return;
    fetched.add(id);
    let t;
    try {
      t = await api('GET', `/api/v1/tasks/${encodeURIComponent(id)}`);
    } catch (err) {
      fetched.delete(id);
      setSendStatus(`task ${id}: ${err.message}`, 'error');
      return;
    }
    if (!t || !t.done) {
      // Not written yet: the next team document (the ticket turns ready) retries.
      fetched.delete(id);
      return;
    }
    renderResult(t, mine.get(id));
    mine.delete(id);
    saveMine();
    try {
      await api('POST', '/api/v1/results', { chief: 'web' });
    } catch (err) {
      setSendStatus(`task ${id} is shown but could not be marked delivered: ${err.message}`, 'error');
    }
  }

  function renderResult(t, agent) {
    const done = t.done || {};
    const env = t.envelope || {};
    const outcome = done.outcome || '?';
    const box = el('article', `result result-${word(outcome)}`);
    box.dataset.task = t.id;
    const head = el('header', 'result-head');
    head.append(
      el('span', `outcome outcome-${word(outcome)}`, outcome),
      el('span', 'task-id', t.id),
      el('span', 'ticket-agent', `@${env.agent || agent || '?'}`),
    );
    if (typeof done.finished_at_us === 'number' && typeof done.created_at_us === 'number') {
      head.append(el('span', 'result-time', human((done.finished_at_us - done.created_at_us) / 1000)));
    }
    if (env.title) head.append(el('span', 'task-title', env.title));
    box.append(head);
    if (done.reason) box.append(el('p', 'result-reason', done.reason));
    if (typeof t.result === 'string') box.append(el('pre', 'result-text', t.result));
    else if (!done.reason) box.append(el('p', 'result-reason', 'no answer'));
    if (t.result_lossy) box.append(el('p', 'result-note', 'bytes that were not UTF-8 are shown as �'));
    if (t.result_truncated) box.append(el('p', 'result-note', 'cut here: the whole answer is in result.txt'));
    const list = $('send-result');
    list.prepend(box);
    while (list.children.length > MAX_RESULTS) list.lastElementChild.remove();
  }

  async function onCancel(button) {
    const id = button.dataset.task;
    const row = button.closest('[data-agent]');
    const agent = row ? row.dataset.agent : '';
    if (!id || cancelling.has(id)) return;
    cancelling.add(id);
    button.disabled = true;
    button.textContent = 'Cancelling…';
    rowErrors.delete(agent);
    try {
      await api('POST', `/api/v1/tasks/${encodeURIComponent(id)}/cancel`, {});
    } catch (err) {
      rowErrors.set(agent, `cancel ${id}: ${err.message}`);
    } finally {
      cancelling.delete(id);
      if (team) renderTeam(team);
    }
  }

  // ---- the elapsed times: the page's one timer ----

  function tickOne(node, now) {
    const since = Number(node.dataset.since);
    setText(node, node.dataset.since && Number.isFinite(since) ? human(now - since / 1000) : '');
  }

  function tick() {
    const now = Date.now();
    for (const n of document.querySelectorAll('.elapsed, .queued-for')) tickOne(n, now);
  }

  // ---- the stream ----

  let es = null;
  let retry = 1000;

  function setConn(state, text) {
    const c = $('conn');
    setText(c, text);
    c.className = `conn conn-${state}`;
  }

  function connect() {
    es = new EventSource('/api/v1/events');
    es.addEventListener('open', () => {
      retry = 1000;
      setConn('live', 'live');
    });
    es.addEventListener('team', (e) => {
      let doc;
      try {
        doc = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      if (doc && typeof doc === 'object') renderTeam(doc);
    });
    es.addEventListener('log', (e) => addEvent(e.data, e.lastEventId));
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (stopped, too many streams, the token
        // changed): EventSource gives up, so try again, more slowly each time.
        setConn('down', `disconnected: retrying in ${Math.round(retry / 1000)}s`);
        es.close();
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 30000);
      } else {
        setConn('reconnecting', 'reconnecting…');
      }
    });
  }

  function start() {
    $('send-form').addEventListener('submit', onSubmit);
    $('send-prompt').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        $('send-form').requestSubmit();
      }
    });
    $('agents').addEventListener('click', (e) => {
      const b = e.target.closest('button.cancel');
      if (b && !b.disabled) onCancel(b);
    });
    renderTickets([]);
    renderBoard(null);
    renderTargets([]);
    setInterval(tick, 1000);
    connect();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
