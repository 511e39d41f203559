/**
 * The labelling page: one self-contained HTML document (inline CSS and script, no external
 * assets), talking to the server's JSON API (/api/state, /api/decide, /api/undo).
 *
 * Keys: 1..K pick the best completion (with K > 2, keep pressing to rank them: the last one is
 * implied), t tie, s skip, u or Backspace undo (the last pick of a ranking in progress, else the
 * last decision). Every key has a button too.
 *
 * Conversations are shown as turns (role and content), never as chat-template markup; each card
 * says whether its completion ended or was cut at the token limit. With K > 2 the cards are wide
 * (two columns) and scroll inside, and the prompt stays in view (sticky) while reading them.
 * Each decision carries a request id (kept when the same decision is sent again after a failure,
 * so a retry is not written twice); undo names the decision it takes back. When the server is
 * unreachable the page says so and keeps its state.
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
#prompt { margin: 16px 0; padding: 12px; border-left: 4px solid var(--accent); background-color: Canvas; background-image: linear-gradient(#8881, #8881);
  position: sticky; top: 0; z-index: 1; max-height: 30vh; overflow-y: auto; box-shadow: 0 6px 8px -6px #0004; }
.turn { margin: 0 0 8px; }
.turn:last-child { margin-bottom: 0; }
.role { font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.turn.user .role { color: var(--accent); }
#completions { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); }
#completions.many { grid-template-columns: repeat(2, minmax(0, 1fr)); }
@media (max-width: 900px) { #completions.many { grid-template-columns: minmax(0, 1fr); } }
.card { border: 2px solid #8886; border-radius: 8px; padding: 10px 12px; cursor: pointer; position: relative; display: flex; flex-direction: column; min-width: 0; }
.card .text { max-height: 60vh; overflow-y: auto; }
#completions.many .card .text { max-height: 40vh; }
.card .end { margin-top: 8px; font-size: 12px; color: var(--muted); }
.card .end.length { color: #c70; font-weight: 600; }
.empty { color: var(--muted); font-style: italic; }
.card:hover { border-color: var(--accent); }
.card.ranked { opacity: .55; border-style: dashed; }
.card .key { font-weight: 600; color: var(--accent); margin-bottom: 6px; }
.card .key .role { margin-left: 8px; }
.card .rank { position: absolute; top: 8px; right: 10px; font-weight: 700; }
/* The buttons and any error stay at the bottom of the window, however long the cards are. */
#footer { position: sticky; bottom: 0; z-index: 1; background-color: Canvas; margin-top: 12px; padding: 8px 0; border-top: 1px solid #8883; }
#actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 1px solid #8888; background: #8882; cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
kbd { font: 12px ui-monospace, monospace; border: 1px solid #8888; border-radius: 3px; padding: 0 4px; }
#message { color: #c33; }
#message:not(:empty) { margin-top: 8px; font-weight: 600; }
#status { color: var(--muted); }
#done { display: none; font-size: 18px; margin: 32px 0; }
`;

const SCRIPT = `
const $ = (id) => document.getElementById(id);
let state = null;
let ranking = [];
let busy = false;
/** The last decision sent and its request id: the same decision sent again keeps the id. */
let attempt = null;
const END = { eos: 'ended (end of sequence)', stop: 'ended at a stop string', length: 'cut at the token limit' };

function requestId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function textBlock(text) {
  const pre = document.createElement('pre');
  pre.className = 'text';
  if (text.length === 0) { pre.textContent = '(empty)'; pre.classList.add('empty'); }
  else pre.textContent = text;
  return pre;
}

function showPrompt(item) {
  const box = $('prompt-text');
  box.replaceChildren();
  if (typeof item.prompt === 'string') { box.append(textBlock(item.prompt)); return; }
  for (const m of item.prompt) {
    const turn = document.createElement('div');
    turn.className = 'turn ' + m.role;
    const role = document.createElement('div');
    role.className = 'role';
    role.textContent = m.role;
    turn.append(role, textBlock(m.content));
    box.append(turn);
  }
}

function render() {
  const s = state;
  $('bar').firstElementChild.style.width = (s.total ? (100 * s.done / s.total) : 100) + '%';
  $('progress-text').textContent = s.done + ' / ' + s.total + ' prompts decided';
  $('counts').textContent = s.counts.preferences + (s.numCompletions > 2 ? ' rankings' : ' preferences') + ' \\u00b7 ' + s.counts.ties + ' ties \\u00b7 ' + s.counts.skips + ' skipped \\u2192 ' + s.output;
  $('skipped-later').textContent = s.counts.skips > 0 ? ' ' + s.counts.skips + (s.counts.skips === 1 ? ' skipped prompt is' : ' skipped prompts are') + ' offered again when you run the same command again.' : '';
  $('undo').disabled = busy || (!s.canUndo && ranking.length === 0);
  const item = s.item;
  $('work').style.display = item ? '' : 'none';
  $('actions').style.display = item ? '' : 'none';
  $('done').style.display = item ? 'none' : 'block';
  if (!item) return;
  $('prompt-index').textContent = 'prompt ' + (item.index + 1);
  showPrompt(item);
  const box = $('completions');
  box.className = item.completions.length > 2 ? 'many' : '';
  box.replaceChildren();
  item.completions.forEach((text, i) => {
    const card = document.createElement('div');
    card.className = 'card' + (ranking.includes(i) ? ' ranked' : '');
    card.dataset.index = String(i);
    const key = document.createElement('div');
    key.className = 'key';
    key.textContent = String(i + 1);
    if (typeof item.prompt !== 'string') {
      const role = document.createElement('span');
      role.className = 'role';
      role.textContent = 'assistant';
      key.append(role);
    }
    card.append(key, textBlock(text));
    const reason = item.finishReasons ? item.finishReasons[i] : null;
    if (reason) {
      const end = document.createElement('div');
      end.className = 'end ' + reason;
      end.textContent = END[reason] || reason;
      card.append(end);
    }
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
    let res;
    try {
      res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    } catch (e) {
      // fetch rejects only when no answer came: the server was stopped (or the machine slept).
      const where = state ? state.output : 'the output file';
      throw new Error('The server is gone (stopped?); your answers so far are saved in ' + where + '. Run the same dpo label command again to go on, then reload this page.');
    }
    let json;
    try { json = await res.json(); } catch (e) { throw new Error('the server answered ' + res.status + ' ' + res.statusText + ' without JSON'); }
    if (!res.ok) throw new Error(json.error || res.statusText);
    state = json;
    ranking = [];
    attempt = null;
    $('message').textContent = '';
  } catch (e) {
    // The page keeps its state: a failed decision can be made again (with the same request id).
    if (state && state.item && ranking.length === state.item.completions.length) ranking = ranking.slice(0, Math.max(0, ranking.length - 2));
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
  if (ranking.length === k) send({ index: state.item.index, kind: 'rank', order: ranking.slice() });
  else render();
}

function send(decision) {
  const key = JSON.stringify(decision);
  if (!attempt || attempt.key !== key) attempt = { key, id: requestId() };
  call('/api/decide', Object.assign({ id: attempt.id }, decision));
}

function decide(kind) {
  if (busy || !state || !state.item) return;
  send({ index: state.item.index, kind });
}

function undo() {
  if (busy || !state) return;
  if (ranking.length > 0) { ranking.pop(); render(); return; }
  if (state.canUndo) call('/api/undo', state.lastDecision ? { of: state.lastDecision } : {});
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
    <div id="prompt"><div id="prompt-index" class="key"></div><div id="prompt-text"></div></div>
    <div id="hint"></div>
    <div id="completions"></div>
  </div>
  <div id="done">Every prompt is decided or skipped. The preferences are in the output file; stop the server with Ctrl-C.<span id="skipped-later"></span></div>
  <div id="footer">
    <div id="actions">
      <button id="tie"><kbd>t</kbd> tie</button>
      <button id="skip"><kbd>s</kbd> skip</button>
      <button id="undo"><kbd>u</kbd> undo</button>
      <span id="status"></span>
    </div>
    <div id="message" role="alert"></div>
  </div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
