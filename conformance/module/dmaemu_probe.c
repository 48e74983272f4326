// SPDX-License-Identifier: GPL-2.0
/*
 * dmaemu_probe: records what the real DMA API returns, for dmaemu's conformance fixtures.
 *
 * It binds QEMU's edu device (1234:11e8). Every edu sits in its own IOMMU group, so each
 * device has a fresh DMA domain; device number k (in probe order) runs sequence k. Per device
 * it prints the domain's configuration, then one line per DMA-API call, all to the console as
 * "DMAEMU {json}". Only the public DMA API is used; nothing is written to the device, the
 * mappings are only created and torn down.
 *
 * Invariants: a line never exceeds ~900 bytes (scatterlists have at most MAX_ENTS entries);
 * every mapping is unmapped and its pages freed before the device's "end" line.
 */
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/dma-mapping.h>
#include <linux/scatterlist.h>
#include <linux/iommu.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/utsname.h>
#include <linux/delay.h>
#include <linux/swiotlb.h>

#define MAX_ENTS 8
#define MAX_MAPS 4096

struct dm_map {
	bool live;
	bool borrowed;		/* pages belong to the sequence, not to this mapping */
	bool coherent;		/* a dma_alloc_coherent buffer (cpu_addr), not a streaming map */
	void *cpu_addr;
	bool is_sg;
	int nents_in;
	struct scatterlist sgl[MAX_ENTS];
	struct page *pages[MAX_ENTS];
	unsigned int orders[MAX_ENTS];
	dma_addr_t addr;
	size_t size;
	enum dma_data_direction dir;
};

struct dm_ctx {
	struct device *dev;
	int devno;
	int next_id;
	struct dm_map *maps;
	u32 rnd;
	char line[1024];
	int pos;
};

static atomic_t dm_probed = ATOMIC_INIT(0);

static void out(struct dm_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->pos >= (int)sizeof(c->line) - 1)
		return;
	va_start(ap, fmt);
	c->pos += vscnprintf(c->line + c->pos, sizeof(c->line) - c->pos, fmt, ap);
	va_end(ap);
}

static void flush_line(struct dm_ctx *c)
{
	pr_info("DMAEMU %s\n", c->line);
	c->pos = 0;
	c->line[0] = 0;
}

/* Pages for len bytes starting off bytes into the first page. */
static struct page *get_buf(size_t off, size_t len, unsigned int *order)
{
	*order = get_order(off + len);
	return alloc_pages(GFP_KERNEL, *order);
}

/* map_sg of n entries, entry i being lens[i] bytes at offs[i] (< PAGE_SIZE) into fresh pages. */
static int do_sg(struct dm_ctx *c, int n, const u32 *lens, const u32 *offs)
{
	struct dm_map *m;
	struct scatterlist *s;
	int i, id, nents;

	if (c->next_id >= MAX_MAPS || n > MAX_ENTS)
		return -1;
	id = c->next_id++;
	m = &c->maps[id];
	m->is_sg = true;
	m->nents_in = n;
	m->dir = DMA_TO_DEVICE;
	sg_init_table(m->sgl, n);
	for (i = 0; i < n; i++) {
		m->pages[i] = get_buf(offs[i], lens[i], &m->orders[i]);
		if (!m->pages[i]) {
			while (--i >= 0)
				__free_pages(m->pages[i], m->orders[i]);
			pr_err("DMAEMU-ERR alloc_pages failed\n");
			return -1;
		}
		sg_set_page(&m->sgl[i], m->pages[i], lens[i], offs[i]);
	}
	nents = dma_map_sg(c->dev, m->sgl, n, m->dir);
	out(c, "{\"dev\":%d,\"op\":\"map_sg\",\"id\":%d,\"sg\":[", c->devno, id);
	for (i = 0; i < n; i++)
		out(c, "%s[\"0x%llx\",%u]", i ? "," : "",
		    (unsigned long long)(page_to_phys(m->pages[i]) + offs[i]), lens[i]);
	out(c, "],\"nents\":%d,\"segs\":[", nents);
	for_each_sg(m->sgl, s, nents, i)
		out(c, "%s[\"0x%llx\",%u]", i ? "," : "",
		    (unsigned long long)sg_dma_address(s), sg_dma_len(s));
	out(c, "]}");
	flush_line(c);
	if (nents == 0) {
		for (i = 0; i < n; i++)
			__free_pages(m->pages[i], m->orders[i]);
		return -1;
	}
	m->live = true;
	return id;
}

static int do_page(struct dm_ctx *c, u32 size, u32 off)
{
	struct dm_map *m;
	int id;
	bool failed;

	if (c->next_id >= MAX_MAPS)
		return -1;
	id = c->next_id++;
	m = &c->maps[id];
	m->is_sg = false;
	m->nents_in = 1;
	m->dir = DMA_TO_DEVICE;
	m->pages[0] = get_buf(off, size, &m->orders[0]);
	if (!m->pages[0]) {
		pr_err("DMAEMU-ERR alloc_pages failed\n");
		return -1;
	}
	m->size = size;
	m->addr = dma_map_page(c->dev, m->pages[0], off, size, m->dir);
	failed = dma_mapping_error(c->dev, m->addr);
	out(c, "{\"dev\":%d,\"op\":\"map_page\",\"id\":%d,\"phys\":\"0x%llx\",\"size\":%u,\"addr\":\"0x%llx\",\"error\":%s}",
	    c->devno, id, (unsigned long long)(page_to_phys(m->pages[0]) + off), size,
	    (unsigned long long)m->addr, failed ? "true" : "false");
	flush_line(c);
	if (failed) {
		__free_pages(m->pages[0], m->orders[0]);
		return -1;
	}
	m->live = true;
	return id;
}

