/**
 * The import rules of src/ (run by `npm run check:imports`, part of `npm test`): imports point
 * down the layers below and never form a circle. docs/architecture.md explains the layers.
 *
 * Each entry of LAYERS is one level, lowest first; the folders of a level are peers. A folder may
 * import itself and any folder of a lower level, never a peer or anything above.
 */
const LAYERS = [
  ['errors', 'progress'],
  ['engine'],
  ['config'],
  ['io'],
  ['data'],
  ['models'],
  ['scoring'],
  ['generate'],
  ['eval', 'export', 'label'],
  ['train/core'],
  ['train/dpo', 'train/kto', 'train/reference-free', 'train/sft', 'train/reward', 'train/ppo', 'train/online'],
  ['train/index'],
  ['quickstart', 'browser', 'studio'],
  ['experiment'],
  ['cli'],
  ['index'],
];

/** A folder's files (src/<name>/...) or the root file src/<name>.ts. */
const pathOf = (names) => `^src/(${names.map((n) => n.replace(/[/-]/g, (c) => `\\${c}`)).join('|')})(/|\\.ts$)`;

const layerRules = LAYERS.flatMap((level, i) =>
  level.map((name) => {
    const above = [...level.filter((n) => n !== name), ...LAYERS.slice(i + 1).flat()];
    return {
      name: `no-upward-import:${name}`,
      comment: `src/${name} may import only itself and the levels below it (${LAYERS.slice(0, i).flat().join(', ') || 'nothing'})`,
      severity: 'error',
      from: { path: pathOf([name]) },
      to: { path: pathOf(above) },
    };
  }),
);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no file imports itself through others (type-only imports count)',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-unlayered-folder',
      comment: 'every folder of src/ has a level in .dependency-cruiser.cjs (LAYERS)',
      severity: 'error',
      from: { path: '^src/', pathNot: pathOf(LAYERS.flat()) },
      to: {},
    },
    ...layerRules,
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.test\\.ts$' },
  },
};
