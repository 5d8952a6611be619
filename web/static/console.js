// The admin console (/console): signs in with an API key and does everything
// through the public v1 API (the key goes in the Authorization header; the live
// views read /v1/events/live with fetch(), never EventSource, so they can).
import { call, follow, el, when, copyText } from './api.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const toast = document.getElementById('toast');
const keyName = 'passage.console.key';
let stopLive = () => {};

const statuses = ['active', 'upcoming', 'full', 'deactivated', 'expired', 'deleted'];
const filters = { status: '', track: '', type: '', q: '' };

// ---- plumbing ---------------------------------------------------------------

const key = () => sessionStorage.getItem(keyName);
const api = (method, path, options = {}) => call(method, path, { ...options, token: key() });

function notify(text) {
  toast.textContent = '';
  requestAnimationFrame(() => { toast.textContent = text; });
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { toast.textContent = ''; }, 6000);
}

function problemText(res) {
  const p = res.body || {};
  if (res.status === 401) return 'Your API key was not accepted. Sign in again.';
  return p.detail || p.title || 'The request failed (' + res.status + ').';
}

// Shows a page; a leading .page-head row takes the heading on its left.
function page(title, ...children) {
  const h1 = el('h1', { tabindex: '-1' }, title);
  if (children[0]?.classList?.contains('page-head')) children[0].prepend(h1);
  else children.unshift(h1);
  main.replaceChildren(...children);
  document.title = title + ' · Passage console';
  h1.focus();
}

function pageHead(...right) {
  return el('div', { class: 'page-head' }, el('div', { class: 'actions' }, right));
}

function errorBox(text) {
  return el('p', { class: 'notice error', role: 'alert' }, text);
}

function badge(status, daysLeft) {
  const text = status === 'upcoming' && daysLeft !== null && daysLeft !== undefined
    ? 'upcoming · ' + daysLeft + (daysLeft === 1 ? ' day' : ' days') : status;
  return el('span', { class: 'badge ' + status }, text);
}

function absoluteLink(invite) {
  return new URL(invite.link, location.href).href;
}

// A modal confirmation; resolves true when confirmed.
function confirmDialog(question, action) {
  return new Promise((resolve) => {
    const dialog = el('dialog', { 'aria-labelledby': 'confirm-title' },
      el('h2', { id: 'confirm-title' }, question),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'secondary', onclick: () => dialog.close('no') }, 'Cancel'),
        el('button', { type: 'button', class: 'danger', onclick: () => dialog.close('yes') }, action)));
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'yes'); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// ---- sign in ------------------------------------------------------------------

function renderNav(current) {
  if (!key()) { nav.replaceChildren(); return; }
  const link = (href, text, id) => el('a', { href, 'aria-current': current === id ? 'page' : null }, text);
  nav.replaceChildren(
    link('#/invites', 'Invites', 'invites'), link('#/invites/new', 'New invite', 'new'),
    link('#/tracks', 'Tracks', 'tracks'), link('#/lead-form', 'Lead form', 'lead-form'),
    link('#/activity', 'Live activity', 'activity'), link('#/keys', 'API keys', 'keys'), el('span', { class: 'spacer' }),
    el('a', { href: '#/signout' }, 'Sign out'));
}

function signIn() {
  const input = el('input', { id: 'api-key', type: 'password', name: 'api_key', autocomplete: 'off', required: true, 'aria-describedby': 'api-key-hint' });
  const message = el('div', { 'aria-live': 'polite' });
  const form = el('form', { class: 'card signin', novalidate: true },
    el('h1', { tabindex: '-1' }, 'Sign in to the console'),
    el('label', { for: 'api-key' }, 'API key'), input,
    el('p', { class: 'hint', id: 'api-key-hint' }, 'An owner, admin or professor key of your organization. It is kept in this tab only.'),
    message, el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const candidate = input.value.trim();
    message.replaceChildren();
    input.removeAttribute('aria-invalid');
    const res = await call('GET', '/v1/invites?limit=1', { token: candidate });
    if (!res.ok) {
      input.setAttribute('aria-invalid', 'true');
      message.append(el('p', { class: 'field-error', id: 'api-key-error' }, res.status === 401 ? 'This API key is not valid.' : problemText(res)));
      input.setAttribute('aria-describedby', 'api-key-error api-key-hint');
      input.focus();
      return;
    }
    sessionStorage.setItem(keyName, candidate);
    location.hash = '#/invites';
    route();
  });
  main.replaceChildren(form);
  document.title = 'Sign in · Passage console';
  input.focus();
}

// ---- invite list ----------------------------------------------------------------