/* map_page of size bytes of a buffer the caller owns (mapped any number of times at once). */
static int do_page_of(struct dm_ctx *c, struct page *page, u32 size)
{
	struct dm_map *m;
	int id;
	bool failed;

	if (c->next_id >= MAX_MAPS)
		return -1;
	id = c->next_id++;
	m = &c->maps[id];
	m->is_sg = false;
	m->borrowed = true;
	m->nents_in = 1;
	m->dir = DMA_TO_DEVICE;
	m->pages[0] = page;
	m->size = size;
	m->addr = dma_map_page(c->dev, page, 0, size, m->dir);
	failed = dma_mapping_error(c->dev, m->addr);
	out(c, "{\"dev\":%d,\"op\":\"map_page\",\"id\":%d,\"phys\":\"0x%llx\",\"size\":%u,\"addr\":\"0x%llx\",\"error\":%s}",
	    c->devno, id, (unsigned long long)page_to_phys(page), size,
	    (unsigned long long)m->addr, failed ? "true" : "false");
	flush_line(c);
	if (failed)
		return -1;
	m->live = true;
	return id;
}

static void do_unmap(struct dm_ctx *c, int id)
{
	struct dm_map *m;
	int i;

	if (id < 0 || id >= c->next_id || !c->maps[id].live)
		return;
	m = &c->maps[id];
	if (m->coherent) {
		dma_free_coherent(c->dev, m->size, m->cpu_addr, m->addr);
		m->live = false;
		out(c, "{\"dev\":%d,\"op\":\"free_coherent\",\"id\":%d}", c->devno, id);
		flush_line(c);
		return;
	}
	if (m->is_sg)
		dma_unmap_sg(c->dev, m->sgl, m->nents_in, m->dir);
	else
		dma_unmap_page(c->dev, m->addr, m->size, m->dir);
	for (i = 0; i < m->nents_in && !m->borrowed; i++)
		__free_pages(m->pages[i], m->orders[i]);
	m->live = false;
	out(c, "{\"dev\":%d,\"op\":\"unmap\",\"id\":%d}", c->devno, id);
	flush_line(c);
}

static int do_coherent(struct dm_ctx *c, u32 size)
{
	struct dm_map *m;
	int id;

	if (c->next_id >= MAX_MAPS)
		return -1;
	id = c->next_id++;
	m = &c->maps[id];
	m->coherent = true;
	m->size = size;
	m->cpu_addr = dma_alloc_coherent(c->dev, size, &m->addr, GFP_KERNEL);
	out(c, "{\"dev\":%d,\"op\":\"alloc_coherent\",\"id\":%d,\"size\":%u,\"addr\":\"0x%llx\",\"error\":%s}",
	    c->devno, id, size, m->cpu_addr ? (unsigned long long)m->addr : ~0ull,
	    m->cpu_addr ? "false" : "true");
	flush_line(c);
	if (!m->cpu_addr)
		return -1;
	m->live = true;
	return id;
}

/* Lets time pass: delayed work (the IOVA depot trim) runs while this thread sleeps. */
static void do_sleep(struct dm_ctx *c, unsigned int ms)
{
	msleep(ms);
	out(c, "{\"dev\":%d,\"op\":\"sleep\",\"ms\":%u}", c->devno, ms);
	flush_line(c);
}

static void unmap_all(struct dm_ctx *c)
{
	int id;

	for (id = 0; id < c->next_id; id++)
		do_unmap(c, id);
}

static u32 rnd(struct dm_ctx *c)
{
	/* xorshift32: a fixed, seeded sequence, so a re-recording replays the same calls */
	c->rnd ^= c->rnd << 13;
	c->rnd ^= c->rnd >> 17;
	c->rnd ^= c->rnd << 5;
	return c->rnd;
}

/* ---- the sequences --------------------------------------------------------------------- */

struct dm_seq {
	const char *name;
	int mask_bits;		/* 0: keep the PCI default */
	u32 max_seg;		/* 0: keep the PCI default (DM_SEG_ZERO: set 0) */
	u64 boundary;		/* 0: keep the PCI default (DM_BND_ZERO: set 0) */
	void (*run)(struct dm_ctx *c);
	unsigned int flags;
};

/* Edge values a driver may pass: set as they are, read back as the kernel reads them. */
#define DM_SEG_ZERO	(1u << 0)	/* dma_set_max_seg_size(dev, 0) */
#define DM_BND_ZERO	(1u << 1)	/* dma_set_seg_boundary(dev, 0) */

static const u32 thread_lens[] = { 65536, 16384, 65536 };
static const u32 zero_offs[MAX_ENTS];

/* The 2015 thread's {64k, 16k, 64k} list, mapped, unmapped and mapped again. */
static void run_thread(struct dm_ctx *c)
{
	int a = do_sg(c, 3, thread_lens, zero_offs);
	int b = do_sg(c, 3, thread_lens, zero_offs);

	do_unmap(c, a);
	a = do_sg(c, 3, thread_lens, zero_offs);
	do_unmap(c, b);
	do_unmap(c, a);
	a = do_sg(c, 3, thread_lens, zero_offs);
	unmap_all(c);
}

