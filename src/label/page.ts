/**
 * The labelling page: one self-contained HTML document (inline CSS and script, no external
 * assets), talking to the server's JSON API (/api/state, /api/decide, /api/undo).
 *
 * Keys: 1..K pick the best completion (with K > 2, keep pressing to rank them: the last one is
 * implied), t tie, s skip, u or Backspace undo (the last pick of a ranking in progress, else the
 * last decision). Every key has a button too.
 */
const STYLE = `
:root { color-scheme: light dark; --accent: #2f6fdf; --muted: #888; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; padding: 16px 24px; }
header { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; }
h1 { font-size: 18px; margin: 0; }
#progress { flex: 1; min-width: 200px; }
#bar { height: 8px; background: #8884; border-radius: 4px; overflow: hidden; }
#bar > div { height: 100%; width: 0; background: var(--accent); transition: width .2s; }
#counts { color: var(--muted); font-size: 13px; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font: 14px/1.5 ui-monospace, monospace; }
#prompt { margin: 16px 0; padding: 12px; border-left: 4px solid var(--accent); background: #8881; }
#completions { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); }
.card { border: 2px solid #8886; border-radius: 8px; padding: 10px 12px; cursor: pointer; position: relative; }
.card:hover { border-color: var(--accent); }
.card.ranked { opacity: .55; border-style: dashed; }
.card .key { font-weight: 600; color: var(--accent); margin-bottom: 6px; }
.card .rank { position: absolute; top: 8px; right: 10px; font-weight: 700; }
#actions { margin: 16px 0; display: flex; gap: 8px; flex-wrap: wrap; }
button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 1px solid #8888; background: #8882; cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
kbd { font: 12px ui-monospace, monospace; border: 1px solid #8888; border-radius: 3px; padding: 0 4px; }
#message { min-height: 1.5em; color: #c33; }
#status { color: var(--muted); }
#done { display: none; font-size: 18px; margin: 32px 0; }
`;

const SCRIPT = `
const $ = (id) => document.getElementById(id);
let state = null;
let ranking = [];
let busy = false;

function render() {
  const s = state;
  $('bar').firstElementChild.style.width = (s.total ? (100 * s.done / s.total) : 100) + '%';
  $('progress-text').textContent = s.done + ' / ' + s.total + ' prompts decided';
  $('counts').textContent = s.counts.preferences + (s.numCompletions > 2 ? ' rankings' : ' preferences') + ' \\u00b7 ' + s.counts.ties + ' ties \\u00b7 ' + s.counts.skips + ' skipped \\u2192 ' + s.output;
  $('undo').disabled = busy || (!s.canUndo && ranking.length === 0);
  const item = s.item;
  $('work').style.display = item ? '' : 'none';
  $('done').style.display = item ? 'none' : 'block';
  if (!item) return;
  $('prompt-index').textContent = 'prompt ' + (item.index + 1);
  $('prompt-text').textContent = item.text;
  const box = $('completions');
  box.replaceChildren();
  item.completions.forEach((text, i) => {
    const card = document.createElement('div');
    card.className = 'card' + (ranking.includes(i) ? ' ranked' : '');
    card.dataset.index = String(i);
    const key = document.createElement('div');
    key.className = 'key';
    key.textContent = String(i + 1);
    const body = document.createElement('pre');
    body.className = 'text';
    body.textContent = text;
    card.append(key, body);
    const at = ranking.indexOf(i);
    if (at >= 0) {
      const badge = document.createElement('div');
      badge.className = 'rank';
      badge.textContent = '#' + (at + 1);
      card.append(badge);
    }
    card.addEventListener('click', () => pick(i));
    box.append(card);
  });
  const k = item.completions.length;
  $('hint').textContent = k === 2 ? 'press 1 or 2 for the better completion' : (ranking.length === 0 ? 'press 1-' + k + ' for the best completion, then the next best...' : 'next best? (' + ranking.length + ' of ' + (k - 1) + ' ranked)');
  for (const b of document.querySelectorAll('#actions button')) if (b.id !== 'undo') b.disabled = busy;
}

async function call(path, body) {
  busy = true;
  $('status').textContent = body === undefined ? 'sampling\\u2026' : 'saving\\u2026';
  if (state) render();
  try {
    const res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = await res.json();
    if (!res.ok) throw new Error(json.error || res.statusText);
    state = json;
    ranking = [];
    $('message').textContent = '';
  } catch (e) {
    $('message').textContent = String(e.message || e);
  } finally {
    busy = false;
    $('status').textContent = '';
    if (state) render();
  }
}

function pick(i) {
  if (busy || !state || !state.item) return;
  const k = state.item.completions.length;
  if (i < 0 || i >= k || ranking.includes(i)) return;
  ranking.push(i);
  if (ranking.length === k - 1) {
    for (let j = 0; j < k; j++) if (!ranking.includes(j)) ranking.push(j);
  }
  if (ranking.length === k) call('/api/decide', { index: state.item.index, kind: 'rank', order: ranking });
  else render();
}

function decide(kind) {
  if (busy || !state || !state.item) return;
  call('/api/decide', { index: state.item.index, kind });
}

function undo() {
  if (busy || !state) return;
  if (ranking.length > 0) { ranking.pop(); render(); return; }
  if (state.canUndo) call('/api/undo', {});
}

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[1-9]$/.test(e.key)) pick(Number(e.key) - 1);
  else if (e.key === 't') decide('tie');
  else if (e.key === 's') decide('skip');
  else if (e.key === 'u' || e.key === 'Backspace') { e.preventDefault(); undo(); }
  else return;
});
$('tie').addEventListener('click', () => decide('tie'));
$('skip').addEventListener('click', () => decide('skip'));
$('undo').addEventListener('click', () => undo());
call('/api/state');
`;

export function labelPage(title = 'dpo label'): string {
  const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>${esc(title)}</h1>
  <div id="progress"><div id="bar"><div></div></div><span id="progress-text"></span> <span id="counts"></span></div>
</header>
<main>
  <div id="work">
    <div id="prompt"><div id="prompt-index" class="key"></div><pre id="prompt-text"></pre></div>
    <div id="hint"></div>
    <div id="completions"></div>
    <div id="actions">
      <button id="tie"><kbd>t</kbd> tie</button>
      <button id="skip"><kbd>s</kbd> skip</button>
      <button id="undo"><kbd>u</kbd> undo</button>
      <span id="status"></span>
    </div>
  </div>
  <div id="done">Every prompt is decided. The preferences are in the output file; stop the server with Ctrl-C.</div>
  <div id="message" role="alert"></div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
