/** Runs the `dpo` CLI in-process, capturing stdout, stderr and the exit code. */
import { main } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(argv: readonly string[]): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main([...argv], {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
  });
  return { code, stdout, stderr };
}

/** Runs the CLI in-process and emits `signal` (as a SIGINT/SIGTERM would arrive) once stderr matches `when`. */
export async function runSignalled(argv: readonly string[], when: RegExp, signal: NodeJS.Signals): Promise<CliRun & { sent: boolean }> {
  let stdout = '';
  let stderr = '';
  let sent = false;
  const code = await main([...argv], {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: {
      write: (s: string) => {
        stderr += s;
        if (!sent && when.test(s)) {
          sent = true;
          setTimeout(() => process.emit(signal), 0);
        }
      },
      isTTY: false,
    },
  });
  return { code, stdout, stderr, sent };
}
