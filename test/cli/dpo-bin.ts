// What bin/dpo.js does, on the TypeScript sources (tests spawn it with `node --import tsx`).
import { main } from '../../src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
