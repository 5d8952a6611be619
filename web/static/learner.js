// The interactive part of the learner page /i/{code}: the server renders the
// invite and the form (works without JavaScript); this module claims through
// POST /v1/public/invites/{code}/claims, then lists the learner's tracks with
// access expiry and plays left, and plays, pauses and resumes them through the
// public claim endpoints with the learner token.
import { call, el, when, copyText, reasons } from './api.js';

const form = document.getElementById('claim');
const result = document.getElementById('result');
const access = document.getElementById('access');
const code = form ? form.dataset.code : '';
const storageKey = 'passage.claim.' + code;

function say(text, kind) {
  result.className = kind ? 'notice ' + kind : '';
  result.textContent = text;
}

function openingTime() {
  const starts = form.dataset.startsAt;
  if (!starts) return '';
  return when(new Date(new Date(starts).getTime() - 24 * 3600 * 1000).toISOString());
}

// The sentence for a refused claim or play.
function reasonText(problem) {
  if (!problem) return 'Something went wrong. Please try again.';
  if (problem.code === 'not_open_yet') {
    const opens = openingTime();
    return opens ? 'This invite is not open yet. It opens on ' + opens + '.' : reasons.not_open_yet;
  }
  if (problem.code === 'rate_limited' && problem.retry_after) {
    return 'Too many attempts. Please try again in ' + Math.ceil(problem.retry_after / 60) + ' minute(s).';
  }
  return reasons[problem.code] || problem.detail || 'Something went wrong. Please try again.';
}

function clearFieldErrors() {
  for (const p of form.querySelectorAll('.field-error')) p.remove();
  for (const i of form.querySelectorAll('[aria-invalid]')) {
    i.removeAttribute('aria-invalid');
    i.removeAttribute('aria-describedby');
  }
}

function markField(name, message) {
  const input = form.querySelector('[name="' + CSS.escape(name) + '"]') ||
    form.querySelector('[name="' + CSS.escape('answer.' + name) + '"]');
  if (!input) return false;
  const id = input.id + '-error';
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', id);
  const where = input.type === 'checkbox' ? input.closest('label') : input;
  where.after(el('p', { class: 'field-error', id }, message));
  input.focus();
  return true;
}

function claimBody() {
  const body = {};
  const answers = {};
  for (const input of form.querySelectorAll('input')) {
    if (input.name.startsWith('answer.')) {
      answers[input.name.slice(7)] = input.type === 'checkbox' ? input.checked : input.value;
    } else if (input.value.trim() !== '') {
      body[input.name] = input.value.trim();
    }
  }
  if (Object.keys(answers).length) body.answers = answers;
  const token = localStorage.getItem('passage.learner_token');
  if (token) body.learner_token = token;
  return body;
}

// A personal link (private invitation, `?invitation=<token>`) claims through its own
// route, for its addressee only; a plain invite link claims by code.
function claimUrl() {
  const link = new URLSearchParams(location.search).get('invitation');
  return link ? '/v1/public/invitations/' + encodeURIComponent(link) + '/claims'
              : '/v1/public/invites/' + encodeURIComponent(code) + '/claims';
}

async function claim(ev) {
  ev.preventDefault();
  clearFieldErrors();
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  say('Claiming…', 'info');
  const res = await call('POST', claimUrl(), { body: claimBody() });
  button.disabled = false;
  if (!res.ok) {
    const problem = res.body || {};
    say(reasonText(problem), 'error');
    if (problem.code === 'details_missing' && problem.missing_field) {
      markField(problem.missing_field, 'This field is required.');
    }
    for (const e of problem.errors || []) markField(e.field, e.message);
    return;
  }
  const c = res.body;
  localStorage.setItem('passage.learner_token', c.learner_token);
  localStorage.setItem(storageKey, JSON.stringify({ claim_id: c.claim_id, learner_token: c.learner_token }));
  say(res.status === 200 ? 'Welcome back: you already have access.' : 'You have access.', 'ok');
  await showClaim();
}

function stored() {
  try { return JSON.parse(localStorage.getItem(storageKey) || 'null'); } catch (e) { return null; }
}