async function inviteList() {
  const tracks = await api('GET', '/v1/tracks');
  const trackOptions = tracks.ok ? tracks.body.tracks : [];
  const select = (id, label, options, value) => [
    el('label', { for: id }, label),
    el('select', { id, name: id }, options.map(([v, t]) => el('option', { value: v, selected: v === value }, t)))];
  const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter invites' },
    el('div', {}, select('filter-status', 'Status',
      [['', 'Open (expired hidden)'], ...statuses.map((s) => [s, s[0].toUpperCase() + s.slice(1)]), ['all', 'All, including expired']], filters.status)),
    el('div', {}, select('filter-track', 'Track', [['', 'Any track'], ...trackOptions.map((t) => [t.track_id, t.title || t.track_id])], filters.track)),
    el('div', {}, select('filter-type', 'Type', [['', 'Any type'], ['self_paced', 'Self-paced'], ['live_event', 'Live event']], filters.type)),
    el('div', {}, el('label', { for: 'filter-q' }, 'Search'),
      el('input', { id: 'filter-q', type: 'search', value: filters.q, placeholder: 'Title or code' })));
  const results = el('div', { 'aria-live': 'polite' });
  let latest = 0;  // answers of older loads arrive late: only the latest renders
  const load = async () => {
    const mine = ++latest;
    filters.status = form.querySelector('#filter-status').value;
    filters.track = form.querySelector('#filter-track').value;
    filters.type = form.querySelector('#filter-type').value;
    filters.q = form.querySelector('#filter-q').value.trim();
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
    query.set('limit', '50');
    const shown = [];
    const more = async (cursor) => {
      if (cursor) query.set('cursor', cursor);
      const res = await api('GET', '/v1/invites?' + query);
      if (mine !== latest) return;
      if (!res.ok) return results.replaceChildren(errorBox(problemText(res)));
      shown.push(...res.body.invites);
      const next = res.body.next_cursor;
      results.replaceChildren(inviteTable(shown, load));
      if (next) {
        results.append(el('div', { class: 'actions' },
          el('button', { type: 'button', class: 'secondary', onclick: () => more(next) }, 'Show more invites')));
      }
    };
    await more(null);
  };
  // The search box reloads as one types (below); its own change event, fired when it loses
  // focus, would reload again just as a click on a row lands, and replace the row under it.
  form.addEventListener('change', (ev) => { if (ev.target.id !== 'filter-q') load(); });
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  let typing;
  form.querySelector('#filter-q').addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(load, 250); });
  page('Invites', pageHead(el('a', { class: 'button', href: '#/invites/new' }, 'New invite')), form, results);
  await load();
}

function inviteTable(invites, reload) {
  if (!invites.length) return el('p', { class: 'empty card' }, 'No invites match these filters.');
  return el('div', { class: 'table-wrap' }, el('table', {},
    el('caption', { class: 'skip' }, 'Invites'),
    el('thead', {}, el('tr', {}, ['Title', 'Code', 'Type', 'Status', 'Claims', 'Actions'].map((h) =>
      el('th', { scope: 'col', class: h === 'Claims' ? 'num' : null }, h)))),
    el('tbody', {}, invites.map((v) => el('tr', { dataset: { id: v.id } },
      el('td', {}, el('a', { href: '#/invites/' + v.id }, v.title)),
      el('td', {}, el('code', {}, v.code)),
      el('td', {}, v.type === 'live_event' ? 'Live event' : 'Self-paced'),
      el('td', {}, badge(v.status, v.days_left)),
      el('td', { class: 'num' }, v.claims_count + (v.claim_limit ? ' / ' + v.claim_limit : '')),
      el('td', {}, inviteActions(v, reload, true)))))));
}

function inviteActions(v, reload, small) {
  const cls = (extra) => [small ? 'small' : '', extra].filter(Boolean).join(' ') || null;
  if (v.status === 'deleted') return el('span', { class: 'muted' }, 'Deleted');
  const lifecycle = async (path, done) => {
    const res = await api('POST', '/v1/invites/' + v.id + path);
    if (!res.ok) return notify(problemText(res));
    notify(done);
    return reload(res.body);
  };
  return el('div', { class: 'row-actions' },
    el('button', { type: 'button', class: cls('secondary'), 'aria-label': 'Copy link of ' + v.title, onclick: async () => {
      const link = absoluteLink(v);
      notify(await copyText(link) ? 'Link copied: ' + link : 'Copy this link: ' + link);
    } }, 'Copy link'),
    el('a', { class: 'button ' + (cls('secondary') || ''), href: '#/invites/' + v.id + '/edit', 'aria-label': 'Edit ' + v.title }, 'Edit'),
    el('button', { type: 'button', class: cls('secondary'), 'aria-label': 'Duplicate ' + v.title, onclick: async () => {
      const res = await api('POST', '/v1/invites/' + v.id + '/duplicate');
      if (!res.ok) return notify(problemText(res));
      notify('Duplicated as “' + res.body.title + '”.');
      location.hash = '#/invites/' + res.body.id + '/edit';
    } }, 'Duplicate'),
    v.status === 'deactivated'
      ? el('button', { type: 'button', class: cls('secondary'), 'aria-label': 'Reactivate ' + v.title, onclick: () => lifecycle('/reactivate', 'Invite reactivated.') }, 'Reactivate')
      : el('button', { type: 'button', class: cls('secondary'), 'aria-label': 'Deactivate ' + v.title, onclick: async () => {
        if (await confirmDialog('Deactivate “' + v.title + '”? Learners cannot claim it until you reactivate it; existing claims keep their access.', 'Deactivate')) {
          await lifecycle('/deactivate', 'Invite deactivated.');
        }
      } }, 'Deactivate'),
    el('button', { type: 'button', class: cls('danger'), 'aria-label': 'Delete ' + v.title, onclick: async () => {
      if (!await confirmDialog('Delete “' + v.title + '” for good? Its link stops working; learners who claimed it keep their access.', 'Delete')) return;
      const res = await api('DELETE', '/v1/invites/' + v.id);
      if (!res.ok) return notify(problemText(res));
      notify('Invite deleted.');
      if (location.hash.startsWith('#/invites/')) location.hash = '#/invites';
      else reload();
    } }, 'Delete'));
}

// ---- invite form ------------------------------------------------------------------

