// ?explain=true's advice is re-run, over random lists, device limits and granules, in every
// layout and without an IOMMU (docs/explain.md "Advice that holds"):
//  - every `would_merge_with` applied to the same device on a fresh session gives ONE segment;
//  - every "no device parameter would give one segment" verdict, re-run with the loosest limits
//    (max_segment_size UINT_MAX, segment_boundary_mask all ones), still does not give one
//    segment, and every entry an obstacle without a fix names still starts a new segment there
//    (or the mapping fails outright: larger arm-legacy chunks may not fit a small aperture);
//  - the verdict names every obstacle kind that has no fix.
// The counts of suggestions and verdicts re-run (and confirmed) are printed as test comments.
import fc from 'fast-check';
import t from 'tap';
import { MapSgBody } from '../schemas/dma.js';
import type { MapSgOut } from '../schemas/index.js';
import { hx, session, type Entry, type RandomDevice } from './helpers/dma-core.js';

type Layout = RandomDevice['layout'];
type Explain = NonNullable<MapSgOut['explain']>;

interface Device extends RandomDevice {
  bus: 'pci' | 'platform';
  /** arm-legacy: aperture size in pages from 0x10000000 (small ones make one chunk not fit a bitmap). */
  armPages: number;
}

const deviceArb: fc.Arbitrary<Device> = fc
  .record({
    layout: fc.constantFrom<Layout>('linux', 'linux', 'linux', 'linux-4.4', 'arm-legacy', 'arm-legacy', 'none'),
    pageSize: fc.constantFrom(4096, 16384, 65536),
    gShift: fc.constantFrom(12, 14, 16),
    dmaBits: fc.integer({ min: 32, max: 48 }),
    maxSeg: fc.oneof(fc.constantFrom(65536, 0xffffffff, 4096, 8192), fc.integer({ min: 1, max: 0x100000 }), fc.integer({ min: 1, max: 64 }).map((k) => k * 4096)),
    boundaryBits: fc.oneof(fc.integer({ min: 12, max: 24 }), fc.integer({ min: 16, max: 64 })),
    bus: fc.constantFrom<'pci' | 'platform'>('pci', 'platform'),
    armPages: fc.constantFrom(1024, 8192, 2 ** 20),
  })
  .map((r) => ({
    layout: r.layout,
    pageSize: r.pageSize,
    granule: r.layout === 'linux-4.4' ? r.pageSize : Math.min(2 ** r.gShift, r.pageSize),
    dmaBits: r.dmaBits,
    maxSeg: r.maxSeg,
    boundaryBits: r.boundaryBits,
    bus: r.bus,
    armPages: Math.min(r.armPages, 2 ** 32 / r.pageSize),
  }));

/** Entries in distinct 64 KiB frames; most start on a granule and span whole granules (the merge case). */
type EntrySpec = { frame: number; at: number; off: number; granules: number; tail: number; odd: boolean };

const entryArb: fc.Arbitrary<EntrySpec> = fc.record({
  frame: fc.integer({ min: 0x8000, max: 0xffff }),
  at: fc.nat({ max: 3 }),
  off: fc.nat({ max: 0xffff }),
  granules: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 600 })),
  tail: fc.nat({ max: 0xfff }),
  odd: fc.boolean(),
});

const sgArb = fc.record({ es: fc.array(entryArb, { minLength: 2, maxLength: 8 }), oddRate: fc.constantFrom(0, 0, 1) });

function entries(d: Device, spec: { es: EntrySpec[]; oddRate: number }): Entry[] {
  return spec.es.map((e) => {
    const odd = spec.oddRate === 1 && e.odd;
    const phys = e.frame * 0x100000 + (odd ? e.off % d.granule : e.at * d.granule);
    return { phys: hx(phys), length: e.granules * d.granule - (odd ? e.tail % d.granule : 0) };
  });
}

function config(d: Device, device: Record<string, unknown> = {}): Record<string, unknown> {
  const dev = {
    bus: d.bus,
    dma_mask: hx((1n << BigInt(d.dmaBits)) - 1n),
    max_segment_size: d.maxSeg,
    segment_boundary_mask: hx((1n << BigInt(d.boundaryBits)) - 1n),
    ...device,
  };
  if (d.layout === 'none') return { device: dev, iommu: null, page_size: d.pageSize };
  const aperture = d.layout === 'arm-legacy' ? { start: '0x10000000', end: hx(0x10000000 + d.armPages * d.pageSize - 1) } : { start: '0x0', end: '0xffffffffffff' };
  return { device: dev, iommu: { granule: d.granule, aperture, strict: true }, layout: d.layout, page_size: d.pageSize };
}

