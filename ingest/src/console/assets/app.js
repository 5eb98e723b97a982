// The ingest console: one page, no framework, no build step. Served with a strict
// Content-Security-Policy, so: no inline script or style, no innerHTML; every element is built
// with the DOM API and every label comes from the dictionary in i18n.js. API: ingest/API.md.
'use strict';

(() => {
  // ---------------------------------------------------------------- labels

  const I18N = window.CONSOLE_I18N;

  const SEVERITIES = ['critical', 'major', 'warning', 'info'];
  const MAX_ROWS = 1000;

  const S = {
    lang: 'en', me: null, csrf: '', tab: 'alerts',
    alerts: [], silences: [], known: null, flash: new Set(),
    history: null, insp: null, rate: null, rateHist: null, status: null, audit: null,
    es: null, live: 'off', lastEventAt: 0, events: 0, lastAlertsAt: 0, ackTarget: null, silenceTarget: null,
    timers: {},
  };

  const $ = (sel) => document.querySelector(sel);
  const $$ = (sel) => Array.from(document.querySelectorAll(sel));

  function t(key, vars) {
    let s = (I18N[S.lang] && I18N[S.lang][key]) ?? I18N.en[key] ?? key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] ?? m));
    return String(s);
  }

  function labelOr(prefix, value) {
    const key = `${prefix}.${value}`;
    return (I18N[S.lang][key] ?? I18N.en[key]) ? t(key) : String(value ?? '');
  }

  // ---------------------------------------------------------------- DOM helpers

  /** el('td', {class: 'x', 'data-testid': 'y', onclick: f}, child, 'text', …) */
  function el(tag, attrs, ...children) {
    const svg = tag.startsWith('svg:');
    const node = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function td(attrs, ...children) { return el('td', attrs, ...children); }
  function emptyRow(cols, text) { return el('tr', { class: 'empty-row' }, td({ colspan: cols }, text)); }
  const pad = (n, w = 2) => String(n).padStart(w, '0');

  function fmtTime(ms) {
    if (ms === undefined || ms === null || ms === '') return t('none');
    const d = new Date(Number(ms));
    if (Number.isNaN(d.getTime())) return String(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtAge(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (S.lang === 'zh') {
      if (d) return `${d}天${h}小时`;
      if (h) return `${h}小时${pad(m)}分`;
      if (m) return `${m}分${pad(sec)}秒`;
      return `${sec}秒`;
    }
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${pad(m)}m`;
    if (m) return `${m}m ${pad(sec)}s`;
    return `${sec}s`;
  }

  const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString(S.lang === 'zh' ? 'zh-CN' : 'en-US') : String(n ?? t('none')));
  const fmtRate = (r) => (typeof r === 'number' ? `${(r * 100).toFixed(2)} %` : t('none'));

  /** A <time> whose text ticks: the age since `since`, or the time left until `until`. */
  function ageEl(since, title) {
    return el('time', { class: 'age', 'data-since': since, datetime: new Date(since).toISOString(), title: title || fmtTime(since) },
      fmtAge(Date.now() - since));
  }
  /** "3m 05s ago", ticking. */
  function agoEl(since) {
    return el('time', { class: 'age', 'data-ago': since, datetime: new Date(since).toISOString() }, t('ago', { age: fmtAge(Date.now() - since) }));
  }
  function untilEl(until) {
    return el('time', { class: 'age', 'data-until': until, datetime: new Date(until).toISOString() }, fmtAge(until - Date.now()));
  }

  function tickAges() {
    const now = Date.now();
    for (const n of $$('[data-since]')) n.textContent = fmtAge(now - Number(n.dataset.since));
    for (const n of $$('[data-until]')) n.textContent = fmtAge(Number(n.dataset.until) - now);
    for (const n of $$('[data-ago]')) n.textContent = t('ago', { age: fmtAge(now - Number(n.dataset.ago)) });
  }

  function sevClass(sev) { return SEVERITIES.includes(sev) ? sev : 'info'; }
  function sevBadge(sev) { return el('span', { class: `badge sev-${sevClass(sev)}` }, labelOr('sev', sev)); }
  function statusBadge(st) { return el('span', { class: `badge st-${String(st)}` }, labelOr('status', st)); }
  function onlineBadge(on) {
    return el('span', { class: `badge ${on ? 'online' : 'offline'}` }, t(on ? 'status.online' : 'status.offline'));
  }

  // ---------------------------------------------------------------- errors and API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function showError(msg) {
    $('#banner-text').textContent = msg;
    $('#banner').hidden = false;
    clearTimeout(S.timers.banner);
    S.timers.banner = setTimeout(() => { $('#banner').hidden = true; }, 15000);
  }

  function showFormError(id, msg) {
    const p = $(id);
    p.textContent = msg || '';
    p.hidden = !msg;
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const opts = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) { headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
    if (method !== 'GET' && method !== 'HEAD' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
    let res;
    try { res = await fetch(path, opts); } catch (e) { throw new ApiError(0, t('err.network')); }
    const text = res.status === 204 ? '' : await res.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
    if (!res.ok) {
      const msg = data && typeof data.error === 'string' ? data.error : t('err.http', { status: res.status });
      if (res.status === 401 && path !== '/api/v1/login' && S.me) sessionEnded();
      throw new ApiError(res.status, msg);
    }
    return data;
  }

  /** Runs a loader; a failure is shown in the banner (401 already led to the login form). */
  async function guarded(fn) {
    try { await fn(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) showError(e.message); }
  }

  // ---------------------------------------------------------------- session

  const canAct = () => !!S.me && (S.me.role === 'operator' || S.me.role === 'admin');
  const isAdmin = () => !!S.me && S.me.role === 'admin';

  function setSession(me) {
    S.me = me;
    S.csrf = me && me.csrf ? me.csrf : '';
    document.body.classList.toggle('can-act', canAct());
    document.body.classList.toggle('is-admin', isAdmin());
  }

  /** Forgets everything the last user was shown, so the next one never sees it. */
  function clearData() {
    Object.assign(S, { alerts: [], silences: [], known: null, history: null, insp: null, rate: null, rateHist: null, status: null, audit: null });
    S.flash.clear();
    for (const b of $$('#app-view tbody')) b.replaceChildren();
    for (const id of ['#chart', '#sev-summary', '#alert-count', '#history-count', '#insp-today', '#rate-value', '#rate-detail', '#devices-count']) $(id).replaceChildren();
    $('#record-form').reset();
    $('#history-form').reset();
  }

  function showLogin(message) {
    stopEvents();
    setSession(null);
    clearData();
    $('#app-view').hidden = true;
    $('#login-view').hidden = false;
    $('#who').hidden = true;
    $('#logout').hidden = true;
    showFormError('#login-error', message || '');
    $('#login-user').focus();
  }

  function sessionEnded() { showLogin(t('login.expired')); }

  function showApp() {
    $('#login-view').hidden = true;
    $('#app-view').hidden = false;
    $('#logout').hidden = false;
    const who = $('#who');
    who.hidden = false;
    who.replaceChildren(el('span', { class: 'who-name' }, S.me.user), ' ', el('span', { class: 'who-role' }, labelOr('role', S.me.role)));
    $('#tab-audit').hidden = !isAdmin();
    if (S.tab === 'audit' && !isAdmin()) S.tab = 'alerts';
    S.known = null;
    selectTab(S.tab, false);
    if (S.tab !== 'alerts') guarded(loadAlerts);
    startEvents();
  }

  async function login(ev) {
    ev.preventDefault();
    const user = $('#login-user').value.trim();
    const password = $('#login-password').value;
    if (!user || !password) { showFormError('#login-error', t('login.missing')); return; }
    const btn = $('#login-submit');
    btn.disabled = true;
    try {
      const me = await api('POST', '/api/v1/login', { user, password });
      $('#login-password').value = '';
      showFormError('#login-error', '');
      setSession(me);
      showApp();
    } catch (e) {
      showFormError('#login-error', e.message);
    } finally {
      btn.disabled = false;
    }
  }

  async function logout() {
    try { await api('POST', '/api/v1/logout', {}); } catch (e) { /* the session is gone either way */ }
    showLogin('');
  }

  // ---------------------------------------------------------------- live events

  function setLive(state) {
    S.live = state;
    const n = $('#live');
    n.dataset.state = state;
    $('#live-text').textContent = t(`live.${state}`);
    n.title = S.lastEventAt ? t('live.last', { time: fmtTime(S.lastEventAt) }) : '';
  }

  function stopEvents() {
    if (S.es) { S.es.close(); S.es = null; }
    clearTimeout(S.timers.reconnect);
    setLive('off');
  }

  function startEvents() {
    stopEvents();
    const es = new EventSource('/api/v1/events');
    S.es = es;
    setLive('connecting');
    es.onopen = () => {
      setLive('live');
      scheduleAlerts(); // catch up on whatever happened while disconnected
    };
    es.addEventListener('alert', (ev) => {
      try {
        const a = JSON.parse(ev.data);
        if (a && a.rule && a.device) S.flash.add(alertKey(a));
      } catch (e) { /* a malformed event still triggers a refetch */ }
      S.lastEventAt = Date.now();
      S.events += 1;
      $('#live').dataset.events = String(S.events);
      setLive('live');
      const dot = $('#live .live-dot');
      dot.classList.remove('pulse');
      void dot.getBoundingClientRect();
      dot.classList.add('pulse');
      scheduleAlerts();
    });
    es.addEventListener('rules', (ev) => {
      S.lastEventAt = Date.now();
      try {
        const rules = JSON.parse(ev.data);
        if (S.status && rules) { S.status.rules = rules; renderStatus(); }
      } catch (e) { /* refetch below */ }
      guarded(loadStatus);
    });
    es.onerror = () => {
      if (es !== S.es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. the session ended): check, then reopen.
        setLive('off');
        S.timers.reconnect = setTimeout(async () => {
          try { await api('GET', '/api/v1/me'); if (S.me) startEvents(); } catch (e) {
            if (!(e instanceof ApiError && e.status === 401)) S.timers.reconnect = setTimeout(startEvents, 5000);
          }
        }, 3000);
      } else {
        setLive('connecting');
      }
    };
  }

  function scheduleAlerts() {
    clearTimeout(S.timers.alerts);
    S.timers.alerts = setTimeout(() => guarded(loadAlerts), 300);
  }

  // ---------------------------------------------------------------- alerts

  const alertKey = (a) => `${a.rule}\u0000${a.device}`;

  async function loadAlerts() {
    const [alerts, silences] = await Promise.all([api('GET', '/api/v1/alerts'), api('GET', '/api/v1/silences')]);
    const list = Array.isArray(alerts) ? alerts : [];
    if (S.known) for (const a of list) if (!S.known.has(alertKey(a))) S.flash.add(alertKey(a));
    S.known = new Set(list.map(alertKey));
    S.alerts = list;
    S.lastAlertsAt = Date.now();
    S.silences = Array.isArray(silences) ? silences : [];
    renderAlerts(true);
    renderSilences();
  }

  function evidenceEl(ev) {
    if (!ev || typeof ev !== 'object') return null;
    const items = Object.entries(ev).map(([k, v]) =>
      el('span', { class: 'chip' }, el('span', { class: 'chip-k' }, k), '=', typeof v === 'object' ? JSON.stringify(v) : String(v)));
    return items.length ? el('div', { class: 'evidence' }, items) : null;
  }

  function renderAlerts(flash) {
    const body = $('#alerts-body');
    const act = canAct();
    const rows = S.alerts.map((a) => {
      const key = alertKey(a);
      const sev = sevClass(a.severity);
      const ack = a.ack && a.ack.who ? a.ack : null;
      const tr = el('tr', {
        class: `alert-row row-${sev}${ack ? ' is-acked' : ''}${flash && S.flash.has(key) ? ' flash' : ''}`,
        'data-testid': 'alert-row', 'data-rule': a.rule, 'data-device': a.device, 'data-severity': sev,
      },
      td({ 'data-label': t('col.severity') }, sevBadge(a.severity)),
      td({ 'data-label': t('col.age'), class: 'nowrap' }, a.active_at ? ageEl(a.active_at, `${fmtTime(a.active_at)}`) : t('none')),
      td({ 'data-label': t('col.device') },
        el('div', { class: 'strong mono nowrap' }, a.device),
        el('div', { class: 'sub' }, labelOr('kind', a.kind), a.gateway ? ` · ${a.gateway}` : '')),
      td({ 'data-label': t('col.location') },
        el('div', null, a.name || t('none')),
        el('div', { class: 'sub' }, [a.town, a.address].filter(Boolean).join(' · '))),
      td({ 'data-label': t('col.ruleSource') }, el('div', { class: 'mono small' }, a.rule),
        a.source ? el('div', { class: 'sub source' }, a.source) : null),
      td({ 'data-label': t('col.summary'), class: 'summary' }, el('div', null, a.summary || ''), evidenceEl(a.evidence)),
      td({ 'data-label': t('col.state') },
        statusBadge(a.state || 'firing'), a.flapping ? el('span', { class: 'badge st-flapping' }, t('status.flapping')) : null),
      td({ 'data-label': t('col.ack'), 'data-testid': 'ack-state', class: ack ? 'ack-cell acked' : 'ack-cell sub' },
        ack ? [el('div', { class: 'strong' }, ack.who),
          el('div', { class: 'sub' }, fmtTime(ack.at ?? ack.at_ms)),
          ack.comment ? el('div', { class: 'ack-comment' }, ack.comment) : null]
          : t('ack.none')),
      act ? td({ 'data-label': t('col.actions'), class: 'actions op-only' },
        el('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-testid': 'ack-button', disabled: !!ack, onclick: () => openAck(a) }, t('ack.button')),
        el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'silence-button', onclick: () => openSilence(a) }, t('silence.button')))
        : null);
      return tr;
    });
    body.replaceChildren(...(rows.length ? rows : [emptyRow(10, t('alerts.none'))]));
    for (const r of body.querySelectorAll('.flash')) r.addEventListener('animationend', () => r.classList.remove('flash'), { once: true });
    if (flash) S.flash.clear();

    const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
    let unacked = 0;
    for (const a of S.alerts) { counts[sevClass(a.severity)] += 1; if (!a.ack) unacked += 1; }
    $('#sev-summary').replaceChildren(
      el('span', { class: 'summary-total' }, t('alerts.total', { n: S.alerts.length })),
      ...SEVERITIES.map((s) => el('span', { class: `badge sev-${s}${counts[s] ? '' : ' zero'}` }, `${t(`sev.${s}`)} ${counts[s]}`)),
      el('span', { class: 'summary-unacked' }, `${t('alerts.unacked')}: ${unacked}`));
    const count = $('#alert-count');
    count.textContent = S.alerts.length ? String(S.alerts.length) : '';
    count.classList.toggle('has-critical', counts.critical > 0);
    document.title = `${S.alerts.length ? `(${S.alerts.length}) ` : ''}${t('app.title')}`;
  }

  function matchersText(m) {
    return Object.entries(m || {}).filter(([, v]) => v !== null && v !== undefined && v !== '')
      .map(([k, v]) => `${k}=${v}`).join(', ');
  }

  function renderSilences() {
    const now = Date.now();
    const act = canAct();
    const list = S.silences.filter((s) => !s.ends_ms || s.ends_ms > now);
    $('#silences-body').replaceChildren(...list.map((s) => el('tr', { 'data-testid': 'silence-row', 'data-id': s.id },
      td({ class: 'mono small' }, matchersText(s.matchers)),
      td({ class: 'nowrap' }, fmtTime(s.starts_ms)),
      td({ class: 'nowrap' }, fmtTime(s.ends_ms)),
      td({ class: 'nowrap' }, s.starts_ms > now ? t('silences.scheduled') : (s.ends_ms ? untilEl(s.ends_ms) : t('none'))),
      td(null, s.who || t('none')),
      td(null, s.comment || ''),
      act ? td({ class: 'op-only' }, el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'silence-remove', onclick: () => removeSilence(s) }, t('silences.remove'))) : null)));
    if (!list.length) $('#silences-body').replaceChildren(emptyRow(7, t('silences.none')));
  }

  async function removeSilence(s) {
    if (!window.confirm(t('silences.confirm', { id: s.id }))) return;
    await guarded(async () => {
      await api('DELETE', `/api/v1/silences/${encodeURIComponent(s.id)}`);
      await loadAlerts();
    });
  }

  // ---------------------------------------------------------------- dialogs

  function openAck(a) {
    S.ackTarget = a;
    $('#ack-target').replaceChildren(sevBadge(a.severity), ' ', el('strong', null, a.device), ` · ${a.rule}`,
      el('div', { class: 'sub' }, a.summary || ''));
    $('#ack-comment').value = '';
    showFormError('#ack-error', '');
    $('#ack-dialog').showModal();
    $('#ack-comment').focus();
  }

  async function submitAck(ev) {
    ev.preventDefault();
    const a = S.ackTarget;
    if (!a) return;
    const btn = ev.submitter || $('#ack-form [type=submit]');
    btn.disabled = true;
    try {
      await api('POST', '/api/v1/alerts/ack', { rule: a.rule, device: a.device, comment: $('#ack-comment').value.trim() });
      $('#ack-dialog').close();
      S.flash.add(alertKey(a));
      await guarded(loadAlerts);
    } catch (e) {
      showFormError('#ack-error', e.message);
    } finally {
      btn.disabled = false;
    }
  }

  function openSilence(a) {
    S.silenceTarget = a;
    $('#silence-device').textContent = a.device;
    $('#silence-rule').textContent = a.rule;
    $('#silence-m-device').checked = true;
    $('#silence-m-rule').checked = true;
    $('#silence-comment').value = '';
    const until = new Date(Date.now() + 8 * 3600e3);
    $('#silence-until').value = `${until.getFullYear()}-${pad(until.getMonth() + 1)}-${pad(until.getDate())}T${pad(until.getHours())}:${pad(until.getMinutes())}`;
    showFormError('#silence-error', '');
    $('#silence-dialog').showModal();
  }

  function silenceDurationChanged() {
    const custom = document.querySelector('input[name=silence-dur]:checked').value === 'custom';
    $('#silence-until').disabled = !custom;
    $('#silence-until-field').classList.toggle('disabled', !custom);
  }

  async function submitSilence(ev) {
    ev.preventDefault();
    const a = S.silenceTarget;
    if (!a) return;
    const matchers = {};
    if ($('#silence-m-device').checked) matchers.device = a.device;
    if ($('#silence-m-rule').checked) matchers.rule = a.rule;
    if (!Object.keys(matchers).length) { showFormError('#silence-error', t('silence.needMatcher')); return; }
    const body = { matchers, comment: $('#silence-comment').value.trim() };
    const dur = document.querySelector('input[name=silence-dur]:checked').value;
    if (dur === 'custom') {
      const end = new Date($('#silence-until').value).getTime();
      if (!Number.isFinite(end) || end <= Date.now()) { showFormError('#silence-error', t('silence.badUntil')); return; }
      body.starts_ms = Date.now();
      body.ends_ms = end;
    } else {
      body.duration = dur;
    }
    const btn = ev.submitter || $('#silence-form [type=submit]');
    btn.disabled = true;
    try {
      await api('POST', '/api/v1/silences', body);
      $('#silence-dialog').close();
      await guarded(loadAlerts);
    } catch (e) {
      showFormError('#silence-error', e.message);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- history

  async function loadHistory() {
    const f = $('#history-form');
    const p = new URLSearchParams();
    const q = f.q.value.trim();
    if (q) p.set('q', q);
    if (f.severity.value) p.set('severity', f.severity.value);
    if (f.status.value) p.set('status', f.status.value);
    if (f.since.value) p.set('since', String(Date.now() - Number(f.since.value)));
    p.set('limit', '500');
    const items = await api('GET', `/api/v1/alerts/history?${p}`);
    S.history = Array.isArray(items) ? items : [];
    renderHistory();
  }

  function renderHistory() {
    if (!S.history) return;
    const note = (h) => {
      const who = h.acknowledged_by || h.ack_by || (h.ack && h.ack.who) || '';
      const comment = h.comment || h.ack_comment || (h.ack && h.ack.comment) || '';
      return [who ? el('strong', null, who) : null, who && comment ? ': ' : '', comment];
    };
    $('#history-count').textContent = t('history.count', { n: fmtNum(S.history.length) });
    const rows = S.history.slice(0, MAX_ROWS).map((h) => el('tr', { 'data-testid': 'history-row', class: `row-${sevClass(h.severity)}` },
      td({ class: 'nowrap' }, fmtTime(h.ts)),
      td(null, statusBadge(h.status)),
      td(null, sevBadge(h.severity)),
      td({ class: 'mono nowrap' }, h.device),
      td({ class: 'nowrap' }, h.town || t('none')),
      td({ class: 'mono small' }, h.rule),
      td({ class: 'summary', title: h.source || '' }, h.summary || ''),
      td({ class: 'small' }, note(h))));
    $('#history-body').replaceChildren(...(rows.length ? rows : [emptyRow(8, t('history.none'))]));
  }

  // ---------------------------------------------------------------- inspections

  const INSP_COLS = ['col.device', 'col.kind', 'col.name', 'col.town', 'col.address', 'col.regCode', 'col.lastInspection', 'col.due', 'col.days'];

  async function loadInspections() {
    S.insp = await api('GET', '/api/v1/inspections?within_days=30');
    renderInspections();
  }

  function inspRows(items, overdue, total) {
    const act = canAct();
    const sorted = [...(items || [])].sort((a, b) => (a.days ?? 0) - (b.days ?? 0));
    const rows = sorted.slice(0, MAX_ROWS).map((u) => el('tr', { 'data-testid': overdue ? 'overdue-row' : 'due-row', 'data-device': u.device },
      td({ class: 'mono nowrap' }, u.device), td({ class: 'nowrap' }, labelOr('kind', u.kind)), td(null, u.name || ''), td({ class: 'nowrap' }, u.town || ''),
      td({ class: 'small' }, u.address || ''), td({ class: 'mono small' }, u.registration_code || ''),
      td({ class: 'nowrap' }, u.last_inspection || t('none')), td({ class: 'nowrap' }, u.due || t('none')),
      td({ class: `nowrap ${overdue ? 'overdue' : 'due'}` },
        u.days < 0 ? t('insp.daysOverdue', { n: -u.days }) : u.days === 0 ? t('insp.dueToday') : t('insp.daysLeft', { n: u.days })),
      act ? td({ class: 'op-only' }, el('button', { type: 'button', class: 'btn btn-small', onclick: () => prefillRecord(u) }, t('insp.record'))) : null));
    if (!rows.length) return [emptyRow(INSP_COLS.length + 1, t('insp.none'))];
    const all = Math.max(total ?? 0, sorted.length);
    if (all > rows.length) rows.push(emptyRow(INSP_COLS.length + 1, t('insp.more', { shown: fmtNum(rows.length), total: fmtNum(all) })));
    return rows;
  }

  function renderInspections() {
    const head = () => [...INSP_COLS.map((k) => el('th', { scope: 'col' }, t(k))), el('th', { scope: 'col', class: 'op-only' }, t('col.actions'))];
    $('#insp-head-overdue').replaceChildren(...head());
    $('#insp-head-due').replaceChildren(...head());
    if (!S.insp) return;
    $('#insp-today').textContent = t('insp.today', { today: S.insp.today || '' });
    const overdue = S.insp.overdue || [], due = S.insp.due_soon || [];
    const overdueTotal = S.insp.overdue_total ?? overdue.length, dueTotal = S.insp.due_soon_total ?? due.length;
    $('#insp-overdue-count').textContent = fmtNum(overdueTotal);
    $('#insp-due-count').textContent = fmtNum(dueTotal);
    $('#insp-overdue-body').replaceChildren(...inspRows(overdue, true, overdueTotal));
    $('#insp-due-body').replaceChildren(...inspRows(due, false, dueTotal));
    const devices = [...(S.insp.overdue || []), ...(S.insp.due_soon || [])].slice(0, 2000);
    $('#device-list').replaceChildren(...devices.map((u) => el('option', { value: u.device }, [u.name, u.town].filter(Boolean).join(' · '))));
  }

  function prefillRecord(u) {
    const f = $('#record-form');
    f.device.value = u.device;
    if (!f.date.value) f.date.value = localDate(new Date());
    showFormError('#record-error', '');
    $('#record-ok').hidden = true;
    f.scrollIntoView({ behavior: 'smooth', block: 'center' });
    f.date.focus();
  }

  const localDate = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

  async function submitRecord(ev) {
    ev.preventDefault();
    const f = ev.target;
    const body = {};
    for (const name of ['device', 'date', 'next_due', 'result', 'inspector', 'report_no', 'comment']) {
      const v = f[name].value.trim();
      if (v) body[name] = v;
    }
    $('#record-ok').hidden = true;
    if (!body.device || !body.date) { showFormError('#record-error', `${t('col.device')} / ${t('record.date')}?`); return; }
    const btn = ev.submitter || f.querySelector('[type=submit]');
    btn.disabled = true;
    try {
      await api('POST', '/api/v1/inspections', body);
      showFormError('#record-error', '');
      const ok = $('#record-ok');
      ok.textContent = t('record.ok', { device: body.device });
      ok.hidden = false;
      f.reset();
      await guarded(loadInspections);
      S.rate = null;
    } catch (e) {
      showFormError('#record-error', e.message);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- overdue rate

  async function loadOverdue() {
    S.rate = await api('GET', '/api/v1/overdue-rate');
    renderOverdue();
    await loadRateHistory();
  }

  function rateRows(items, keyName, isKind) {
    const sorted = [...(items || [])].sort((a, b) => (b.rate ?? 0) - (a.rate ?? 0));
    if (!sorted.length) return [emptyRow(4, t('insp.none'))];
    return sorted.map((r) => {
      const sel = `${keyName}:${r[keyName]}`;
      return el('tr', { class: `clickable${$('#chart-series').value === sel ? ' selected' : ''}`, 'data-series': sel },
        td(null, el('button', { type: 'button', class: 'link', title: t('rate.showChart'), onclick: () => selectSeries(sel) },
          isKind ? labelOr('kind', r[keyName]) : r[keyName])),
        td({ class: 'num' }, fmtNum(r.registered)), td({ class: 'num' }, fmtNum(r.overdue)),
        td({ class: `num strong${r.overdue ? ' overdue' : ''}` }, fmtRate(r.rate)));
    });
  }

  function renderOverdue() {
    const r = S.rate;
    if (!r) return;
    const total = r.total || {};
    $('#rate-value').textContent = fmtRate(total.rate);
    $('#rate-detail').textContent = t('rate.detail', { overdue: fmtNum(total.overdue), registered: fmtNum(total.registered), today: r.today || '' });
    const select = $('#chart-series');
    const current = select.value || '';
    select.replaceChildren(
      el('option', { value: '' }, t('rate.total')),
      el('optgroup', { label: t('rate.towns') }, (r.by_town || []).map((x) => el('option', { value: `town:${x.town}` }, x.town))),
      el('optgroup', { label: t('rate.kinds') }, (r.by_kind || []).map((x) => el('option', { value: `kind:${x.kind}` }, labelOr('kind', x.kind)))));
    select.value = current;
    if (select.value !== current) select.value = '';
    $('#rate-town-body').replaceChildren(...rateRows(r.by_town, 'town', false));
    $('#rate-kind-body').replaceChildren(...rateRows(r.by_kind, 'kind', true));
  }

  function selectSeries(sel) {
    $('#chart-series').value = sel;
    renderOverdue();
    guarded(loadRateHistory);
    $('#chart').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  }

  async function loadRateHistory() {
    const sel = $('#chart-series').value;
    const p = new URLSearchParams();
    if (sel.startsWith('town:')) p.set('town', sel.slice(5));
    if (sel.startsWith('kind:')) p.set('kind', sel.slice(5));
    const range = $('#chart-range').value;
    if (range) p.set('since', String(Date.now() - Number(range)));
    const pts = await api('GET', `/api/v1/overdue-rate/history?${p}`);
    S.rateHist = Array.isArray(pts) ? pts : [];
    renderChart();
  }

  function seriesLabel() {
    const sel = $('#chart-series').value;
    if (sel.startsWith('town:')) return sel.slice(5);
    if (sel.startsWith('kind:')) return labelOr('kind', sel.slice(5));
    return t('rate.total');
  }

  /** A tick step of 1, 2 or 5 × 10^k at least `v`. */
  function niceStep(v) {
    if (!(v > 0)) return 0.01;
    const exp = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5]) if (m * exp >= v - 1e-12) return m * exp;
    return 10 * exp;
  }

  /** Draws the rate history as an SVG line chart (percent over time). */
  function renderChart() {
    const box = $('#chart');
    const pts = (S.rateHist || []).filter((p) => typeof p.ts === 'number' && typeof p.rate === 'number');
    if (!pts.length) { box.replaceChildren(el('p', { class: 'empty' }, t('rate.noData'))); return; }
    // Drawn at the box's own width so that the labels stay at 12 px on a phone too.
    const W = Math.max(300, Math.round(box.clientWidth || 900)), H = W < 600 ? 220 : 250, L = 58, R = 16, T = 12, B = 30;
    const xTicks = W < 600 ? 3 : 6;
    let x0 = pts[0].ts, x1 = pts[pts.length - 1].ts;
    if (x1 - x0 < 60000) { x0 -= 3600e3; x1 += 3600e3; }
    const step = niceStep((Math.max(...pts.map((p) => p.rate * 100)) * 1.1) / 4);
    const yMax = step * 4;
    const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const X = (ts) => L + ((ts - x0) / (x1 - x0)) * (W - L - R);
    const Y = (pct) => T + (1 - pct / yMax) * (H - T - B);
    const last = pts[pts.length - 1];
    const svg = el('svg:svg', {
      viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img',
      'aria-label': t('chart.aria', { series: seriesLabel(), n: pts.length, last: fmtRate(last.rate) }),
    });
    for (let i = 0; i <= 4; i += 1) {
      const v = step * i, y = Y(v);
      svg.append(el('svg:line', { x1: L, x2: W - R, y1: y, y2: y, class: i ? 'grid-line' : 'axis-line' }),
        el('svg:text', { x: L - 8, y: y + 4, 'text-anchor': 'end', class: 'tick' }, `${v.toFixed(digits)}%`));
    }
    const span = x1 - x0;
    for (let i = 0; i <= xTicks; i += 1) {
      const ts = x0 + (span * i) / xTicks, x = X(ts), d = new Date(ts);
      const label = span < 36 * 3600e3 ? `${pad(d.getHours())}:${pad(d.getMinutes())}` : `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
      svg.append(el('svg:line', { x1: x, x2: x, y1: H - B, y2: H - B + 4, class: 'axis-line' }),
        el('svg:text', { x, y: H - B + 18, 'text-anchor': i === 0 ? 'start' : i === xTicks ? 'end' : 'middle', class: 'tick' }, label));
    }
    const line = pts.map((p, i) => `${i ? 'L' : 'M'}${X(p.ts).toFixed(1)},${Y(p.rate * 100).toFixed(1)}`).join(' ');
    svg.append(el('svg:path', { d: `${line} L${X(last.ts).toFixed(1)},${Y(0)} L${X(pts[0].ts).toFixed(1)},${Y(0)} Z`, class: 'area' }),
      el('svg:path', { d: line, class: 'line' }));
    const dots = pts.length <= 120 ? pts : [last];
    for (const p of dots) {
      svg.append(el('svg:circle', { cx: X(p.ts).toFixed(1), cy: Y(p.rate * 100).toFixed(1), r: 3, class: 'dot' },
        el('svg:title', null, `${fmtTime(p.ts)}  ${fmtRate(p.rate)} (${fmtNum(p.overdue)} / ${fmtNum(p.registered)})`)));
    }
    box.replaceChildren(el('div', { class: 'chart-title' }, `${seriesLabel()} · ${fmtRate(last.rate)}`), svg);
  }

  // ---------------------------------------------------------------- status

  async function loadStatus() {
    S.status = await api('GET', '/api/v1/status');
    renderStatus();
  }

  function renderStatus() {
    const s = S.status;
    if (!s) return;
    const rules = s.rules || {};
    const ok = rules.ok !== false;
    const state = $('#rules-state');
    state.textContent = t(ok ? 'status.rulesOk' : 'status.rulesErr', { n: fmtNum(rules.loaded ?? 0) });
    state.className = `stat-value ${ok ? 'ok' : 'bad'}`;
    $('#rules-detail').textContent = t('status.reloads', { n: fmtNum(rules.reloads ?? 0), time: rules.last_reload_at ? fmtTime(rules.last_reload_at) : t('status.never') });
    const err = $('#rules-error');
    err.textContent = rules.error || '';
    err.hidden = !rules.error;
    // Rules whose conditions gave no answer (ingest_rule_errors_total), most errors first.
    const failing = rules.eval_errors || [];
    const evalErrors = $('#rules-eval-errors');
    evalErrors.textContent = failing
      .map((e) => `${e.rule}: ${t('status.evalErrors', { n: fmtNum(e.count) })}${e.last_error ? ` · ${e.last_error}` : ''}`)
      .join('\n');
    evalErrors.hidden = failing.length === 0;

    const gws = [...(s.gateways || [])].sort((a, b) => (a.online - b.online) || String(a.gateway).localeCompare(b.gateway));
    const devs = s.devices || [];
    const gwOnline = gws.filter((g) => g.online).length, devOnline = devs.filter((d) => d.online).length;
    $('#gw-summary').textContent = t('status.onlineOf', { online: fmtNum(gwOnline), total: fmtNum(gws.length) });
    $('#gw-summary').className = `stat-value ${gwOnline === gws.length ? 'ok' : 'warn'}`;
    // The server may list fewer devices than it has seen (`devices_total`); offline ones first.
    const devTotal = Math.max(s.devices_total ?? 0, devs.length);
    const fromGateways = gws.every((g) => typeof g.devices_online === 'number');
    const devOnlineTotal = fromGateways && gws.length ? gws.reduce((n, g) => n + g.devices_online, 0) : devOnline + (devTotal - devs.length);
    $('#dev-summary').textContent = t('status.onlineOf', { online: fmtNum(devOnlineTotal), total: fmtNum(devTotal) });
    $('#dev-summary').className = `stat-value ${devOnlineTotal === devTotal ? 'ok' : 'warn'}`;
    $('#wal-pending').textContent = fmtNum(s.wal ? s.wal.pending : 0);
    $('#wal-pending').className = `stat-value ${s.wal && s.wal.pending ? 'warn' : 'ok'}`;

    const seen = (ms) => (ms ? [el('span', { class: 'nowrap' }, fmtTime(ms)), ' ', el('span', { class: 'sub nowrap' }, agoEl(ms))] : t('none'));
    $('#gateways-body').replaceChildren(...(gws.length ? gws.map((g) => el('tr', { 'data-testid': 'gateway-row', 'data-gateway': g.gateway },
      td({ class: 'mono nowrap' }, g.gateway), td(null, onlineBadge(g.online)), td(null, seen(g.last_seen)), td({ class: 'num' }, typeof g.devices_online === 'number' ? `${fmtNum(g.devices_online)} / ${fmtNum(g.devices)}` : fmtNum(g.devices))))
      : [emptyRow(4, t('insp.none'))]));

    const filter = $('#device-filter').value.trim().toLowerCase();
    const offlineOnly = $('#device-offline-only').checked;
    const shown = devs.filter((d) => (!offlineOnly || !d.online)
      && (!filter || [d.device, d.gateway, d.kind, labelOr('kind', d.kind)].some((v) => String(v || '').toLowerCase().includes(filter))))
      .sort((a, b) => (a.online - b.online) || String(a.device).localeCompare(b.device));
    $('#devices-count').textContent = t('status.shown', { shown: fmtNum(Math.min(shown.length, MAX_ROWS)), total: fmtNum(devTotal) });
    $('#devices-body').replaceChildren(...shown.slice(0, MAX_ROWS).map((d) => el('tr', { 'data-testid': 'device-row', 'data-device': d.device },
      td({ class: 'mono nowrap' }, d.device), td({ class: 'mono nowrap' }, d.gateway || ''), td(null, labelOr('kind', d.kind)),
      td(null, onlineBadge(d.online)), td(null, seen(d.last_seen)))));
  }

  // ---------------------------------------------------------------- audit

  async function loadAudit() {
    const items = await api('GET', '/api/v1/audit?limit=200');
    S.audit = Array.isArray(items) ? items : [];
    renderAudit();
  }

  function renderAudit() {
    if (!S.audit) return;
    const detail = (d) => (d === null || d === undefined ? '' : typeof d === 'object' ? JSON.stringify(d) : String(d));
    $('#audit-body').replaceChildren(...(S.audit.length ? S.audit.map((a) => el('tr', { 'data-testid': 'audit-row' },
      td({ class: 'nowrap' }, fmtTime(a.ts)), td({ class: 'strong' }, a.who || ''), td(null, a.action || ''),
      td({ class: 'mono small' }, a.target || ''), td({ class: 'small' }, detail(a.detail)), td({ class: 'mono small' }, a.remote || '')))
      : [emptyRow(6, t('insp.none'))]));
  }

  // ---------------------------------------------------------------- tabs, language, start

  const LOADERS = { alerts: loadAlerts, history: loadHistory, inspections: loadInspections, overdue: loadOverdue, status: loadStatus, audit: loadAudit };

  function visibleTabs() { return $$('[role=tab]').filter((b) => !b.hidden); }

  function selectTab(name, focus) {
    if (!LOADERS[name] || (name === 'audit' && !isAdmin())) name = 'alerts';
    S.tab = name;
    for (const b of $$('[role=tab]')) {
      const on = b.dataset.tab === name;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    }
    for (const p of $$('[role=tabpanel]')) p.hidden = p.id !== `panel-${name}`;
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    if (S.me) guarded(LOADERS[name]);
  }

  function tabKeys(ev) {
    const tabs = visibleTabs();
    const i = tabs.indexOf(document.activeElement);
    if (i < 0) return;
    let j = null;
    if (ev.key === 'ArrowRight') j = (i + 1) % tabs.length;
    else if (ev.key === 'ArrowLeft') j = (i - 1 + tabs.length) % tabs.length;
    else if (ev.key === 'Home') j = 0;
    else if (ev.key === 'End') j = tabs.length - 1;
    if (j === null) return;
    ev.preventDefault();
    selectTab(tabs[j].dataset.tab, true);
  }

  function applyLanguage() {
    document.documentElement.lang = S.lang === 'zh' ? 'zh-CN' : 'en';
    for (const n of $$('[data-i18n]')) n.textContent = t(n.dataset.i18n);
    for (const n of $$('[data-i18n-placeholder]')) n.placeholder = t(n.dataset.i18nPlaceholder);
    for (const n of $$('[data-i18n-aria]')) n.setAttribute('aria-label', t(n.dataset.i18nAria));
    $('#lang-toggle').textContent = t('lang.other');
    setLive(S.live);
    document.title = t('app.title');
    if (S.me) {
      const role = $('#who .who-role');
      if (role) role.textContent = labelOr('role', S.me.role);
      renderAlerts(false); renderSilences(); renderHistory(); renderInspections(); renderOverdue(); renderStatus(); renderAudit();
      if (S.rateHist) renderChart();
    }
  }

  function toggleLanguage() {
    S.lang = S.lang === 'zh' ? 'en' : 'zh';
    try { localStorage.setItem('console.lang', S.lang); } catch (e) { /* private mode */ }
    applyLanguage();
  }

  function initialLanguage() {
    let saved = null;
    try { saved = localStorage.getItem('console.lang'); } catch (e) { /* private mode */ }
    if (saved === 'zh' || saved === 'en') return saved;
    return /^zh\b/i.test(navigator.language || '') ? 'zh' : 'en';
  }

  function periodic() {
    if (!S.me || document.hidden) return;
    if (S.tab === 'status') guarded(loadStatus);
    if (S.tab === 'inspections') guarded(loadInspections);
    // Live events keep the list current; without them poll, and with them check now and then.
    const stale = Date.now() - S.lastAlertsAt > (S.live === 'live' ? 300000 : 20000);
    if (stale) guarded(loadAlerts);
  }

  function wire() {
    $('#login-form').addEventListener('submit', login);
    $('#logout').addEventListener('click', logout);
    $('#lang-toggle').addEventListener('click', toggleLanguage);
    $('#banner-close').addEventListener('click', () => { $('#banner').hidden = true; });
    for (const b of $$('[role=tab]')) b.addEventListener('click', () => selectTab(b.dataset.tab, false));
    $('#tabs').addEventListener('keydown', tabKeys);
    $('#ack-form').addEventListener('submit', submitAck);
    $('#silence-form').addEventListener('submit', submitSilence);
    for (const r of $$('input[name=silence-dur]')) r.addEventListener('change', silenceDurationChanged);
    for (const b of $$('dialog [data-close]')) b.addEventListener('click', () => b.closest('dialog').close());
    const hist = $('#history-form');
    hist.addEventListener('submit', (ev) => { ev.preventDefault(); guarded(loadHistory); });
    for (const s of hist.querySelectorAll('select')) s.addEventListener('change', () => guarded(loadHistory));
    $('#history-q').addEventListener('input', () => {
      clearTimeout(S.timers.search);
      S.timers.search = setTimeout(() => guarded(loadHistory), 400);
    });
    $('#record-form').addEventListener('submit', submitRecord);
    $('#chart-series').addEventListener('change', () => { renderOverdue(); guarded(loadRateHistory); });
    $('#chart-range').addEventListener('change', () => guarded(loadRateHistory));
    $('#device-filter').addEventListener('input', renderStatus);
    $('#device-offline-only').addEventListener('change', renderStatus);
    window.addEventListener('resize', () => {
      clearTimeout(S.timers.resize);
      S.timers.resize = setTimeout(() => { if (S.tab === 'overdue' && S.rateHist) renderChart(); }, 200);
    });
    window.addEventListener('hashchange', () => { if (S.me) selectTab(location.hash.slice(1), false); });
    setInterval(tickAges, 1000);
    setInterval(renderSilences, 30000);
    setInterval(periodic, 20000);
  }

  async function start() {
    S.lang = initialLanguage();
    S.tab = location.hash.slice(1) || 'alerts';
    wire();
    applyLanguage();
    try {
      const me = await api('GET', '/api/v1/me');
      setSession(me);
      showApp();
    } catch (e) {
      showLogin(e instanceof ApiError && e.status === 401 ? '' : e.message);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
