import { PAGE_SCRIPT } from './page-script.js';
import { PAGE_STYLE } from './page-style.js';

/**
 * The dashboard page: one self-contained document (inline style and script, no external resource)
 * whose data all arrives over the JSON API and Server-Sent Events. The server puts no user data in
 * it, so nothing here needs escaping; `nonce` must be base64 (it is placed in attributes as is).
 */
export function renderPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>celeriac dashboard</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${PAGE_STYLE}</style>
</head>
<body>
<header>
  <h1>celeriac</h1>
  <span class="meta">broker <strong id="broker" class="mono">…</strong></span>
  <span class="meta">updates: <span id="conn">connecting…</span></span>
  <span class="meta"><a href="metrics">/metrics</a></span>
</header>
<main>
  <p id="no-broadcast" class="notice" hidden>This broker has no broadcast channel: workers and task events cannot be seen, only queues.</p>
  <section aria-labelledby="workers-h">
    <h2 id="workers-h">Workers <small id="workers-summary"></small></h2>
    <table>
      <thead><tr><th>Worker</th><th>Status</th><th>Load (active / concurrency)</th><th class="num">Processed</th><th>Queues</th><th>Last heard</th></tr></thead>
      <tbody id="workers-body"></tbody>
      <tbody id="workers-empty"><tr class="empty"><td colspan="6">No worker has been heard from yet.</td></tr></tbody>
    </table>
  </section>
  <section aria-labelledby="queues-h">
    <h2 id="queues-h">Queues <small>depths refresh every second</small></h2>
    <table>
      <thead><tr><th>Queue</th><th class="num">Ready</th><th class="num">Delayed</th><th class="num">In flight</th><th class="num">Dead</th><th>Processed / s, last minute</th><th>Actions</th></tr></thead>
      <tbody id="queues-body"></tbody>
    </table>
  </section>
  <section aria-labelledby="schedules-h">
    <h2 id="schedules-h">Runtime schedules <small id="schedules-summary"></small> <button type="button" id="schedules-refresh">Refresh</button></h2>
    <p id="schedules-note" class="notice" hidden></p>
    <table>
      <thead><tr><th>Schedule</th><th>Task</th><th>Arguments</th><th>Timing</th><th>Next run</th><th class="num">Runs</th><th>Last run</th><th>Actions</th></tr></thead>
      <tbody id="schedules-body"></tbody>
      <tbody id="schedules-empty"><tr class="empty"><td colspan="8">No runtime schedules (app.schedules.upsert creates them).</td></tr></tbody>
    </table>
  </section>
  <section aria-labelledby="lookup-h">
    <h2 id="lookup-h">Find a task</h2>
    <form id="lookup" class="lookup" autocomplete="off">
      <input id="lookup-id" name="id" placeholder="task id" aria-label="Task id" maxlength="255" spellcheck="false">
      <button type="submit">Look up</button>
    </form>
    <div id="detail" aria-live="polite"></div>
  </section>
  <section aria-labelledby="tasks-h">
    <h2 id="tasks-h">Recent tasks <small id="tasks-summary"></small></h2>
    <div class="filters">
      <label>State <select id="filter-state">
        <option value="">all</option><option value="active">active</option><option value="SUCCESS">SUCCESS</option>
        <option value="FAILURE">FAILURE</option><option value="RETRY">RETRY</option><option value="REVOKED">REVOKED</option>
        <option value="dead">dead-lettered</option>
      </select></label>
      <input id="filter-text" placeholder="filter by id, name or arguments" aria-label="Filter tasks" spellcheck="false">
      <span class="hint">Task events appear when workers run with <code>sendEvents: true</code>.</span>
    </div>
    <table>
      <thead><tr><th>Task</th><th>Name</th><th>State</th><th>Arguments</th><th>Result / error</th><th class="num">Retries</th><th class="num">Runtime</th><th>Worker</th><th>Received</th><th>Actions</th></tr></thead>
      <tbody id="tasks-body"></tbody>
      <tbody id="tasks-empty"><tr class="empty"><td colspan="10">No task events yet.</td></tr></tbody>
    </table>
  </section>
</main>
<div id="toast" role="status" aria-live="polite"></div>
<script nonce="${nonce}">${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

/** The token form shown to a browser without credentials when a token is configured. */
export function renderLogin(nonce: string, failed: boolean): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>celeriac dashboard: sign in</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${PAGE_STYLE} form.login { max-width: 360px; margin: 12vh auto; display: grid; gap: 10px; }
form.login input { font: inherit; padding: 6px 8px; border-radius: 5px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); }</style>
</head>
<body>
<form class="login" method="post" action="login">
  <h1>celeriac dashboard</h1>
  <label for="token">Access token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  ${failed ? '<p class="notice" role="alert">That token is not valid.</p>' : ''}
  <button type="submit">Sign in</button>
</form>
</body>
</html>
`;
}