async function showClaim(focusTrack) {
  const mine = stored();
  if (!mine) return false;
  const res = await call('GET', '/v1/public/claims/' + encodeURIComponent(mine.claim_id), { token: mine.learner_token });
  if (!res.ok) {
    if (res.status === 401 || res.status === 404 || res.status === 410) localStorage.removeItem(storageKey);
    return false;
  }
  renderClaim(res.body, mine, focusTrack);
  form.hidden = true;
  const closed = document.getElementById('closed');
  if (closed) closed.hidden = true;
  return true;
}

function renderClaim(c, mine, focusTrack) {
  access.replaceChildren(
    el('h2', { id: 'access-title' }, 'Your tracks'),
    el('p', { class: 'muted' }, 'Claimed on ' + when(c.claimed_at) +
      (c.access_expires_at ? ' · access until ' + when(c.access_expires_at) : ' · access does not expire')),
    el('ul', { class: 'claim-tracks' }, c.tracks.map((t) => trackItem(c, t, mine))));
  access.classList.add('card');
  access.hidden = false;
  if (focusTrack) {
    const again = access.querySelector('[data-track="' + CSS.escape(focusTrack) + '"]');
    if (again) again.focus();
  }
}

function trackItem(c, t, mine) {
  const left = t.plays_remaining === null ? 'Unlimited plays' :
    t.plays_remaining === 1 ? '1 play left' : t.plays_remaining + ' plays left';
  const expiry = t.access_expires_at ? 'Access until ' + when(t.access_expires_at) : 'No expiry';
  const used = t.plays_remaining === 0;
  const expired = c.access_expired;
  const buttons = [];
  if (t.paused) {
    buttons.push(el('button', { type: 'button', 'data-track': t.track_id, onclick: () => act(mine, t.track_id, 'resume') }, 'Resume'));
  } else {
    buttons.push(el('button', {
      type: 'button', 'data-track': t.track_id, disabled: used || expired,
      'aria-label': 'Play ' + t.track_id, onclick: () => act(mine, t.track_id, 'play'),
    }, 'Play'));
    if (t.pausable && !c.anonymous) {
      buttons.push(el('button', { type: 'button', class: 'secondary', onclick: () => act(mine, t.track_id, 'pause') }, 'Pause'));
    }
  }
  return el('li', {},
    el('div', {}, el('strong', {}, t.track_id),
      el('div', { class: 'meta' }, left + ' · ' + expiry + (t.paused ? ' · paused' : ''))),
    el('div', { class: 'row-actions' }, buttons));
}

async function act(mine, trackId, what) {
  const base = '/v1/public/claims/' + encodeURIComponent(mine.claim_id);
  const res = what === 'play'
    ? await call('POST', base + '/plays', { token: mine.learner_token, body: { track_id: trackId } })
    : await call('POST', base + '/tracks/' + encodeURIComponent(trackId) + '/' + what, { token: mine.learner_token });
  if (!res.ok) {
    say(reasonText(res.body), 'error');
  } else if (what === 'play') {
    const left = res.body.plays_remaining;
    say('Playing ' + trackId + '.' + (left === null ? '' : ' ' + left + (left === 1 ? ' play' : ' plays') + ' left.'), 'ok');
  } else {
    say(trackId + (what === 'pause' ? ' is paused.' : ' resumed.'), 'ok');
  }
  await showClaim(trackId);
}

function enableShare() {
  const button = document.getElementById('share');
  const link = document.getElementById('share-link');
  if (!button || !link) return;
  button.hidden = false;
  button.addEventListener('click', async () => {
    const ok = await copyText(new URL(link.getAttribute('href'), location.href).href);
    say(ok ? 'Link copied. Share it with others.' : 'Copy the link above to share it.', ok ? 'ok' : 'info');
  });
}

// Server-rendered times (UTC) in the reader's own time zone.
for (const t of document.querySelectorAll('time[datetime]')) t.textContent = when(t.getAttribute('datetime'));

// A claim made by the page's own form post (before scripts ran) hands over here.
function adoptServedClaim() {
  const { claimId, learnerToken } = access.dataset;
  if (!claimId || !learnerToken) return;
  localStorage.setItem('passage.learner_token', learnerToken);
  localStorage.setItem(storageKey, JSON.stringify({ claim_id: claimId, learner_token: learnerToken }));
  delete access.dataset.learnerToken;
}

if (form) {
  form.addEventListener('submit', claim);
  enableShare();
  adoptServedClaim();
  showClaim();
}
