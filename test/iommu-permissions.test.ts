// semantics §8 / issue 6: device access goes through the IOMMU page table with the permissions
// the direction grants (DMA_TO_DEVICE → IOMMU_READ, DMA_FROM_DEVICE → IOMMU_WRITE,
// DMA_BIDIRECTIONAL → both). Whether a missing IOMMU_READ stops a read depends on the IOMMU:
// `iommu.enforce_read` (default true) says which kind the session emulates.
import t from 'tap';
import { SessionCreateBody } from '../schemas/session.js';
import { MapPageBody } from '../schemas/dma.js';
import { SessionStore } from '../src/service/session-store.js';

function session(body: Record<string, unknown>) {
  return new SessionStore().create(SessionCreateBody.parse({ device: { coherent: true }, ...body }));
}

t.test('a read of a DMA_FROM_DEVICE mapping faults where the IOMMU enforces read permission (default)', async (t) => {
  const s = session({});
  const m = s.mapPage(MapPageBody.parse({ phys: '0x80000000', size: 4096, dir: 'from_device' }));
  // linux, fresh 32-bit domain: one pfn at the top, 0xfffff → 0xfffff000.
  t.equal(m.dma_address, '0xfffff000');
  const r = s.deviceRead({ dma_address: 0xfffff000n, length: 4 });
  t.match(r.fault?.reason, /read of a write-only mapping/);
  t.equal(r.fault?.dma_address, '0xfffff000');
  t.equal(s.summary().counters.device_faults, 1);
  // IOMMU_WRITE is granted: the write goes through.
  t.same(s.deviceWrite({ dma_address: 0xfffff000n, data: Buffer.from([1, 2, 3, 4]).toString('base64') }), { written: 4 });
});

t.test('arm64 SMMU stage 1 (enforce_read false) cannot express write-only: the read goes through', async (t) => {
  const s = session({ iommu: { enforce_read: false } });
  t.equal(s.wireConfig.iommu?.enforce_read, false, 'echoed in the resolved config');
  s.mapPage(MapPageBody.parse({ phys: '0x80000000', size: 4096, dir: 'from_device' }));
  s.deviceWrite({ dma_address: 0xfffff000n, data: Buffer.from([9, 8, 7, 6]).toString('base64') });
  t.same(s.deviceRead({ dma_address: 0xfffff000n, length: 4 }), { data: Buffer.from([9, 8, 7, 6]).toString('base64') });
  // A write to a DMA_TO_DEVICE mapping still faults: every IOMMU has a read-only permission.
  const m2 = s.mapPage(MapPageBody.parse({ phys: '0x80001000', size: 4096, dir: 'to_device' }));
  t.equal(m2.dma_address, '0xffffe000');
  t.match(s.deviceWrite({ dma_address: 0xffffe000n, data: 'AA==' }).fault?.reason, /write to a read-only mapping/);
});