const fieldLabels = {
  title: 'Title', type: 'Type', public_description: 'Public description', internal_description: 'Internal description',
  image_url: 'Image URL', tracks: 'Tracks', access_duration: 'Access duration', plays_per_track: 'Plays per track',
  expires_at: 'Expires at', claim_limit: 'Claim limit', starts_at: 'Starts at', ends_at: 'Ends at', access: 'Who may claim',
  allowed_emails: 'Allowed emails', allowed_domains: 'Allowed domains', require_account: 'Require an email',
  show_share_button: 'Show a share button', capacity_warning_percent: 'Capacity warning at (%)',
  track_id: 'Track id', pausable: 'Pausable', fields: 'Field',
  notify_on_claim: 'Mail me a digest of new claims', name: 'Name', role: 'Role', email: 'Contact email',
};

function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes());
}

function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function lines(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

// A labelled control with a slot for its error message.
function control(name, input, hint) {
  input.id = input.id || 'f-' + name;
  input.name = name;
  const hintId = hint ? input.id + '-hint' : null;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  return el('div', { class: 'control', dataset: { field: name } },
    input.type === 'checkbox'
      ? el('label', { class: 'inline', for: input.id }, input, fieldLabels[name])
      : [el('label', { for: input.id }, fieldLabels[name]), input],
    hint ? el('p', { class: 'hint', id: hintId }, hint) : null);
}

async function inviteForm(id) {
  const [tracksRes, inviteRes] = await Promise.all([
    api('GET', '/v1/tracks'), id ? api('GET', '/v1/invites/' + id) : Promise.resolve(null)]);
  if (!tracksRes.ok) return page('Invite', errorBox(problemText(tracksRes)));
  if (inviteRes && !inviteRes.ok) return page('Invite', errorBox(problemText(inviteRes)));
  const tracks = tracksRes.body.tracks;
  const v = inviteRes ? inviteRes.body : {
    type: 'self_paced', title: '', public_description: '', internal_description: '', image_url: '', tracks: [],
    access_duration: 'forever', plays_per_track: 0, expires_at: null, claim_limit: 0, starts_at: null, ends_at: null,
    access: 'anyone', allowed_emails: [], allowed_domains: [], require_account: false, show_share_button: false,
    capacity_warning_percent: 80, notify_on_claim: false,
  };
  const version = inviteRes ? inviteRes.body.version : null;
  const input = (type, value, extra = {}) => el('input', { type, value: value ?? '', ...extra });
  const checkbox = (checked) => el('input', { type: 'checkbox', checked: !!checked });
  const options = (value, pairs) => el('select', {}, pairs.map(([k, t]) => el('option', { value: k, selected: k === value }, t)));

  const trackList = el('div', { id: 'f-tracks', role: 'group', 'aria-label': 'Tracks in order' });
  const addTrackRow = (t) => {
    const select = el('select', { 'aria-label': 'Track' }, tracks.map((x) =>
      el('option', { value: x.track_id, selected: x.track_id === t.track_id }, (x.title || x.track_id) + ' (' + x.track_id + ')')));
    const pausable = el('input', { type: 'checkbox', checked: !!t.pausable, 'aria-label': 'Pausable' });
    // Only a pausable track may be paused; a new choice starts from the track's own setting.
    const allow = (reset) => {
      const chosen = tracks.find((x) => x.track_id === select.value);
      pausable.disabled = !chosen || !chosen.pausable;
      if (reset || pausable.disabled) pausable.checked = !!chosen?.pausable;
    };
    select.addEventListener('change', () => allow(true));
    allow(false);
    const row = el('div', { class: 'track-row' },
      el('span', { class: 'muted position' }), select,
      el('label', { class: 'inline' }, pausable, 'Pausable'),
      el('div', { class: 'row-actions' },
        el('button', { type: 'button', class: 'small secondary', 'aria-label': 'Move up', onclick: () => { row.previousElementSibling?.before(row); number(); } }, '↑'),
        el('button', { type: 'button', class: 'small secondary', 'aria-label': 'Move down', onclick: () => { row.nextElementSibling?.after(row); number(); } }, '↓'),
        el('button', { type: 'button', class: 'small secondary', 'aria-label': 'Remove track', onclick: () => { row.remove(); number(); } }, 'Remove')));
    trackList.append(row);
    number();
  };
  const number = () => trackList.querySelectorAll('.position').forEach((s, i) => { s.textContent = (i + 1) + '.'; });
  const unusedTrack = () => {
    const used = new Set([...trackList.querySelectorAll('select')].map((s) => s.value));
    const t = tracks.find((x) => !used.has(x.track_id)) || tracks[0];
    return { track_id: t.track_id, pausable: t.pausable };
  };
  for (const t of v.tracks) addTrackRow(t);
  if (!v.tracks.length && tracks.length) addTrackRow(unusedTrack());

  const f = {
    title: input('text', v.title, { required: true, 'aria-required': 'true' }),
    type: options(v.type, [['self_paced', 'Self-paced'], ['live_event', 'Live event']]),
    public_description: el('textarea', {}, v.public_description),
    internal_description: el('textarea', {}, v.internal_description),
    image_url: input('url', v.image_url, { placeholder: 'https://…' }),
    access_duration: input('text', v.access_duration),
    plays_per_track: input('number', v.plays_per_track, { min: '0' }),
    claim_limit: input('number', v.claim_limit, { min: '0' }),
    capacity_warning_percent: input('number', v.capacity_warning_percent, { min: '1', max: '100' }),
    expires_at: input('datetime-local', toLocalInput(v.expires_at)),
    starts_at: input('datetime-local', toLocalInput(v.starts_at)),
    ends_at: input('datetime-local', toLocalInput(v.ends_at)),
    access: options(v.access, [['anyone', 'Anyone with the link'], ['lead_form', 'Learners who fill in the lead form'], ['allowed', 'Only allowed emails and domains']]),
    allowed_emails: el('textarea', {}, (v.allowed_emails || []).join('\n')),
    allowed_domains: el('textarea', {}, (v.allowed_domains || []).join('\n')),
    require_account: checkbox(v.require_account),
    show_share_button: checkbox(v.show_share_button),
    notify_on_claim: checkbox(v.notify_on_claim),
  };
  const live = el('div', {}, el('div', { class: 'grid2' }, control('starts_at', f.starts_at), control('ends_at', f.ends_at)),
    el('p', { class: 'hint' }, 'A live event accepts claims from 24 hours before it starts until it ends.'));
  const selfPaced = control('expires_at', f.expires_at, 'Leave empty for an invite that never expires.');
  const allowed = el('div', { class: 'grid2' },
    control('allowed_emails', f.allowed_emails, 'One per line.'), control('allowed_domains', f.allowed_domains, 'One per line, e.g. example.com.'));
  const sync = () => {
    live.hidden = f.type.value !== 'live_event';
    selfPaced.hidden = f.type.value === 'live_event';
    allowed.hidden = f.access.value !== 'allowed';
  };
  f.type.addEventListener('change', sync);
  f.access.addEventListener('change', sync);
  sync();

  const message = el('div', { 'aria-live': 'polite' });
  const form = el('form', { class: 'card invite-form', novalidate: true },
    el('fieldset', {}, el('legend', {}, 'What learners see'),
      control('title', f.title), control('public_description', f.public_description),
      control('image_url', f.image_url, 'An https image shown on the invite page.'),
      control('internal_description', f.internal_description, 'For your team only; never shown to learners.')),
    el('fieldset', {}, el('legend', {}, 'Tracks'),
      el('div', { class: 'control', dataset: { field: 'tracks' } }, trackList,
        tracks.length ? el('button', { type: 'button', class: 'small secondary', onclick: () => addTrackRow(unusedTrack()) }, 'Add track')
          : el('p', { class: 'notice info' }, 'Register a track first (Tracks page).'))),
    el('fieldset', {}, el('legend', {}, 'Content restrictions'),
      el('div', { class: 'grid2' },
        control('access_duration', f.access_duration, 'ISO-8601 duration such as P30D or P1Y2M, or “forever”.'),
        control('plays_per_track', f.plays_per_track, '0 = unlimited.'))),
    el('fieldset', {}, el('legend', {}, 'Invite restrictions'),
      control('type', f.type), selfPaced, live,
      el('div', { class: 'grid2' },
        control('claim_limit', f.claim_limit, 'Unique learners; 0 = unlimited.'),
        control('capacity_warning_percent', f.capacity_warning_percent, 'Emit a capacity warning at this share of the limit.'))),
    el('fieldset', {}, el('legend', {}, 'Access'),
      control('access', f.access), allowed,
      control('require_account', f.require_account, 'Ask for an email even when anyone may claim.'),
      control('show_share_button', f.show_share_button)),
    el('fieldset', {}, el('legend', {}, 'Notifications'),
      control('notify_on_claim', f.notify_on_claim,
        'At most one mail every 15 minutes, to the contact email of the API key that created the invite (see API keys).')),
    message,
    el('div', { class: 'actions' },
      el('button', { type: 'submit' }, id ? 'Save changes' : 'Create invite'),
      el('a', { class: 'button secondary', href: id ? '#/invites/' + id : '#/invites' }, 'Cancel')));

  const body = () => {
    const b = {
      title: f.title.value.trim(), type: f.type.value, public_description: f.public_description.value,
      internal_description: f.internal_description.value, image_url: f.image_url.value.trim(),
      tracks: [...trackList.querySelectorAll('.track-row')].map((row) => ({
        track_id: row.querySelector('select').value, pausable: row.querySelector('input[type=checkbox]').checked })),
      access_duration: f.access_duration.value.trim() || 'forever',
      plays_per_track: Number(f.plays_per_track.value || 0), claim_limit: Number(f.claim_limit.value || 0),
      capacity_warning_percent: Number(f.capacity_warning_percent.value || 80),
      access: f.access.value, require_account: f.require_account.checked, show_share_button: f.show_share_button.checked,
      notify_on_claim: f.notify_on_claim.checked,
      allowed_emails: f.access.value === 'allowed' ? lines(f.allowed_emails.value) : [],
      allowed_domains: f.access.value === 'allowed' ? lines(f.allowed_domains.value) : [],
    };
    if (b.type === 'live_event') {
      b.starts_at = fromLocalInput(f.starts_at.value);
      b.ends_at = fromLocalInput(f.ends_at.value);
      if (inviteRes) b.expires_at = null;
    } else {
      b.expires_at = fromLocalInput(f.expires_at.value);
      if (inviteRes) { b.starts_at = null; b.ends_at = null; }
    }
    if (!inviteRes) for (const k of Object.keys(b)) if (b[k] === null || b[k] === '') delete b[k];
    if (!inviteRes) return b;
    // An edit sends only what changed.
    const changed = {};
    for (const [k, value] of Object.entries(b)) {
      if (JSON.stringify(value) !== JSON.stringify(v[k] ?? null)) changed[k] = value;
    }
    return changed;
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form, message);
    const payload = body();
    if (inviteRes && !Object.keys(payload).length) {
      message.append(el('p', { class: 'notice info' }, 'Nothing changed.'));
      return;
    }
    const res = inviteRes
      ? await api('PATCH', '/v1/invites/' + id, { body: payload, headers: { 'If-Match': '"' + version + '"' } })
      : await api('POST', '/v1/invites', { body: payload });
    if (!res.ok) return showErrors(form, message, res);
    notify(inviteRes ? 'Changes saved.' : 'Invite created. Its link: ' + absoluteLink(res.body));
    location.hash = '#/invites/' + res.body.id;
  });
  page(id ? 'Edit “' + v.title + '”' : 'New invite', form);
}

