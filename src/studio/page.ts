/**
 * The studio page: HTML, and its script (a module that imports the browser bundle). Keys: 1/2
 * pick the better completion, s skips a prompt, t trains, g generates with the trained model
 * beside the reference, d downloads the result (a PEFT adapter folder with LoRA, the default, or
 * the model folder with full fine-tuning).
 */

/** Scripts and wasm from this origin only (onnxruntime-web compiles wasm), nothing external. */
export const STUDIO_CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data: blob:; worker-src 'self' blob:; frame-ancestors 'none'";

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function studioPage(model: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dpo studio: ${escapeHtml(model)}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; } header span { opacity: .85; }
main { display: grid; grid-template-columns: 1.2fr 1fr; gap: 16px; padding: 16px 20px; }
section { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 12px 16px; }
h2 { font-size: 15px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: #556; }
.cards { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.card { border: 2px solid #dde1e8; border-radius: 6px; padding: 8px; }
.card b { color: #2a5bd7; } pre { white-space: pre-wrap; margin: 4px 0 0; font: 14px/1.4 ui-monospace, monospace; }
kbd { border: 1px solid #aab; border-radius: 3px; padding: 0 4px; background: #f0f0f4; font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 13px; }
td, th { padding: 2px 6px; text-align: right; border-bottom: 1px solid #eee; }
#chart { width: 100%; height: 120px; }
.compare { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
.muted { color: #778; font-size: 13px; }
</style></head>
<body>
<header><h1>dpo studio</h1><span>model <b>${escapeHtml(model)}</b></span><span>device <b id="device">loading…</b></span><span>training <b id="mode">…</b></span><span id="status">loading the model…</span></header>
<main>
<section id="label"><h2>Label</h2>
<div class="muted"><kbd>1</kbd>/<kbd>2</kbd> pick the better completion · <kbd>s</kbd> skip · <kbd>t</kbd> train · <kbd>g</kbd> generate · <kbd>d</kbd> download</div>
<p><span id="prompt-index"></span> · <span id="labelled">0 pairs labelled</span></p>
<p><b>Prompt:</b> <span id="prompt-text"></span></p>
<div class="cards" id="cards"></div>
</section>
<section id="train"><h2>Train (DPO, in this tab)</h2>
<div class="muted" id="chart-caption">loss by step: appears when training starts</div>
<svg id="chart" viewBox="0 0 300 120" preserveAspectRatio="none" role="img" aria-label="DPO loss by step"></svg>
<table><thead><tr><th>step</th><th>loss</th><th>reward chosen</th><th>reward rejected</th><th>accuracy</th><th>s</th></tr></thead><tbody id="metrics"></tbody></table>
</section>
<section id="generate" style="grid-column: 1 / span 2"><h2>Reference vs trained (greedy)</h2><div id="samples" class="muted">press <kbd>g</kbd> after training</div></section>
</main>
<script type="module" src="/studio.js"></script>
</body></html>
`;
}

/** The page's script (served as /studio.js). `window.studio` exposes the state to tests and the console. */
export const studioScript = String.raw`
import * as dpo from '/dpo-browser.js';

const $ = (id) => document.getElementById(id);
const status = (text) => { $('status').textContent = text; };
const post = async (path, body) => {
  const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(j.error);
  return j;
};
const decode = async (ids) => (await post('/api/decode', { ids })).texts;
const fmt = (x, d = 4) => Number(x).toFixed(d);

const studio = { ready: false, busy: false, pairs: [], history: [], index: 0, current: null, error: null, downloads: 0 };
window.studio = studio;

async function main() {
  dpo.configureOrtWeb({ wasmPaths: '/ort/', numThreads: 1 });
  const s = await (await fetch('/api/session')).json();
  studio.session = s;
  const [config, weights] = await Promise.all([
    fetch('/model/config.json').then((r) => r.json()),
    fetch('/model/model.safetensors').then((r) => r.arrayBuffer()),
  ]);
  status('compiling the training step…');
  const trainer = await dpo.BrowserDpo.create({
    config, tensors: dpo.readSafetensorsBytes(weights), device: s.device, beta: s.beta, learningRate: s.learningRate,
    full: s.full, lora: s.lora, seed: s.seed, baseModelNameOrPath: s.modelPath,
  });
  studio.trainer = trainer;
  $('device').textContent = trainer.device === 'webgpu' ? 'WebGPU' : 'wasm (CPU)';
  $('mode').textContent = trainer.lora ? 'LoRA r ' + trainer.lora.r + ' (' + [trainer.lora.targetModules].flat().join(', ') + ')' : 'full fine-tuning';
  await showPrompt();
  studio.ready = true;
}

async function showPrompt() {
  const s = studio.session;
  if (studio.index >= s.prompts.length) {
    studio.current = null;
    $('prompt-index').textContent = 'all prompts seen';
    $('cards').replaceChildren();
    status('all prompts seen: t trains, g generates, d downloads');
    return;
  }
  const i = studio.index;
  $('prompt-index').textContent = 'prompt ' + (i + 1) + ' of ' + s.prompts.length;
  $('prompt-text').textContent = s.prompts[i];
  status('sampling two completions…');
  const prompt = s.promptIds[i];
  const ids = await studio.trainer.generate([prompt, prompt], { which: 'reference', maxNewTokens: s.maxNewTokens, seed: s.seed + i, doSample: true, eosTokenIds: s.eosTokenIds });
  const texts = await decode(ids);
  studio.current = { index: i, prompt, ids, texts };
  $('cards').replaceChildren(...texts.map((t, k) => {
    const d = document.createElement('div');
    d.className = 'card';
    d.innerHTML = '<b>' + (k + 1) + '</b>';
    const pre = document.createElement('pre');
    pre.textContent = t;
    d.append(pre);
    return d;
  }));
  status('pick the better completion: 1 or 2');
}

async function choose(k) {
  const c = studio.current;
  if (!c) return;
  studio.pairs.push({ promptIds: c.prompt, chosenIds: c.ids[k], rejectedIds: c.ids[1 - k], prompt: studio.session.prompts[c.index], chosen: c.texts[k], rejected: c.texts[1 - k] });
  $('labelled').textContent = studio.pairs.length + ' pairs labelled';
  studio.index++;
  await showPrompt();
}

function chart() {
  const h = studio.history;
  if (h.length < 1) return;
  const losses = h.map((m) => m.loss);
  // The data's own range, so a small fall shows; the numbers sit in the caption (HTML), since text
  // inside the stretched SVG would be stretched too.
  const max = Math.max(...losses), min = Math.min(...losses);
  const pts = losses.map((l, i) => (h.length === 1 ? 150 : (i * 290) / (h.length - 1) + 5) + ',' + (115 - ((l - min) / (max - min || 1)) * 105)).join(' ');
  $('chart').innerHTML = '<polyline fill="none" stroke="#2a5bd7" stroke-width="2" vector-effect="non-scaling-stroke" points="' + pts + '"/>';
  $('chart-caption').textContent = 'loss by step 1–' + h.length + ': top ' + fmt(max, 4) + ', bottom ' + fmt(min, 4) + ' (last ' + fmt(losses[losses.length - 1], 4) + ')';
}

async function train() {
  const s = studio.session;
  if (studio.pairs.length === 0) { status('label at least one pair first'); return; }
  status('reference log-probs of ' + studio.pairs.length + ' pairs…');
  await studio.trainer.setPairs(studio.pairs);
  for (let k = 0; k < s.steps; k++) {
    const m = await studio.trainer.trainStep();
    studio.history.push(m);
    const tr = document.createElement('tr');
    for (const v of [m.step, fmt(m.loss), fmt(m.rewardsChosen), fmt(m.rewardsRejected), fmt(m.accuracy, 2), fmt(m.seconds, 2)]) {
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.append(td);
    }
    $('metrics').append(tr);
    chart();
    status('step ' + m.step + ': loss ' + fmt(m.loss));
  }
  // Log-probs of the labelled pairs under the trained model (tests compare them with Node's).
  studio.policyLogps = Array.from(await studio.trainer.logps(studio.pairs, 'policy'));
  status('trained ' + studio.history.length + ' steps on ' + studio.pairs.length + ' pairs: g generates, d downloads');
}

async function generate() {
  const s = studio.session;
  const prompts = s.promptIds.slice(0, 3);
  status('generating with the reference and the trained model…');
  const opts = { maxNewTokens: s.maxNewTokens, eosTokenIds: s.eosTokenIds };
  const [ref, pol] = [await studio.trainer.generate(prompts, { ...opts, which: 'reference' }), await studio.trainer.generate(prompts, { ...opts, which: 'policy' })];
  const [refText, polText] = [await decode(ref), await decode(pol)];
  studio.samples = prompts.map((_, i) => ({ prompt: s.prompts[i], reference: refText[i], trained: polText[i] }));
  const box = $('samples');
  box.className = 'compare';
  box.replaceChildren();
  for (const row of studio.samples) {
    for (const [name, text] of [['reference', row.reference], ['trained', row.trained]]) {
      const d = document.createElement('div');
      d.className = 'card';
      d.innerHTML = '<b>' + name + '</b>';
      const pre = document.createElement('pre');
      pre.textContent = row.prompt + ' ⟶ ' + text;
      d.append(pre);
      box.append(d);
    }
  }
  status('generated');
}

function save(name, bytes) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes]));
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  studio.downloads++;
}

async function download() {
  status('preparing the download…');
  // LoRA: a PEFT adapter folder (its adapter_config.json names the model folder as the base);
  // full fine-tuning: the model folder, with the base's tokenizer files.
  const files = await studio.trainer.outputFiles();
  if (!studio.trainer.lora) {
    const names = new Set(files.map((f) => f.name));
    for (const name of studio.session.files) {
      if (!names.has(name)) files.push({ name, bytes: new Uint8Array(await (await fetch('/model/' + name)).arrayBuffer()) });
    }
  }
  for (const f of files) save(f.name, f.bytes);
  status('downloaded ' + files.map((f) => f.name).join(', ') + ': put them in one folder, then dpo generate --model FOLDER');
}

const keys = { '1': () => choose(0), '2': () => choose(1), s: () => { studio.index++; return showPrompt(); }, t: train, g: generate, d: download };
document.addEventListener('keydown', (e) => {
  const action = keys[e.key];
  if (!action || !studio.ready || studio.busy || e.ctrlKey || e.metaKey || e.altKey) return;
  studio.busy = true;
  Promise.resolve(action()).catch((err) => { studio.error = String(err && err.message || err); status('error: ' + studio.error); }).finally(() => { studio.busy = false; });
});

main().catch((err) => { studio.error = String(err && err.message || err); status('error: ' + studio.error); });
`;