/* Entries whose offset is off the 4 KiB granule: where __finalise_sg may and may not merge. */
static void run_offsets(struct dm_ctx *c)
{
	static const u32 l1[] = { 100, 4000, 8192 }, o1[] = { 16, 32, 0 };
	static const u32 l2[] = { 512, 4096, 1024 }, o2[] = { 3584, 0, 0 };
	static const u32 l3[] = { 4096, 4096, 4096, 4096 }, o3[] = { 0, 0, 2048, 0 };
	static const u32 l4[] = { 3000, 5000, 7000, 9000, 11000 }, o4[] = { 1096, 0, 0, 512, 0 };
	static const u32 l5[] = { 65536, 65536 }, o5[] = { 4000, 0 };
	static const u32 l6[] = { 1, 1, 1 }, o6[] = { 4095, 0, 4095 };
	int r;

	for (r = 0; r < 2; r++) {
		do_sg(c, 3, l1, o1);
		do_sg(c, 3, l2, o2);
		do_sg(c, 4, l3, o3);
		do_sg(c, 5, l4, o4);
		do_sg(c, 2, l5, o5);
		do_sg(c, 3, l6, o6);
		do_page(c, 100, 4000);
		do_page(c, 8192, 1);
		do_page(c, 4096, 0);
		do_page(c, 1, 0);
	}
	unmap_all(c);
}

/* Entries that straddle a segment boundary: the previous entry is padded up to it. */
static void run_boundary(struct dm_ctx *c)
{
	static const u32 l1[] = { 32768, 32768, 32768 };
	static const u32 l2[] = { 61440, 8192 };
	static const u32 l3[] = { 4096, 65536, 4096 };
	static const u32 l4[] = { 20480, 20480, 20480, 20480 };
	static const u32 l5[] = { 8192, 131072 };
	int r;

	for (r = 0; r < 3; r++) {
		do_sg(c, 3, l1, zero_offs);
		do_sg(c, 2, l2, zero_offs);
		do_sg(c, 3, l3, zero_offs);
		do_sg(c, 4, l4, zero_offs);
		do_sg(c, 2, l5, zero_offs);
		do_page(c, 12288, 0);
	}
	unmap_all(c);
}

/* Entries longer than max_segment_size, alone and between short ones. */
static void run_oversize(struct dm_ctx *c)
{
	static const u32 l1[] = { 204800 };
	static const u32 l2[] = { 4096, 73728, 4096, 4096 };
	static const u32 l3[] = { 131072, 65536, 65536 };
	static const u32 l4[] = { 65536, 4096, 200000 };
	int r;

	for (r = 0; r < 2; r++) {
		do_sg(c, 1, l1, zero_offs);
		do_sg(c, 4, l2, zero_offs);
		do_sg(c, 3, l3, zero_offs);
		do_sg(c, 3, l4, zero_offs);
	}
	unmap_all(c);
}

/* 64-bit mask on PCI: SAC-first puts everything below 4 GiB while it fits. */
static void run_mask(struct dm_ctx *c)
{
	int i;

	for (i = 0; i < 40; i++)
		do_page(c, 4096u << (i % 6), 0);
	do_sg(c, 3, thread_lens, zero_offs);
	for (i = 0; i < 40; i += 3)
		do_unmap(c, i);
	for (i = 0; i < 20; i++)
		do_page(c, 8192u << (i % 3), 0);
	unmap_all(c);
}

/*
 * Long runs: 300 frees of one size class fill the loaded and prev magazines and push one to
 * the depot (never more than one per class: with one CPU the kernel's delayed depot trim only
 * runs once the depot holds more magazines than there are online CPUs).
 */
static void run_runs(struct dm_ctx *c)
{
	int i, base;

	base = c->next_id;
	for (i = 0; i < 300; i++)
		do_page(c, 4096, 0);
	for (i = 0; i < 300; i++)
		do_unmap(c, base + i);
	base = c->next_id;
	for (i = 0; i < 300; i++)
		do_page(c, 4096, 0);
	for (i = 0; i < 300; i += 2)
		do_unmap(c, base + i);
	for (i = 0; i < 100; i++)
		do_page(c, 16384, 0);
	for (i = 1; i < 300; i += 2)
		do_unmap(c, base + i);
	for (i = 0; i < 60; i++)
		do_page(c, 4096u << (i % 4), 0);
	base = c->next_id;
	for (i = 0; i < 40; i++)
		do_page(c, 262144, 0);	/* 64 pfns: above the rcache's largest class */
	for (i = 0; i < 40; i += 2)
		do_unmap(c, base + i);
	for (i = 0; i < 20; i++)
		do_page(c, 131072 + 4096 * (i % 3), 0);
	unmap_all(c);
}

/* A 24-bit mask: map 64 KiB until ENOMEM, free some, then 4 KiB maps drain the rcache. */
static void run_exhaust(struct dm_ctx *c)
{
	int i, n = 0, base = c->next_id;

	for (i = 0; i < 400; i++) {
		if (do_page(c, 65536, 0) < 0)
			break;
		n++;
	}
	do_page(c, 4096, 0);
	for (i = 0; i < n; i += 5)
		do_unmap(c, base + i);
	for (i = 0; i < 400; i++)
		if (do_page(c, 4096, 0) < 0)
			break;
	do_sg(c, 3, thread_lens, zero_offs);
	for (i = base; i < c->next_id; i += 3)
		do_unmap(c, i);
	for (i = 0; i < 400; i++)
		if (do_page(c, 8192, 0) < 0)
			break;
	unmap_all(c);
}

