// Talking to Passage's public HTTP API from the console and the learner page:
// JSON requests, RFC 9457 problems, a Server-Sent Events reader on fetch() (so
// it can send the Authorization header), and small DOM helpers.

// An answer: `ok`, `status`, `body` (parsed JSON, text, or null), `headers`.
// A problem answer has body.code, body.detail and maybe body.errors.
export async function call(method, path, { body, token, headers = {}, accept } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = 'Bearer ' + token;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (accept) h.Accept = accept;
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    return { ok: false, status: 0, headers: new Headers(), body: { code: 'network', detail: 'The server could not be reached. Check the connection and try again.' } };
  }
  const type = res.headers.get('Content-Type') || '';
  let parsed = null;
  if (res.status !== 204 && res.status !== 304) {
    parsed = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  }
  return { ok: res.ok, status: res.status, headers: res.headers, body: parsed };
}

// Follows `path` as Server-Sent Events; calls onEvent({id, event, data}) for
// each, onState(true/false) as the connection opens and drops. Reconnects with
// Last-Event-ID. Returns a function that stops it.
export function follow(path, token, onEvent, onState = () => {}) {
  const control = new AbortController();
  let lastId = null;
  let stopped = false;
  const run = async () => {
    while (!stopped) {
      try {
        const headers = { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' };
        if (lastId !== null) headers['Last-Event-ID'] = lastId;
        const res = await fetch(path, { headers, signal: control.signal });
        if (!res.ok || !res.body) throw new Error('status ' + res.status);
        onState(true);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const msg = parseEvent(block);
            if (msg.id !== undefined) lastId = msg.id;
            if (msg.data !== undefined) onEvent(msg);
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      onState(false);
      if (!stopped) await new Promise((r) => setTimeout(r, 2000));
    }
  };
  run();
  return () => { stopped = true; control.abort(); };
}

function parseEvent(block) {
  const msg = {};
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') msg.id = value;
    else if (field === 'event') msg.event = value;
    else if (field === 'data') msg.data = msg.data === undefined ? value : msg.data + '\n' + value;
  }
  if (msg.data !== undefined) {
    try { msg.data = JSON.parse(msg.data); } catch (e) { /* keep the text */ }
  }
  return msg;
}

// el('button', {class: 'x', onclick: fn}, 'text', child, ...): a DOM element.
// Text is always set as text, never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// "2026-11-20T09:00:00Z" → a readable local time; '' for null.
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// Copies `text`; falls back to a hidden selection where the Clipboard API is
// not available (plain http on another host).
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (e) {
    const area = el('textarea', { 'aria-hidden': 'true' }, text);
    area.className = 'skip';
    document.body.append(area);
    area.select();
    const ok = document.execCommand && document.execCommand('copy');
    area.remove();
    return !!ok;
  }
}

// Learner-facing words for the problem codes of claims and plays.
export const reasons = {
  expired: 'This invite has expired.',
  not_open_yet: 'This invite is not open yet.',
  full: 'Sorry, this invite is full: every spot has been taken.',
  not_allowed: 'This invite is not available for your email address.',
  deactivated: 'This invite is not available at the moment.',
  deleted: 'This invite no longer exists.',
  details_missing: 'Please fill in the required details.',
  rate_limited: 'Too many attempts. Please wait a little and try again.',
  access_expired: 'Your access to this track has expired.',
  play_limit_reached: 'You have used every play of this track.',
  not_pausable: 'This track cannot be paused.',
  invalid_state: 'That is not possible right now.',
  forgotten: 'This account has been erased.',
  network: 'The server could not be reached. Check the connection and try again.',
};
