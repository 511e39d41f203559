#!/usr/bin/env bash
# The package as a user gets it: npm pack, then install the tarball into an empty project the way
# the README's install section says (no lockfile of ours: the versions the registry gives today),
# add the registry's @huggingface/transformers in a second install, and check
#  - that nothing is downloaded from outside the registry (onnxruntime-node's CUDA fetch skipped),
#  - that npm prints no warning naming dpo-ts,
#  - that the project holds ONE onnxruntime-node version (two native copies cannot share a process),
#  - in ONE Node process: import dpo-ts and transformers.js, train DPO 2 steps, export ONNX, and
#    generate with transformers.js the same greedy text as dpo-ts (scripts/check-package/interop.mjs),
#  - require('dpo-ts') from CommonJS, and the installed `dpo --help` and `dpo export onnx`.
# Usage: scripts/check-package.sh   (needs the npm registry, nothing else; 2-3 minutes on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "check-package: $*" >&2; exit 1; }

cd "$root"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "check-package: packed $tarball"

mkdir "$work/app"
cd "$work/app"
npm init -y >/dev/null
# The README's install command, as written (the variable skips onnxruntime-node's CUDA download).
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund "$work/$tarball" 2>&1 | tee "$work/install.log"
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund @huggingface/transformers 2>&1 | tee -a "$work/install.log"
if grep -i 'warn' "$work/install.log" | grep -q 'dpo-ts'; then fail "npm warned about dpo-ts (above)"; fi
if [ -n "$(find node_modules -name 'libonnxruntime_providers_cuda*' -print -quit)" ]; then
  fail "onnxruntime-node downloaded its CUDA binaries"
fi
versions="$(npm ls onnxruntime-node --all --parseable --long | sed -n 's/.*:onnxruntime-node@\([^:]*\).*/\1/p' | sort -u)"
[ "$(printf '%s\n' "$versions" | grep -c .)" -eq 1 ] || fail "more than one onnxruntime-node version: $versions"
echo "check-package: one onnxruntime-node ($versions), no CUDA download, no warning naming dpo-ts"

cp "$root/scripts/check-package/interop.mjs" . && node interop.mjs "$work/interop"

cat >require.cjs <<'CJS'
const dpo = require('dpo-ts');
if (typeof dpo.DPOTrainer !== 'function') throw new Error('require("dpo-ts") has no DPOTrainer');
CJS
node require.cjs

npx dpo --help >/dev/null
npx dpo export onnx --model node_modules/dpo-ts/assets/brown-gpt2 --output web/brown >/dev/null
test -s web/brown/onnx/model.onnx
# dpo studio serves the prebuilt browser bundle (esbuild, a devDependency, is not installed here).
node node_modules/dpo-ts/bin/dpo.js studio --port 8799 >studio.log 2>&1 &
studio=$!
node -e '
const until = Date.now() + 60000;
(async function poll() {
  try {
    const r = await fetch("http://127.0.0.1:8799/dpo-browser.js");
    const body = await r.text();
    if (r.status !== 200 || body.length < 100000) throw new Error(`status ${r.status}, ${body.length} bytes: ${body.slice(0, 200)}`);
  } catch (e) {
    if (Date.now() > until) { console.error(`check-package: dpo studio did not serve its bundle: ${e.message}`); process.exit(1); }
    return setTimeout(poll, 500);
  }
})();' || { kill "$studio"; cat studio.log >&2; fail "dpo studio"; }
kill "$studio"
echo "check-package: the installed package runs in one process with transformers.js, loads with require(), and runs dpo --help, export onnx and studio"