function mapFresh(body: Record<string, unknown>, sg: Entry[]): MapSgOut {
  return session(body).mapSg(MapSgBody.parse({ dir: 'to_device', sg }), false, true);
}

const LOOSEST = { max_segment_size: 0xffffffff, segment_boundary_mask: '0xffffffffffffffff' };

t.test('explain: every would_merge_with gives one segment on a fresh session, every "no parameter" verdict holds at the loosest limits', async (t) => {
  const counts = { maps: 0, suggestions: 0, suggestionsConfirmed: 0, refusals: 0, refusalsConfirmed: 0, blockedEntries: 0, failedLoose: 0 };
  const perLayout: Record<Layout, { suggestions: number; refusals: number }> = {
    linux: { suggestions: 0, refusals: 0 },
    'linux-4.4': { suggestions: 0, refusals: 0 },
    'arm-legacy': { suggestions: 0, refusals: 0 },
    none: { suggestions: 0, refusals: 0 },
  };
  fc.assert(
    fc.property(deviceArb, sgArb, (d, spec) => {
      const sg = entries(d, spec);
      const out = mapFresh(config(d), sg);
      const why = out.explain as Explain;
      if (out.nents <= 1) return; // failed, or already one segment: nothing to advise
      counts.maps++;
      if (why.would_merge_with) {
        counts.suggestions++;
        perLayout[d.layout].suggestions++;
        const again = mapFresh(config(d, why.would_merge_with), sg);
        if (again.nents !== 1) throw new Error(`suggestion ${JSON.stringify(why.would_merge_with)} gave ${again.nents} segments: ${why.verdict}`);
        counts.suggestionsConfirmed++;
        return;
      }
      counts.refusals++;
      perLayout[d.layout].refusals++;
      const blockers = why.obstacles.filter((o) => o.fixed_by === null);
      if (blockers.length === 0) throw new Error(`null would_merge_with with no obstacle lacking a fix: ${why.verdict}`);
      for (const o of blockers) {
        if (!why.verdict.includes(o.condition ? `${o.rule} (${o.condition})` : o.rule)) throw new Error(`verdict does not name ${o.rule}: ${why.verdict}`);
      }
      const loose = mapFresh(config(d, LOOSEST), sg);
      if (loose.nents === 1) throw new Error(`"no parameter" but the loosest limits give one segment: ${why.verdict}`);
      if (loose.nents > 1) {
        const starts = new Set((loose.explain as Explain).breaks.map((b) => b.before_entry));
        for (const o of blockers) {
          if (o.rule === 'iova_space') throw new Error(`iova_space, yet one chunk of the whole list was allocated: ${why.verdict}`);
          for (const e of o.entries) {
            if (!starts.has(e)) throw new Error(`${o.rule} names entry ${e}, which joins at the loosest limits: ${why.verdict}`);
            counts.blockedEntries++;
          }
        }
      } else counts.failedLoose++; // still not one segment: larger arm-legacy chunks may not fit the aperture at all
      counts.refusalsConfirmed++;
    }),
    { numRuns: 3000 },
  );
  t.comment(`explain advice re-run: ${counts.maps} multi-segment maps; ${counts.suggestions} suggestions re-run, ${counts.suggestionsConfirmed} confirmed; ${counts.refusals} "no parameter" verdicts re-run at the loosest limits, ${counts.refusalsConfirmed} confirmed (${counts.blockedEntries} blocked entries checked; ${counts.failedLoose} of them failed to map at all at the loosest limits)`);
  t.comment(`per layout: ${JSON.stringify(perLayout)}`);
  t.equal(counts.suggestionsConfirmed, counts.suggestions);
  t.equal(counts.refusalsConfirmed, counts.refusals);
  // The generator must reach both kinds of advice in the layouts that can merge.
  t.ok(perLayout.linux.suggestions > 0 && perLayout.linux.refusals > 0, 'linux: both suggestions and refusals');
  t.ok(perLayout['arm-legacy'].suggestions > 0 && perLayout['arm-legacy'].refusals > 0, 'arm-legacy: both suggestions and refusals');
  t.ok(perLayout['linux-4.4'].refusals > 0 && perLayout.none.refusals > 0, 'linux-4.4 and no IOMMU: refusals');
});