#define BIG_ORDER 10	/* 4 MiB: one buffer mapped many times fills the IOVA space quickly */

/*
 * A 64-bit mask on PCI: 4 MiB maps until the space below 4 GiB is full, so SAC-first gives up
 * ("Using 40-bit DMA addresses") and every later IOVA comes from below the aperture's end.
 */
static void run_sac_fallback(struct dm_ctx *c)
{
	struct page *big = alloc_pages(GFP_KERNEL, BIG_ORDER);
	int i, base = c->next_id;

	if (!big)
		return;
	for (i = 0; i < 420; i++)
		do_page_of(c, big, 4u << 20);
	for (i = base; i < c->next_id; i += 4)
		do_unmap(c, i);
	for (i = 0; i < 30; i++)
		do_page_of(c, big, (i % 2) ? 4096 : 2u << 20);
	do_sg(c, 3, thread_lens, zero_offs);
	unmap_all(c);
	__free_pages(big, BIG_ORDER);
}

/* A 32-bit mask: 4 MiB maps until ENOMEM, then frees, then smaller maps until ENOMEM again. */
static void run_exhaust32(struct dm_ctx *c)
{
	struct page *big = alloc_pages(GFP_KERNEL, BIG_ORDER);
	int i, base = c->next_id;

	if (!big)
		return;
	for (i = 0; i < 420; i++)
		if (do_page_of(c, big, 4u << 20) < 0)
			break;
	do_page_of(c, big, 1u << 20);
	do_page_of(c, big, 4096);
	for (i = base; i < c->next_id; i += 4)
		do_unmap(c, i);
	for (i = 0; i < 300; i++)
		if (do_page_of(c, big, 1u << 20) < 0)
			break;
	for (i = 0; i < 60; i++)
		do_page_of(c, big, 4096u << (i % 6));
	unmap_all(c);
	__free_pages(big, BIG_ORDER);
}

/* Seeded mixed traffic: map_sg of 1..6 entries, map_page, and unmaps of random live mappings. */
static void run_mixed(struct dm_ctx *c, int ops, int cap)
{
	u32 lens[MAX_ENTS], offs[MAX_ENTS];
	int live[256];
	int nlive = 0, k, i, n, id;

	for (k = 0; k < ops; k++) {
		if (nlive > 0 && (nlive >= cap || rnd(c) % 100 < 45)) {
			i = rnd(c) % nlive;
			do_unmap(c, live[i]);
			live[i] = live[--nlive];
			continue;
		}
		if (rnd(c) % 100 < 55) {
			n = 1 + rnd(c) % 6;
			for (i = 0; i < n; i++) {
				u32 r = rnd(c);

				lens[i] = (r % 4 == 0) ? 4096u << (r % 5) : 1 + (rnd(c) % 40000);
				offs[i] = (rnd(c) % 3 == 0) ? (rnd(c) % 4096) & ~63u : 0;
			}
			id = do_sg(c, n, lens, offs);
		} else {
			u32 size = (rnd(c) % 3 == 0) ? 4096u << (rnd(c) % 7) : 1 + rnd(c) % 70000;

			id = do_page(c, size, (rnd(c) % 2) ? rnd(c) % 4096 : 0);
		}
		if (id >= 0)
			live[nlive++] = id;
	}
	unmap_all(c);
}

/*
 * Coherent buffers (dma_alloc_coherent: IOVA below coherent_dma_mask) between streaming maps
 * (below dma_mask) in the same domain.
 */
static void run_coherent(struct dm_ctx *c)
{
	static const u32 sizes[] = { 4096, 100, 12288, 65536, 8193, 204800, 1048576, 40000 };
	int i, base = c->next_id;

	for (i = 0; i < 48; i++) {
		do_coherent(c, sizes[i % 8]);
		if (i % 3 == 0)
			do_page(c, 4096u << (i % 5), 0);
		if (i % 4 == 1)
			do_sg(c, 3, thread_lens, zero_offs);
	}
	for (i = base; i < c->next_id; i += 2)
		do_unmap(c, i);
	for (i = 0; i < 24; i++)
		do_coherent(c, sizes[(i * 3) % 8]);
	unmap_all(c);
}

/*
 * More than one magazine of a size class in the depot: after IOVA_DEPOT_DELAY the delayed
 * work gives every magazine beyond num_online_cpus (one) back to the tree.
 */
static void run_depot(struct dm_ctx *c)
{
	int i, base = c->next_id;

	for (i = 0; i < 700; i++)
		do_page(c, 4096, 0);
	for (i = 0; i < 700; i++)
		do_unmap(c, base + i);
	do_sleep(c, 1000);
	base = c->next_id;
	for (i = 0; i < 700; i++)
		do_page(c, 4096, 0);
	for (i = 1; i < 700; i += 2)
		do_unmap(c, base + i);
	for (i = 0; i < 200; i++)
		do_page(c, 8192, 0);
	unmap_all(c);
	do_sleep(c, 1000);
	for (i = 0; i < 400; i++)
		do_page(c, 4096u << (i % 2), 0);
	unmap_all(c);
}

static void run_mixed32(struct dm_ctx *c)
{
	c->rnd = 0x15d1f00d;
	run_mixed(c, 1200, 120);
}

