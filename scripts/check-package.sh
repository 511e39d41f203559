#!/usr/bin/env bash
# The published package works: npm pack, install the tarball into an empty folder (as a user
# would, from the registry or the local npm cache), then run the installed `dpo`: --help, a
# tiny quickstart (sample, rank, train DPO, compare, report) and an ONNX export.
# Usage: scripts/check-package.sh   (about 2-3 minutes on a 2-core machine)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$root"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "check-package: packed $tarball"

mkdir "$work/app"
cd "$work/app"
npm init -y >/dev/null
# onnxruntime-node's CPU binaries are inside its npm package; skip its CUDA download (see .npmrc).
npm_config_onnxruntime_node_install=skip npm install --prefer-offline --no-audit --no-fund "$work/$tarball"

npx dpo --help >/dev/null
npx dpo quickstart --output qs --samples 2 --eval-samples 1 --steps 2 --max-new-tokens 8 >qs.json
test -s qs/preferences.jsonl && test -s qs/report.html
npx dpo export onnx --model node_modules/dpo-ts/assets/brown-gpt2 --output web/brown >/dev/null
test -s web/brown/onnx/model.onnx
echo "check-package: the installed package runs dpo --help, quickstart and export onnx"
