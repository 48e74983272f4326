// The session explorer's script: plain DOM, no framework, no build step. Every number shown
// comes from the service's answers (the REST API in /docs); nothing about Linux is computed
// here. Text from answers goes in through textContent only; the IOVA picture is the service's
// own SVG, parsed as XML and adopted into the page (so its tooltips work).

const LAYOUTS = ['linux', 'linux-4.4', 'arm-legacy'];
const PAGE_ROWS_SHOWN = 64;

const $ = (sel) => {
  const el = document.querySelector(sel);
  if (!el) throw new Error(`no ${sel} in the page`);
  return el;
};

/** h('td', {class: 'x'}, 'text', child…): an element with attributes and children. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  const json = text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : {};
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.message ?? text}`);
  return json;
}

// ---- input -------------------------------------------------------------------------------

const UNITS = { '': 1, k: 1024, m: 1024 * 1024, g: 1024 * 1024 * 1024 };

/** "64K@0x90000000" lines → [{length, phys}]; blank lines and # comments are skipped. */
export function parseEntries(text) {
  const out = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const m = /^(0x[0-9a-f]+|\d+)\s*([kmg]?)(?:i?b)?\s*@\s*(0x[0-9a-f]+|\d+)$/i.exec(line);
    if (!m) throw new Error(`line ${i + 1}: "${line}" is not length@phys (e.g. 64K@0x90000000)`);
    const length = Number(m[1]) * UNITS[m[2].toLowerCase()];
    if (!Number.isSafeInteger(length) || length < 1) throw new Error(`line ${i + 1}: the length must be a positive integer`);
    out.push({ phys: m[3].toLowerCase().startsWith('0x') ? m[3].toLowerCase() : Number(m[3]), length });
  });
  if (out.length === 0) throw new Error('the scatterlist is empty');
  return out;
}

/** The POST /v1/sessions body the device form describes (layout overridable). */
function sessionBody(layout) {
  const f = $('#device').elements;
  const device = { bus: f.bus.value, dma_mask: f.dma_mask.value.trim(), max_segment_size: Number(f.max_segment_size.value), coherent: f.coherent.checked };
  if (f.segment_boundary_mask.value.trim()) device.segment_boundary_mask = f.segment_boundary_mask.value.trim();
  return {
    layout: layout ?? f.layout.value,
    page_size: Number(f.page_size.value),
    device,
    iommu: f.iommu.checked ? { granule: Number(f.granule.value) } : null,
  };
}

// ---- output ------------------------------------------------------------------------------

function table(cls, head, rows) {
  return h(
    'table',
    { class: cls },
    h('thead', {}, h('tr', {}, ...head.map((t) => h('th', {}, t)))),
    h('tbody', {}, ...rows.map((r, i) => h('tr', { 'data-row': i }, ...r.map((c) => (c instanceof Node ? c : h('td', {}, c)))))),
  );
}

/** A map_sg answer: nents, segments, IOVA ranges, pages, its error and findings. */
function renderMapSg(answer) {
  const box = h('div', { class: 'map-result' });
  if (answer.error) box.append(h('p', { class: 'error' }, `${answer.error.errno}: ${answer.error.message} (nents 0)`));
  box.append(h('p', { class: 'mono' }, `handle ${answer.handle ?? '—'} · nents ${answer.nents}${answer.bounced ? ' · bounced through swiotlb' : ''}`));
  const tables = h('div', { class: 'tables' });
  box.append(tables);
  tables.append(
    h(
      'div',
      {},
      h('h3', {}, 'segments'),
      table(
        'segments',
        ['#', 'dma_address', 'dma_length'],
        answer.segments.map((s, i) => [h('td', {}, i), h('td', { class: 'addr' }, s.dma_address), h('td', { class: 'len' }, s.dma_length)]),
      ),
    ),
    h(
      'div',
      {},
      h('h3', {}, 'IOVA allocated'),
      table('iova', ['start', 'size'], answer.iova_ranges.map((r) => [h('td', { class: 'addr' }, r.start), h('td', { class: 'len' }, r.size)])),
    ),
  );
  if (answer.pages) {
    const shown = answer.pages.slice(0, PAGE_ROWS_SHOWN);
    const more = answer.pages.length > shown.length ? h('p', { class: 'muted' }, `… ${answer.pages.length - shown.length} more`) : '';
    tables.append(
      h('div', {}, h('h3', {}, `pages (${answer.pages.length} granules)`), h('div', { class: 'scroll' }, table('pages', ['iova', 'phys'], shown.map((p) => [p.iova, p.phys]))), more),
    );
  }
  if (answer.debug?.length) box.append(h('ul', { class: 'findings' }, ...answer.debug.map((d) => h('li', {}, `${d.check}: ${d.message}`))));
  return box;
}