function clearErrors(form, message) {
  message.replaceChildren();
  for (const p of form.querySelectorAll('.field-error')) p.remove();
  for (const i of form.querySelectorAll('[aria-invalid]')) {
    i.removeAttribute('aria-invalid');
    const d = (i.getAttribute('aria-describedby') || '').split(' ').filter((x) => !x.endsWith('-error')).join(' ');
    if (d) i.setAttribute('aria-describedby', d); else i.removeAttribute('aria-describedby');
  }
}

// "Title" + "is required" → "Title is required"; a full message gets a colon.
function sentence(label, message) {
  return /^(is|are|must|has|should|may)\b/.test(message) ? label + ' ' + message : label + ': ' + message;
}

// Shows a problem's field errors next to their fields ("tracks[0].track_id"
// belongs to "tracks"), and the rest above the buttons.
function showErrors(form, message, res) {
  const errors = (res.body && res.body.errors) || [];
  let first = null;
  const unplaced = [];
  for (const e of errors) {
    const base = String(e.field).split(/[[.]/)[0];
    const box = form.querySelector('[data-field="' + CSS.escape(base) + '"]');
    if (!box) { unplaced.push(e); continue; }
    const target = box.querySelector('input, select, textarea');
    const id = (target?.id || 'f-' + base) + '-error';
    box.append(el('p', { class: 'field-error', id }, sentence(fieldLabels[base] || base, e.message)));
    if (target) {
      target.setAttribute('aria-invalid', 'true');
      target.setAttribute('aria-describedby', ((target.getAttribute('aria-describedby') || '') + ' ' + id).trim());
      first = first || target;
    }
  }
  if (!errors.length || unplaced.length) {
    const text = res.status === 412
      ? 'Someone else changed this invite meanwhile. Reload the page to edit the latest version.'
      : unplaced.length ? unplaced.map((e) => e.field + ' ' + e.message).join('; ') : problemText(res);
    message.append(errorBox(text));
  } else {
    message.append(errorBox('Please correct the highlighted field' + (errors.length > 1 ? 's.' : '.')));
  }
  (first || message).focus?.();
}

// ---- one invite --------------------------------------------------------------------

async function inviteDetail(id) {
  const res = await api('GET', '/v1/invites/' + id);
  if (!res.ok) return page('Invite', errorBox(problemText(res)));
  const v = res.body;
  const figures = el('div', { class: 'figures', 'aria-live': 'polite' });
  const chart = el('div', { class: 'chart card' });
  const plays = el('div');
  const claims = el('div');
  const rejections = el('div');
  const liveState = el('span', { class: 'muted' }, el('span', { class: 'live-dot' }), 'Connecting…');
  let latest = 0;  // overlapping refreshes: only the latest renders
  const refresh = async () => {
    const mine = ++latest;
    const [u, c, r, fresh] = await Promise.all([
      api('GET', '/v1/invites/' + id + '/usage'), api('GET', '/v1/invites/' + id + '/claims'),
      api('GET', '/v1/invites/' + id + '/rejections'), api('GET', '/v1/invites/' + id)]);
    if (mine !== latest) return;
    if (u.ok) renderUsage(u.body, fresh.ok ? fresh.body : v, figures, chart, plays);
    if (c.ok) claims.replaceChildren(acceptanceTable(c.body.claims));
    if (r.ok) rejections.replaceChildren(rejectionTable(r.body.rejections));
  };
  const head = el('div', { class: 'page-head' },
    el('div', { class: 'actions' }, badge(v.status, v.days_left), liveState),
  );
  const link = absoluteLink(v);
  page(v.title, head,
    el('div', { class: 'card' },
      el('p', {}, 'Link: ', el('a', { href: v.link, id: 'invite-link' }, link), ' · code ', el('code', {}, v.code)),
      el('p', { class: 'muted' }, summary(v)),
      v.internal_description ? el('p', {}, el('strong', {}, 'Internal: '), v.internal_description) : null,
      inviteActions(v, () => route())),
    el('h2', {}, 'Usage'), figures, chart, plays,
    el('div', { class: 'page-head' }, el('h2', { id: 'acceptance' }, 'Acceptance list'),
      el('button', { type: 'button', class: 'secondary small', onclick: () => downloadCsv(v) }, 'Download CSV')),
    claims,
    el('h2', {}, 'Rejected claims'), rejections);
  await refresh();
  let pending = null;
  stopLive = follow('/v1/events/live', key(), (msg) => {
    // The invite's own stream, and plays on its claims' streams.
    const e = msg.data;
    if (!e || (e.stream !== 'invite-' + id && e.data?.invite_id !== id)) return;
    clearTimeout(pending);
    pending = setTimeout(refresh, 150);
  }, (on) => {
    liveState.replaceChildren(el('span', { class: 'live-dot' + (on ? ' on' : '') }), on ? 'Live' : 'Reconnecting…');
  });
}

function summary(v) {
  const parts = [v.type === 'live_event' ? 'Live event ' + when(v.starts_at) + ' – ' + when(v.ends_at) : 'Self-paced'];
  parts.push(v.expires_at ? 'expires ' + when(v.expires_at) : v.type === 'live_event' ? null : 'never expires');
  parts.push('access ' + (v.access_duration === 'forever' ? 'forever' : 'for ' + v.access_duration));
  parts.push(v.plays_per_track ? v.plays_per_track + ' plays per track' : 'unlimited plays');
  parts.push(v.claim_limit ? 'limit ' + v.claim_limit + ' learners' : 'no claim limit');
  parts.push({ anyone: 'anyone may claim', lead_form: 'lead form required', allowed: 'allowed emails/domains only' }[v.access]);
  return parts.filter(Boolean).join(' · ');
}

function renderUsage(u, v, figures, chart, plays) {
  const figure = (label, value) => el('div', { class: 'figure' }, el('div', { class: 'value' }, String(value)), el('div', { class: 'label' }, label));
  figures.replaceChildren(
    figure('Claims', u.claims), figure('Unique learners', u.unique_learners), figure('Anonymous claims', u.anonymous_claims),
    figure('Rejections', u.rejections), figure('Plays', u.plays),
    figure('Remaining spots', u.remaining_spots === null ? 'Unlimited' : u.remaining_spots));
  chart.replaceChildren(el('h3', {}, 'Claims per day'), claimsChart(u.claims_per_day));
  plays.replaceChildren(u.plays_per_track.length
    ? el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Track'), el('th', { scope: 'col', class: 'num' }, 'Plays'))),
      el('tbody', {}, u.plays_per_track.map((p) => el('tr', {}, el('td', {}, p.track_id), el('td', { class: 'num' }, p.plays))))))
    : el('p', { class: 'muted' }, 'No plays yet.'));
}

