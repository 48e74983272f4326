// Replays kernel recordings over HTTP, one request per call, as the conformance tests of every
// kernel do: a session per recorded device from its session body, the device's calls through
// POST /v1/sessions/:id/<op>, and the session closed with nothing leaked.
import type { Test } from 'tap';
import { buildApp } from '../../src/service/app.js';
import { client } from './http.js';
import { replayDevice, sessionBody, type DeviceRecording, type Mismatch } from './kernel-replay.js';

export async function replayOverHttp(t: Test, recs: readonly DeviceRecording[]): Promise<{ ops: number; mismatches: Mismatch[] }> {
  const app = await buildApp({ logLevel: 'silent' });
  t.teardown(() => app.close());
  const c = client(app);
  let ops = 0;
  const all: Mismatch[] = [];
  for (const r of recs) {
    const s = await c.session(sessionBody(r.device));
    const res = await replayDevice(r, async (op, body) => {
      const reply = await c.post(`${s.url}/${op}`, body);
      if (reply.status !== 200) throw new Error(`${op} → ${reply.status}: ${reply.text}`);
      return reply.body;
    });
    const leaks = await c.del(s.url);
    t.equal(leaks.body.leaked_mappings, 0, `${r.device.seq}: everything the kernel unmapped is unmapped`);
    ops += res.ops;
    all.push(...res.mismatches);
  }
  return { ops, mismatches: all };
}

/** The first mismatches, as a test's diagnostic. */
export function describeMismatches(m: readonly Mismatch[]): { mismatches: string[] } {
  return { mismatches: m.slice(0, 5).map((x) => `${x.seq} call ${x.call} (${x.op} id ${x.id}): kernel ${JSON.stringify(x.want)}, dmaemu ${JSON.stringify(x.got)}`) };
}
