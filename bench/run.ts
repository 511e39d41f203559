/**
 * Benchmark dispatcher: `npm run bench -- <name> [args...]` runs bench/<name>.ts's `main(args)`.
 * Each benchmark prints one JSON object per line on stdout.
 */
const BENCHES: Record<string, () => Promise<{ main: (args: string[]) => Promise<void> }>> = {
  engine: () => import('./engine.js'),
  trainstep: () => import('./trainstep.js'),
  dpo: () => import('./dpo.js'),
  packing: () => import('./packing.js'),
  'load-memory': () => import('./load-memory.js'),
  'weight-grad': () => import('./weight-grad.js'),
  'lora-matmul': () => import('./lora-matmul.js'),
};

async function run(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  if (!name || !(name in BENCHES)) {
    console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [args...]`);
    process.exit(name ? 1 : 0);
  }
  const mod = await BENCHES[name]();
  await mod.main(args);
}

run().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