static void run_mixed64(struct dm_ctx *c)
{
	c->rnd = 0xdeadbeef;
	run_mixed(c, 1200, 200);
}

static void run_mixed_bnd(struct dm_ctx *c)
{
	c->rnd = 0x0badcafe;
	run_mixed(c, 800, 60);
}


/* ---- the two-step IOVA API (Linux 6.16+: dma_iova_try_alloc and friends) ---------------- */

#ifdef DMA_IOVA_USE_SWIOTLB
#define DM_IOVA_API 1
#define MAX_IOVAS 512

struct dm_iova {
	struct dma_iova_state st;
	struct page *pg;
	unsigned int order;
	phys_addr_t base;	/* the buffer's first byte (page_to_phys + the offset asked for) */
	bool live;
};

static struct dm_iova *dm_iovas;	/* one sequence runs at a time (probes are serial) */
static int dm_next_iova;

/* dma_iova_try_alloc for a fresh buffer of size bytes starting off bytes into a page. */
static int do_iova_alloc(struct dm_ctx *c, u32 off, u32 size)
{
	struct dm_iova *v;
	bool ok;
	int id;

	if (dm_next_iova >= MAX_IOVAS)
		return -1;
	id = dm_next_iova++;
	v = &dm_iovas[id];
	v->order = get_order(off + (size ? size : 1));
	v->pg = alloc_pages(GFP_KERNEL, v->order);
	if (!v->pg) {
		pr_err("DMAEMU-ERR alloc_pages failed\n");
		return -1;
	}
	v->base = page_to_phys(v->pg) + off;
	/* garbage in the state: a failed try must leave it all zero */
	memset(&v->st, 0xa5, sizeof(v->st));
	ok = dma_iova_try_alloc(c->dev, &v->st, v->base, size);
	out(c, "{\"dev\":%d,\"op\":\"iova_alloc\",\"id\":%d,\"phys\":\"0x%llx\",\"size\":%u,\"ok\":%s,\"addr\":\"0x%llx\",\"state_size\":\"0x%llx\",\"use_iova\":%s}",
	    c->devno, id, (unsigned long long)v->base, size, ok ? "true" : "false",
	    (unsigned long long)v->st.addr, (unsigned long long)v->st.__size,
	    dma_use_iova(&v->st) ? "true" : "false");
	flush_line(c);
	if (!ok) {
		__free_pages(v->pg, v->order);
		return -1;
	}
	v->live = true;
	return id;
}

/* dma_iova_link of size bytes at poff into the buffer, to offset ioff of the IOVA range. */
static int do_iova_link(struct dm_ctx *c, int id, u32 poff, u32 ioff, u32 size)
{
	struct dm_iova *v = &dm_iovas[id];
	int ret;

	if (id < 0 || !v->live)
		return -1;
	ret = dma_iova_link(c->dev, &v->st, v->base + poff, ioff, size, DMA_TO_DEVICE, 0);
	out(c, "{\"dev\":%d,\"op\":\"iova_link\",\"id\":%d,\"phys\":\"0x%llx\",\"offset\":%u,\"size\":%u,\"ret\":%d}",
	    c->devno, id, (unsigned long long)(v->base + poff), ioff, size, ret);
	flush_line(c);
	return ret;
}

static void do_iova_sync(struct dm_ctx *c, int id, u32 ioff, u32 size)
{
	struct dm_iova *v = &dm_iovas[id];
	int ret;

	if (id < 0 || !v->live)
		return;
	ret = dma_iova_sync(c->dev, &v->st, ioff, size);
	out(c, "{\"dev\":%d,\"op\":\"iova_sync\",\"id\":%d,\"offset\":%u,\"size\":%u,\"ret\":%d}",
	    c->devno, id, ioff, size, ret);
	flush_line(c);
}

static void do_iova_unlink(struct dm_ctx *c, int id, u32 ioff, u32 size)
{
	struct dm_iova *v = &dm_iovas[id];

	if (id < 0 || !v->live)
		return;
	dma_iova_unlink(c->dev, &v->st, ioff, size, DMA_TO_DEVICE, 0);
	out(c, "{\"dev\":%d,\"op\":\"iova_unlink\",\"id\":%d,\"offset\":%u,\"size\":%u}", c->devno, id, ioff, size);
	flush_line(c);
}

/* dma_iova_destroy (mapped_len linked bytes from offset 0) or, with destroy false, dma_iova_free. */
static void do_iova_end(struct dm_ctx *c, int id, bool destroy, u32 mapped_len)
{
	struct dm_iova *v = &dm_iovas[id];

	if (id < 0 || !v->live)
		return;
	if (destroy)
		dma_iova_destroy(c->dev, &v->st, mapped_len, DMA_TO_DEVICE, 0);
	else
		dma_iova_free(c->dev, &v->st);
	__free_pages(v->pg, v->order);
	v->live = false;
	if (destroy)
		out(c, "{\"dev\":%d,\"op\":\"iova_destroy\",\"id\":%d,\"mapped_len\":%u}", c->devno, id, mapped_len);
	else
		out(c, "{\"dev\":%d,\"op\":\"iova_free\",\"id\":%d}", c->devno, id);
	flush_line(c);
}

/* One buffer linked whole (the offset kept), synced and destroyed; the state's address and size. */
static void iova_one(struct dm_ctx *c, u32 off, u32 size)
{
	int v = do_iova_alloc(c, off, size);

	if (v < 0)
		return;
	do_iova_link(c, v, 0, 0, size);
	do_iova_sync(c, v, 0, size);
	do_iova_end(c, v, true, size);
}