/** Fetches the session's iova.svg and puts it in `box` (width: the box's, within 320..8192). */
async function drawPicture(box, id, zoom = {}) {
  const width = Math.max(320, Math.min(8192, Math.floor(box.clientWidth || 1200) - 4));
  const q = new URLSearchParams({ width: String(width) });
  for (const k of ['start', 'end', 'scale']) if (zoom[k]) q.set(k, zoom[k]);
  const res = await fetch(`/v1/sessions/${id}/iova.svg?${q}`);
  const text = await res.text();
  box.replaceChildren();
  if (!res.ok) {
    box.append(h('p', { class: 'error' }, JSON.parse(text).message ?? text));
    return;
  }
  const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
  box.append(document.importNode(doc.documentElement, true));
}

async function refreshTables(id) {
  const [{ debug }, { faults }] = await Promise.all([api('GET', `/v1/sessions/${id}/debug`), api('GET', `/v1/sessions/${id}/faults`)]);
  const list = (el, items, line) => el.replaceChildren(...(items.length ? items.map((x) => h('li', {}, line(x))) : [h('li', { class: 'muted' }, 'none')]));
  list($('#findings'), debug, (d) => `#${d.seq} ${d.check}${d.handle ? ` (handle ${d.handle})` : ''}: ${d.message}`);
  list($('#faults'), faults, (f) => `${f.access} at ${f.dma_address}: ${f.reason}`);
}

// ---- actions -----------------------------------------------------------------------------

const state = { id: null, compareIds: [] };

function zoomValues() {
  const f = $('#zoom').elements;
  return { start: f.start.value.trim(), end: f.end.value.trim(), scale: f.scale.value };
}

async function createSession() {
  if (state.id) await api('DELETE', `/v1/sessions/${state.id}`).catch(() => undefined);
  const s = await api('POST', '/v1/sessions', sessionBody());
  state.id = s.id;
  const c = s.config;
  $('#session').textContent =
    `session ${s.id}: ${c.layout}, ${c.device.bus}, dma_mask ${c.device.dma_mask}, max_segment_size ${c.device.max_segment_size}, ` +
    `segment_boundary_mask ${c.device.segment_boundary_mask}, ` +
    (c.iommu ? `IOMMU aperture ${c.iommu.aperture.start}–${c.iommu.aperture.end}, granule ${c.iommu.granule}` : 'no IOMMU (dma-direct)');
  $('#session').dataset.id = s.id;
  // Nothing of the previous session stays on the page: its access line, its log.
  $('#access').textContent = '';
  $('#ops-log').replaceChildren();
  $('#result').replaceChildren(h('span', { class: 'muted' }, 'map a scatterlist to see its segments'));
  await Promise.all([drawPicture($('#picture'), s.id, zoomValues()), refreshTables(s.id)]);
}

async function mapSg() {
  if (!state.id) await createSession();
  const f = $('#sg').elements;
  const sg = parseEntries(f.entries.value);
  const answer = await api('POST', `/v1/sessions/${state.id}/map_sg${f.pages.checked ? '?pages=true' : ''}`, { dir: f.dir.value, sg });
  $('#result').replaceChildren(renderMapSg(answer));
  await Promise.all([drawPicture($('#picture'), state.id, zoomValues()), refreshTables(state.id)]);
}

async function compareLayouts() {
  const f = $('#sg').elements;
  const sg = parseEntries(f.entries.value);
  await Promise.all(state.compareIds.map((id) => api('DELETE', `/v1/sessions/${id}`).catch(() => undefined)));
  state.compareIds = [];
  const out = $('#compare-out');
  out.replaceChildren(...LAYOUTS.map((l) => h('section', { 'data-layout': l }, h('h3', {}, l), h('p', { class: 'muted' }, 'mapping…'))));
  const drawn = await Promise.all(
    LAYOUTS.map(async (layout) => {
      const col = out.querySelector(`section[data-layout="${layout}"]`);
      try {
        const s = await api('POST', '/v1/sessions', sessionBody(layout));
        state.compareIds.push(s.id);
        const answer = await api('POST', `/v1/sessions/${s.id}/map_sg`, { dir: f.dir.value, sg });
        const pic = h('div', { class: 'picture' });
        col.replaceChildren(h('h3', {}, layout), h('p', { class: 'mono muted' }, `session ${s.id}`), renderMapSg(answer), pic);
        return { pic, id: s.id, aperture: s.config.iommu?.aperture ?? null };
      } catch (e) {
        col.replaceChildren(h('h3', {}, layout), h('p', { class: 'error' }, e.message));
        return null;
      }
    }),
  );
  // The same axis for every column: the window that holds every layout's aperture, so a range
  // sits at the same place in each picture and they can be compared by eye.
  const cols = drawn.filter((d) => d !== null);
  const apertures = cols.map((d) => d.aperture).filter((a) => a !== null);
  const window = apertures.length
    ? { start: '0x' + apertures.map((a) => BigInt(a.start)).reduce((x, y) => (x < y ? x : y)).toString(16), end: '0x' + apertures.map((a) => BigInt(a.end)).reduce((x, y) => (x > y ? x : y)).toString(16) }
    : {};
  await Promise.all(cols.map((d) => drawPicture(d.pic, d.id, window)));
}