// Inline SVG bar chart of claims per day, days without claims included.
function claimsChart(days) {
  const ns = 'http://www.w3.org/2000/svg';
  if (!days.length) return el('p', { class: 'muted' }, 'No claims yet.');
  const byDay = new Map(days.map((d) => [d.date, d.claims]));
  const first = new Date(days[0].date + 'T00:00:00Z');
  const last = new Date(days[days.length - 1].date + 'T00:00:00Z');
  const series = [];
  for (let t = Math.max(first.getTime(), last.getTime() - 89 * 86400000); t <= last.getTime(); t += 86400000) {
    const date = new Date(t).toISOString().slice(0, 10);
    series.push({ date, claims: byDay.get(date) || 0 });
  }
  const width = 640, height = 180, left = 32, bottom = 24, top = 10;
  const max = Math.max(1, ...series.map((d) => d.claims));
  const step = (width - left - 8) / series.length;
  const svg = document.createElementNS(ns, 'svg');
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, val] of Object.entries(attrs)) n.setAttribute(k, val);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  svg.setAttribute('role', 'img');
  const total = series.reduce((s, d) => s + d.claims, 0);
  svg.setAttribute('aria-label', total + ' claims from ' + series[0].date + ' to ' + series[series.length - 1].date);
  add('line', { class: 'axis', x1: left, y1: height - bottom, x2: width - 4, y2: height - bottom });
  add('text', { x: left - 6, y: top + 8, 'text-anchor': 'end' }, String(max));
  add('text', { x: left - 6, y: height - bottom, 'text-anchor': 'end' }, '0');
  series.forEach((d, i) => {
    const h = (d.claims / max) * (height - bottom - top);
    const w = Math.max(1, Math.min(step * 0.7, 40));
    const bar = add('rect', { class: 'bar', x: left + i * step + (step - w) / 2, y: height - bottom - h, width: w, height: h, rx: 2 });
    const title = document.createElementNS(ns, 'title');
    title.textContent = d.date + ': ' + d.claims + (d.claims === 1 ? ' claim' : ' claims');
    bar.append(title);
  });
  const labelEvery = Math.ceil(series.length / 8);
  series.forEach((d, i) => {
    if (i % labelEvery === 0 || i === series.length - 1) {
      add('text', { x: left + i * step + step / 2, y: height - 6, 'text-anchor': 'middle' }, d.date.slice(5));
    }
  });
  return svg;
}

