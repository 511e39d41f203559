#!/usr/bin/env bash
# DPO training steps on a real GPU, on both of onnxruntime-node's GPU providers, with no network:
# gpt2-124m full fine-tuning and qwen3-0.6b-shaped LoRA (r 16, all linear layers), random weights
# and tokens (bench/dpo.ts), WebGPU then CUDA. Prints one JSON line per run (tokens/s, ms/step,
# MFU against the GPU's FP32 peak, peak GPU memory from nvidia-smi) and writes them to
# bench/gpu/results-<host>-<date>.jsonl. About 5-10 minutes on a datacenter GPU.
#
# Before (with network): npm ci with ONNXRUNTIME_NODE_INSTALL=cuda12 so that onnxruntime-node's
# CUDA provider is installed (a plain install of this repo skips it); the host needs the NVIDIA
# driver, CUDA 12 and cuDNN 9 for CUDA, and a Vulkan driver (libvulkan1 + the NVIDIA ICD) for
# WebGPU. A provider that cannot start is reported on its line and the others still run.
#
#   bench/gpu/run.sh [--steps 5] [--warmup 2] [--peak-tflops T]
set -uo pipefail
cd "$(dirname "$0")/../.."
STEPS=5 WARMUP=2 EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --peak-tflops) EXTRA+=(--peak-tflops "$2"); shift 2 ;;
    *) echo "bench/gpu/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
OUT="bench/gpu/results-$(hostname)-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /' >&2 || echo "gpu: nvidia-smi not found" >&2
status=0
for device in webgpu cuda; do
  for run in "gpt2-124m full" "qwen3-0.6b lora"; do
    set -- $run
    echo "== $device $1 $2" >&2
    # Each run gets at most 4 minutes, so the whole set stays near 10 minutes even when one hangs.
    if ! timeout 240 npx tsx bench/run.ts dpo --models "$1" --variants "$2" --device "$device" \
        --steps "$STEPS" --warmup "$WARMUP" --threads 4 "${EXTRA[@]}" 2> >(tail -3 >&2) | tee -a "$OUT"; then
      echo "{\"bench\":\"dpo_step\",\"model\":\"$1\",\"variant\":\"$2\",\"device\":\"$device\",\"error\":\"failed or timed out (see stderr)\"}" | tee -a "$OUT"
      status=1
    fi
  done
done
echo "results: $OUT" >&2
exit $status
