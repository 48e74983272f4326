import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { importFtrace } from './src/service/ftrace.js';
const text = gunzipSync(readFileSync('/work/wt/ftrace/test/kernel-recordings/linux-6.12-intel-iommu.trace.gz')).toString();
const big = text.repeat(10);
for (let k = 0; k < 3; k++) {
const t0 = performance.now();
const r = await importFtrace(big, { maxEvents: 1e7 });
console.log(performance.now() - t0, r.unexpressed.length);
}