function person(row) {
  if (row.forgotten) return ['forgotten', ''];
  if (row.anonymous) return ['anonymous', ''];
  return [row.email || '', [row.first_name, row.last_name].filter(Boolean).join(' ')];
}

function acceptanceTable(rows) {
  if (!rows.length) return el('p', { class: 'empty card' }, 'Nobody has claimed this invite yet.');
  const named = rows.some((r) => person(r)[1]);
  return el('div', { class: 'table-wrap' }, el('table', { id: 'acceptance-list' },
    el('thead', {}, el('tr', {}, ['Email', named && 'Name', 'Claimed', 'Access until'].filter(Boolean).map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map((r) => {
      const [email, name] = person(r);
      return el('tr', {}, el('td', {}, email), named ? el('td', {}, name) : null, el('td', {}, when(r.claimed_at)),
        el('td', {}, r.access_expires_at ? when(r.access_expires_at) : 'Forever'));
    }))));
}

function rejectionTable(rows) {
  if (!rows.length) return el('p', { class: 'empty card' }, 'No rejected claims.');
  return el('div', { class: 'table-wrap' }, el('table', { id: 'rejections' },
    el('thead', {}, el('tr', {}, ['Reason', 'Who', 'When'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {},
      el('td', {}, el('span', { class: 'badge deactivated' }, r.reason.replace(/_/g, ' '))),
      el('td', {}, person(r)[0] || 'anonymous'), el('td', {}, when(r.rejected_at)))))));
}

async function downloadCsv(v) {
  const res = await api('GET', '/v1/invites/' + v.id + '/claims', { accept: 'text/csv' });
  if (!res.ok) return notify(problemText(res));
  const url = URL.createObjectURL(new Blob([res.body], { type: 'text/csv' }));
  const a = el('a', { href: url, download: 'acceptance-' + v.code + '.csv' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
  notify('Acceptance list downloaded.');
}

// ---- live activity -------------------------------------------------------------------

async function activity() {
  const system = await api('GET', '/v1/system');
  const head = system.ok ? system.body.log_position : 0;
  const state = el('span', { class: 'muted' }, el('span', { class: 'live-dot' }), 'Connecting…');
  const feed = el('ol', { class: 'feed', role: 'log', 'aria-label': 'Events, newest first', 'aria-live': 'polite' });
  const empty = el('p', { class: 'empty card' }, 'Waiting for events…');
  page('Live activity', pageHead(state),
    el('p', { class: 'muted' }, 'Every event of your organization as it is recorded, newest first.'), empty, feed);
  stopLive = follow('/v1/events/live?from=' + Math.max(1, head - 49), key(), (msg) => {
    const e = msg.data;
    if (!e || !e.type) return;
    empty.hidden = true;
    const invite = e.stream.startsWith('invite-') ? e.stream.slice(7) : e.data?.invite_id || null;
    feed.prepend(el('li', { dataset: { type: e.type } },
      el('span', { class: 'muted' }, '#' + e.position), el('strong', {}, e.type),
      invite ? el('a', { href: '#/invites/' + invite }, e.stream) : el('span', {}, e.stream),
      el('span', { class: 'muted' }, when(e.recorded_at))));
    while (feed.children.length > 200) feed.lastElementChild.remove();
  }, (on) => state.replaceChildren(el('span', { class: 'live-dot' + (on ? ' on' : '') }), on ? 'Live' : 'Reconnecting…'));
}

// ---- tracks ---------------------------------------------------------------------------

async function trackPage() {
  const res = await api('GET', '/v1/tracks');
  if (!res.ok) return page('Tracks', errorBox(problemText(res)));
  const list = res.body.tracks.length
    ? el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, ['Track id', 'Title', 'Pausable', 'Registered'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, res.body.tracks.map((t) => el('tr', {},
        el('td', {}, el('code', {}, t.track_id)), el('td', {}, t.title), el('td', {}, t.pausable ? 'Yes' : 'No'), el('td', {}, when(t.registered_at)))))))
    : el('p', { class: 'empty card' }, 'No tracks yet.');
  const labels = { track_id: 'Track id', title: 'Title', pausable: 'Pausable' };
  const field = (name, input) => {
    input.id = 'track-' + name;
    input.name = name;
    return el('div', { class: 'control', dataset: { field: name } },
      input.type === 'checkbox' ? el('label', { class: 'inline', for: input.id }, input, labels[name])
        : [el('label', { for: input.id }, labels[name]), input]);
  };
  const message = el('div', { 'aria-live': 'polite' });
  const inputs = { track_id: el('input', { type: 'text', required: true }), title: el('input', { type: 'text', required: true }), pausable: el('input', { type: 'checkbox' }) };
  const form = el('form', { class: 'card', novalidate: true }, el('h2', {}, 'Register a track'),
    el('div', { class: 'grid2' }, field('track_id', inputs.track_id), field('title', inputs.title)), field('pausable', inputs.pausable),
    message, el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Register track')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form, message);
    const r = await api('POST', '/v1/tracks', { body: { track_id: inputs.track_id.value.trim(), title: inputs.title.value.trim(), pausable: inputs.pausable.checked } });
    if (!r.ok) {
      if (r.body && r.body.code === 'already_exists') r.body.errors = [{ field: 'track_id', message: 'is already registered' }];
      return showErrors(form, message, r);
    }
    notify('Track “' + r.body.title + '” registered.');
    trackPage();
  });
  page('Tracks', list, form);
}

