/** Debian's chromium for the browser tests (playwright-core, no browser download), when installed. */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', process.env.CHROMIUM_PATH].find((p): p is string => !!p && existsSync(p));

/** Warns (once per test file) that `what` is skipped for want of chromium. */
export function warnIfNoChromium(what: string): void {
  if (!CHROMIUM) console.warn(`${what}: skipped, no chromium found (apt-get install chromium, or set CHROMIUM_PATH)`);
}

export function launchChromium(args: readonly string[] = []): Promise<Browser> {
  // --no-sandbox: CI and containers run as root, where chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', ...args] });
}
