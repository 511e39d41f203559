/**
 * Progress of long work: a live bar on a terminal, plain lines otherwise (logs, CI, pipes).
 */
import cliProgress from 'cli-progress';

export interface ProgressReporter {
  start(label: string, total: number): void;
  update(done: number, info?: Record<string, string | number>): void;
  stop(): void;
  /** A message that must not be overwritten by the bar. */
  log(message: string): void;
}

function formatInfo(info: Record<string, string | number> | undefined): string {
  if (!info) return '';
  return Object.entries(info)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : Number(v.toPrecision(4))) : v}`)
    .join('  ');
}

class BarReporter implements ProgressReporter {
  private bar: cliProgress.SingleBar | undefined;
  constructor(private readonly stream: NodeJS.WriteStream) {}
  start(label: string, total: number): void {
    this.bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {value}/{total} | ETA {eta_formatted} | {info}`, stream: this.stream, hideCursor: true, etaBuffer: 20 },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, 0, { info: '' });
  }
  update(done: number, info?: Record<string, string | number>): void {
    this.bar?.update(done, { info: formatInfo(info) });
  }
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
  log(message: string): void {
    if (this.bar) this.stream.write(`\r\x1b[K${message}\n`);
    else this.stream.write(`${message}\n`);
  }
}

class LineReporter implements ProgressReporter {
  private label = '';
  private total = 0;
  private started = 0;
  private lastPrint = 0;
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly minIntervalMs: number,
  ) {}
  start(label: string, total: number): void {
    this.label = label;
    this.total = total;
    this.started = Date.now();
    this.lastPrint = 0;
  }
  update(done: number, info?: Record<string, string | number>): void {
    const now = Date.now();
    if (done < this.total && now - this.lastPrint < this.minIntervalMs) return;
    this.lastPrint = now;
    const elapsed = (now - this.started) / 1000;
    const eta = done > 0 ? Math.round((elapsed / done) * (this.total - done)) : 0;
    this.stream.write(`${this.label} ${done}/${this.total} eta ${eta}s ${formatInfo(info)}\n`);
  }
  stop(): void {}
  log(message: string): void {
    this.stream.write(`${message}\n`);
  }
}

/** A bar when `stream` is a terminal, plain lines (at most one per `intervalMs`) otherwise. */
export function createProgress(stream: NodeJS.WriteStream = process.stderr, intervalMs = 2000): ProgressReporter {
  return stream.isTTY ? new BarReporter(stream) : new LineReporter(stream, intervalMs);
}

/** Reports nothing (library use without output). */
export const silentProgress: ProgressReporter = { start() {}, update() {}, stop() {}, log() {} };