// ---- lead form ---------------------------------------------------------------------------

async function leadFormPage() {
  const res = await api('GET', '/v1/lead-form');
  if (!res.ok) return page('Lead form', errorBox(problemText(res)));
  let etag = res.headers.get('ETag');
  const rows = el('div', { id: 'lead-fields' });
  const addRow = (f) => {
    const n = rows.children.length;
    const row = el('div', { class: 'lead-row', dataset: { field: 'fields' } },
      el('input', { type: 'text', value: f.name, 'aria-label': 'Field name', placeholder: 'name, e.g. company' }),
      el('input', { type: 'text', value: f.label, 'aria-label': 'Label shown to learners', placeholder: 'Label' }),
      el('label', { class: 'inline' }, el('input', { type: 'checkbox', checked: !!f.required, id: 'lead-required-' + n }), 'Required'),
      el('button', { type: 'button', class: 'small secondary', 'aria-label': 'Remove field', onclick: () => row.remove() }, 'Remove'));
    rows.append(row);
  };
  for (const f of res.body.fields) addRow(f);
  const message = el('div', { 'aria-live': 'polite' });
  const form = el('form', { class: 'card', novalidate: true },
    el('p', { class: 'muted' }, 'First name, last name and email are always collected. A field named “consent” is shown as a checkbox and is always required.'),
    el('div', { class: 'control', dataset: { field: 'fields' } }, rows),
    el('button', { type: 'button', class: 'small secondary', onclick: () => addRow({ name: '', label: '', required: false }) }, 'Add field'),
    message, el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Save lead form')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form, message);
    const fields = [...rows.children].map((row) => {
      const [name, label] = row.querySelectorAll('input[type=text]');
      return { name: name.value.trim(), label: label.value.trim(), required: row.querySelector('input[type=checkbox]').checked };
    });
    const r = await api('PUT', '/v1/lead-form', { body: { fields }, headers: etag ? { 'If-Match': etag } : {} });
    if (!r.ok) return showErrors(form, message, r);
    etag = r.headers.get('ETag');
    notify('Lead form saved.');
  });
  page('Lead form', form);
}

// ---- API keys ------------------------------------------------------------------------------