/*
 * try_alloc keeps the buffer's offset within the granule and the unaligned size; links of mixed
 * sizes and offsets; map_sg / map_page on the same domain between them (one allocator).
 */
static void run_iova_basic(struct dm_ctx *c)
{
	static const u32 offs[] = { 0, 0x100, 0xfff, 0x800, 1, 0 };
	static const u32 sizes[] = { 4096, 10000, 1, 65536, 200000, 4097 };
	int i, a, b;

	for (i = 0; i < 6; i++) {
		iova_one(c, offs[i], sizes[i]);
		do_sg(c, 3, thread_lens, zero_offs);
		do_page(c, 4096u << i, 0);
	}
	/* several links into one range: every one but the first on a granule, all but the last whole */
	a = do_iova_alloc(c, 0x200, 65536);
	do_iova_link(c, a, 0, 0, 4096 - 0x200);
	do_iova_link(c, a, 8192 - 0x200, 4096, 16384);
	do_iova_link(c, a, 4096 - 0x200, 20480, 4096);
	do_iova_link(c, a, 24576 - 0x200, 24576, 65536 - 24576 + 0x200);
	do_iova_sync(c, a, 0, 65536);
	/* the same pieces where the state's address says: after the first, on a granule of the IOVA */
	b = do_iova_alloc(c, 0x200, 65536);
	do_iova_link(c, b, 0, 0, 4096 - 0x200);
	do_iova_link(c, b, 8192 - 0x200, 4096 - 0x200, 16384);
	do_iova_link(c, b, 4096 - 0x200, 20480 - 0x200, 4096);
	do_iova_link(c, b, 24576 - 0x200, 24576 - 0x200, 65536 - 24576 + 0x200);
	do_iova_sync(c, b, 0, 65536);
	do_iova_end(c, b, true, 65536);
	b = do_iova_alloc(c, 0, 131072);
	do_iova_link(c, b, 0, 0, 131072);
	do_sg(c, 3, thread_lens, zero_offs);
	do_iova_end(c, a, true, 65536);
	do_page(c, 65536, 0);
	do_iova_end(c, b, true, 131072);
	for (i = 0; i < 8; i++)
		iova_one(c, (i * 0x340) & 0xfff, 3000 + 9000 * i);
	unmap_all(c);
	for (i = 0; i < 8; i++)
		iova_one(c, 0, 65536);
}

/* The rules a link may break: -EIO (the WARN) and iommu_map's refusal; size 0; unlink and free. */
static void run_iova_rules(struct dm_ctx *c)
{
	int a, b;

	do_iova_alloc(c, 0, 0);				/* size 0: false, state all zero */
	a = do_iova_alloc(c, 0x100, 16384);
	do_iova_link(c, a, 0x100, 4096, 4096);		/* unaligned phys at offset > 0: -EIO */
	do_iova_link(c, a, 0, 100, 4096);		/* unaligned IOVA offset: iommu_map refuses */
	do_iova_link(c, a, 0, 0, 16384);		/* the first link, offset kept: fine */
	do_iova_sync(c, a, 0, 16384);
	do_iova_end(c, a, true, 16384);
	/* unlink piece by piece, then free: the range comes back for the same size */
	b = do_iova_alloc(c, 0, 32768);
	do_iova_link(c, b, 0, 0, 8192);
	do_iova_link(c, b, 8192, 8192, 8192);
	do_iova_link(c, b, 16384, 16384, 16384);
	do_iova_sync(c, b, 0, 32768);
	do_iova_link(c, b, 0, 0, 8192);			/* linked again: what the page table says */
	do_iova_link(c, b, 0, 32768, 4096);		/* past the allocation: nothing checks it */
	do_iova_unlink(c, b, 32768, 4096);
	do_iova_unlink(c, b, 8192, 8192);
	do_iova_link(c, b, 8192, 8192, 8192);
	do_iova_unlink(c, b, 0, 8192);
	do_iova_unlink(c, b, 8192, 8192);
	do_iova_unlink(c, b, 16384, 16384);
	do_iova_end(c, b, false, 0);
	b = do_iova_alloc(c, 0, 32768);
	do_iova_end(c, b, true, 0);			/* nothing linked: destroy(0) frees */
	b = do_iova_alloc(c, 0, 32768);
	do_iova_end(c, b, false, 0);
	unmap_all(c);
}

/* dma_iova_destroy(mapped_len) shorter than the allocation: what comes back to the allocator. */
static void run_iova_destroy(struct dm_ctx *c)
{
	static const u32 sizes[] = { 65536, 32768, 262144, 8192, 20000 };
	static const u32 linked[] = { 16384, 4096, 65536, 4096, 8192 };
	int i, j, v;

	for (i = 0; i < 5; i++) {
		for (j = 0; j < 3; j++) {
			v = do_iova_alloc(c, 0, sizes[i]);
			do_iova_link(c, v, 0, 0, linked[i]);
			do_iova_end(c, v, true, linked[i]);
		}
		do_page(c, linked[i], 0);
		do_page(c, sizes[i], 0);
	}
	unmap_all(c);
}

