/**
 * What a GPU benchmark needs besides the step time: the device's peak FP32 FLOP/s (for MFU) and
 * its peak memory use during the steps, both read from nvidia-smi (NVIDIA GPUs; other devices
 * report none unless --peak-tflops is given).
 */
import { execFileSync, spawn } from 'node:child_process';

/**
 * Dense FP32 peak TFLOP/s (no tensor cores: the WebGPU provider's shaders and ORT's CUDA float32
 * MatMul with TF32 off use the FP32 units), from the vendors' data sheets, by nvidia-smi name.
 */
const FP32_PEAK_TFLOPS: readonly [RegExp, number][] = [
  [/H200/i, 66.9],
  [/H100.*PCIe/i, 51.2],
  [/H100/i, 66.9],
  [/A100/i, 19.5],
  [/L40S/i, 91.6],
  [/L4\b/i, 30.3],
  [/A10G?\b/i, 31.2],
  [/RTX 4090/i, 82.6],
  [/RTX 3090/i, 35.6],
  [/T4\b/i, 8.1],
];

/** The first GPU's name per nvidia-smi, or undefined when there is none. */
export function gpuName(): string | undefined {
  try {
    return execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim() || undefined;
  } catch {
    return undefined;
  }
}

/** FP32 peak TFLOP/s of a GPU by name (undefined: not in the table). */
export function fp32PeakTflops(name: string | undefined): number | undefined {
  return name ? FP32_PEAK_TFLOPS.find(([re]) => re.test(name))?.[1] : undefined;
}

/** Samples the first GPU's used memory (MiB) every 100 ms until stopped; resolves to the peak (undefined without nvidia-smi). */
export function sampleGpuMemory(): { stop(): Promise<number | undefined> } {
  let peak: number | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    child = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '100'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.on('error', () => undefined);
    child.stdout?.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        const mb = Number(line.split(',')[0]);
        if (line.trim() && Number.isFinite(mb)) peak = Math.max(peak ?? 0, mb);
      }
    });
  } catch {
    child = undefined;
  }
  return {
    async stop() {
      if (child && child.exitCode === null) {
        const done = new Promise((r) => child?.once('exit', r));
        child.kill();
        await done;
      }
      return peak;
    },
  };
}