async function sessionCall(path, body, line) {
  if (!state.id) await createSession();
  const r = await api('POST', `/v1/sessions/${state.id}/${path}`, body);
  const text = line(r) + (r.debug?.length ? ` · ${r.debug.map((d) => d.check).join(', ')}` : '');
  $('#access').textContent = text;
  $('#ops-log').append(h('li', { 'data-call': path }, `${path}: ${text}`));
  await Promise.all([drawPicture($('#picture'), state.id, zoomValues()), refreshTables(state.id)]);
  return r;
}

const faultOr = (r, ok) => (r.fault ? `fault: ${r.fault.access} at ${r.fault.dma_address}: ${r.fault.reason}` : ok(r));
const handleOf = () => Number($('#handle-ops').elements.handle.value);

async function mapPage() {
  const f = $('#map-page').elements;
  const r = await sessionCall('map_page', { phys: f.phys.value.trim(), size: Number(f.size.value), dir: f.dir.value }, (a) =>
    a.error ? `failed: ${a.error.errno} ${a.error.message}` : `handle ${a.handle} · dma_address ${a.dma_address}`,
  );
  if (r.handle !== null) {
    $('#handle-ops').elements.handle.value = String(r.handle);
    $('#device-access').elements.dma_address.value = r.dma_address;
  }
}

const sync = () => sessionCall('sync', { handle: handleOf(), for: $('#handle-ops').elements.for.value }, (a) => `handle ${a.handle} · cache ${a.cache} · bounced ${a.bounced_bytes}`);
const unmap = () => sessionCall('unmap', { handle: handleOf() }, (a) => `handle ${a.handle} unmapped`);
const cpuWrite = () => {
  const f = $('#cpu-access').elements;
  return sessionCall('cpu/write', { phys: f.phys.value.trim(), data: f.data.value.trim() }, (a) => `wrote ${a.written} bytes`);
};
const cpuRead = () => {
  const f = $('#cpu-access').elements;
  return sessionCall('cpu/read', { phys: f.phys.value.trim(), length: Number(f.read_length.value) }, (a) => `read ${a.data}`);
};
const deviceWrite = () => {
  const f = $('#device-access').elements;
  return sessionCall('device/write', { dma_address: f.dma_address.value.trim(), data: f.data.value.trim() }, (a) => faultOr(a, (b) => `wrote ${b.written} bytes`));
};
const deviceRead = () => {
  const f = $('#device-access').elements;
  return sessionCall('device/read', { dma_address: f.dma_address.value.trim(), length: Number(f.read_length.value) }, (a) => faultOr(a, (b) => `read ${b.data}`));
};

/** Runs an action, showing its error under the scatterlist form instead of failing silently. */
function guarded(fn) {
  return async (ev) => {
    ev?.preventDefault();
    const err = $('#sg-error');
    err.textContent = '';
    document.body.dataset.busy = 'true';
    try {
      await fn();
    } catch (e) {
      err.textContent = e.message;
    } finally {
      delete document.body.dataset.busy;
    }
  };
}

$('#device').addEventListener('submit', guarded(createSession));
$('#sg').addEventListener('submit', guarded(mapSg));
$('#compare').addEventListener('click', guarded(compareLayouts));
$('#device-access').addEventListener('submit', guarded(deviceRead));
$('#device-write').addEventListener('click', guarded(deviceWrite));
$('#map-page').addEventListener('submit', guarded(mapPage));
$('#handle-ops').addEventListener('submit', guarded(sync));
$('#unmap').addEventListener('click', guarded(unmap));
$('#cpu-access').addEventListener('submit', guarded(cpuWrite));
$('#cpu-read').addEventListener('click', guarded(cpuRead));
$('#zoom').addEventListener(
  'submit',
  guarded(async () => {
    if (state.id) await drawPicture($('#picture'), state.id, zoomValues());
  }),
);
$('#zoom-reset').addEventListener(
  'click',
  guarded(async () => {
    const f = $('#zoom').elements;
    f.start.value = '';
    f.end.value = '';
    if (state.id) await drawPicture($('#picture'), state.id, zoomValues());
  }),
);
// Clicking a drawn range zooms to it (its data-start and data-end are exact hex addresses).
$('#picture').addEventListener('click', (ev) => {
  const span = ev.target instanceof Element ? ev.target.closest('rect.span') : null;
  if (!span || !state.id) return;
  const f = $('#zoom').elements;
  f.start.value = span.getAttribute('data-start');
  f.end.value = '0x' + (BigInt(span.getAttribute('data-end')) - 1n).toString(16);
  void guarded(() => drawPicture($('#picture'), state.id, zoomValues()))();
});
document.body.dataset.ready = 'true';