/* A 24-bit mask: ranges until try_alloc says false, then map_page falls back, frees, allocs. */
static void run_iova_exhaust(struct dm_ctx *c)
{
	int ids[64];
	int i, n = 0;

	for (i = 0; i < 64; i++) {
		ids[n] = do_iova_alloc(c, 0, 1u << 20);
		if (ids[n] < 0)
			break;
		n++;
	}
	do_page(c, 65536, 0);
	do_page(c, 4096, 0);
	for (i = 0; i < n; i += 3)
		do_iova_end(c, ids[i], false, 0);
	for (i = 0; i < 20; i++)
		if (do_iova_alloc(c, 0, 1u << 19) < 0)
			break;
	do_sg(c, 3, thread_lens, zero_offs);
	for (i = 0; i < dm_next_iova; i++)
		do_iova_end(c, i, false, 0);
	unmap_all(c);
}
#endif /* DMA_IOVA_USE_SWIOTLB */

static const struct dm_seq seqs[] = {
	{ "thread-pci-defaults", 0, 0, 0, run_thread },
	{ "thread-uint-max", 0, 0xffffffffu, 0, run_thread },
	{ "offsets", 0, 0xffffffffu, 0, run_offsets },
	{ "offsets-pci-defaults", 0, 0, 0, run_offsets },
	{ "boundary-64k", 0, 0xffffffffu, 0xffff, run_boundary },
	{ "boundary-1m", 32, 0x100000, 0xfffff, run_boundary },
	{ "oversize", 0, 65536, 0, run_oversize },
	{ "oversize-uint-max", 64, 0xffffffffu, 0xffffffffffffffffull, run_oversize },
	{ "mask-64", 64, 0, 0, run_mask },
	{ "mask-32", 32, 0, 0, run_mask },
	{ "runs", 32, 0, 0, run_runs },
	{ "exhaust-24", 24, 0, 0, run_exhaust },
	{ "mixed-32", 32, 0, 0, run_mixed32 },
	{ "mixed-64-uint-max", 64, 0xffffffffu, 0, run_mixed64 },
	{ "mixed-boundary-64k", 40, 0xffffffffu, 0xffff, run_mixed_bnd },
	{ "sac-fallback-64", 64, 0, 0, run_sac_fallback },
	{ "exhaust-32", 32, 0, 0, run_exhaust32 },
	{ "coherent-64-32", 64, 0, 0, run_coherent },
	{ "depot-trim", 32, 0, 0, run_depot },
	/* edge values: 0 as the driver passes it, read back by dma_get_max_seg_size / _seg_boundary */
	{ "thread-max-seg-zero", 0, 0, 0, run_thread, DM_SEG_ZERO },
	{ "offsets-boundary-zero", 0, 0xffffffffu, 0, run_offsets, DM_BND_ZERO },
	{ "mixed-64-zeros", 64, 0, 0, run_mixed_bnd, DM_SEG_ZERO | DM_BND_ZERO },
#ifdef DM_IOVA_API
	{ "iova-basic-32", 32, 0, 0, run_iova_basic },
	{ "iova-rules-64", 64, 0, 0, run_iova_rules },
	{ "iova-destroy-32", 32, 0, 0, run_iova_destroy },
	{ "iova-exhaust-24", 24, 0, 0, run_iova_exhaust },
#endif
};

static void print_domain(struct dm_ctx *c, struct pci_dev *pdev, const struct dm_seq *q,
			 u64 def_mask, unsigned int def_seg, unsigned long def_bnd)
{
	struct iommu_domain *dom = iommu_get_domain_for_dev(c->dev);
	struct pci_host_bridge *br = pci_find_host_bridge(pdev->bus);
	struct iommu_resv_region *r;
	struct resource_entry *w;
	LIST_HEAD(resv);
	bool first = true;

	out(c, "{\"dev\":%d,\"op\":\"device\",\"seq\":\"%s\",\"pci\":\"%s\",\"kernel\":\"%s\",",
	    c->devno, q->name, pci_name(pdev), utsname()->release);
	out(c, "\"defaults\":{\"dma_mask\":\"0x%llx\",\"max_segment_size\":%u,\"segment_boundary_mask\":\"0x%lx\"},",
	    def_mask, def_seg, def_bnd);
	out(c, "\"config\":{\"dma_mask\":\"0x%llx\",\"coherent_dma_mask\":\"0x%llx\",\"max_segment_size\":%u,\"segment_boundary_mask\":\"0x%lx\"},",
	    (unsigned long long)dma_get_mask(c->dev), (unsigned long long)c->dev->coherent_dma_mask,
	    dma_get_max_seg_size(c->dev), dma_get_seg_boundary(c->dev));
	/* what dma_parms holds, before dma_get_max_seg_size / dma_get_seg_boundary read it */
	if (c->dev->dma_parms)
		out(c, "\"dma_parms\":{\"max_segment_size\":%u,\"segment_boundary_mask\":\"0x%lx\"},",
		    c->dev->dma_parms->max_segment_size, c->dev->dma_parms->segment_boundary_mask);
#ifdef CONFIG_SWIOTLB
	/* the device's bounce pool as the boot placed it (read only: dma-direct's, no IOMMU) */
	if (!dom && c->dev->dma_io_tlb_mem)
		out(c, "\"swiotlb\":{\"start\":\"0x%llx\",\"end\":\"0x%llx\",\"nslabs\":%lu,\"nareas\":%u,\"force\":%s},",
		    (unsigned long long)c->dev->dma_io_tlb_mem->defpool.start,
		    (unsigned long long)c->dev->dma_io_tlb_mem->defpool.end,
		    c->dev->dma_io_tlb_mem->defpool.nslabs, c->dev->dma_io_tlb_mem->defpool.nareas,
		    c->dev->dma_io_tlb_mem->force_bounce ? "true" : "false");
#endif
	if (dom)
		out(c, "\"domain_type\":%u,\"aperture\":[\"0x%llx\",\"0x%llx\"],\"force_aperture\":%s,\"pgsize_bitmap\":\"0x%lx\",",
		    dom->type, (unsigned long long)dom->geometry.aperture_start,
		    (unsigned long long)dom->geometry.aperture_end,
		    dom->geometry.force_aperture ? "true" : "false", dom->pgsize_bitmap);
	out(c, "\"resv\":[");
	/* without an IOMMU (intel_iommu=off) the device has no iommu ops to ask */
	if (dom) {
		iommu_get_resv_regions(c->dev, &resv);
		list_for_each_entry(r, &resv, list) {
			out(c, "%s[\"0x%llx\",\"0x%llx\",%d]", first ? "" : ",", (unsigned long long)r->start,
			    (unsigned long long)(r->start + r->length - 1), r->type);
			first = false;
		}
		iommu_put_resv_regions(c->dev, &resv);
	}
	out(c, "],\"windows\":[");
	first = true;
	if (br) {
		resource_list_for_each_entry(w, &br->windows) {
			if (resource_type(w->res) != IORESOURCE_MEM)
				continue;
			/* bus addresses, as iova_reserve_pci_windows reserves them */
			out(c, "%s[\"0x%llx\",\"0x%llx\"]", first ? "" : ",",
			    (unsigned long long)(w->res->start - w->offset),
			    (unsigned long long)(w->res->end - w->offset));
			first = false;
		}
	}
	out(c, "],\"dma_ranges\":%s}", br && !list_empty(&br->dma_ranges) ? "true" : "false");
	flush_line(c);
}

