/**
 * The page's script, run in the browser. Plain ES2020, no framework, no build step.
 *
 * Every value that comes from a task (arguments, results, errors, names, ids) reaches the DOM only
 * through `textContent`, text nodes or non-URL attributes: never `innerHTML`, never an `href`.
 * Live updates come over Server-Sent Events (`api/events`); actions are POSTs carrying the
 * `X-Celeriac-Csrf` header the server requires.
 */
export const PAGE_SCRIPT = String.raw`
'use strict';
(function () {
  var MAX_TASKS = 500;
  var ACTIVE = { RECEIVED: 1, STARTED: 1, PROGRESS: 1, RETRY: 1, PENDING: 1 };
  var S = { tasks: new Map(), rows: new Map(), workers: [], queues: [], offset: 0, detailId: null, detail: null,
            dead: new Map(), openDead: new Set(), queueRows: new Map(), workerRows: new Map() };

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      var v = attrs[k];
      if (v === null || v === undefined) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }
  function setText(node, text) { text = text === null || text === undefined ? '' : String(text); if (node.textContent !== text) node.textContent = text; }
  function now() { return Date.now() + S.offset; }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(2) + ' s';
    return (ms / 60000).toFixed(1) + ' min';
  }
  function ago(ts) {
    if (!ts) return '';
    var s = Math.max(0, Math.round((now() - ts) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    return Math.floor(s / 3600) + ' h ago';
  }
  function clock(ts) { return ts ? new Date(ts).toLocaleTimeString() : ''; }
  function errText(e) { return e ? (e.code ? e.code + ' ' : '') + e.name + ': ' + e.message : ''; }

  var toastTimer = null;
  function toast(msg, isError) {
    var t = $('toast');
    setText(t, msg);
    t.className = 'show' + (isError ? ' error' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.className = ''; }, isError ? 8000 : 4000);
  }

  function api(method, path, body) {
    var init = { method: method, credentials: 'same-origin', headers: {} };
    if (method !== 'GET') {
      init.headers['X-Celeriac-Csrf'] = '1';
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body || {});
    }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { var err = new Error(j.error || (r.status + ' ' + r.statusText)); err.status = r.status; throw err; }
        return j;
      });
    });
  }
  function act(label, method, path, body, done) {
    return api(method, path, body).then(function (j) { toast(label(j)); if (done) done(j); },
                                        function (e) { toast(e.message, true); });
  }

  // ---- workers ---------------------------------------------------------------------------------
  function renderWorkers() {
    var body = $('workers-body');
    var online = 0;
    var seen = new Set();
    S.workers.forEach(function (w) {
      if (w.status === 'online') online++;
      seen.add(w.id);
      var r = S.workerRows.get(w.id);
      if (!r) {
        r = { tr: el('tr', { 'data-worker-id': w.id }), name: el('td', { class: 'mono' }), status: el('td'),
              load: el('td'), meter: el('meter', { min: 0, max: 1, value: 0 }), loadText: el('span', { class: 'hint' }),
              processed: el('td', { class: 'num' }), queues: el('td'), seen: el('td', { class: 'hint' }) };
        r.load.append(r.meter, ' ', r.loadText);
        r.badge = el('span', { class: 'badge' });
        r.status.append(r.badge);
        r.tr.append(r.name, r.status, r.load, r.processed, r.queues, r.seen);
        S.workerRows.set(w.id, r);
        body.append(r.tr);
      }
      setText(r.name, w.hostname + ':' + w.pid);
      r.name.title = 'worker id ' + w.id;
      setText(r.badge, w.status);
      r.badge.className = 'badge w-' + w.status;
      var conc = w.concurrency || 0;
      r.meter.max = Math.max(1, conc);
      r.meter.value = w.status === 'online' ? w.active : 0;
      setText(r.loadText, (w.status === 'online' ? w.active : 0) + ' / ' + conc);
      setText(r.processed, w.processed);
      setText(r.queues, w.queues.join(', '));
      setText(r.seen, ago(w.lastSeen));
    });
    S.workerRows.forEach(function (r, id) { if (!seen.has(id)) { r.tr.remove(); S.workerRows.delete(id); } });
    $('workers-empty').hidden = S.workers.length > 0;
    setText($('workers-summary'), online + ' online, ' + (S.workers.length - online) + ' offline');
  }

  // ---- queues ----------------------------------------------------------------------------------
  var SVG = 'http://www.w3.org/2000/svg';
  function spark(q) {
    var w = 180, h = 34, n = q.processed.length;
    var max = 1;
    for (var i = 0; i < n; i++) max = Math.max(max, q.processed[i]);
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('width', w); svg.setAttribute('height', h);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('role', 'img');
    var total = 0, fails = 0;
    for (i = 0; i < n; i++) { total += q.processed[i]; fails += q.failed[i]; }
    svg.setAttribute('aria-label', 'processed per second over the last minute for ' + q.name + ': ' + total + ' tasks, ' + fails + ' failed');
    var t = document.createElementNS(SVG, 'title');
    t.textContent = total + ' processed (' + fails + ' failed) in the last minute; peak ' + max + '/s';
    svg.append(t);
    var base = document.createElementNS(SVG, 'line');
    base.setAttribute('x1', 0); base.setAttribute('x2', w); base.setAttribute('y1', h - 1); base.setAttribute('y2', h - 1);
    svg.append(base);
    [['processed', 'p'], ['failed', 'f']].forEach(function (s) {
      var pts = [];
      for (var i = 0; i < n; i++) pts.push((i * (w - 2) / (n - 1) + 1).toFixed(1) + ',' + (h - 2 - q[s[0]][i] / max * (h - 5)).toFixed(1));
      var pl = document.createElementNS(SVG, 'polyline');
      pl.setAttribute('class', s[1]);
      pl.setAttribute('points', pts.join(' '));
      svg.append(pl);
    });
    return svg;
  }
  function lastRate(q) { var s = 0; for (var i = q.processed.length - 11; i < q.processed.length - 1; i++) s += q.processed[i] || 0; return s / 10; }

  function renderQueues() {
    var body = $('queues-body');
    var seen = new Set();
    S.queues.forEach(function (q) {
      seen.add(q.name);
      var r = S.queueRows.get(q.name);
      if (!r) {
        r = { tr: el('tr', { 'data-queue': q.name }), name: el('td', { class: 'mono' }), ready: el('td', { class: 'num' }),
              delayed: el('td', { class: 'num' }), inFlight: el('td', { class: 'num' }), dead: el('td', { class: 'num' }),
              rate: el('td'), actions: el('td', { class: 'actions' }) };
        r.chart = el('div', { class: 'rate' });
        r.rateText = el('span');
        r.rate.append(r.chart);
        r.deadBtn = el('button', { type: 'button', onclick: function () { toggleDead(q.name); } }, 'Dead letters');
        r.redriveBtn = el('button', { type: 'button', 'aria-label': 'Redrive all dead letters of ' + q.name,
          onclick: function () { redriveAll(q.name); } }, 'Redrive all');
        r.purgeBtn = el('button', { type: 'button', class: 'danger', 'aria-label': 'Purge queue ' + q.name,
          onclick: function () { purge(q.name); } }, 'Purge');
        r.actions.append(r.deadBtn, r.redriveBtn, r.purgeBtn);
        r.tr.append(r.name, r.ready, r.delayed, r.inFlight, r.dead, r.rate, r.actions);
        r.sub = el('tr', { class: 'deadlist', 'data-dead-for': q.name });
        r.subCell = el('td', { colspan: 7 });
        r.sub.append(r.subCell);
        r.sub.hidden = true;
        S.queueRows.set(q.name, r);
        body.append(r.tr, r.sub);
      }
      setText(r.name, q.name);
      r.name.title = q.error ? 'stats failed: ' + q.error : '';
      setText(r.ready, q.error ? '?' : q.ready);
      setText(r.delayed, q.error ? '?' : q.delayed);
      setText(r.inFlight, q.error ? '?' : q.inFlight);
      setText(r.dead, q.error ? '?' : q.dead);
      r.dead.className = 'num' + (q.dead > 0 ? ' dead' : '');
      r.redriveBtn.disabled = !(q.dead > 0);
      r.chart.replaceChildren(spark(q), r.rateText);
      setText(r.rateText, lastRate(q).toFixed(1) + '/s');
      var d = S.dead.get(q.name);
      if (S.openDead.has(q.name) && d && d.count !== q.dead) loadDead(q.name);
    });
    S.queueRows.forEach(function (r, name) { if (!seen.has(name)) { r.tr.remove(); r.sub.remove(); S.queueRows.delete(name); } });
  }

  function toggleDead(name) {
    if (S.openDead.has(name)) { S.openDead.delete(name); renderDead(name); return; }
    S.openDead.add(name);
    loadDead(name);
  }
  function loadDead(name) {
    var q = S.queues.find(function (x) { return x.name === name; });
    var count = q ? q.dead : null;
    S.dead.set(name, { loading: true, items: (S.dead.get(name) || {}).items || [], count: count });
    api('GET', 'api/queues/' + encodeURIComponent(name) + '/dead-letters?limit=50').then(function (j) {
      S.dead.set(name, { loading: false, items: j.deadLetters, count: count });
      renderDead(name);
    }, function (e) { S.dead.set(name, { loading: false, items: [], error: e.message, count: count }); renderDead(name); });
  }
  function renderDead(name) {
    var r = S.queueRows.get(name);
    if (!r) return;
    r.sub.hidden = !S.openDead.has(name);
    if (r.sub.hidden) return;
    var d = S.dead.get(name) || { items: [] };
    var box = el('div');
    if (d.error) box.append(el('p', { class: 'notice' }, d.error));
    else if (d.items.length === 0) box.append(el('p', { class: 'hint' }, d.loading ? 'loading…' : 'No dead letters in ' + name + '.'));
    else {
      var t = el('table');
      t.append(el('thead', null, el('tr', null, el('th', null, 'Task id'), el('th', null, 'Task'), el('th', null, 'Args'),
        el('th', null, 'Reason'), el('th', null, 'Dead since'), el('th', null, ''))));
      var tb = el('tbody');
      d.items.forEach(function (x) {
        tb.append(el('tr', { 'data-dead-id': x.id },
          el('td', { class: 'mono' }, x.taskId || x.id),
          el('td', { class: 'mono' }, x.task || '?'),
          el('td', { class: 'mono clip', title: x.args || '' }, x.args || ''),
          el('td', { class: 'clip', title: x.reason }, x.reason),
          el('td', { class: 'hint' }, x.deadAt ? ago(x.deadAt) : ''),
          el('td', { class: 'actions' }, el('button', { type: 'button', 'aria-label': 'Retry dead letter ' + (x.taskId || x.id),
            onclick: function () { redriveOne(name, x.id); } }, 'Retry'))));
      });
      t.append(tb);
      box.append(t);
    }
    var purgeDead = el('button', { type: 'button', class: 'danger', onclick: function () {
      if (!window.confirm('Delete every dead letter of queue "' + name + '"? They cannot be run again.')) return;
      act(function (j) { return 'Deleted ' + j.purged + ' dead letters of ' + name; }, 'POST',
          'api/queues/' + encodeURIComponent(name) + '/dead-letters/purge', {}, function () { loadDead(name); });
    } }, 'Delete all dead letters');
    box.append(el('p', null, purgeDead));
    r.subCell.replaceChildren(box);
  }
  function redriveOne(name, id) {
    act(function (j) { return 'Redrove ' + j.redriven + ' message of ' + name; }, 'POST',
        'api/queues/' + encodeURIComponent(name) + '/dead-letters/redrive', { ids: [id] }, function () { loadDead(name); });
  }
  function redriveAll(name) {
    act(function (j) { return 'Redrove ' + j.redriven + ' dead letters of ' + name; }, 'POST',
        'api/queues/' + encodeURIComponent(name) + '/dead-letters/redrive', {}, function () { if (S.openDead.has(name)) loadDead(name); });
  }
  function purge(name) {
    var q = S.queues.find(function (x) { return x.name === name; });
    var n = q ? q.ready : '?';
    if (!window.confirm('Purge queue "' + name + '"? This deletes its ' + n + ' ready messages; delayed, in-flight and dead ones stay.')) return;
    act(function (j) { return 'Purged ' + j.purged + ' messages from ' + name; }, 'POST', 'api/queues/' + encodeURIComponent(name) + '/purge', {});
  }

  // ---- runtime schedules -----------------------------------------------------------------------
  function when(ts) { return ts ? new Date(ts).toLocaleString() : ''; }
  function loadSchedules() {
    return api('GET', 'api/schedules').then(renderSchedules, function (e) {
      var note = $('schedules-note');
      setText(note, 'Could not load the schedules: ' + e.message);
      note.hidden = false;
    });
  }
  function renderSchedules(j) {
    var note = $('schedules-note');
    note.hidden = j.supported;
    setText(note, j.supported ? '' : j.reason);
    var rows = j.schedules.map(function (s) {
      var timing = el('td', null, s.timing);
      var extra = [];
      if (s.startAt) extra.push('from ' + when(s.startAt));
      if (s.endAt) extra.push('until ' + when(s.endAt));
      if (s.catchUp !== 'once') extra.push('catch-up: ' + s.catchUp);
      if (extra.length) timing.append(el('div', { class: 'hint' }, extra.join(', ')));
      return el('tr', { 'data-schedule-id': s.id },
        el('td', { class: 'mono' }, s.id),
        el('td', { class: 'mono' }, s.task),
        el('td', { class: 'mono clip', title: s.args }, s.args),
        timing,
        el('td', { title: s.nextRunAt ? new Date(s.nextRunAt).toISOString() : 'limit reached or past its end' }, s.nextRunAt ? when(s.nextRunAt) : 'finished'),
        el('td', { class: 'num' }, s.runCount + (s.limit === null ? '' : ' / ' + s.limit)),
        el('td', { class: 'hint' }, when(s.lastRunAt)),
        el('td', { class: 'actions' }, el('button', { type: 'button', class: 'danger', 'aria-label': 'Remove schedule ' + s.id,
          onclick: function () { removeSchedule(s.id); } }, 'Remove')));
    });
    var body = $('schedules-body');
    body.replaceChildren.apply(body, rows);
    $('schedules-empty').hidden = rows.length > 0 || !j.supported;
    setText($('schedules-summary'), j.supported ? rows.length + ' stored, refreshed every 5 s' : '');
  }
  function removeSchedule(id) {
    if (!window.confirm('Remove the schedule "' + id + '"? No beat will send it again.')) return;
    act(function () { return 'Removed schedule ' + id; }, 'POST', 'api/schedules/' + encodeURIComponent(id) + '/remove', {}, loadSchedules);
  }

  // ---- tasks -----------------------------------------------------------------------------------
  function revoke(id) {
    act(function () { return 'Revoke sent for ' + id; }, 'POST', 'api/tasks/' + encodeURIComponent(id) + '/revoke', {});
  }
  function retry(id) {
    act(function (j) { return 'Redrove ' + j.redriven + ' dead letter of task ' + id; }, 'POST', 'api/tasks/' + encodeURIComponent(id) + '/retry', {});
  }
  function actionButtons(t) {
    var out = [];
    if (ACTIVE[t.state] && t.state !== 'PENDING') out.push(el('button', { type: 'button', class: 'danger', 'aria-label': 'Revoke task ' + t.id,
      onclick: function () { revoke(t.id); } }, 'Revoke'));
    if (t.deadLettered) out.push(el('button', { type: 'button', 'aria-label': 'Retry task ' + t.id,
      onclick: function () { retry(t.id); } }, 'Retry'));
    return out;
  }
  function actionKey(t) { return (ACTIVE[t.state] && t.state !== 'PENDING' ? 'r' : '') + (t.deadLettered ? 'd' : ''); }
  function outcome(t) {
    if (t.state === 'FAILURE' || t.state === 'RETRY') return errText(t.error);
    if (t.state === 'REVOKED') return 'revoked' + (t.revokedReason ? ' (' + t.revokedReason + ')' : '');
    if (t.state === 'PROGRESS') return 'progress: ' + t.progress;
    if (t.result !== null) return t.result;
    return '';
  }
  function makeRow(t) {
    var r = { tr: el('tr', { 'data-task-id': t.id }) };
    r.idBtn = el('button', { type: 'button', class: 'link', title: t.id, onclick: function () { showDetail(t.id); } });
    r.id = el('td', null, r.idBtn);
    r.name = el('td', { class: 'mono' });
    r.badge = el('span', { class: 'badge' });
    r.deadBadge = el('span', { class: 'badge dead' }, 'dead-lettered');
    r.state = el('td', { class: 'state' }, r.badge, ' ', r.deadBadge);
    r.args = el('td', { class: 'mono clip' });
    r.out = el('td', { class: 'mono clip' });
    r.retries = el('td', { class: 'num' });
    r.runtime = el('td', { class: 'num' });
    r.worker = el('td', { class: 'mono' });
    r.received = el('td', { class: 'hint' });
    r.actions = el('td', { class: 'actions' });
    r.tr.append(r.id, r.name, r.state, r.args, r.out, r.retries, r.runtime, r.worker, r.received, r.actions);
    return r;
  }
  function fillRow(r, t) {
    setText(r.idBtn, t.id.length > 12 ? t.id.slice(0, 12) + '…' : t.id);
    setText(r.name, t.name || '?');
    setText(r.badge, t.state);
    r.badge.className = 'badge s-' + t.state;
    r.deadBadge.hidden = !t.deadLettered;
    r.deadBadge.title = t.deadLettered || '';
    setText(r.args, t.args);
    r.args.title = t.args || '';
    var o = outcome(t);
    setText(r.out, o);
    r.out.title = o;
    r.out.className = 'mono clip' + (t.state === 'FAILURE' ? ' s-FAILURE' : '');
    setText(r.retries, t.retries);
    setText(r.runtime, fmtMs(t.runtimeMs));
    setText(r.worker, t.worker);
    setText(r.received, clock(t.receivedAt || t.updatedAt));
    var k = actionKey(t);
    if (r.actionKey !== k) { r.actionKey = k; r.actions.replaceChildren.apply(r.actions, actionButtons(t)); }
    r.receivedAt = t.receivedAt;
    r.tr.hidden = !matches(t);
  }
  function matches(t) {
    var f = $('filter-state').value, q = $('filter-text').value.trim().toLowerCase();
    if (f === 'active' && !ACTIVE[t.state]) return false;
    if (f === 'dead' && !t.deadLettered) return false;
    if (f !== '' && f !== 'active' && f !== 'dead' && t.state !== f) return false;
    if (q && (t.id + ' ' + (t.name || '') + ' ' + (t.args || '')).toLowerCase().indexOf(q) < 0) return false;
    return true;
  }
  function upsertTasks(list) {
    var body = $('tasks-body');
    list.forEach(function (t) {
      S.tasks.set(t.id, t);
      var r = S.rows.get(t.id);
      if (!r) { r = makeRow(t); S.rows.set(t.id, r); body.prepend(r.tr); }
      else if (t.receivedAt && r.receivedAt !== t.receivedAt) body.prepend(r.tr);
      fillRow(r, t);
      if (S.detailId === t.id) renderDetail(t);
    });
    while (S.rows.size > MAX_TASKS) {
      var last = body.lastElementChild;
      if (!last) break;
      var id = last.getAttribute('data-task-id');
      last.remove(); S.rows.delete(id); S.tasks.delete(id);
    }
    $('tasks-empty').hidden = S.rows.size > 0;
    setText($('tasks-summary'), S.rows.size + ' in memory');
  }
  function refilter() { S.tasks.forEach(function (t) { var r = S.rows.get(t.id); if (r) r.tr.hidden = !matches(t); }); }

  // ---- detail / look-up ------------------------------------------------------------------------
  function showDetail(id) {
    S.detailId = id;
    var t = S.tasks.get(id);
    if (t) { renderDetail(t); return; }
    setText($('detail'), 'Looking up ' + id + '…');
    api('GET', 'api/tasks/' + encodeURIComponent(id)).then(function (j) { if (S.detailId === id) renderDetail(j.task); },
      function (e) { if (S.detailId === id) $('detail').replaceChildren(el('p', { class: 'notice' }, e.message)); });
  }
  function renderDetail(t) {
    var dl = el('dl');
    function row(k, v) { if (v !== null && v !== undefined && v !== '') dl.append(el('dt', null, k), el('dd', { class: 'mono' }, v)); }
    row('Task id', t.id);
    row('Name', t.name);
    row('State', t.state + (t.deadLettered ? ' (dead-lettered: ' + t.deadLettered + ')' : ''));
    row('Queue', t.queue);
    row('Arguments', t.args);
    row('Result', t.result);
    row('Progress', t.progress);
    row('Retries', String(t.retries));
    row('Deliveries', t.deliveries ? String(t.deliveries) : '');
    row('Queue wait', fmtMs(t.queueWaitMs));
    row('Runtime', fmtMs(t.runtimeMs));
    row('Worker', t.worker);
    row('Received', t.receivedAt ? new Date(t.receivedAt).toLocaleString() : '');
    row('Finished', t.finishedAt ? new Date(t.finishedAt).toLocaleString() : '');
    row('Retry due', t.state === 'RETRY' && t.retryAt ? new Date(t.retryAt).toLocaleString() : '');
    row('Revoked', t.revokedReason);
    row('Source', t.source === 'backend' ? 'result backend (not among the recent tasks)' : 'live events');
    var box = el('div', { 'data-detail-for': t.id }, el('h3', null, 'Task ' + t.id), dl);
    if (t.error) {
      box.append(el('div', null, el('strong', null, t.state === 'SUCCESS' ? 'Last error' : 'Error'), ' ', el('span', { class: 'mono s-FAILURE' }, errText(t.error))));
      if (t.error.stack) box.append(el('pre', { class: 'stack' }, t.error.stack));
    }
    var btns = actionButtons(t);
    if (btns.length) box.append(el('p', { class: 'actions' }, btns[0], ' ', btns[1] || null));
    box.append(el('p', null, el('button', { type: 'button', onclick: function () { S.detailId = null; $('detail').replaceChildren(); } }, 'Close')));
    $('detail').replaceChildren(box);
  }

  // ---- live updates ----------------------------------------------------------------------------
  function overview(d) {
    S.offset = d.now - Date.now();
    S.workers = d.workers;
    S.queues = d.queues;
    setText($('broker'), d.broker);
    $('no-broadcast').hidden = d.broadcast;
    renderWorkers();
    renderQueues();
  }
  function connect() {
    var es = new EventSource('api/events');
    es.addEventListener('snapshot', function (e) {
      var d = JSON.parse(e.data);
      MAX_TASKS = d.maxTasks || MAX_TASKS;
      $('tasks-body').replaceChildren(); S.rows.clear(); S.tasks.clear();
      overview(d);
      upsertTasks(d.tasks.slice().reverse());
    });
    es.addEventListener('overview', function (e) { overview(JSON.parse(e.data)); });
    es.addEventListener('tasks', function (e) { upsertTasks(JSON.parse(e.data).tasks); });
    es.onopen = function () { var c = $('conn'); setText(c, 'live'); c.className = 'live'; };
    es.onerror = function () { var c = $('conn'); setText(c, 'reconnecting…'); c.className = 'down'; };
  }

  $('lookup').addEventListener('submit', function (e) {
    e.preventDefault();
    var id = $('lookup-id').value.trim();
    if (id) showDetail(id);
  });
  $('filter-state').addEventListener('change', refilter);
  $('filter-text').addEventListener('input', refilter);
  setInterval(function () {
    S.workerRows.forEach(function (r, id) {
      var w = S.workers.find(function (x) { return x.id === id; });
      if (w) setText(r.seen, ago(w.lastSeen));
    });
  }, 1000);
  connect();
  $('schedules-refresh').addEventListener('click', loadSchedules);
  loadSchedules();
  setInterval(loadSchedules, 5000);
})();
`;
