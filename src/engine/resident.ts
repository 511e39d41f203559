/**
 * Tensors that live on the device across runs (WebGPU): parameters and optimizer state of a
 * training step. Copying them between host and device on every step would cost more than the
 * step itself, so they go up once, each step's updated values (device outputs `<name>.new`)
 * replace them on the device, and they come back to the host only when something reads them
 * (checkpoints, evaluation, saving, samples) through a copy graph with host outputs.
 *
 * Two small graphs do the copies: `up` (host inputs, device outputs) and `down` (device inputs,
 * host outputs). onnxruntime-node cannot create a GPU tensor from host memory, nor read one
 * without aborting the process, so a graph is the only way across.
 */
import { Graph, type Tensor } from './graph.js';
import { CompiledGraph, type DeviceTensor, type HostTensor, type RuntimeOptions } from './runtime.js';

export interface ResidentSpec {
  name: string;
  shape: readonly number[];
}

const UP = 'up/';
const DOWN = 'down/';

export class ResidentTensors {
  private readonly onDevice = new Map<string, DeviceTensor>();
  /** The host holds values the device does not have yet (at first, and after a restore). */
  private deviceStale = true;
  /** The device holds values the host does not have yet (after a step). */
  private hostStale = false;
  private up?: Promise<CompiledGraph>;
  private down?: Promise<CompiledGraph>;

  /**
   * `specs`: every tensor kept on the device; `changing`: the names a step updates (the only ones
   * copied back to the host).
   */
  constructor(
    private readonly specs: readonly ResidentSpec[],
    private readonly changing: readonly string[],
    private readonly runtime: RuntimeOptions,
  ) {}

  /** Whether the host copies are behind the device (call {@link sync} before reading them). */
  get hostBehind(): boolean {
    return this.hostStale;
  }

  /** The device tensors by name, uploading `host` (all specs by name) first when the device is behind. */
  async feeds(host: () => Readonly<Record<string, HostTensor>>): Promise<Record<string, DeviceTensor>> {
    if (this.deviceStale) {
      this.up ??= copyGraph('resident_up', this.specs, UP, this.runtime, true);
      const { device } = await (await this.up).runOnDevice(host());
      for (const s of this.specs) this.replace(s.name, device[UP + s.name]);
      this.deviceStale = false;
    }
    return Object.fromEntries(this.onDevice);
  }

  /** A step's device outputs `<name>.new` become the current values (the old buffers are freed). */
  adopt(outputs: Readonly<Record<string, DeviceTensor>>, suffix = '.new'): void {
    for (const [out, t] of Object.entries(outputs)) {
      if (!out.endsWith(suffix)) throw new Error(`ResidentTensors.adopt: output '${out}' does not end with '${suffix}'`);
      const name = out.slice(0, -suffix.length);
      if (!this.onDevice.has(name)) throw new Error(`ResidentTensors.adopt: '${name}' is not resident`);
      this.replace(name, t);
    }
    this.hostStale = true;
  }

  /** Copies the changing tensors back into the host arrays `into` (by name) when the host is behind. */
  async sync(into: Readonly<Record<string, Float32Array>>): Promise<void> {
    if (!this.hostStale) return;
    const changing = this.specs.filter((s) => this.changing.includes(s.name));
    this.down ??= copyGraph('resident_down', changing, DOWN, this.runtime, false);
    const host = await (await this.down).run(Object.fromEntries(changing.map((s) => [s.name, this.onDevice.get(s.name) as DeviceTensor])));
    for (const s of changing) into[s.name].set(host[DOWN + s.name].data as Float32Array);
    this.hostStale = false;
  }

  /** The host arrays changed (a restore): upload them before the next run. */
  invalidate(): void {
    this.deviceStale = true;
    this.hostStale = false;
  }

  async release(): Promise<void> {
    for (const t of this.onDevice.values()) t.dispose();
    this.onDevice.clear();
    const graphs = await Promise.all([this.up, this.down].filter((g) => g !== undefined));
    await Promise.all(graphs.map((g) => g.release()));
  }

  private replace(name: string, t: DeviceTensor): void {
    this.onDevice.get(name)?.dispose();
    this.onDevice.set(name, t);
  }
}

/** Identity on each spec: `<prefix><name>` = input `<name>`; outputs on the device or on the host. */
function copyGraph(name: string, specs: readonly ResidentSpec[], prefix: string, runtime: RuntimeOptions, toDevice: boolean): Promise<CompiledGraph> {
  const g = new Graph(name);
  const outputs: Record<string, Tensor> = {};
  for (const s of specs) outputs[prefix + s.name] = g.input(s.name, 'float32', s.shape);
  // No output chunking: the copies are single-buffer transfers, and chunks would be extra copies.
  return CompiledGraph.compile(outputs, { ...runtime, outputChunkElements: 0 }, toDevice ? { deviceOutputs: Object.keys(outputs) } : {});
}