static int dm_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	int k = atomic_inc_return(&dm_probed) - 1;
	const struct dm_seq *q;
	struct dm_ctx *c;
	u64 def_mask;
	unsigned int def_seg;
	unsigned long def_bnd;
	int err = 0;

	if (k >= ARRAY_SIZE(seqs))
		return -ENODEV;
	q = &seqs[k];
	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	c->maps = kvcalloc(MAX_MAPS, sizeof(*c->maps), GFP_KERNEL);
	if (!c->maps) {
		kfree(c);
		return -ENOMEM;
	}
	c->dev = &pdev->dev;
	c->devno = k;
#ifdef DM_IOVA_API
	dm_next_iova = 0;
	dm_iovas = kvcalloc(MAX_IOVAS, sizeof(*dm_iovas), GFP_KERNEL);
	if (!dm_iovas) {
		kvfree(c->maps);
		kfree(c);
		return -ENOMEM;
	}
#endif
	/* what the PCI core gave the device before this driver changed anything */
	def_mask = dma_get_mask(c->dev);
	def_seg = dma_get_max_seg_size(c->dev);
	def_bnd = dma_get_seg_boundary(c->dev);
	if (q->mask_bits)
		err = dma_set_mask_and_coherent(c->dev, DMA_BIT_MASK(q->mask_bits));
	/* the coherent sequence keeps a 32-bit coherent mask beside its 64-bit streaming mask */
	if (!err && q->run == run_coherent)
		err = dma_set_coherent_mask(c->dev, DMA_BIT_MASK(32));
	/* both return void in 6.12 (the PCI core always gives a device dma_parms) */
	if (!err && q->max_seg)
		dma_set_max_seg_size(c->dev, q->max_seg);
	if (!err && q->boundary)
		dma_set_seg_boundary(c->dev, q->boundary);
	if (!err && (q->flags & DM_SEG_ZERO))
		dma_set_max_seg_size(c->dev, 0);
	if (!err && (q->flags & DM_BND_ZERO))
		dma_set_seg_boundary(c->dev, 0);
	if (err) {
		pr_err("DMAEMU-ERR %s: configuring the device failed: %d\n", q->name, err);
	} else {
		print_domain(c, pdev, q, def_mask, def_seg, def_bnd);
		q->run(c);
		out(c, "{\"dev\":%d,\"op\":\"end\",\"calls\":%d}", k, c->next_id);
		flush_line(c);
	}
#ifdef DM_IOVA_API
	kvfree(dm_iovas);
	dm_iovas = NULL;
#endif
	kvfree(c->maps);
	kfree(c);
	return 0;
}

static void dm_remove(struct pci_dev *pdev)
{
}

static const struct pci_device_id dm_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ }
};
MODULE_DEVICE_TABLE(pci, dm_ids);

static struct pci_driver dm_driver = {
	.name = "dmaemu_probe",
	.id_table = dm_ids,
	.probe = dm_probe,
	.remove = dm_remove,
};

static int __init dm_init(void)
{
	int err = pci_register_driver(&dm_driver);

	if (!err) {
		pr_info("DMAEMU {\"op\":\"done\",\"devices\":%d,\"sequences\":%zu}\n",
			atomic_read(&dm_probed), ARRAY_SIZE(seqs));
	}
	return err;
}

static void __exit dm_exit(void)
{
	pci_unregister_driver(&dm_driver);
}

module_init(dm_init);
module_exit(dm_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Records real DMA API results on QEMU edu devices for dmaemu conformance tests");
