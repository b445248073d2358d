/** The page's stylesheet (inlined with a CSP nonce; no external resources). */
export const PAGE_STYLE = String.raw`
:root { color-scheme: light dark; --bg: #f6f7f9; --panel: #fff; --fg: #1d2330; --muted: #667085; --line: #e3e6ec;
  --ok: #16794c; --bad: #c0322b; --warn: #b25e09; --run: #1f5fbf; --idle: #6b7280; --rev: #6d3fb8; --accent: #1f5fbf; }
@media (prefers-color-scheme: dark) { :root { --bg: #14171c; --panel: #1c2027; --fg: #e6e8ec; --muted: #98a2b3; --line: #2c323c;
  --ok: #4cc38a; --bad: #ff6b61; --warn: #f0a14a; --run: #6ea8fe; --idle: #9aa3af; --rev: #b494f5; --accent: #6ea8fe; } }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; gap: 16px; align-items: baseline; padding: 12px 20px; border-bottom: 1px solid var(--line); background: var(--panel); flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: var(--muted); }
#conn { font-weight: 600; }
#conn.live { color: var(--ok); } #conn.down { color: var(--bad); }
main { padding: 16px 20px; display: grid; gap: 16px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; overflow-x: auto; }
section h2 { font-size: 15px; margin: 0 0 8px; display: flex; gap: 10px; align-items: baseline; }
section h2 small { color: var(--muted); font-weight: normal; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
td.clip { max-width: 260px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.empty td { color: var(--muted); font-style: italic; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
.s-SUCCESS, .w-online { color: var(--ok); } .s-FAILURE, .w-lost, .dead { color: var(--bad); } .s-RETRY { color: var(--warn); }
.s-STARTED, .s-PROGRESS { color: var(--run); } .s-RECEIVED, .s-PENDING, .w-offline { color: var(--idle); } .s-REVOKED { color: var(--rev); }
button { font: inherit; font-size: 12px; padding: 2px 9px; border-radius: 5px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--accent); }
button.danger { color: var(--bad); }
button.link { border: 0; background: none; padding: 0; color: var(--accent); text-decoration: underline; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
td.actions { white-space: nowrap; } td.actions button + button { margin-left: 4px; }
meter { width: 90px; vertical-align: middle; }
svg.spark { display: block; }
svg.spark polyline { fill: none; stroke-width: 1.5; }
svg.spark .p { stroke: var(--accent); } svg.spark .f { stroke: var(--bad); } svg.spark line { stroke: var(--line); }
.rate { display: flex; gap: 8px; align-items: center; } .rate span { color: var(--muted); font-size: 12px; white-space: nowrap; }
tr.deadlist > td { background: var(--bg); }
tr.deadlist table td { border-bottom-color: var(--line); }
form.lookup { display: flex; gap: 8px; }
form.lookup input { flex: 1; max-width: 420px; font: inherit; padding: 4px 8px; border-radius: 5px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); }
.filters { display: flex; gap: 8px; margin-bottom: 8px; align-items: center; }
.filters select, .filters input { font: inherit; font-size: 13px; padding: 2px 6px; border-radius: 5px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); }
#detail:empty { display: none; }
#detail { margin-top: 10px; border-top: 1px solid var(--line); padding-top: 10px; }
#detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0 0 8px; }
#detail dt { color: var(--muted); } #detail dd { margin: 0; word-break: break-all; }
pre { margin: 4px 0 0; padding: 8px; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; white-space: pre-wrap; word-break: break-all; max-height: 320px; overflow: auto; font-size: 12px; }
.notice { color: var(--warn); margin: 0 0 8px; }
.hint { color: var(--muted); font-size: 12px; }
#toast { position: fixed; right: 16px; bottom: 16px; max-width: 420px; padding: 8px 12px; border-radius: 6px; background: var(--fg); color: var(--bg); opacity: 0; transition: opacity .2s; pointer-events: none; }
#toast.show { opacity: .95; } #toast.error { background: var(--bad); color: #fff; }
`;
