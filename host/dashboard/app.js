// queuemgr dashboard: vanilla JS, no build step. Talks only to the public API: the `queue`
// command over JSON-RPC, GET /api/v1/jobs/{id}, GET /health and the event streams (read with
// fetch so that the API key can travel in the X-API-Key header).
'use strict';
(() => {
  const PAGE_SIZE = 50;
  const STATUSES = ['PENDING', 'RUNNING', 'COMPLETED', 'ERROR', 'STOPPED', 'DELETED'];
  const TERMINAL = new Set(['COMPLETED', 'ERROR', 'STOPPED', 'DELETED']);
  const KEY_STORE = 'queuemgr.apiKey';
  const MAX_LOG_LINES = 5000;
  const view = document.getElementById('view');

  // ---------------------------------------------------------------- helpers

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'value' || k === 'checked') el[k] = v;
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  // replaceChildren that skips null/false and flattens arrays.
  function fill(el, ...kids) {
    el.replaceChildren(...kids.flat(Infinity).filter((k) => k != null && k !== false));
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const jobHref = (id) => '#/jobs/' + encodeURIComponent(id);

  // The host writes UTC times without an offset ("2026-12-01T19:39:37.921549").
  function parseTime(s) {
    if (!s) return null;
    const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + 'Z');
    return isNaN(d) ? null : d;
  }
  function fmtTime(s, full) {
    const d = typeof s === 'number' ? new Date(s) : parseTime(s);
    if (!d) return '';
    const now = new Date();
    if (!full && d.toDateString() === now.toDateString()) return d.toLocaleTimeString();
    return d.toLocaleString();
  }
  function ago(s) {
    const d = typeof s === 'number' ? new Date(s) : parseTime(s);
    if (!d) return '';
    const sec = Math.round((Date.now() - d.getTime()) / 1000);
    const abs = Math.abs(sec);
    const txt = abs < 60 ? abs + ' s' : abs < 3600 ? Math.round(abs / 60) + ' min' : abs < 86400 ? Math.round(abs / 3600) + ' h' : Math.round(abs / 86400) + ' d';
    return sec >= 0 ? txt + ' ago' : 'in ' + txt;
  }
  function pretty(v, max = 200000) {
    let s = typeof v === 'string' ? v : JSON.stringify(v, null, 2);
    if (s === undefined) s = String(v);
    return s.length > max ? s.slice(0, max) + `\n… (${(s.length - max).toLocaleString()} more characters)` : s;
  }
  const pct = (p) => Math.max(0, Math.min(100, Number(p) || 0));

  function toast(msg, kind = 'info') {
    const el = h('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : 'status' }, msg);
    document.getElementById('toasts').append(el);
    setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
  }

  // Calls `fn` at most once per `ms`; calls during a run or the wait are folded into one.
  function throttle(fn, ms) {
    let last = 0, timer = null, running = false, again = false;
    const run = async () => {
      timer = null;
      if (running) { again = true; return; }
      running = true; last = Date.now();
      try { await fn(); } finally {
        running = false;
        if (again) { again = false; schedule(); }
      }
    };
    const schedule = () => {
      if (timer) return;
      if (running) { again = true; return; }
      timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
    };
    return schedule;
  }

  // Applies queued updates once per animation frame (progress events come up to 20/s per job).
  function frameBatcher(apply) {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      const go = () => { queued = false; apply(); };
      if (document.hidden) setTimeout(go, 250); else requestAnimationFrame(go);
    };
  }

  // ---------------------------------------------------------------- API + key

  let apiKey = localStorage.getItem(KEY_STORE) || '';

  class ApiError extends Error {
    constructor(message, extra = {}) {
      super(message);
      Object.assign(this, extra);
    }
  }

  function authHeaders(extra) {
    const hd = Object.assign({}, extra);
    if (apiKey) hd['X-API-Key'] = apiKey;
    return hd;
  }

  async function http(url, opts = {}) {
    let res;
    try {
      res = await fetch(url, Object.assign({}, opts, { headers: authHeaders(opts.headers), cache: 'no-store' }));
    } catch (e) {
      throw new ApiError('The host is unreachable (' + e.message + ')', { network: true });
    }
    if (res.status === 401) {
      askForKey();
      throw new ApiError('API key required', { status: 401 });
    }
    return res;
  }

  let rpcId = 0;
  async function rpc(action, params = {}) {
    const res = await http('/api/jsonrpc', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method: 'queue', params: Object.assign({ action }, params) }),
    });
    let body;
    try { body = await res.json(); } catch { throw new ApiError(`HTTP ${res.status} ${res.statusText}`, { status: res.status }); }
    if (body && body.error) {
      const d = body.error.data || {};
      throw new ApiError(body.error.message || 'Error', { code: body.error.code, data: d, field: d.field });
    }
    const r = body && body.result;
    if (!r) throw new ApiError(`HTTP ${res.status}: unexpected answer`, { status: res.status });
    if (r.success === false) {
      const e = r.error || {};
      const d = e.data || {};
      throw new ApiError(d.detail || e.message || 'Failed', { code: e.code, data: d, field: d.field, domain: d.domain_code });
    }
    return r.data;
  }

  // A framework command (queue_get_flow, queue_send_event, …): its data, or an ApiError.
  async function call(method, params = {}) {
    const res = await http('/api/jsonrpc', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
    });
    let body;
    try { body = await res.json(); } catch { throw new ApiError(`HTTP ${res.status} ${res.statusText}`, { status: res.status }); }
    if (body && body.error) {
      const d = body.error.data || {};
      throw new ApiError(body.error.message || 'Error', { code: body.error.code, data: d, field: d.field });
    }
    const r = body && body.result;
    if (!r || r.success === false) {
      const e = (r && r.error) || {};
      const d = e.data || {};
      throw new ApiError(d.detail || e.message || 'Failed', { code: e.code, data: d, domain: d.domain_code });
    }
    return r.data;
  }

  // A flow as an SVG graph: one column per level (a job's level is one more than its parent's
  // or its deepest dependency's), one box per job coloured by its status, linking to its page.
  const FLOW_MAX_NODES = 300;
  function flowGraph(flow) {
    const NS = 'http://www.w3.org/2000/svg';
    const nodes = (flow.nodes || []).slice(0, FLOW_MAX_NODES);
    const byId = new Map(nodes.map((n) => [n.job_id, n]));
    const level = new Map();
    const levelOf = (n, seen = new Set()) => {
      if (level.has(n.job_id)) return level.get(n.job_id);
      if (seen.has(n.job_id)) return 0;
      seen.add(n.job_id);
      const ups = [n.parent_id, ...(n.depends_on || [])].filter((u) => u && byId.has(u));
      const l = ups.length ? 1 + Math.max(...ups.map((u) => levelOf(byId.get(u), seen))) : 0;
      level.set(n.job_id, l);
      return l;
    };
    const cols = [];
    for (const n of nodes) { const l = levelOf(n); (cols[l] = cols[l] || []).push(n); }
    const W = 170, H = 34, GX = 60, GY = 10;
    const pos = new Map();
    cols.forEach((col, x) => col.forEach((n, y) => pos.set(n.job_id, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
    const width = 20 + cols.length * (W + GX) - GX;
    const height = 20 + Math.max(1, ...cols.map((c) => c.length)) * (H + GY) - GY;
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('id', 'flow-graph');
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const el = (tag, attrs) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
    for (const e of flow.edges || []) {
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) continue;
      svg.append(el('path', { class: 'flow-edge', 'data-kind': e.kind || 'child',
        d: `M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x},${b.y + H / 2}` }));
    }
    const root = flow.job_id || '';
    for (const n of nodes) {
      const p = pos.get(n.job_id);
      const status = (n.status || '').toUpperCase();
      const link = el('a', { href: jobHref(n.job_id), class: 'flow-node', 'data-job-id': n.job_id, 'data-status': status });
      const title = el('title', {});
      title.textContent = `${n.job_id} · ${n.job_type} · ${status}${n.waiting_for ? ' · ' + n.waiting_for.description : ''}`;
      link.append(title, el('rect', { x: p.x, y: p.y, width: W, height: H, rx: 6 }));
      const label = el('text', { x: p.x + 8, y: p.y + 14 });
      const short = n.job_id.startsWith(root + '.') ? n.job_id.slice(root.length + 1) : n.job_id;
      label.textContent = short.length > 24 ? short.slice(0, 23) + '…' : short;
      const sub = el('text', { x: p.x + 8, y: p.y + 28, class: 'sub' });
      sub.textContent = status.toLowerCase() + (n.waiting_for ? ' · waits for ' + n.waiting_for.kind : '');
      link.append(label, sub);
      svg.append(link);
    }
    return svg;
  }

  async function getJson(url) {
    const res = await http(url);
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) throw new ApiError((body && (body.detail || (body.error && body.error.message))) || `HTTP ${res.status}`, { status: res.status });
    return body;
  }

  const keyDialog = document.getElementById('key-dialog');
  const keyInput = document.getElementById('api-key');
  const keyButton = document.getElementById('key-button');
  const signOut = document.getElementById('sign-out');

  // Who this browser is signed in as (GET /api/v1/whoami): {key, role, types, queues, open}.
  // The page hides what the role may not do (CSS on body[data-role] and [data-needs]; the
  // host refuses it anyway).
  let me = null;
  const RANK = { metrics: 0, read: 1, run: 2, admin: 3 };
  function may(need) {
    if (!me) return true;
    if (me.role === 'admin') return true;
    if (me.role === 'metrics' || need === 'metrics') return me.role === need;
    return RANK[me.role] >= RANK[need];
  }
  function showKeyButton() {
    const signedIn = !!(me && !me.open);
    keyButton.hidden = !signedIn;
    signOut.hidden = !signedIn;
    document.getElementById('who').hidden = !signedIn;
    if (signedIn) {
      document.getElementById('who-name').textContent = me.key;
      const scope = [].concat(me.types.length ? ['types ' + me.types.join(', ')] : [], me.queues.length ? ['queues ' + me.queues.join(', ')] : []);
      document.getElementById('who-role').textContent = me.role + (scope.length ? ' · ' + scope.join(' · ') : '');
    }
    if (me) document.body.dataset.role = me.role; else delete document.body.dataset.role;
  }
  async function loadMe() {
    try {
      me = await getJson('/api/v1/whoami');
    } catch (e) {
      me = null;
    }
    showKeyButton();
    return me;
  }

  function askForKey(voluntary) {
    if (!keyDialog.hidden) return;
    document.getElementById('key-message').textContent = voluntary
      ? 'The key this browser sends to the host.'
      : apiKey ? 'The host refused the saved API key. Enter the right one.' : 'This host requires an API key.';
    document.getElementById('key-error').textContent = '';
    document.getElementById('api-key-forget').hidden = !apiKey;
    document.getElementById('api-key-cancel').hidden = !voluntary;
    keyInput.value = '';
    keyDialog.hidden = false;
    live.setState('auth');
    setTimeout(() => keyInput.focus(), 0);
  }
  async function setKey(k) {
    apiKey = k;
    if (k) localStorage.setItem(KEY_STORE, k); else localStorage.removeItem(KEY_STORE);
    keyDialog.hidden = true;
    me = null;
    showKeyButton();
    await loadMe();
    live.restart();
    route();
  }
  document.getElementById('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const k = keyInput.value.trim();
    if (!k) { document.getElementById('key-error').textContent = 'Enter a key.'; return; }
    setKey(k);
  });
  document.getElementById('api-key-forget').addEventListener('click', () => setKey(''));
  signOut.addEventListener('click', () => setKey(''));
  document.getElementById('api-key-cancel').addEventListener('click', () => { keyDialog.hidden = true; live.restart(); });
  keyButton.addEventListener('click', () => askForKey(true));

  // ---------------------------------------------------------------- server-sent events

  // Reads an SSE stream with fetch (so that headers can be set), reconnecting with
  // Last-Event-ID after a drop. onEvent(type, data string, id); onState(state).
  function openStream(url, { onEvent, onState, onOpen }) {
    const s = { state: 'connecting', stopped: false, finished: false, lastId: null, ctrl: null };
    let openResolve;
    s.opened = new Promise((r) => (openResolve = r));
    const setState = (st) => { s.state = st; if (onState) onState(st); };
    s.stop = () => { s.stopped = true; if (s.ctrl) s.ctrl.abort(); };
    s.finish = () => { s.finished = true; };
    (async () => {
      let backoff = 500, first = true;
      while (!s.stopped) {
        s.ctrl = new AbortController();
        setState('connecting');
        try {
          const hd = authHeaders({ Accept: 'text/event-stream' });
          if (s.lastId) hd['Last-Event-ID'] = s.lastId;
          const res = await fetch(url, { headers: hd, signal: s.ctrl.signal, cache: 'no-store' });
          if (res.status === 401) { setState('auth'); openResolve(); askForKey(); return; }
          if (res.status === 404) { setState('gone'); openResolve(); return; }
          if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
          setState('open');
          openResolve();
          if (onOpen) onOpen(!first);
          first = false;
          backoff = 500;
          await readEvents(res.body, s, onEvent);
          if (s.finished) { setState('ended'); return; }
        } catch (e) {
          if (s.stopped) return;
        }
        if (s.stopped) return;
        setState('retry');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10000);
      }
    })();
    return s;
  }

  async function readEvents(body, s, onEvent) {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = '', type = '', data = [], id = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += dec.decode(value, { stream: true });
        // Keep a trailing \r: its \n may come in the next chunk.
        const cut = buf.endsWith('\r') ? buf.length - 1 : buf.length;
        const lines = buf.slice(0, cut).split(/\r\n|\r|\n/);
        buf = lines.pop() + buf.slice(cut);
        for (const line of lines) {
          if (line === '') {
            if (id !== null) s.lastId = id;
            if (data.length) {
              try { onEvent(type || 'message', data.join('\n'), id); } catch (e) { console.error(e); }
            }
            type = ''; data = []; id = null;
            if (s.stopped) return;
            continue;
          }
          if (line[0] === ':') continue;
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          let val = i < 0 ? '' : line.slice(i + 1);
          if (val[0] === ' ') val = val.slice(1);
          if (field === 'event') type = val;
          else if (field === 'data') data.push(val);
          else if (field === 'id') id = val;
        }
      }
    } finally {
      reader.cancel().catch(() => { /* already closed or failed */ });
    }
  }

  // The app-wide stream of every job's events: the live indicator, and the current page's
  // onEvent. Log events are not parsed here (no page needs every job's logs).
  const liveEl = document.getElementById('live');
  const LIVE_TEXT = { open: 'Live', connecting: 'Connecting…', retry: 'Offline, retrying', auth: 'Needs API key', stopped: 'Off' };
  const live = {
    stream: null,
    setState(st) {
      const state = st === 'open' ? 'live' : st === 'connecting' ? 'connecting' : st === 'auth' ? 'auth' : 'offline';
      liveEl.dataset.state = state;
      liveEl.lastElementChild.textContent = LIVE_TEXT[st] || st;
      liveEl.title = state === 'live' ? 'Connected to the event stream' : 'Event stream: ' + (LIVE_TEXT[st] || st);
    },
    restart() {
      if (this.stream) this.stream.stop();
      this.stream = openStream('/api/v1/events', {
        onState: (st) => this.setState(st),
        onOpen: (reconnected) => { if (reconnected && page && page.onResync) page.onResync(); },
        onEvent: (type, data) => {
          if (!page || !page.onEvent || type === 'log') return;
          if (type === 'lagged' || type === 'resync') { if (page.onResync) page.onResync(); return; }
          let d;
          try { d = JSON.parse(data); } catch { return; }
          page.onEvent(type, d);
        },
      });
    },
  };

  // ---------------------------------------------------------------- shared job widgets

  function badge(status) {
    return h('span', { class: 'badge', 'data-status': status || '' }, status || '?');
  }

  function progressBox(id) {
    return h('div', { class: 'pbox' },
      h('div', { class: 'progress', 'data-job-id': id, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 },
        h('div', { class: 'bar', style: 'width: 0%' })),
      h('span', { class: 'pct' }, '0%'),
      h('span', { class: 'desc' }));
  }
  function setProgress(box, progress, description, status) {
    const p = pct(progress);
    const bar = box.querySelector('.bar');
    const w = p + '%';
    if (bar.style.width !== w) bar.style.width = w;
    const pr = box.querySelector('.progress');
    if (pr.getAttribute('aria-valuenow') !== String(p)) pr.setAttribute('aria-valuenow', p);
    if (status && pr.dataset.status !== status) pr.dataset.status = status;
    const pt = box.querySelector('.pct');
    const txt = Math.round(p) + '%';
    if (pt.textContent !== txt) pt.textContent = txt;
    if (description !== undefined) {
      const d = box.querySelector('.desc');
      if (d.textContent !== (description || '')) { d.textContent = description || ''; d.title = description || ''; }
    }
  }

  // Which buttons a job in this status gets, of those the key may use: start, stop and retry
  // need role run; delete needs admin, or run for a job the key added.
  function actionsFor(job) {
    const st = job.status;
    const a = [];
    if (!may('run')) return a;
    if (st === 'PENDING' && !job.started_at && !job.scheduled_at) a.push('start');
    if (st === 'PENDING' || st === 'RUNNING') a.push('stop');
    if (st === 'STOPPED' || st === 'ERROR' || st === 'COMPLETED') a.push('retry');
    const mine = !me || me.open || may('admin') || job.added_by === me.key;
    if (st !== 'DELETED' && mine) a.push('delete');
    return a;
  }
  const ACTION_LABEL = { start: 'Start', stop: 'Stop', retry: 'Retry', delete: 'Delete' };
  function actionButtons(job) {
    return actionsFor(job).map((a) => h('button', {
      type: 'button', class: 'small ' + (a === 'delete' ? 'danger' : a === 'stop' ? 'warn' : ''),
      'data-action': a, title: a === 'retry' && job.status !== 'STOPPED' ? 'Add a new job with the same type and params, started' : null,
    }, ACTION_LABEL[a]));
  }

  function retryId(id) {
    const base = String(id).replace(/-retry-[a-z0-9]+$/, '');
    return base + '-retry-' + Date.now().toString(36).slice(-5) + Math.random().toString(36).slice(2, 4);
  }

  // Runs a row/page action. Returns {newJobId} for a retry that added a job.
  async function runAction(action, job, btn) {
    const id = job.job_id;
    if (action === 'delete' && btn && btn.dataset.armed !== '1') {
      btn.dataset.armed = '1';
      btn.textContent = 'Confirm delete';
      setTimeout(() => { if (btn.isConnected) { btn.dataset.armed = ''; btn.textContent = 'Delete'; } }, 3000);
      return null;
    }
    if (btn) btn.disabled = true;
    try {
      if (action === 'stop') {
        await rpc('stop_job', { job_id: id });
        toast(`Stop requested for ${id}`);
      } else if (action === 'start') {
        await rpc('start_job', { job_id: id });
        toast(`Started ${id}`);
      } else if (action === 'delete') {
        await rpc('delete_job', { job_id: id, force: true });
        toast(`Deleted ${id}`);
      } else if (action === 'retry') {
        if (job.status === 'STOPPED') {
          await rpc('start_job', { job_id: id });
          toast(`Started ${id} again`);
        } else {
          const full = await getJson('/api/v1/jobs/' + encodeURIComponent(id));
          const newId = retryId(id);
          const req = { job_id: newId, job_type: full.job_type, params: full.params || {}, start: true };
          if (full.max_attempts > 1) req.max_attempts = full.max_attempts;
          if (full.priority) req.priority = full.priority;
          await rpc('add_job', req);
          toast(h('span', null, 'Retrying as ', h('a', { href: jobHref(newId) }, newId)));
          return { newJobId: newId };
        }
      }
      return {};
    } catch (e) {
      if (e.status !== 401) toast(`${ACTION_LABEL[action]} ${id}: ${e.message}`, 'error');
      return null;
    } finally {
      if (btn && btn.isConnected) btn.disabled = false;
    }
  }

  let typesCache = null;
  async function jobTypes(force) {
    if (!typesCache || force) typesCache = await rpc('list_job_types');
    return typesCache;
  }

  // ---------------------------------------------------------------- jobs page

  function jobsPage(query) {
    const st = {
      status: STATUSES.includes(query.get('status')) ? query.get('status') : '',
      type: query.get('type') || '',
      cursor: null, back: [], next: null, total: null, loaded: false, seq: 0, oldest: null,
    };
    const rows = new Map(); // job_id → {tr, job}
    const pending = new Map(); // job_id → patch
    const tbody = h('tbody');
    const countEl = h('span', { class: 'muted', id: 'jobs-count' });
    const pageInfo = h('span', { class: 'muted', id: 'page-info' });
    const btnFirst = h('button', { type: 'button', 'data-page': 'first', disabled: true }, '« First');
    const btnPrev = h('button', { type: 'button', 'data-page': 'prev', disabled: true }, '‹ Prev');
    const btnNext = h('button', { type: 'button', 'data-page': 'next', disabled: true }, 'Next ›');
    const typeSel = h('select', { id: 'type-filter', 'aria-label': 'Job type' }, h('option', { value: '' }, 'All types'));
    const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': 'Status' },
      ['', ...STATUSES].map((s) => h('button', {
        type: 'button', 'data-filter-status': s, 'aria-pressed': String(s === st.status),
      }, s || 'All')));
    const errEl = h('div', { class: 'error-box', hidden: true });
    const table = h('table', { class: 'jobs', id: 'jobs-table' },
      h('thead', null, h('tr', null,
        h('th', null, 'Job'), h('th', null, 'Type'), h('th', null, 'Status'),
        h('th', { class: 'c-progress' }, 'Progress'), h('th', null, 'Updated'), h('th', { class: 'c-actions' }, ''))),
      tbody);
    const el = h('section', { class: 'page page-jobs' },
      h('div', { class: 'toolbar' }, tabs,
        h('label', { class: 'inline' }, 'Type ', typeSel),
        h('span', { class: 'spacer' }),
        countEl,
        h('a', { class: 'button primary', href: '#/types' }, '+ Add job')),
      errEl,
      h('div', { class: 'table-wrap' }, table),
      h('div', { class: 'pager' }, btnFirst, btnPrev, pageInfo, btnNext));

    jobTypes().then((d) => {
      const names = d.job_types.map((t) => t.job_type);
      if (st.type && !names.includes(st.type)) names.push(st.type);
      for (const n of names) typeSel.append(h('option', { value: n }, n));
      typeSel.value = st.type;
    }).catch(() => { if (st.type) { typeSel.append(h('option', { value: st.type }, st.type)); typeSel.value = st.type; } });

    function syncUrl() {
      const q = new URLSearchParams();
      if (st.status) q.set('status', st.status);
      if (st.type) q.set('type', st.type);
      const hash = '#/jobs' + (q.toString() ? '?' + q : '');
      if (location.hash !== hash) history.replaceState(null, '', hash);
    }
    function matches(job) {
      return (!st.status || job.status === st.status) && (!st.type || job.job_type === st.type);
    }

    function updateRow(r, job) {
      const prev = r.job;
      r.job = Object.assign({}, prev, job);
      const j = r.job, tr = r.tr;
      if (tr.dataset.status !== j.status) {
        tr.dataset.status = j.status;
        const b = tr.querySelector('.badge');
        b.dataset.status = j.status;
        b.textContent = j.status;
        fill(tr.querySelector('.c-actions'), ...actionButtons(j));
      }
      setProgress(tr.querySelector('.pbox'), j.progress, j.description, j.status);
      const up = tr.querySelector('.c-updated');
      if (up.dataset.t !== j.updated_at) {
        up.dataset.t = j.updated_at || '';
        up.textContent = fmtTime(j.updated_at);
        up.title = fmtTime(j.updated_at, true);
      }
      const err = tr.querySelector('.c-status .err');
      const msg = j.error ? `${j.error.code || j.error.kind}: ${j.error.message}` : '';
      err.textContent = j.error ? j.error.code || j.error.kind : '';
      err.title = msg;
    }
    function makeRow(job) {
      const tr = h('tr', { 'data-job-id': job.job_id },
        h('td', { class: 'c-id' }, h('a', { href: jobHref(job.job_id) }, job.job_id)),
        h('td', { class: 'c-type' }, job.job_type || ''),
        h('td', { class: 'c-status' }, badge(job.status), h('span', { class: 'err' })),
        h('td', { class: 'c-progress' }, progressBox(job.job_id)),
        h('td', { class: 'c-updated' }),
        h('td', { class: 'c-actions' }));
      const r = { tr, job: {} };
      updateRow(r, job);
      return r;
    }

    function render(jobs) {
      const seen = new Set();
      let i = 0;
      for (const job of jobs) {
        seen.add(job.job_id);
        let r = rows.get(job.job_id);
        if (r) updateRow(r, job);
        else { r = makeRow(job); rows.set(job.job_id, r); }
        if (tbody.children[i] !== r.tr) tbody.insertBefore(r.tr, tbody.children[i] || null);
        i++;
      }
      for (const [id, r] of rows) if (!seen.has(id)) { r.tr.remove(); rows.delete(id); }
      const empty = tbody.querySelector('.empty');
      if (empty) empty.remove();
      if (!jobs.length) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: 6 }, 'No jobs' + (st.status || st.type ? ' match these filters.' : ' yet. Add one from Job types.'))));
    }

    async function load() {
      const seq = ++st.seq;
      const params = { limit: PAGE_SIZE, order: 'newest' };
      if (st.status) params.status_filter = st.status;
      if (st.type) params.job_type = st.type;
      if (st.cursor) params.cursor = st.cursor;
      let data;
      try {
        data = await rpc('list_jobs', params);
      } catch (e) {
        if (seq !== st.seq || disposed) return;
        errEl.hidden = false;
        errEl.textContent = e.status === 401 ? 'Waiting for the API key…' : 'Could not list jobs: ' + e.message;
        return;
      }
      if (seq !== st.seq || disposed) return;
      errEl.hidden = true;
      st.loaded = true;
      st.next = data.next_cursor || null;
      st.total = data.total_count;
      render(data.jobs || []);
      st.oldest = data.jobs && data.jobs.length >= PAGE_SIZE ? data.jobs[data.jobs.length - 1].created_at || null : null;
      const from = st.back.length * PAGE_SIZE;
      const n = (data.jobs || []).length;
      countEl.textContent = st.total != null ? `${Number(st.total).toLocaleString()} job${st.total === 1 ? '' : 's'}` : '';
      pageInfo.textContent = n ? `Page ${st.back.length + 1} · ${(from + 1).toLocaleString()}–${(from + n).toLocaleString()}` : `Page ${st.back.length + 1}`;
      btnNext.disabled = !st.next;
      btnPrev.disabled = btnFirst.disabled = !st.back.length;
    }
    const refresh = throttle(load, 1000);

    function reset() {
      st.cursor = null; st.back = []; st.next = null;
      syncUrl();
      rows.clear(); pending.clear(); fill(tbody);
      load();
    }
    tabs.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-filter-status]');
      if (!b) return;
      st.status = b.dataset.filterStatus;
      for (const x of tabs.children) x.setAttribute('aria-pressed', String(x === b));
      reset();
    });
    typeSel.addEventListener('change', () => { st.type = typeSel.value; reset(); });
    btnNext.addEventListener('click', () => { if (!st.next) return; st.back.push(st.cursor); st.cursor = st.next; load(); });
    btnPrev.addEventListener('click', () => { if (!st.back.length) return; st.cursor = st.back.pop(); load(); });
    btnFirst.addEventListener('click', () => { st.back = []; st.cursor = null; load(); });
    tbody.addEventListener('click', async (ev) => {
      const b = ev.target.closest('button[data-action]');
      if (!b) return;
      const r = rows.get(b.closest('tr').dataset.jobId);
      if (!r) return;
      const out = await runAction(b.dataset.action, r.job, b);
      if (!out) return;
      if (out.newJobId) refresh();
      // The stream updates the row; read it back too, in case the stream is down.
      rpc('get_status', { job_id: r.job.job_id }).then((d) => {
        if (rows.get(r.job.job_id) === r) { pending.set(r.job.job_id, d.status); flush(); }
      }).catch(() => {});
    });

    const flush = frameBatcher(() => {
      for (const [id, patch] of pending) {
        const r = rows.get(id);
        if (r) updateRow(r, patch);
      }
      pending.clear();
    });

    let disposed = false;
    const page = {
      el,
      onEvent(type, d) {
        if (!st.loaded) return;
        if (st.type && d.job_type && d.job_type !== st.type) return;
        const r = rows.get(d.job_id);
        if (type === 'job') {
          if (r) {
            pending.set(d.job_id, d);
            flush();
            if (!st.cursor && st.status && d.status !== st.status) refresh();
          } else if (!st.cursor && matches(d) && (st.oldest == null || (d.created_at || '') >= st.oldest)) {
            // A job that belongs on this first page (newest first): a new one, or one that
            // entered the status filter. Older ones belong to later pages.
            refresh();
          }
        } else if (type === 'progress' && r) {
          const cur = pending.get(d.job_id);
          const status = (cur && cur.status) || r.job.status;
          if (TERMINAL.has(status)) return;
          pending.set(d.job_id, Object.assign({}, cur, { progress: d.progress, description: d.description }));
          flush();
        }
      },
      onResync() { refresh(); },
      dispose() { disposed = true; },
    };
    syncUrl();
    load();
    return page;
  }

  // ---------------------------------------------------------------- job page

  function jobPage(id) {
    let job = null, params, stream = null, disposed = false;
    const head = h('div', { class: 'job-head' });
    const pbox = progressBox(id);
    const actions = h('div', { class: 'actions', id: 'job-actions' });
    const times = h('dl', { class: 'kv', id: 'job-times' });
    const auditEl = h('div', { id: 'job-audit-list' });
    const flowEl = h('div', { id: 'job-flow-graph', class: 'flow-wrap' });
    const flowInfo = h('p', { class: 'muted small', id: 'job-flow-info' });
    const flowCard = h('div', { class: 'card', id: 'job-flow', hidden: true }, h('h2', null, 'Flow'), flowInfo, flowEl);
    const eventName = h('input', { id: 'event-name', type: 'text', placeholder: 'event name' });
    const eventPayload = h('textarea', { id: 'event-payload', rows: 2 }, '{"approved": true}');
    const eventSend = h('button', { type: 'submit', id: 'event-send', class: 'primary' }, 'Send event');
    const eventForm = h('form', { id: 'send-event', class: 'card', hidden: true, 'data-needs': 'run' },
      h('h2', null, 'Send an event'),
      h('p', { class: 'muted small', id: 'event-waits' }),
      h('label', null, 'Name ', eventName), h('label', null, 'Payload (JSON) ', eventPayload), eventSend);
    const attempts = h('div', { id: 'job-attempts' });
    const paramsEl = h('pre', { id: 'job-params', class: 'json' });
    const resultEl = h('pre', { id: 'job-result', class: 'json' });
    const errorEl = h('div', { id: 'job-error' });
    const logsEl = h('div', { class: 'logs', id: 'job-logs' });
    const logCount = h('span', { class: 'muted small', id: 'log-count' });
    const msgEl = h('div', { class: 'error-box', hidden: true });
    const el = h('section', { class: 'page page-job', 'data-job-id': id },
      h('div', { class: 'crumbs' }, h('a', { href: '#/jobs' }, 'Jobs'), ' / ', h('span', null, id)),
      msgEl,
      h('div', { class: 'card' }, head, h('div', { class: 'job-progress' }, pbox), actions),
      eventForm,
      flowCard,
      h('div', { class: 'grid' },
        h('div', { class: 'card' }, h('h2', null, 'Params'), paramsEl),
        h('div', { class: 'card' }, h('h2', null, 'Result'), resultEl),
        h('div', { class: 'card', id: 'job-error-card' }, h('h2', null, 'Error'), errorEl),
        h('div', { class: 'card' }, h('h2', null, 'Attempts'), attempts),
        h('div', { class: 'card' }, h('h2', null, 'Timestamps'), times),
        h('div', { class: 'card', id: 'job-audit' }, h('h2', null, 'Who did what'), auditEl)),
      h('div', { class: 'card' }, h('h2', null, 'Logs ', logCount), logsEl));

    function kv(dl, pairs) {
      fill(dl, ...pairs.filter(([, v]) => v != null && v !== '').flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
    }
    function timeVal(s) {
      return s ? h('span', { title: s + ' UTC' }, fmtTime(s, true), h('span', { class: 'muted' }, ' · ' + ago(s))) : null;
    }

    function show(j) {
      const statusChanged = !job || job.status !== j.status;
      job = Object.assign({}, job, j);
      fill(head, 
        h('h1', { id: 'job-id' }, job.job_id),
        h('span', { id: 'job-status' }, badge(job.status)),
        h('a', { class: 'type-link', href: '#/types/' + encodeURIComponent(job.job_type || '') }, job.job_type || ''),
        job.priority ? h('span', { class: 'chip' }, 'priority ' + job.priority) : null,
        job.unique_key ? h('span', { class: 'chip', title: 'unique_key' }, 'key ' + job.unique_key) : null,
        job.queue ? h('a', { class: 'chip', id: 'job-queue', href: '#/queues', title: 'queue' }, 'queue ' + job.queue) : null,
        job.concurrency_key ? h('span', { class: 'chip', id: 'job-concurrency-key', title: 'concurrency_key' }, 'tenant ' + job.concurrency_key) : null,
        job.added_by ? h('span', { class: 'chip', id: 'job-added-by', title: 'the key that added it' }, 'added by ' + job.added_by) : null,
        job.trace_id ? (job.trace_url
          ? h('a', { class: 'chip', id: 'job-trace', href: job.trace_url, target: '_blank', rel: 'noopener', title: 'its OpenTelemetry trace' }, 'trace ' + job.trace_id.slice(0, 8))
          : h('span', { class: 'chip', id: 'job-trace', title: 'OpenTelemetry trace id' }, 'trace ' + job.trace_id.slice(0, 8))) : null,
        job.held_by && job.status === 'PENDING'
          ? h('span', { class: 'chip', id: 'job-held', title: 'why it waits' },
            'held: ' + job.held_by + (job.eligible_at ? ' until ' + fmtTime(job.eligible_at, true) : ''))
          : null);
      el.dataset.status = job.status;
      setProgress(pbox, job.progress, job.description, job.status);
      if (statusChanged) fill(actions, ...actionButtons(job));
      if (params !== undefined) paramsEl.textContent = pretty(params);
      resultEl.textContent = job.result == null ? '—' : pretty(job.result);
      const e = job.error;
      fill(errorEl, e
        ? h('dl', { class: 'kv' }, h('dt', null, 'kind'), h('dd', null, e.kind), h('dt', null, 'code'), h('dd', null, e.code),
          h('dt', null, 'message'), h('dd', { class: 'pre' }, e.message), h('dt', null, 'retryable'), h('dd', null, String(!!e.retryable)))
        : h('span', { class: 'muted' }, 'None'));
      el.querySelector('#job-error-card').classList.toggle('has-error', !!e);
      const errs = job.errors || [];
      fill(attempts, 
        h('p', null, job.attempt != null ? `Attempt ${job.attempt} of ${job.max_attempts}` : 'Attempt 1 of 1'),
        errs.length ? h('table', { class: 'mini' },
          h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'At'), h('th', null, 'Error'))),
          h('tbody', null, errs.map((x) => h('tr', null, h('td', null, x.attempt), h('td', null, fmtTime(x.at, true)),
            h('td', null, `${x.error.kind} · ${x.error.code}: ${x.error.message}${x.error.retryable ? ' (retryable)' : ''}`))))) : null);
      kv(times, [['created', timeVal(job.created_at)], ['started', timeVal(job.started_at)], ['updated', timeVal(job.updated_at)],
        ['completed', timeVal(job.completed_at)], ['scheduled', timeVal(job.scheduled_at)], ['run at', timeVal(job.run_at)]]);
      const w = job.waiting_for;
      const waitsForEvent = job.status === 'PENDING' && w && w.kind === 'event';
      eventForm.hidden = !(waitsForEvent && may('run'));
      if (waitsForEvent && !eventName.value) eventName.value = w.name;
      el.querySelector('#event-waits').textContent = waitsForEvent ? w.description : '';
      refreshFlow();
      const trail = job.audit || [];
      fill(auditEl, trail.length
        ? h('ol', { class: 'audit' }, trail.map((a) => h('li', { 'data-action': a.action },
          h('strong', null, a.action), ' by ', h('code', null, a.key), h('span', { class: 'muted' }, ' · ' + fmtTime(a.at, true)))))
        : h('span', { class: 'muted' }, job.added_by ? 'Added by ' + job.added_by + '; nobody acted on it since.' : 'Nothing recorded.'));
    }

    // Logs: the latest run's lines from get_logs, then the job stream's log events.
    let logsReady = false, early = [], lineCount = 0;
    const logQueue = [];
    const logKey = (e) => `${e.time}\u0000${e.source}\u0000${e.message}`;
    const flushLogs = frameBatcher(() => {
      const atBottom = logsEl.scrollHeight - logsEl.scrollTop - logsEl.clientHeight < 30;
      const batch = logQueue.splice(0).slice(-MAX_LOG_LINES);
      const frag = document.createDocumentFragment();
      for (const e of batch) {
        frag.append(h('div', { class: 'log', 'data-level': e.level || '', 'data-source': e.source || '' },
          h('time', { title: e.time }, fmtTime(e.time)), h('span', { class: 'src' }, e.source), h('span', { class: 'lvl' }, e.level),
          h('span', { class: 'msg' }, e.message)));
      }
      logsEl.append(frag);
      while (logsEl.childElementCount > MAX_LOG_LINES) logsEl.firstElementChild.remove();
      logCount.textContent = `(${lineCount.toLocaleString()} line${lineCount === 1 ? '' : 's'}${lineCount > MAX_LOG_LINES ? `, last ${MAX_LOG_LINES.toLocaleString()} shown` : ''})`;
      if (atBottom) logsEl.scrollTop = logsEl.scrollHeight;
    });
    function addLog(e) { lineCount++; logQueue.push(e); flushLogs(); }

    function startStream() {
      if (stream) stream.stop();
      stream = openStream('/api/v1/jobs/' + encodeURIComponent(id) + '/events', {
        onState: (s) => { el.dataset.stream = s; },
        onEvent: (type, data) => {
          if (disposed) return;
          let d;
          try { d = JSON.parse(data); } catch { return; }
          if (type === 'job') {
            show(d);
            if (TERMINAL.has(d.status)) stream.finish();
          } else if (type === 'progress') {
            if (job && !TERMINAL.has(job.status)) { job.progress = d.progress; job.description = d.description; setProgress(pbox, d.progress, d.description); }
          } else if (type === 'log') {
            if (logsReady) addLog(d); else early.push(d);
          } else if (type === 'resync') {
            loadJob();
          }
        },
      });
      return stream;
    }

    async function loadJob() {
      try {
        const j = await getJson('/api/v1/jobs/' + encodeURIComponent(id));
        if (disposed) return;
        params = j.params;
        delete j.params;
        msgEl.hidden = true;
        show(j);
      } catch (e) {
        if (disposed) return;
        msgEl.hidden = false;
        msgEl.textContent = e.status === 404 ? `Job ${id} not found.` : e.status === 401 ? 'Waiting for the API key…' : 'Could not read the job: ' + e.message;
      }
    }

    // The flow under this job (its children, theirs, or an add_flow's jobs), redrawn as they move.
    let flowIds = new Set();
    const refreshFlow = throttle(async () => {
      if (disposed) return;
      try {
        const f = await call('queue_get_flow', { job_id: id });
        if (disposed) return;
        flowIds = new Set((f.nodes || []).map((n) => n.job_id));
        const show = (f.count || 0) > 1 || (job && (job.parent_id || job.waiting_for));
        flowCard.hidden = !show;
        if (!show) return;
        const counts = Object.entries(f.by_status || {}).map(([k, v]) => `${v} ${k}`).join(', ');
        flowInfo.textContent = `${f.count} job${f.count === 1 ? '' : 's'}: ${counts}` +
          (f.count > FLOW_MAX_NODES ? ` (the first ${FLOW_MAX_NODES} drawn)` : '') +
          (job && job.parent_id ? ` · part of ${job.parent_id}` : '');
        fill(flowEl, flowGraph(f));
      } catch (e) {
        if (e.status !== 401) flowInfo.textContent = 'Could not read the flow: ' + e.message;
      }
    }, 300);

    eventForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let payload = null;
      const text = eventPayload.value.trim();
      if (text) {
        try { payload = JSON.parse(text); } catch (e) { toast('The payload is not JSON: ' + e.message, 'error'); return; }
      }
      eventSend.disabled = true;
      try {
        const d = await call('queue_send_event', { job_id: id, name: eventName.value.trim(), payload });
        toast(d.resumed ? `Event sent: ${id} resumes` : `Event sent to ${id}`, 'ok');
        eventForm.hidden = true;
      } catch (e) {
        toast('Could not send the event: ' + e.message, 'error');
      } finally {
        eventSend.disabled = false;
      }
    });

    actions.addEventListener('click', async (ev) => {
      const b = ev.target.closest('button[data-action]');
      if (!b || !job) return;
      const out = await runAction(b.dataset.action, job, b);
      if (!out || disposed) return;
      if (out.newJobId) { location.hash = jobHref(out.newJobId); return; }
      try { const d = await rpc('get_status', { job_id: id }); show(d.status); } catch { /* shown by the stream */ }
      if (job && !TERMINAL.has(job.status) && (!stream || stream.state === 'ended')) startStream();
    });

    (async () => {
      const s = startStream();
      loadJob();
      await Promise.race([s.opened, sleep(2000)]);
      if (disposed) return;
      try {
        const d = await rpc('get_logs', { job_id: id });
        const entries = d.entries || [];
        const seen = new Set(entries.map(logKey));
        for (const e of entries) addLog(e);
        for (const e of early) if (!seen.has(logKey(e))) addLog(e);
      } catch (e) {
        if (e.status !== 401 && e.domain !== 'JOB_NOT_FOUND') logsEl.append(h('div', { class: 'muted' }, 'Could not read logs: ' + e.message));
        for (const x of early) addLog(x);
      }
      early = [];
      logsReady = true;
      if (!lineCount) logCount.textContent = '(none yet)';
    })();

    return {
      el,
      // The app-wide stream: picks the job up again if it restarts after its own stream ended.
      onEvent(type, d) {
        if (type === 'job' && d.job_id !== id && (flowIds.has(d.job_id) || d.parent_id === id)) refreshFlow();
        if (type !== 'job' || d.job_id !== id) return;
        if (stream && (stream.state === 'ended' || stream.state === 'retry')) {
          show(d);
          if (!TERMINAL.has(d.status) && stream.state === 'ended') startStream();
        }
      },
      onResync() { loadJob(); },
      dispose() { disposed = true; if (stream) stream.stop(); },
    };
  }

  // ---------------------------------------------------------------- job types page

  function schemaType(s) {
    if (!s || typeof s !== 'object') return null;
    let t = s.type;
    if (Array.isArray(t)) t = t.find((x) => x !== 'null') || t[0];
    if (!t && Array.isArray(s.enum)) return 'enum';
    if (!t && s.properties) return 'object';
    return t || null;
  }
  function typeOk(t, v) {
    switch (t) {
      case 'string': return typeof v === 'string';
      case 'number': return typeof v === 'number' && isFinite(v);
      case 'integer': return typeof v === 'number' && Number.isInteger(v);
      case 'boolean': return typeof v === 'boolean';
      case 'object': return v !== null && typeof v === 'object' && !Array.isArray(v);
      case 'array': return Array.isArray(v);
      case 'null': return v === null;
      default: return true;
    }
  }
  const TYPE_WORD = { string: 'a string', number: 'a number', integer: 'an integer', boolean: 'true or false', object: 'a JSON object', array: 'a JSON array', null: 'null' };

  // The subset of JSON Schema a form checks: type, enum, const, minimum/maximum (and
  // exclusive), minLength/maxLength, pattern, required, properties, items. Returns a message or ''.
  function check(s, v, path) {
    if (!s || typeof s !== 'object') return '';
    const at = path ? path + ': ' : '';
    if (s.type !== undefined) {
      const ts = Array.isArray(s.type) ? s.type : [s.type];
      if (!ts.some((t) => typeOk(t, v))) return at + 'must be ' + ts.map((t) => TYPE_WORD[t] || t).join(' or ');
    }
    if (Array.isArray(s.enum) && !s.enum.some((x) => JSON.stringify(x) === JSON.stringify(v))) return at + 'must be one of ' + s.enum.map((x) => JSON.stringify(x)).join(', ');
    if ('const' in s && JSON.stringify(s.const) !== JSON.stringify(v)) return at + 'must be ' + JSON.stringify(s.const);
    if (typeof v === 'number') {
      if (typeof s.minimum === 'number' && v < s.minimum) return at + `must be ≥ ${s.minimum}`;
      if (typeof s.maximum === 'number' && v > s.maximum) return at + `must be ≤ ${s.maximum}`;
      if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) return at + `must be > ${s.exclusiveMinimum}`;
      if (typeof s.exclusiveMaximum === 'number' && v >= s.exclusiveMaximum) return at + `must be < ${s.exclusiveMaximum}`;
      if (typeof s.multipleOf === 'number' && s.multipleOf > 0 && Math.abs(v / s.multipleOf - Math.round(v / s.multipleOf)) > 1e-9) return at + `must be a multiple of ${s.multipleOf}`;
    }
    if (typeof v === 'string') {
      const n = [...v].length;
      if (typeof s.minLength === 'number' && n < s.minLength) return at + (s.minLength === 1 ? 'must not be empty' : `must be at least ${s.minLength} characters`);
      if (typeof s.maxLength === 'number' && n > s.maxLength) return at + `must be at most ${s.maxLength} characters`;
      if (typeof s.pattern === 'string') {
        try { if (!new RegExp(s.pattern, 'u').test(v)) return at + `must match ${s.pattern}`; } catch { /* unsupported pattern: the server checks */ }
      }
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === 'number' && v.length < s.minItems) return at + `needs at least ${s.minItems} items`;
      if (typeof s.maxItems === 'number' && v.length > s.maxItems) return at + `takes at most ${s.maxItems} items`;
      if (s.items && typeof s.items === 'object' && !Array.isArray(s.items)) {
        for (let i = 0; i < v.length; i++) { const m = check(s.items, v[i], `${path || ''}[${i}]`); if (m) return m; }
      }
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const r of s.required || []) if (!(r in v)) return `${path ? path + '.' : ''}${r} is required`;
      const props = s.properties || {};
      for (const [k, ps] of Object.entries(props)) {
        if (k in v) { const m = check(ps, v[k], path ? path + '.' + k : k); if (m) return m; }
      }
      if (s.additionalProperties === false) {
        const extra = Object.keys(v).find((k) => !(k in props));
        if (extra) return `${path ? path + '.' : ''}${extra} is not allowed`;
      }
    }
    return '';
  }

  // One input for one property of a params schema.
  function field(name, ps, required) {
    ps = ps && typeof ps === 'object' ? ps : {};
    const t = schemaType(ps);
    const id = 'f-' + Math.random().toString(36).slice(2, 9);
    const hasDef = 'default' in ps;
    let input, kind;
    if (Array.isArray(ps.enum)) {
      kind = 'enum';
      input = h('select', { id, name },
        (!required || !hasDef) ? h('option', { value: '' }, required ? '— choose —' : '(not set)') : null,
        ps.enum.map((v, i) => h('option', { value: String(i) }, typeof v === 'string' ? v : JSON.stringify(v))));
      if (hasDef) { const i = ps.enum.findIndex((v) => JSON.stringify(v) === JSON.stringify(ps.default)); if (i >= 0) input.value = String(i); }
    } else if (t === 'boolean') {
      kind = 'boolean';
      input = h('input', { id, name, type: 'checkbox', checked: ps.default === true });
    } else if (t === 'number' || t === 'integer') {
      kind = 'number';
      input = h('input', { id, name, type: 'number', inputmode: t === 'integer' ? 'numeric' : 'decimal', step: t === 'integer' ? '1' : 'any',
        min: typeof ps.minimum === 'number' ? ps.minimum : null, max: typeof ps.maximum === 'number' ? ps.maximum : null,
        value: hasDef && typeof ps.default === 'number' ? String(ps.default) : '' });
    } else if (t === 'string') {
      kind = 'string';
      input = h('input', { id, name, type: 'text', spellcheck: 'false', value: hasDef && typeof ps.default === 'string' ? ps.default : '',
        placeholder: ps.examples && ps.examples.length ? String(ps.examples[0]) : (ps.format || null) });
    } else {
      kind = 'json';
      input = h('textarea', { id, name, rows: 3, spellcheck: 'false', class: 'mono', placeholder: t === 'array' ? '[ … ]' : t === 'object' ? '{ … }' : 'JSON value' });
      if (hasDef) input.value = JSON.stringify(ps.default, null, 2);
    }
    input.dataset.kind = kind;
    const range = [typeof ps.minimum === 'number' ? `≥ ${ps.minimum}` : '', typeof ps.maximum === 'number' ? `≤ ${ps.maximum}` : ''].filter(Boolean).join(', ');
    const hint = [t === 'enum' ? 'one of' : (t || 'any JSON'), range].filter(Boolean).join(' · ');
    const label = h('label', { for: id }, h('span', { class: 'fname' }, name), required ? h('span', { class: 'req', title: 'required' }, ' *') : null, ' ', h('span', { class: 'hint' }, hint));
    const wrap = h('div', { class: 'field' + (kind === 'boolean' ? ' field-bool' : ''), 'data-field': name },
      kind === 'boolean' ? h('div', { class: 'checkline' }, input, label) : [label, input],
      ps.description ? h('div', { class: 'desc small muted' }, ps.description) : null,
      hasDef ? h('div', { class: 'small muted' }, 'default: ', h('code', null, JSON.stringify(ps.default))) : null,
      h('div', { class: 'field-error', 'data-field': name, role: 'alert' }));
    // Read the input: {value} | {omit: true} | {error}.
    const read = () => {
      if (kind === 'boolean') return (input.checked || required || hasDef) ? { value: input.checked } : { omit: true };
      if (kind === 'enum') return input.value === '' ? { omit: true } : { value: ps.enum[Number(input.value)] };
      if (kind === 'number') {
        if (input.validity && input.validity.badInput) return { error: 'must be ' + TYPE_WORD[t] };
        const raw = input.value.trim();
        if (raw === '') return { omit: true };
        const n = Number(raw);
        return isFinite(n) ? { value: n } : { error: 'must be ' + TYPE_WORD[t] };
      }
      if (kind === 'string') return input.value === '' ? { omit: true } : { value: input.value };
      const raw = input.value.trim();
      if (raw === '') return { omit: true };
      try { return { value: JSON.parse(raw) }; } catch (e) { return { error: 'is not valid JSON (' + e.message + ')' }; }
    };
    return { name, wrap, input, read, required, schema: ps };
  }

  function addForm(t) {
    const schema = t.params_schema && typeof t.params_schema === 'object' ? t.params_schema : {};
    const props = schema.properties && typeof schema.properties === 'object' ? schema.properties : null;
    const req = new Set(Array.isArray(schema.required) ? schema.required : []);
    const fields = props
      ? Object.entries(props).map(([n, ps]) => field(n, ps, req.has(n)))
      : [field('params', { type: 'object', description: 'The job\'s params as a JSON object', default: {} }, true)];
    const whole = !props;
    const meta = (name, input, label, hint) => {
      input.dataset.meta = name;
      return h('div', { class: 'field', 'data-meta-field': name },
        h('label', null, label, hint ? h('span', { class: 'hint' }, ' ' + hint) : null), input,
        h('div', { class: 'field-error', 'data-meta-error': name, role: 'alert' }));
    };
    const idIn = h('input', { type: 'text', placeholder: 'generated', spellcheck: 'false' });
    const prioIn = h('input', { type: 'number', step: '1', placeholder: '0' });
    const attIn = h('input', { type: 'number', step: '1', min: 1, max: 1000, placeholder: String((t.limits && t.limits.max_attempts) || 1) });
    const delayIn = h('input', { type: 'number', step: 'any', min: 0, placeholder: '0' });
    const startIn = h('input', { type: 'checkbox', checked: true });
    startIn.dataset.meta = 'start';
    const formErr = h('div', { class: 'form-error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Add job');
    const form = h('form', { class: 'add-form', 'data-needs': 'run', 'data-job-type': t.job_type, novalidate: true },
      h('h3', null, 'Add a job'),
      fields.length ? fields.map((f) => f.wrap) : h('p', { class: 'muted small' }, 'This job type takes no params.'),
      h('details', { class: 'more' }, h('summary', null, 'Job options'),
        h('div', { class: 'meta-grid' },
          meta('job_id', idIn, 'Job id', '(optional)'),
          meta('priority', prioIn, 'Priority', '(higher first)'),
          meta('max_attempts', attIn, 'Max attempts'),
          meta('delay_secs', delayIn, 'Delay (s)'))),
      h('div', { class: 'form-actions' }, h('label', { class: 'checkline' }, startIn, ' Start now'), submit),
      formErr);

    const metaErr = (n) => form.querySelector(`[data-meta-error="${n}"]`);
    function clearErrors() {
      for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
      for (const e of form.querySelectorAll('.invalid')) e.classList.remove('invalid');
      formErr.textContent = '';
    }
    function fieldError(name, msg) {
      const f = fields.find((x) => x.name === name);
      if (!f) return false;
      f.wrap.querySelector('.field-error').textContent = msg;
      f.input.classList.add('invalid');
      f.input.setAttribute('aria-invalid', 'true');
      return f;
    }

    form.addEventListener('input', (ev) => {
      const w = ev.target.closest('.field');
      if (w) { const e = w.querySelector('.field-error'); if (e) e.textContent = ''; ev.target.classList.remove('invalid'); ev.target.removeAttribute('aria-invalid'); }
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors();
      let params = {}, first = null;
      for (const f of fields) {
        f.input.removeAttribute('aria-invalid');
        const r = f.read();
        let msg = r.error || '';
        if (!msg && r.omit && f.required) msg = 'is required';
        if (!msg && !r.omit) msg = check(f.schema, r.value, '');
        if (!msg && whole && !r.omit) {
          msg = typeOk('object', r.value) ? check(schema, r.value, '') : 'must be a JSON object';
        }
        if (msg) { fieldError(f.name, msg.replace(/^: /, '')); first = first || f; continue; }
        if (whole) params = r.omit ? {} : r.value;
        else if (!r.omit) params[f.name] = r.value;
      }
      if (!first && !whole) {
        // Schema-level rules the fields cannot see (e.g. required without a property).
        const m = check({ required: Array.isArray(schema.required) ? schema.required : [] }, params, '');
        if (m) { formErr.textContent = m; first = {}; }
      }
      const req2 = { job_type: t.job_type, params, start: startIn.checked };
      const num = (inp, n, int) => {
        const raw = inp.value.trim();
        if (inp.validity.badInput) { metaErr(n).textContent = 'must be a number'; return false; }
        if (raw === '') return true;
        const v = Number(raw);
        if (!isFinite(v) || (int && !Number.isInteger(v))) { metaErr(n).textContent = int ? 'must be an integer' : 'must be a number'; return false; }
        req2[n] = v; return true;
      };
      let metaOk = num(prioIn, 'priority', true) & num(attIn, 'max_attempts', true) & num(delayIn, 'delay_secs', false);
      if (req2.max_attempts !== undefined && req2.max_attempts < 1) { metaErr('max_attempts').textContent = 'must be ≥ 1'; metaOk = 0; }
      if (req2.delay_secs !== undefined && req2.delay_secs < 0) { metaErr('delay_secs').textContent = 'must be ≥ 0'; metaOk = 0; }
      if (first || !metaOk) {
        if (first && first.input) first.input.focus();
        if (!metaOk) form.querySelector('details.more').open = true;
        return;
      }
      const jobId = idIn.value.trim() || `${t.job_type}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
      req2.job_id = jobId;
      submit.disabled = true;
      try {
        const d = await rpc('add_job', req2);
        location.hash = jobHref(d.job_id || jobId);
      } catch (e) {
        if (e.status === 401) { formErr.textContent = 'API key required.'; return; }
        const fieldName = e.field || '';
        let shown = false;
        const m = /^(?:jobs\[\d+\]\.)?params\.([^.[]+)/.exec(fieldName);
        const short = e.data && e.data.expected && typeof e.data.expected === 'string' && e.data.violation === 'value' ? e.data.expected : e.message.replace(/^queue: /, '');
        if (m) shown = !!fieldError(m[1], short);
        else if (fieldName === 'params' && whole) shown = !!fieldError('params', short);
        else if (['job_id', 'priority', 'max_attempts', 'delay_secs'].includes(fieldName)) {
          metaErr(fieldName).textContent = e.message.replace(/^queue: /, '');
          form.querySelector('details.more').open = true;
          shown = true;
        }
        formErr.textContent = shown ? 'The host refused the job: ' + e.message.replace(/^queue: /, '') : e.message;
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  function typeCard(t) {
    const l = t.limits || {};
    const g = t.grants || {};
    const grantList = [
      ...(g.dirs || []).map((d) => `dir ${d.guest} (${d.mode})`),
      ...(g.env || []).map((e) => `env ${e.name}`),
      ...(g.http ? (g.http.allow || []).map((a) => `http ${a}`) : []),
    ];
    const limitRows = [['memory', l.memory_mib != null ? l.memory_mib + ' MiB' : null], ['timeout', l.timeout_secs != null ? l.timeout_secs + ' s' : null],
      ['fuel', l.fuel == null ? 'unlimited' : Number(l.fuel).toLocaleString()], ['max concurrent', l.max_concurrent == null ? 'no limit' : l.max_concurrent],
      ['max attempts', l.max_attempts], ['priority', l.priority], ['result max', l.result_max_bytes != null ? Number(l.result_max_bytes).toLocaleString() + ' B' : null],
      ['log max', l.log_max_bytes != null ? Number(l.log_max_bytes).toLocaleString() + ' B' : null]];
    return h('article', { class: 'card type-card', id: 'type-' + t.job_type, 'data-type': t.job_type },
      h('header', { class: 'type-head' },
        h('h2', null, t.job_type),
        h('span', { class: 'muted' }, `${t.name || ''} v${t.version || '?'}`),
        h('span', { class: 'spacer' }),
        h('a', { href: '#/jobs?type=' + encodeURIComponent(t.job_type), class: 'small' }, 'Jobs of this type →')),
      t.description ? h('p', { class: 'type-desc' }, t.description) : null,
      h('div', { class: 'type-body' },
        h('div', { class: 'type-info' },
          h('dl', { class: 'kv' },
            h('dt', null, 'hosts'), h('dd', null, (t.hosts || []).length ? t.hosts.join(', ') : h('span', { class: 'muted' }, 'none')),
            h('dt', null, 'grants'), h('dd', { class: 'grants' }, grantList.length ? grantList.map((x) => h('span', { class: 'chip' }, x)) : h('span', { class: 'muted' }, 'none')),
            limitRows.filter(([, v]) => v != null).map(([k, v]) => [h('dt', null, k), h('dd', null, String(v))])),
          h('details', { class: 'schema' }, h('summary', null, 'Params schema'), h('pre', { class: 'json' }, pretty(t.params_schema)))),
        addForm(t)));
  }

  function brokenList(broken) {
    if (!broken || !broken.length) return null;
    return h('div', { class: 'card broken', id: 'broken-files' },
      h('h2', null, `Broken job files (${broken.length})`),
      broken.map((b) => h('div', { class: 'broken-item', 'data-broken': b.name },
        h('div', null, h('strong', null, b.name), ' ', h('code', { class: 'muted' }, b.file)),
        h('pre', { class: 'err-text' }, b.error))));
  }

  function typesPage(only) {
    const body = h('div', { class: 'types' }, h('p', { class: 'muted' }, 'Loading job types…'));
    const el = h('section', { class: 'page page-types' },
      h('div', { class: 'toolbar' }, h('h1', null, only ? h('span', null, h('a', { href: '#/types' }, 'Job types'), ' / ' + only) : 'Job types'), h('span', { class: 'spacer' }),
        h('button', { type: 'button', onclick: () => load(true) }, 'Reload')),
      body);
    async function load(force) {
      try {
        const d = await jobTypes(force);
        const list = only ? d.job_types.filter((t) => t.job_type === only) : d.job_types;
        fill(body, 
          list.length ? list.map(typeCard) : h('p', { class: 'muted' }, only ? `No job type ${only} is loaded.` : 'No job types loaded: drop a .wasm into the jobs directory.'),
          only ? null : brokenList(d.broken));
      } catch (e) {
        fill(body, h('div', { class: 'error-box' }, e.status === 401 ? 'Waiting for the API key…' : 'Could not list job types: ' + e.message));
      }
    }
    load(true);
    return { el };
  }

  // ---------------------------------------------------------------- schedules page

  function schedulesPage() {
    const body = h('div', { class: 'stack' }, h('p', { class: 'muted' }, 'Loading schedules…'));
    const stamp = h('span', { class: 'muted small' });
    const el = h('section', { class: 'page page-schedules' },
      h('div', { class: 'toolbar' }, h('h1', null, 'Schedules'), h('span', { class: 'spacer' }), stamp,
        h('button', { type: 'button', onclick: () => load() }, 'Refresh')),
      body);
    let timer = null, disposed = false;
    async function act(action, name, btn) {
      btn.disabled = true;
      try {
        await rpc(action, { name });
        toast(`Schedule ${name}: ${action.replace('_schedule', '')}d`);
      } catch (e) {
        toast(`${name}: ${e.message}`, 'error');
      } finally {
        btn.disabled = false;
        load();
      }
    }
    function rowOf(s) {
      const state = s.enabled ? 'active' : 'paused';
      const last = s.last_job_id
        ? h('span', null, h('a', { href: '#/jobs/' + encodeURIComponent(s.last_job_id) }, fmtTime(s.last_run, true)), ' ',
          s.last_status ? badge(s.last_status) : h('span', { class: 'muted' }, 'purged'))
        : h('span', { class: 'muted' }, 'never');
      const buttons = [s.enabled
        ? h('button', { type: 'button', 'data-needs': 'admin', 'data-action': 'pause', onclick: (ev) => act('pause_schedule', s.name, ev.target) }, 'Pause')
        : h('button', { type: 'button', 'data-needs': 'admin', 'data-action': 'resume', onclick: (ev) => act('resume_schedule', s.name, ev.target) }, 'Resume')];
      if (s.origin === 'api') {
        buttons.push(h('button', { type: 'button', class: 'ghost', 'data-needs': 'admin', 'data-action': 'delete', onclick: (ev) => {
          if (confirm(`Delete schedule ${s.name}? Its jobs stay.`)) act('delete_schedule', s.name, ev.target);
        } }, 'Delete'));
      }
      return h('tr', { 'data-schedule': s.name, 'data-state': state },
        h('td', null, h('strong', null, s.name), s.origin === 'manifest' ? h('div', { class: 'muted small' }, 'from the manifest') : null),
        h('td', null, h('a', { href: '#/types/' + encodeURIComponent(s.job_type) }, s.job_type)),
        h('td', null, h('code', null, s.cron), h('div', { class: 'muted small' }, s.description || '')),
        h('td', null, s.timezone),
        h('td', null, h('span', { class: 'badge', 'data-status': s.enabled ? 'RUNNING' : 'STOPPED' }, state),
          h('div', { class: 'muted small' }, `overlap ${s.overlap} · catch-up ${s.catch_up}`)),
        h('td', { class: 'next-runs' }, (s.next_runs || []).length ? s.next_runs.map((t) => h('div', null, fmtTime(t, true))) : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'last-run' }, last, s.queued_run ? h('div', { class: 'muted small' }, 'one queued behind it') : null,
          s.skipped ? h('div', { class: 'muted small' }, `${s.skipped} skipped`) : null),
        h('td', null, buttons));
    }
    async function load() {
      clearTimeout(timer);
      try {
        const d = await rpc('list_schedules');
        if (disposed) return;
        fill(body, d.schedules.length
          ? h('table', { class: 'mini', id: 'schedules-table' },
            h('thead', null, h('tr', null, ['schedule', 'job type', 'cron', 'zone', 'state', 'next runs', 'last run', ''].map((x) => h('th', null, x)))),
            h('tbody', null, d.schedules.map(rowOf)))
          : h('p', { class: 'muted', id: 'schedules-empty' }, 'No schedules: add one with queue_add_schedule, `queuemgr schedule add`, or [[schedules]] in a job type\'s manifest.'));
        fill(stamp, 'updated ' + new Date().toLocaleTimeString());
      } catch (e) {
        fill(body, h('div', { class: 'error-box' }, e.status === 401 ? 'Waiting for the API key…' : 'Could not list schedules: ' + e.message));
      }
      if (!disposed) timer = setTimeout(load, 5000);
    }
    load();
    return { el, dispose() { disposed = true; clearTimeout(timer); } };
  }

  // ---------------------------------------------------------------- queues page

  function queuesPage() {
    const body = h('div', { class: 'stack' }, h('p', { class: 'muted' }, 'Loading queues…'));
    const stamp = h('span', { class: 'muted small' });
    const el = h('section', { class: 'page page-queues' },
      h('div', { class: 'toolbar' }, h('h1', null, 'Queues'), h('span', { class: 'spacer' }), stamp,
        h('button', { type: 'button', onclick: () => load() }, 'Refresh')),
      body);
    let timer = null, disposed = false;
    async function act(action, name, btn) {
      btn.disabled = true;
      try {
        await rpc(action, { queue: name });
        toast(`Queue ${name}: ${action.replace('_queue', '')}d`);
      } catch (e) {
        toast(`${name}: ${e.message}`, 'error');
      } finally {
        btn.disabled = false;
        load();
      }
    }
    const none = () => h('span', { class: 'muted' }, '—');
    const num = (n) => Number(n || 0).toLocaleString();
    function rowOf(q) {
      const state = q.paused ? 'paused' : 'active';
      const button = q.paused
        ? h('button', { type: 'button', 'data-needs': 'admin', 'data-action': 'resume', onclick: (ev) => act('resume_queue', q.name, ev.target) }, 'Resume')
        : h('button', { type: 'button', 'data-needs': 'admin', 'data-action': 'pause', onclick: (ev) => act('pause_queue', q.name, ev.target) }, 'Pause');
      return h('tr', { 'data-queue': q.name, 'data-state': state },
        h('td', { class: 'c-queue' }, h('strong', null, q.name)),
        h('td', { class: 'c-state' }, h('span', { class: 'badge', 'data-status': q.paused ? 'STOPPED' : 'RUNNING' }, state)),
        h('td', { class: 'c-running num' }, num(q.running),
          q.concurrency != null ? h('span', { class: 'limit', title: 'at most this many at once, across hosts' }, ' / ' + q.concurrency) : null),
        h('td', { class: 'c-waiting num' }, num(q.waiting)),
        h('td', { class: 'c-unstarted num' }, num(q.unstarted)),
        h('td', { class: 'c-key-concurrency' }, q.key_concurrency != null ? String(q.key_concurrency) : none()),
        h('td', { class: 'c-rate' }, q.rate ? h('code', null, q.rate) : none()),
        h('td', { class: 'c-key-rate' }, q.key_rate ? h('code', null, q.key_rate) : none()),
        h('td', { class: 'c-priority' }, q.priority != null ? String(q.priority) : none()),
        h('td', { class: 'c-origin' }, q.origin === 'none' ? h('span', { class: 'muted' }, 'none') : q.origin),
        h('td', { class: 'c-types' }, (q.job_types || []).length
          ? q.job_types.map((t, i) => [i ? ', ' : null, h('a', { href: '#/types/' + encodeURIComponent(t) }, t)])
          : none()),
        h('td', { class: 'c-actions' }, button));
    }
    async function load() {
      clearTimeout(timer);
      try {
        const d = await rpc('list_queues');
        if (disposed) return;
        fill(body, d.queues.length
          ? h('table', { class: 'mini', id: 'queues-table' },
            h('thead', null, h('tr', null, ['queue', 'state', 'running', 'waiting', 'unstarted', 'per-key limit', 'rate', 'key rate', 'priority', 'origin', 'job types', '']
              .map((x) => h('th', null, x)))),
            h('tbody', null, d.queues.map(rowOf)))
          : h('p', { class: 'muted', id: 'queues-empty' }, 'No queues.'));
        fill(stamp, 'updated ' + new Date().toLocaleTimeString());
      } catch (e) {
        fill(body, h('div', { class: 'error-box' }, e.status === 401 ? 'Waiting for the API key…' : 'Could not list queues: ' + e.message));
      }
      if (!disposed) timer = setTimeout(load, 5000);
    }
    load();
    return { el, dispose() { disposed = true; clearTimeout(timer); } };
  }

  // ---------------------------------------------------------------- health page

  function healthPage() {
    const body = h('div', { class: 'stack' }, h('p', { class: 'muted' }, 'Loading…'));
    const stamp = h('span', { class: 'muted small' });
    const el = h('section', { class: 'page page-health' },
      h('div', { class: 'toolbar' }, h('h1', null, 'Health'), h('span', { class: 'spacer' }), stamp,
        h('button', { type: 'button', onclick: () => load() }, 'Refresh')),
      body);
    let timer = null, disposed = false;
    const table = (head, rows) => h('table', { class: 'mini' }, h('thead', null, h('tr', null, head.map((x) => h('th', null, x)))),
      h('tbody', null, rows.map((r) => h('tr', null, r.map((c) => h('td', null, c))))));
    async function load() {
      clearTimeout(timer);
      try {
        const [hd, types] = await Promise.all([getJson('/health'), jobTypes(true).catch(() => null)]);
        if (disposed) return;
        const c = hd.components || {};
        const q = c.queue || {};
        const cat = c.catalog || {};
        const reg = q.registry || {};
        const counts = [['total', q.total_jobs], ['pending', q.pending_jobs], ['running', q.running_jobs], ['completed', q.completed_jobs],
          ['error', q.failed_jobs], ['stopped', q.stopped_jobs], ['deleted', q.deleted_jobs], ['waiting', q.waiting_jobs]];
        const typeRows = types ? types.job_types.map((t) => [h('a', { href: '#/types/' + encodeURIComponent(t.job_type) }, t.job_type), t.version || '', (t.hosts || []).join(', ')])
          : (cat.job_types || []).map((n) => [n, '', '']);
        fill(body, 
          h('div', { class: 'card health-summary', id: 'health-summary' },
            h('span', { class: 'badge', 'data-status': hd.status === 'ok' && q.status === 'healthy' ? 'COMPLETED' : hd.status === 'degraded' || q.status === 'degraded' ? 'STOPPED' : 'ERROR' }, `${hd.status || '?'} · queue ${q.status || '?'}`),
            h('span', null, `version ${hd.version || '?'}`), h('span', null, `up ${fmtDuration(hd.uptime)}`),
            h('span', null, `host ${q.host_id || '?'}`)),
          h('div', { class: 'stats', id: 'health-counts' }, counts.map(([k, v]) => h('a', {
            class: 'stat', href: k === 'total' || k === 'waiting' ? '#/jobs' : '#/jobs?status=' + (k === 'error' ? 'ERROR' : k.toUpperCase()),
          }, h('div', { class: 'stat-n' }, v == null ? '—' : Number(v).toLocaleString()), h('div', { class: 'stat-k' }, k)))),
          h('div', { class: 'grid' },
            h('div', { class: 'card', id: 'health-hosts' }, h('h2', null, 'Hosts'),
              table(['host', 'job types', 'last seen'], (q.hosts || []).map((x) => [x.host_id, (x.job_types || []).join(', '), x.seen_at ? ago(x.seen_at / 1000) : '']))),
            h('div', { class: 'card', id: 'health-store' }, h('h2', null, 'Store'),
              h('dl', { class: 'kv' }, [['backend', reg.backend], ['location', reg.location], ['records', reg.records], ['appended', reg.appended], ['syncs', reg.syncs],
                ['compactions', reg.compactions], ['last error', reg.last_error || 'none'], ['max concurrent jobs', q.max_concurrent_jobs],
                ['max terminal jobs', q.max_retained_terminal_jobs], ['open files limit', q.rlimit_nofile ? `${q.rlimit_nofile.soft} / ${q.rlimit_nofile.hard}` : null]]
                .filter(([, v]) => v != null).map(([k, v]) => [h('dt', null, k), h('dd', null, String(v))]))),
            h('div', { class: 'card', id: 'health-types' }, h('h2', null, `Loaded job types (${typeRows.length})`),
              h('p', { class: 'muted small' }, 'from ', h('code', null, cat.jobs_dir || '?')),
              table(['type', 'version', 'hosts'], typeRows))),
          brokenList(cat.broken) || h('div', { class: 'card', id: 'broken-files' }, h('h2', null, 'Broken job files'), h('p', { class: 'muted' }, 'None.')));
        stamp.textContent = 'updated ' + new Date().toLocaleTimeString();
      } catch (e) {
        if (!disposed) fill(body, h('div', { class: 'error-box' }, 'Could not read /health: ' + e.message));
      }
      if (!disposed) timer = setTimeout(load, 5000);
    }
    load();
    return { el, dispose() { disposed = true; clearTimeout(timer); } };
  }
  function fmtDuration(s) {
    s = Math.floor(Number(s) || 0);
    const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
  }

  // ---------------------------------------------------------------- router

  let page = null;
  function route() {
    const hash = location.hash || '#/jobs';
    let m, next, nav;
    if ((m = /^#\/jobs\/(.+)$/.exec(hash))) { next = () => jobPage(decodeURIComponent(m[1])); nav = 'jobs'; }
    else if ((m = /^#\/jobs(?:\?(.*))?$/.exec(hash))) { next = () => jobsPage(new URLSearchParams(m[1] || '')); nav = 'jobs'; }
    else if ((m = /^#\/types(?:\/(.+))?$/.exec(hash))) { next = () => typesPage(m[1] ? decodeURIComponent(m[1]) : null); nav = 'types'; }
    else if (hash === '#/schedules') { next = schedulesPage; nav = 'schedules'; }
    else if (hash === '#/queues') { next = queuesPage; nav = 'queues'; }
    else if (hash === '#/health') { next = healthPage; nav = 'health'; }
    else { location.replace('#/jobs'); return; }
    if (page && page.dispose) page.dispose();
    page = null;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.nav === nav);
    page = next();
    fill(view, page.el);
    document.title = 'queuemgr · ' + (nav === 'jobs' && m[1] && hash.startsWith('#/jobs/') ? decodeURIComponent(m[1]) : nav);
  }

  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden && page && page.onResync) page.onResync(); });
  showKeyButton();
  loadMe().then(() => { live.restart(); route(); });
})();
