// AgentWorker dashboard: plain JavaScript, no dependencies, everything from the worker's own HTTP API.
// The API token is kept in sessionStorage (this tab only) and sent as an Authorization header, never in a URL.
'use strict';

const TOKEN_KEY = 'agentWorker.token';
const STATES = ['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled', 'timed_out', 'dead'];
const FINISHED = new Set(['succeeded', 'failed', 'cancelled', 'timed_out', 'dead']);
const RETRYABLE = new Set(['failed', 'cancelled', 'timed_out', 'dead']);
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
const PAGE_SIZE = 25;
const MAX_LOG_LINES = 5000;

// ---------------------------------------------------------------------------------------------- helpers

const svgNs = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNs, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children.flat(Infinity)) if (child !== undefined && child !== null) el.append(child);
  return el;
}

function formatTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  const sameYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleString(undefined, { year: sameYear ? undefined : 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

function duration(seconds) {
  if (seconds === undefined || seconds === null) return '–';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

const stateBadge = state => h('span', { class: `badge state-${state}` }, state.replace('_', ' '));
const severityBadge = severity => h('span', { class: `badge sev-${severity}` }, severity);

function healthClass(score) {
  return score >= 80 ? 'good' : score >= 50 ? 'warn' : 'bad';
}

let announceTimer = null;

/** Shows a message in the live status region; confirmations fade after a while, errors stay until the next view. */
function announce(message, isError) {
  const status = document.getElementById('status');
  fill(status, message ? h('p', { class: isError ? 'error' : '' }, message) : '');
  clearTimeout(announceTimer);
  if (message && !isError) announceTimer = setTimeout(() => fill(status), 10000);
}

function wait(ms, signal) {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

function authHeaders(extra) {
  const headers = { Accept: 'application/json', ...extra };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  return headers;
}

async function api(path, { method = 'GET', body, signal } = {}) {
  const response = await fetch(path, {
    method,
    signal,
    cache: 'no-store',
    headers: authHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await response.json() : null;
  if (response.status === 401 && token() !== null) signOut('The worker rejected the token; sign in again.');
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/**
 * Follows GET /v1/jobs/{id}/logs?follow=true. EventSource cannot send an Authorization header, so the stream is read
 * with fetch and parsed here; a dropped connection is resumed with Last-Event-ID.
 */
async function followEvents(jobId, after, signal, onEvent, onEnd, onState) {
  let last = after;
  while (!signal.aborted) {
    try {
      onState('live');
      const response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/logs?follow=true`, {
        signal,
        cache: 'no-store',
        headers: authHeaders({ Accept: 'text/event-stream', ...(last > 0 ? { 'Last-Event-ID': String(last) } : {}) }),
      });
      if (response.status === 401) { signOut('The worker rejected the token; sign in again.'); return; }
      if (response.status === 404) { onState('gone'); return; }
      if (!response.ok) throw new ApiError(response.status, null);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) name = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
          }
          if (data.length === 0) continue;
          const payload = JSON.parse(data.join('\n'));
          if (name === 'end') { onEnd(payload, last); return; }
          last = payload.seq;
          onEvent(payload);
        }
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    onState('reconnecting');
    await wait(2000, signal);
  }
}

// ---------------------------------------------------------------------------------------------- session

// A message to show once the next view is on screen (the view change clears older ones).
let flashMessage = null;

function flash(text, isError) {
  flashMessage = { text, isError };
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  flash(message, true);
  route();
}

function showChrome(signedIn) {
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('signout').hidden = !signedIn || token() === '';
}

function loginView(main) {
  document.title = 'Sign in · AgentWorker';
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', 'aria-describedby': 'token-hint' });
  const error = h('p', { class: 'field-error', id: 'login-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', {
    class: 'panel login',
    'aria-labelledby': 'login-title',
    onsubmit: async event => {
      event.preventDefault();
      submit.disabled = true;
      error.textContent = '';
      const candidate = input.value.trim();
      try {
        // /v1/agents is the cheapest call that needs the token.
        const response = await fetch('/v1/agents', {
          cache: 'no-store',
          headers: candidate ? { Authorization: `Bearer ${candidate}`, Accept: 'application/json' } : { Accept: 'application/json' },
        });
        if (response.status === 401) {
          error.textContent = candidate ? 'That token was rejected (401). Check WORKER_API_KEY and try again.' : 'This worker needs a token.';
          input.setAttribute('aria-invalid', 'true');
          input.focus();
          return;
        }
        if (!response.ok) throw new ApiError(response.status, null);
        sessionStorage.setItem(TOKEN_KEY, candidate);
        route();
      } catch (e) {
        error.textContent = `Could not reach the worker: ${e.message}`;
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h1', { id: 'login-title' }, 'Sign in'),
  h('div', { class: 'field' },
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { class: 'hint', id: 'token-hint' }, 'The worker\'s WORKER_API_KEY. It stays in this tab\'s session storage and is sent only as an Authorization header. Leave it empty for a worker without a key.')),
  error,
  submit);
  fill(main, form);
  input.focus();
}

// ---------------------------------------------------------------------------------------------- overview

function chart(title, samples, series) {
  // A narrower drawing on a narrow screen keeps the axis labels readable once it is scaled down.
  const W = window.innerWidth < 640 ? 360 : 640, H = 200, L = 40, R = 12, T = 12, B = 26;
  const values = samples.flatMap(sample => series.map(line => line.value(sample)));
  const max = Math.max(1, ...values);
  const t0 = samples.length ? Date.parse(samples[0].at) : 0;
  const t1 = samples.length ? Date.parse(samples[samples.length - 1].at) : 1;
  const x = t => L + (t1 === t0 ? (W - L - R) : (t - t0) / (t1 - t0) * (W - L - R));
  const y = v => H - B - v / max * (H - T - B);
  const grid = [0, Math.round(max / 2), max].filter((v, i, all) => all.indexOf(v) === i);
  const latest = samples[samples.length - 1];
  const description = samples.length === 0
    ? `${title}: no samples yet`
    : `${title}, ${samples.length} samples from ${clock(samples[0].at)} to ${clock(latest.at)}; now ` +
      series.map(line => `${line.label} ${line.value(latest)}`).join(', ');
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': description },
    grid.map(v => [
      s('line', { class: 'axis', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)),
    ]),
    samples.length ? [
      s('text', { x: L, y: H - 6 }, clock(samples[0].at)),
      s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, clock(latest.at)),
    ] : [],
    series.map(line => [
      s('polyline', { class: line.cls, points: samples.map(p => `${x(Date.parse(p.at)).toFixed(1)},${y(line.value(p)).toFixed(1)}`).join(' ') }),
      latest ? s('circle', { class: line.cls, cx: x(t1), cy: y(line.value(latest)), r: 3.5 }) : null,
    ]));
  return h('section', { class: 'panel chart', 'aria-label': title },
    h('h2', {}, title),
    svg,
    h('ul', { class: 'legend' }, series.map(line =>
      h('li', {}, h('span', { class: `swatch ${line.cls}`, 'aria-hidden': 'true' }), `${line.label}: ${latest ? line.value(latest) : '–'}`))));
}

function card(label, value, note) {
  return h('div', { class: 'card' }, h('p', { class: 'label' }, label), h('p', { class: 'value' }, value), note ? h('p', { class: 'note' }, note) : null);
}

async function overviewView(main, params, signal) {
  document.title = 'Overview · AgentWorker';
  const heading = h('h1', { tabindex: '-1' }, 'Overview');
  const cards = h('div', { class: 'cards', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  const charts = h('div', { class: 'grid' });
  const note = h('p', { class: 'hint chart-note' });
  const outage = h('div', { class: 'errors', id: 'outage', hidden: true });
  const recent = h('div');
  fill(main, heading, outage, cards, charts, note,
    h('section', { class: 'panel', 'aria-labelledby': 'recent-title' },
      h('div', { class: 'row spread' }, h('h2', { id: 'recent-title' }, 'Latest jobs'), h('a', { href: '#/jobs' }, 'All jobs')),
      recent));
  heading.focus();
  let shownRecent = null;
  while (!signal.aborted) {
    try {
      // /health answers 503 with the same JSON while the backend is down; the history is kept in this process and
      // still answers, so the page shows what it can instead of one error.
      const [health, history, latest] = await Promise.all([
        api('/health', { signal }).catch(e => { if (e.status === 503 && e.problem?.backend) return e.problem; throw e; }),
        api('/v1/stats/history', { signal }),
        api('/v1/jobs?limit=5', { signal }).catch(e => { if (signal.aborted) throw e; return { error: e.message }; }),
      ]);
      const backend = health.backend ?? {};
      const up = backend.status === 'up';
      fill(cards,
        card('Queue depth', health.queueDepth ?? '–', 'queued + retrying'),
        card('Running', health.running ?? '–', 'on all workers'),
        card('Succeeded', health.succeeded ?? '–'),
        card('Failed', health.failed ?? '–'),
        card('Dead', health.dead ?? '–', 'attempts exhausted'),
        card('Cancelled · timed out', `${health.cancelled ?? '–'} · ${health.timedOut ?? '–'}`),
        card('Worker slots', health.workers ?? '–', 'in this process'),
        h('div', { class: 'card', id: 'backend' },
          h('p', { class: 'label' }, 'Backend'),
          h('p', { class: 'value small' }, `${backend.name ?? '?'} `, h('span', { class: `badge ${up ? 'health-up' : 'health-down'}` }, backend.status ?? 'unknown')),
          backend.downSince ? h('p', { class: 'note' }, `down since ${formatTime(backend.downSince)}`) : null,
          backend.outages ? h('p', { class: 'note' }, `${backend.outages} outage${backend.outages === 1 ? '' : 's'} since start`) : null,
          h('p', { class: 'note' }, `process up ${duration(health.uptimeSeconds)}`)));
      cards.removeAttribute('aria-busy');
      // The backend's own words go in a panel of their own: they can be long, and the card keeps the grid even.
      outage.hidden = up;
      fill(outage, up ? null : [h('strong', {}, `The ${backend.name ?? ''} backend does not answer`), backend.error ? `: ${backend.error}` : '.']);
      // The samples end with the counts of right now, so the charts and the cards above agree.
      const samples = up ? [...history.samples, {
        at: new Date().toISOString(), queued: health.queueDepth, retrying: 0, running: health.running,
        succeeded: health.succeeded, failed: health.failed, timedOut: health.timedOut, dead: health.dead,
      }] : history.samples;
      fill(charts,
        chart('Queue over time', samples, [
          { label: 'Queue depth', cls: 's-depth', value: p => p.queued + p.retrying },
          { label: 'Running', cls: 's-running', value: p => p.running },
        ]),
        chart('Finished jobs over time', samples, [
          { label: 'Succeeded', cls: 's-succeeded', value: p => p.succeeded },
          { label: 'Failed', cls: 's-failed', value: p => p.failed + p.timedOut },
          { label: 'Dead', cls: 's-dead', value: p => p.dead },
        ]));
      note.textContent = `Counts across every worker sharing the queue, sampled every ${history.intervalSeconds} s since this process started (the last hour is kept). Failed includes timed out.`;
      // Replaced only when it changed, so keyboard focus on a link survives the refresh.
      const key = latest.error ?? JSON.stringify(latest.items.map(j => [j.id, j.state, j.attempts, j.result?.healthScore]));
      if (key !== shownRecent) {
        fill(recent, latest.error
          ? h('p', { class: 'field-error' }, up ? `Could not list jobs: ${latest.error}` : 'Jobs cannot be listed while the backend is down.')
          : jobsTable(latest.items));
        shownRecent = key;
      }
    } catch (e) {
      if (signal.aborted) return;
      announce(`Could not load the overview: ${e.message}`, true);
    }
    await wait(5000, signal);
  }
}

// ---------------------------------------------------------------------------------------------- jobs table

function jobsTable(jobs) {
  if (jobs.length === 0) return h('p', { class: 'empty' }, 'No jobs.');
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'cards-sm' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Job'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Agent'),
        h('th', { scope: 'col' }, 'Repository'), h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col', class: 'num' }, 'Attempts'), h('th', { scope: 'col', class: 'num' }, 'Score'))),
      h('tbody', {}, jobs.map(job => h('tr', {},
        h('td', { 'data-label': 'Job', class: 'id' }, h('a', { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.id)),
        h('td', { 'data-label': 'State' }, stateBadge(job.state)),
        h('td', { 'data-label': 'Agent' }, job.agent ?? '(default)'),
        h('td', { 'data-label': 'Repository', class: 'wrap mono' }, job.repo.url, job.repo.branch ? ` @ ${job.repo.branch}` : ''),
        h('td', { 'data-label': 'Created', class: 'when' }, formatTime(job.createdAt)),
        h('td', { 'data-label': 'Attempts', class: 'num' }, `${job.attempts}/${job.maxAttempts}`),
        h('td', { 'data-label': 'Score', class: 'num' }, job.result ? String(job.result.healthScore) : '–'))))));
}

let agentsCache = null;
async function agents(signal) {
  agentsCache ??= api('/v1/agents', { signal }).then(list => list.items).catch(e => { agentsCache = null; throw e; });
  return agentsCache;
}

function selectField(id, label, options, value) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('select', { id, name: id.replace('f-', '') }, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
}

async function jobsView(main, params, signal) {
  document.title = 'Jobs · AgentWorker';
  const state = params.get('state') || '';
  const agent = params.get('agent') || '';
  const repo = params.get('repo') || '';
  const page = Math.max(1, Number(params.get('page')) || 1);
  const heading = h('h1', { tabindex: '-1' }, 'Jobs');
  const results = h('div', { 'aria-live': 'polite', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  const agentList = await agents(signal).catch(() => []);
  const repoInput = h('input', { id: 'f-repo', name: 'repo', type: 'text', value: repo, placeholder: 'part of the URL' });
  const filters = h('form', {
    class: 'panel filters',
    role: 'search',
    'aria-label': 'Filter jobs',
    onsubmit: event => {
      event.preventDefault();
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(filters)) if (value) query.set(name, value);
      location.hash = `#/jobs${query.size ? `?${query}` : ''}`;
    },
  },
  selectField('f-state', 'State', [['', 'Any state'], ...STATES.map(x => [x, x.replace('_', ' ')])], state),
  selectField('f-agent', 'Agent', [['', 'Any agent'], ...agentList.map(a => [a.id, a.id])], agent),
  h('div', { class: 'field' }, h('label', { for: 'f-repo' }, 'Repository contains'), repoInput),
  h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Apply filters')));
  fill(main, heading, filters, h('section', { class: 'panel', 'aria-label': 'Job list' }, results));
  heading.focus();

  const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String((page - 1) * PAGE_SIZE) });
  if (state) query.set('state', state);
  if (agent) query.set('agent', agent);
  if (repo) query.set('repo', repo);
  try {
    const list = await api(`/v1/jobs?${query}`, { signal });
    const first = list.total === 0 ? 0 : list.offset + 1;
    const last = list.offset + list.items.length;
    const link = n => {
      const p = new URLSearchParams(params);
      p.set('page', String(n));
      return `#/jobs?${p}`;
    };
    fill(results,
      jobsTable(list.items),
      h('nav', { class: 'pager', 'aria-label': 'Pages' },
        page > 1 ? h('a', { class: 'button secondary', href: link(page - 1), rel: 'prev' }, 'Previous') : null,
        h('span', { id: 'page-info' }, `${first}–${last} of ${list.total}, newest first`),
        last < list.total ? h('a', { class: 'button secondary', href: link(page + 1), rel: 'next' }, 'Next') : null));
    results.removeAttribute('aria-busy');
  } catch (e) {
    if (!signal.aborted) fill(results, h('p', { class: 'field-error' }, `Could not load jobs: ${e.message}`));
  }
}

// ---------------------------------------------------------------------------------------------- job detail

function findingsTable(findings, sort, onSort) {
  if (findings.length === 0) return h('p', { class: 'empty' }, 'No findings.');
  const rank = f => SEVERITIES.indexOf(f.severity);
  const keyed = {
    severity: (a, b) => rank(a) - rank(b),
    file: (a, b) => (a.file ?? '').localeCompare(b.file ?? '') || (a.line ?? 0) - (b.line ?? 0),
    rule: (a, b) => a.rule.localeCompare(b.rule),
  };
  const sorted = [...findings].sort((a, b) => sort.dir * keyed[sort.key](a, b));
  const header = (key, label) => h('th', { scope: 'col', 'aria-sort': sort.key === key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none' },
    h('button', { type: 'button', class: 'sort', onclick: () => onSort(key) },
      label, sort.key === key ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''));
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'cards-sm sortable', id: 'findings' },
      h('caption', { class: 'hint' }, sort.key === 'severity'
        ? `Sorted by severity, ${sort.dir === 1 ? 'most severe first' : 'least severe first'}`
        : `Sorted by ${sort.key}`),
      h('thead', {}, h('tr', {}, header('severity', 'Severity'), header('rule', 'Rule'), header('file', 'Location'), h('th', { scope: 'col' }, 'Message'))),
      h('tbody', {}, sorted.map(f => h('tr', {},
        h('td', { 'data-label': 'Severity' }, severityBadge(f.severity)),
        h('td', { 'data-label': 'Rule', class: 'mono wrap' }, f.rule),
        h('td', { 'data-label': 'Location', class: 'mono wrap' }, f.file ? `${f.file}${f.line ? `:${f.line}` : ''}` : '–'),
        h('td', { 'data-label': 'Message', class: 'wrap' }, f.message))))));
}

function facts(rows) {
  return h('dl', { class: 'facts' }, rows.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** Fetches an API path with the token and hands it to the browser as a download (a plain link could not send the header). */
async function download(path, name) {
  const response = await fetch(path, { cache: 'no-store', headers: authHeaders({ Accept: '*/*' }) });
  if (!response.ok) {
    announce(`Could not download ${name}: HTTP ${response.status}`, true);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** Links to what a run left behind: stored artifacts (the diff among them) and the receipt, plus artifact events. */
function linksOf(job, events) {
  const links = [];
  const base = `/v1/jobs/${encodeURIComponent(job.id)}`;
  const result = job.result ?? {};
  const stored = new Set();
  for (const a of Array.isArray(result.artifacts) ? result.artifacts : []) {
    stored.add(a.name);
    links.push(h('li', {}, h('button', { type: 'button', class: 'button secondary', onclick: () => download(`${base}/artifacts/${a.name.split('/').map(encodeURIComponent).join('/')}`, a.name.split('/').pop()) },
      `Download ${a.name}`), a.size !== undefined ? ` (${bytes(a.size)})` : ''));
  }
  if (result.receipt) {
    links.push(h('li', {}, h('button', { type: 'button', class: 'button secondary', onclick: () => download(`${base}/receipt`, `${job.id}-receipt.json`) }, 'Download run receipt')));
  }
  // Only web links become links: a path an agent printed is shown, never followed.
  for (const e of events) {
    if (e.kind !== 'artifact' || stored.has(e.message)) continue;
    links.push(/^https?:\/\//.test(e.message)
      ? h('li', {}, h('a', { href: e.message, rel: 'noreferrer' }, `Artifact ${e.message.split('/').pop()}`))
      : h('li', {}, `Artifact ${e.message.split('/').pop()}: `, h('span', { class: 'mono' }, e.message)));
  }
  return links;
}

function logLine(e) {
  const line = h('div', { class: e.stream === 'stderr' ? 'stderr' : e.kind === 'state' ? 'state' : '' },
    h('span', { class: 't' }, clock(e.at)), ' ', h('span', { class: 'k' }, `[${e.kind}${e.attempt ? ` #${e.attempt}` : ''}]`), ' ');
  if (e.kind === 'finding') {
    try {
      const f = JSON.parse(e.message);
      line.append(`${f.severity} ${f.rule}${f.file ? ` ${f.file}${f.line ? `:${f.line}` : ''}` : ''}: ${f.message}`);
      return line;
    } catch { /* shown as it came */ }
  }
  if (e.kind === 'egress') {
    try {
      const x = JSON.parse(e.message);
      line.append(x.decision === 'allowed'
        ? `allowed ${x.host}:${x.port}${x.address ? ` (${x.address})` : ''} ${x.protocol}, ${bytes(x.bytesUp)} up, ${bytes(x.bytesDown)} down, ${x.durationMs} ms${x.reason === 'allowed' ? '' : `: ${x.reason}`}`
        : `REFUSED ${x.host}:${x.port} ${x.protocol}: ${x.reason}`);
      if (x.decision !== 'allowed') line.classList.add('stderr');
      return line;
    } catch { /* shown as it came */ }
  }
  if (e.kind === 'model') {
    try {
      const x = JSON.parse(e.message);
      line.append(x.refused
        ? `${x.vendor} ${x.model ?? ''} ${x.status}: ${x.refused}`
        : `${x.vendor} ${x.model} ${x.status}${x.stream ? ' stream' : ''}: ${x.inputTokens ?? '?'} in / ${x.outputTokens ?? '?'} out${x.cachedTokens ? ` (${x.cachedTokens} cached)` : ''}, ${usd(x.costUsd)}, ${x.latencyMs} ms`);
      if (x.refused || x.status >= 400) line.classList.add('stderr');
      return line;
    } catch { /* shown as it came */ }
  }
  line.append(e.message);
  return line;
}

/** An estimated cost, or why there is none (the model has no price in MODEL_PRICES). */
function usd(cost) {
  return cost === null || cost === undefined ? 'cost unknown' : `$${Number(cost).toFixed(cost < 0.01 ? 6 : 4)}`;
}

/** Per model the agent called through the gateway: from the result once there is one, else summed from the live events. */
function modelRows(result, events) {
  if (result?.usage) return result.usage.models;
  const models = new Map();
  for (const e of events) {
    if (e.kind !== 'model') continue;
    let x;
    try { x = JSON.parse(e.message); } catch { continue; }
    if (x.refused && !x.model) continue;
    const row = models.get(x.model) ?? { model: x.model, requests: 0, inputTokens: 0, outputTokens: 0, cachedTokens: 0, costUsd: 0, latencyMs: 0 };
    row.requests++;
    row.inputTokens += x.inputTokens ?? 0; row.outputTokens += x.outputTokens ?? 0; row.cachedTokens += x.cachedTokens ?? 0;
    row.costUsd = row.costUsd === null || x.costUsd === null || x.costUsd === undefined ? null : row.costUsd + x.costUsd;
    row.latencyMs += x.latencyMs;
    models.set(x.model, row);
  }
  return [...models.values()];
}

/** Per host the agent asked its egress proxy for: from the result once there is one, else summed from the live events. */
function egressRows(result, events) {
  if (result?.egress?.length) return result.egress;
  const hosts = new Map();
  for (const e of events) {
    if (e.kind !== 'egress') continue;
    let x;
    try { x = JSON.parse(e.message); } catch { continue; }
    const key = `${x.host}:${x.port}`;
    const row = hosts.get(key) ?? { host: x.host, port: x.port, connections: 0, refused: 0, bytesUp: 0, bytesDown: 0 };
    if (x.decision === 'allowed') { row.connections++; row.bytesUp += x.bytesUp; row.bytesDown += x.bytesDown; } else row.refused++;
    hosts.set(key, row);
  }
  return [...hosts.values()];
}

async function jobView(main, id, signal) {
  document.title = `Job ${id} · AgentWorker`;
  const heading = h('h1', { tabindex: '-1' }, `Job ${id}`);
  const badge = h('span');
  const actions = h('div', { class: 'actions' });
  const summary = h('section', { class: 'panel', 'aria-labelledby': 'summary-title' });
  const result = h('section', { class: 'panel', 'aria-labelledby': 'result-title' });
  const findings = h('section', { class: 'panel', 'aria-labelledby': 'findings-title' });
  const timeline = h('section', { class: 'panel', 'aria-labelledby': 'timeline-title' });
  const links = h('section', { class: 'panel', 'aria-labelledby': 'links-title', hidden: true });
  const followState = h('span', { class: 'follow', id: 'follow-state' });
  const log = h('pre', { class: 'log', id: 'log', tabindex: '0', 'aria-label': 'Job log' });
  const logs = h('section', { class: 'panel', 'aria-labelledby': 'logs-title' },
    h('div', { class: 'row spread' }, h('h2', { id: 'logs-title' }, 'Logs'), followState), log);
  fill(main,
    h('div', { class: 'title-row' }, heading, badge, actions),
    h('div', { class: 'grid' }, summary, result),
    findings, logs, h('div', { class: 'grid' }, timeline, links));
  heading.focus();

  const events = [];
  let job = null;
  let sort = { key: 'severity', dir: 1 };
  let following = null;

  const render = () => {
    fill(badge, stateBadge(job.state));
    fill(actions,
      FINISHED.has(job.state) ? null : h('button', { type: 'button', class: 'button danger', onclick: () => act('cancel') }, 'Cancel job'),
      RETRYABLE.has(job.state) ? h('button', { type: 'button', class: 'button', onclick: () => act('retry') }, 'Retry job') : null);
    fill(summary, h('h2', { id: 'summary-title' }, 'Job'), facts([
      ['Agent', job.agent ?? '(default agent)'],
      ['Repository', h('span', { class: 'mono' }, job.repo.url)],
      job.repo.branch && ['Branch', job.repo.branch],
      job.repo.commit && ['Commit', h('span', { class: 'mono' }, job.repo.commit)],
      ['Mode', job.mode === 'apply' ? 'apply (commit and push)' : 'dry run (nothing pushed)'],
      ['Network', job.network ?? 'agent default'],
      job.prompt && ['Prompt', job.prompt],
      ['Created', formatTime(job.createdAt)],
      ['Finished', formatTime(job.finishedAt)],
      ['Attempts', `${job.attempts} of ${job.maxAttempts}`],
      job.error && ['Error', job.error],
    ]));
    const r = job.result;
    const usage = r?.resources;
    fill(result, h('h2', { id: 'result-title' }, 'Result'), r
      ? [
        h('div', { class: 'row' },
          h('p', { class: `score ${healthClass(r.healthScore)}`, id: 'health-score' }, String(r.healthScore)),
          h('p', { class: 'muted' }, 'health score', h('br'), 'out of 100')),
        facts([
          ['Findings', `${r.findings.length}${r.findingsTruncated ? ' (more were reported than kept)' : ''}`],
          ['Exit code', r.exitCode ?? '–'],
          ['Duration', duration(r.durationSeconds)],
          r.summary && ['Summary', r.summary],
        ]),
        h('h3', { class: 'spaced' }, 'Resource usage'),
        usage ? facts([
          ['Peak memory', bytes(usage.peakMemoryBytes)],
          ['CPU time', usage.cpuSeconds === undefined ? '–' : `${usage.cpuSeconds.toFixed(2)} s`],
          ['Wall time', duration(usage.wallSeconds)],
          usage.exitSignal && ['Exit signal', String(usage.exitSignal)],
          usage.outOfMemory && ['Out of memory', 'yes: the agent hit its memory limit'],
        ]) : h('p', { class: 'muted' }, 'Not measured for this run.'),
      ]
      : h('p', { class: 'muted' }, FINISHED.has(job.state) ? 'This job left no result.' : 'The result appears when the job ends.'));
    const liveFindings = events.filter(e => e.kind === 'finding').map(e => { try { return JSON.parse(e.message); } catch { return null; } }).filter(Boolean);
    const list = r?.findings ?? liveFindings;
    fill(findings,
      h('h2', { id: 'findings-title' }, `Findings (${list.length})`),
      findingsTable(list, sort, key => {
        sort = sort.key === key ? { key, dir: -sort.dir } : { key, dir: 1 };
        render();
        findings.querySelector(`th[aria-sort]:not([aria-sort="none"]) button`)?.focus();
      }));
    const states = events.filter(e => e.kind === 'state');
    const egress = egressRows(r, events);
    const models = modelRows(r, events);
    fill(timeline,
      h('h2', { id: 'timeline-title' }, 'Timeline'),
      states.length ? h('ol', { class: 'timeline' }, states.map(e => h('li', {},
        h('time', { datetime: e.at }, clock(e.at)), stateBadge(e.message.split(':')[0]),
        e.attempt ? ` attempt ${e.attempt}` : '', e.message.includes(':') ? ` — ${e.message.slice(e.message.indexOf(':') + 1).trim()}` : ''))) : h('p', { class: 'muted' }, 'No state changes yet.'),
      egress.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'cards-sm', id: 'egress' },
        h('caption', { class: 'hint' }, 'Network: hosts the agent asked for'),
        h('thead', {}, h('tr', {}, ['Host', 'Connections', 'Refused', 'Up', 'Down'].map(x => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, egress.map(x => h('tr', {},
          h('td', { 'data-label': 'Host', class: 'mono wrap' }, `${x.host}:${x.port}`), h('td', { 'data-label': 'Connections' }, x.connections),
          h('td', { 'data-label': 'Refused' }, x.refused), h('td', { 'data-label': 'Up' }, bytes(x.bytesUp)),
          h('td', { 'data-label': 'Down' }, bytes(x.bytesDown))))))) : null,
      models.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'cards-sm', id: 'models' },
        h('caption', { class: 'hint' }, r?.usage?.budgetExceeded
          ? `Models through the gateway: budget ${r.usage.budgetExceeded} reached, later requests refused`
          : 'Models through the gateway'),
        h('thead', {}, h('tr', {}, ['Model', 'Requests', 'Input', 'Output', 'Cached', 'Cost'].map(x => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, models.map(x => h('tr', {},
          h('td', { 'data-label': 'Model', class: 'mono wrap' }, x.model), h('td', { 'data-label': 'Requests' }, x.requests),
          h('td', { 'data-label': 'Input' }, x.inputTokens), h('td', { 'data-label': 'Output' }, x.outputTokens),
          h('td', { 'data-label': 'Cached' }, x.cachedTokens), h('td', { 'data-label': 'Cost' }, usd(x.costUsd))))))) : null,
      job.attemptHistory.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'cards-sm' },
        h('caption', { class: 'hint' }, 'Attempts'),
        h('thead', {}, h('tr', {}, ['#', 'Worker', 'Started', 'Finished', 'Outcome', 'Exit'].map(x => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, job.attemptHistory.map(a => h('tr', {},
          h('td', { 'data-label': '#' }, a.number), h('td', { 'data-label': 'Worker', class: 'mono wrap' }, a.worker),
          h('td', { 'data-label': 'Started' }, clock(a.startedAt)), h('td', { 'data-label': 'Finished' }, a.finishedAt ? clock(a.finishedAt) : '–'),
          h('td', { 'data-label': 'Outcome' }, a.outcome ?? 'running', a.error ? ` (${a.error})` : ''),
          h('td', { 'data-label': 'Exit' }, a.exitCode ?? '–')))))) : null);
    const found = linksOf(job, events);
    links.hidden = found.length === 0;
    fill(links, h('h2', { id: 'links-title' }, 'Diff, artifacts and receipt'), h('ul', {}, found));
  };

  // Events can arrive by the thousand; the page is redrawn at most once per 100 ms for them.
  let drawing = null;
  const renderSoon = () => {
    drawing ??= setTimeout(() => { drawing = null; render(); }, 100);
  };

  const load = async () => {
    job = await api(`/v1/jobs/${encodeURIComponent(id)}`, { signal });
    render();
  };

  let reloading = null;
  const reloadSoon = () => {
    reloading ??= wait(150, signal).then(load).catch(() => {}).finally(() => { reloading = null; });
  };

  const follow = (after) => {
    following = followEvents(id, after, signal,
      e => {
        events.push(e);
        const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
        log.append(logLine(e));
        while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
        if (atBottom) log.scrollTop = log.scrollHeight;
        if (e.kind === 'state' || e.kind === 'finding' || e.kind === 'artifact' || e.kind === 'egress' || e.kind === 'model') {
          renderSoon();
          reloadSoon();
        }
      },
      () => {
        fill(followState, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Job ended; log complete');
        following = null;
        reloadSoon();
      },
      mode => fill(followState, h('span', { class: `dot${mode === 'live' ? ' live' : ''}`, 'aria-hidden': 'true' }),
        { live: 'Following live', gone: 'The job is gone; no log to follow' }[mode] ?? 'Connection lost; reconnecting…'));
  };

  const act = async (what) => {
    try {
      const answer = await api(`/v1/jobs/${encodeURIComponent(id)}/${what}`, { method: 'POST', signal });
      announce(what === 'cancel'
        ? (answer.outcome === 'cancelled' ? `Job ${id} cancelled.` : `Cancel requested: the worker running ${id} is stopping it.`)
        : `Job ${id} queued again.`);
      await load();
      if (what === 'retry' && !following) follow(events.length ? events[events.length - 1].seq : 0);
    } catch (e) {
      if (!signal.aborted) announce(`Could not ${what} job ${id}: ${e.message}`, true);
    }
  };

  try {
    await load();
  } catch (e) {
    if (signal.aborted) return;
    fill(main, h('h1', { tabindex: '-1' }, `Job ${id}`),
      h('p', { class: 'field-error' }, e.status === 404 ? `There is no job with id ${id}.` : `Could not load the job: ${e.message}`),
      h('p', {}, h('a', { href: '#/jobs' }, 'Back to jobs')));
    return;
  }
  follow(0);
}

// ---------------------------------------------------------------------------------------------- enqueue form

const FIELD_INPUTS = {
  agent: 'f-agent', agentId: 'f-agent', 'repo.url': 'f-repo', repoUrl: 'f-repo', repo: 'f-repo', branch: 'f-branch', 'repo.branch': 'f-branch',
  prompt: 'f-prompt', mode: 'f-mode-dry_run', network: 'f-network', mcpUrl: 'f-mcp',
};

async function newJobView(main, params, signal) {
  document.title = 'New job · AgentWorker';
  const heading = h('h1', { tabindex: '-1' }, 'New job');
  fill(main, heading, h('p', { class: 'muted' }, 'Loading agents…'));
  heading.focus();
  let agentList;
  try {
    agentList = await agents(signal);
  } catch (e) {
    if (!signal.aborted) fill(main, heading, h('p', { class: 'field-error' }, `Could not load the agents: ${e.message}`));
    return;
  }
  const describe = h('p', { class: 'hint', id: 'f-agent-hint' });
  const agentSelect = h('select', { id: 'f-agent', name: 'agent', required: true, 'aria-describedby': 'f-agent-hint f-agent-error' },
    agentList.map(a => h('option', { value: a.id }, a.builtIn ? `${a.id} (built in)` : a.id)));
  const showAgent = () => {
    const a = agentList.find(x => x.id === agentSelect.value);
    describe.textContent = a ? [a.description, a.network ? `default network ${a.network}` : null, a.timeoutSeconds ? `timeout ${a.timeoutSeconds} s` : null].filter(Boolean).join(' · ') : '';
  };
  agentSelect.addEventListener('change', showAgent);
  showAgent();

  const errorBox = h('div', { class: 'errors', role: 'alert', tabindex: '-1', hidden: true });
  const fieldError = id => h('p', { class: 'field-error', id: `${id}-error` });
  const text = (id, label, hint, attrs) => h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, type: 'text', 'aria-describedby': `${hint ? `${id}-hint ` : ''}${id}-error`, ...attrs }),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    fieldError(id));
  const submit = h('button', { type: 'submit' }, 'Queue job');
  const form = h('form', { class: 'panel form-narrow', 'aria-labelledby': 'new-title', novalidate: true },
    h('h2', { id: 'new-title' }, 'Run an agent against a repository'),
    errorBox,
    h('div', { class: 'field' }, h('label', { for: 'f-agent' }, 'Agent'), agentSelect, describe, fieldError('f-agent')),
    text('f-repo', 'Repository URL', 'https, ssh, git, file, user@host:path or an absolute path; no credentials in the URL.', { name: 'repo', required: true, autocomplete: 'off', spellcheck: 'false' }),
    text('f-branch', 'Branch', 'Optional; the default branch when empty.', { name: 'branch', autocomplete: 'off', spellcheck: 'false' }),
    h('div', { class: 'field' },
      h('label', { for: 'f-prompt' }, 'Prompt'),
      h('textarea', { id: 'f-prompt', name: 'prompt', rows: '4', 'aria-describedby': 'f-prompt-hint f-prompt-error' }),
      h('p', { class: 'hint', id: 'f-prompt-hint' }, 'Task text for the agent; optional for audit agents.'),
      fieldError('f-prompt')),
    h('fieldset', { 'aria-describedby': 'f-mode-dry_run-error' },
      h('legend', {}, 'Mode'),
      h('label', {}, h('input', { type: 'radio', name: 'mode', id: 'f-mode-dry_run', value: 'dry_run', checked: true }), 'Dry run (nothing is pushed)'),
      h('label', {}, h('input', { type: 'radio', name: 'mode', id: 'f-mode-apply', value: 'apply' }), 'Apply (commit and push to the branch)'),
      fieldError('f-mode-dry_run')),
    h('div', { class: 'field' },
      h('label', { for: 'f-network' }, 'Network'),
      h('select', { id: 'f-network', name: 'network', 'aria-describedby': 'f-network-error' },
        h('option', { value: '' }, 'Agent default'),
        h('option', { value: 'none' }, 'none: no network'),
        h('option', { value: 'mcp_only' }, 'mcp_only: only the MCP URL'),
        h('option', { value: 'allowlist' }, 'allowlist: the agent\'s allowHosts'),
        h('option', { value: 'full' }, 'full: any public host')),
      fieldError('f-network')),
    text('f-mcp', 'MCP URL', 'Needed for mcp_only; handed to the agent as MCP_CONNECTION_URL.', { name: 'mcpUrl', type: 'url', autocomplete: 'off', spellcheck: 'false' }),
    submit);
  fill(main, heading, form);

  form.addEventListener('submit', async event => {
    event.preventDefault();
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
    errorBox.hidden = true;
    const data = new FormData(form);
    const value = name => (data.get(name) || '').toString().trim() || undefined;
    const body = {
      agent: value('agent'),
      repo: { url: value('repo') ?? '', branch: value('branch') },
      prompt: value('prompt'),
      mode: value('mode'),
      network: value('network'),
      mcpUrl: value('mcpUrl'),
    };
    submit.disabled = true;
    try {
      const answer = await api('/v1/jobs', { method: 'POST', body, signal });
      flash(answer.created ? `Job ${answer.id} queued.` : `Job ${answer.id} already exists.`);
      location.hash = `#/jobs/${encodeURIComponent(answer.id)}`;
    } catch (e) {
      if (signal.aborted) return;
      const errors = e.problem?.errors ?? {};
      const items = [];
      let first = null;
      for (const [field, messages] of Object.entries(errors)) {
        const id = FIELD_INPUTS[field];
        const input = id && document.getElementById(id);
        if (input) {
          input.setAttribute('aria-invalid', 'true');
          document.getElementById(`${id}-error`).textContent = messages.join(' ');
          first ??= input;
        }
        items.push(h('li', {}, `${field}: ${messages.join(' ')}`));
      }
      fill(errorBox, h('strong', {}, e.status === 400 ? 'The job was not queued:' : `The job was not queued (${e.status ?? 'network error'}): ${e.message}`),
        items.length ? h('ul', {}, items) : null);
      errorBox.hidden = false;
      (first ?? errorBox).focus();
    } finally {
      submit.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------------------------- router

let current = null;

function route() {
  announce(flashMessage?.text ?? '', flashMessage?.isError);
  flashMessage = null;
  current?.abort();
  current = new AbortController();
  const main = document.getElementById('main');
  const signedIn = token() !== null;
  showChrome(signedIn);
  if (!signedIn) {
    loginView(main);
    return;
  }
  const [path, search] = (location.hash.replace(/^#/, '') || '/').split('?');
  const params = new URLSearchParams(search || '');
  let view = 'overview';
  const signal = current.signal;
  if (path === '/jobs') { view = 'jobs'; jobsView(main, params, signal); }
  else if (path.startsWith('/jobs/')) { view = 'jobs'; jobView(main, decodeURIComponent(path.slice(6)), signal); }
  else if (path === '/new') { view = 'new'; newJobView(main, params, signal); }
  else overviewView(main, params, signal);
  for (const a of document.querySelectorAll('#nav a[data-view]')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

window.addEventListener('hashchange', route);
document.getElementById('signout').addEventListener('click', () => signOut('Signed out.'));
route();
