/** `npm run build:browser`: writes the browser bundle to dist/browser/dpo-browser.js (what `dpo studio` serves from a package). */
import { buildBrowserBundle, PREBUILT_BUNDLE } from '../src/studio/bundle.js';

const { code, inputs } = await buildBrowserBundle({ outfile: PREBUILT_BUNDLE });
console.log(`${PREBUILT_BUNDLE}: ${(code.length / 1e6).toFixed(2)} MB from ${inputs.length} files`);
