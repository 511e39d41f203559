/**
 * What the CLI does on SIGINT (Ctrl-C) and SIGTERM (what Docker, Kubernetes and batch schedulers
 * send): the first one asks the run to stop after its current step, which saves a checkpoint;
 * a second one quits at once. The library installs no signal handler and never exits the process:
 * it only reads the AbortSignal it is given.
 */

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

export interface StopOnSignals {
  /** Aborted by the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** The signal that stopped the run, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** The conventional exit code of a run stopped by `received`: 128 + its number (130, 143). */
  exitCode(): number;
  /** Removes the handlers. */
  dispose(): void;
}

/** Installs the handlers until `dispose()`; `log` tells the user what happens, `exit` quits on a second signal. */
export function stopOnSignals(
  log: (message: string) => void,
  exit: (code: number) => void = (code) => process.exit(code),
  /** What the first signal does, for the log (default: a training run's step and checkpoint). */
  action = 'finishing this step, saving a checkpoint, then stopping',
): StopOnSignals {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((name) => {
    const handler = (): void => {
      const code = 128 + (SIGNAL_NUMBERS[name] ?? 0);
      if (received) {
        log(`${name} again: quitting now, without a checkpoint`);
        exit(code);
        return;
      }
      received = name;
      log(`${name}: ${action} (${name === 'SIGINT' ? 'Ctrl-C' : 'send it'} again to quit at once${action.includes('checkpoint') ? '; --resume continues' : ''})`);
      controller.abort();
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    exitCode: () => 128 + (received ? (SIGNAL_NUMBERS[received] ?? 0) : SIGNAL_NUMBERS.SIGINT!),
    dispose: () => {
      for (const [name, handler] of handlers) process.off(name, handler);
    },
  };
}

/** Waits for Ctrl-C (SIGINT) or SIGTERM. */
export function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