// A key's contact email cell; an active key's is edited in place (PATCH /v1/api-keys/{id};
// an empty field clears it, and claim digests then have no address to go to).
function keyEmailCell(k) {
  const td = el('td', {});
  const label = k.name || k.id;
  const show = () => td.replaceChildren(k.email || el('span', { class: 'muted' }, 'none'),
    k.revoked ? null : ' ',
    k.revoked ? null : el('button', { type: 'button', class: 'small secondary', 'aria-label': 'Edit the email of ' + label, onclick: () => edit() }, 'Edit'));
  const edit = () => {
    const input = el('input', { type: 'email', autocomplete: 'off', value: k.email || '', 'aria-label': 'Email of ' + label });
    const message = el('div', { 'aria-live': 'polite' });
    const form = el('form', { novalidate: true }, input, ' ',
      el('button', { type: 'submit', class: 'small' }, 'Save'), ' ',
      el('button', { type: 'button', class: 'small secondary', onclick: show }, 'Cancel'), message);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const email = input.value.trim();
      const r = await api('PATCH', '/v1/api-keys/' + k.id, { body: { email: email || null } });
      if (!r.ok) return message.replaceChildren(errorBox(problemText(r)));
      k.email = r.body.email;
      notify(k.email ? 'Contact email saved.' : 'Contact email cleared.');
      show();
    });
    td.replaceChildren(form);
    input.focus();
  };
  show();
  return td;
}

// The organization's keys (owner keys only) and a form to issue one; the new key is shown
// once, here, and never again.
async function keyPage() {
  const res = await api('GET', '/v1/api-keys');
  const list = !res.ok ? errorBox(problemText(res)) : res.body.api_keys.length
    ? el('div', { class: 'table-wrap' }, el('table', {},
      el('caption', { class: 'skip' }, 'API keys'),
      el('thead', {}, el('tr', {}, ['Name', 'Role', 'Contact email', 'Issued', 'Actions'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, res.body.api_keys.map((k) => el('tr', {},
        el('td', {}, k.name || el('span', { class: 'muted' }, '(no name)')), el('td', {}, k.role),
        keyEmailCell(k), el('td', {}, when(k.issued_at)),
        el('td', {}, k.revoked ? el('span', { class: 'muted' }, 'Revoked')
          : el('button', { type: 'button', class: 'small danger', 'aria-label': 'Revoke ' + (k.name || k.id), onclick: async () => {
            if (!await confirmDialog('Revoke the key “' + (k.name || k.id) + '”? Whoever uses it is refused from now on.', 'Revoke')) return;
            const r = await api('DELETE', '/v1/api-keys/' + k.id);
            if (!r.ok) return notify(problemText(r));
            notify('Key revoked.');
            keyPage();
          } }, 'Revoke')))))))
    : el('p', { class: 'empty card' }, 'No keys yet.');
  const inputs = {
    name: el('input', { type: 'text' }),
    role: el('select', {}, [['admin', 'Admin'], ['professor', 'Professor'], ['owner', 'Owner']].map(([k, t]) => el('option', { value: k }, t))),
    email: el('input', { type: 'email', autocomplete: 'off' }),
  };
  const message = el('div', { 'aria-live': 'polite' });
  const issued = el('div', { 'aria-live': 'polite' });
  const form = el('form', { class: 'card', novalidate: true }, el('h2', {}, 'Issue a key'),
    el('div', { class: 'grid2' }, control('name', inputs.name), control('role', inputs.role)),
    control('email', inputs.email, 'Optional. Claim digests of the invites created with this key go here.'),
    message, el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Issue key')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form, message);
    issued.replaceChildren();
    const body = { role: inputs.role.value, name: inputs.name.value.trim() };
    if (inputs.email.value.trim()) body.email = inputs.email.value.trim();
    const r = await api('POST', '/v1/api-keys', { body });
    if (!r.ok) return showErrors(form, message, r);
    form.reset();
    const shown = await keyPage();
    shown.issued.append(el('div', { class: 'notice ok', role: 'status' },
      el('p', {}, 'Key “' + (r.body.name || r.body.id) + '” issued' + (r.body.email ? ' (contact ' + r.body.email + ')' : '') +
        '. Copy it now: it is not shown again.'),
      el('p', {}, el('code', { id: 'issued-key' }, r.body.key), ' ',
        el('button', { type: 'button', class: 'small secondary', onclick: async () => {
          notify(await copyText(r.body.key) ? 'Key copied.' : 'Copy the key from the page.');
        } }, 'Copy key'))));
  });
  page('API keys', issued, list, form);
  return { issued };
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  stopLive();
  stopLive = () => {};
  const hash = location.hash || '#/invites';
  if (hash === '#/signout') {
    sessionStorage.removeItem(keyName);
    history.replaceState(null, '', location.pathname);
  }
  if (!key()) { renderNav(); return signIn(); }
  const parts = hash.slice(2).split('/');
  if (parts[0] === 'invites' && parts[1] === 'new') { renderNav('new'); return inviteForm(null); }
  if (parts[0] === 'invites' && parts[1] && parts[2] === 'edit') { renderNav('invites'); return inviteForm(parts[1]); }
  if (parts[0] === 'invites' && parts[1]) { renderNav('invites'); return inviteDetail(parts[1]); }
  if (parts[0] === 'tracks') { renderNav('tracks'); return trackPage(); }
  if (parts[0] === 'lead-form') { renderNav('lead-form'); return leadFormPage(); }
  if (parts[0] === 'activity') { renderNav('activity'); return activity(); }
  if (parts[0] === 'keys') { renderNav('keys'); return keyPage(); }
  renderNav('invites');
  return inviteList();
}

window.addEventListener('hashchange', route);
route();
