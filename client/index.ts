// A typed client for a running dmaemu service. The types come from client/schema.ts, which
// `npm run client:generate` writes from the service's own /openapi.json (openapi-typescript),
// and the calls go through openapi-fetch, so a body or an answer that does not match the
// contract is a compile error in the harness, not a surprise at run time.
//
//   const dmaemu = createDmaemuClient('http://127.0.0.1:3000');
//   const s = await dmaemu.createSession({ layout: 'linux' });
//   const r = await s.mapSg({ dir: 'to_device', sg: [{ phys: '0x90000000', length: 65536 }] });
//   r.segments  // [{ dma_address: '0xffff0000', dma_length: 65536 }]
//   await s.close();  // the leak report
//
// HTTP errors (4xx/5xx) throw DmaemuHttpError with the service's stable `code`; failures Linux
// itself reports are answers (`error: { errno }`, 200), as on the wire. Every path, including
// those this wrapper has no method for, is reachable typed through `.http`.

import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.js';
import { BATCH_BINARY_TYPE, BATCH_RESULTS_BINARY_TYPE, decodeBatchResults, encodeBatchRequest, type BatchOpIn } from '../schemas/batch-binary.js';

export type { components, paths };
export type Schemas = components['schemas'];

type Post<P extends keyof paths> = paths[P] extends { post: infer O } ? O : never;
type Get<P extends keyof paths> = paths[P] extends { get: infer O } ? O : never;
type JsonOf<T> = T extends { content: { 'application/json': infer J } } ? J : never;
type BodyOf<O> = O extends { requestBody?: infer R } ? JsonOf<R> : never;
type OkOf<O> = O extends { responses: infer R } ? (R extends { 200: infer A } ? JsonOf<A> : R extends { 201: infer A } ? JsonOf<A> : never) : never;

/** The JSON body POST `path` takes. */
export type RequestBody<P extends keyof paths> = BodyOf<Post<P>>;
/** The JSON answer of a successful POST `path`. */
export type PostAnswer<P extends keyof paths> = OkOf<Post<P>>;
/** The JSON answer of a successful GET `path`. */
export type GetAnswer<P extends keyof paths> = OkOf<Get<P>>;

type S = '/v1/sessions/{id}';
type Op<Name extends string> = `${S}/${Name}`;

/** The service's error body: `{ statusCode, error, code, message }`. */
export type ErrorBody = Schemas['Error'];

export class DmaemuHttpError extends Error {
  readonly status: number;
  /** The stable code (DMAEMU_SESSION_NOT_FOUND, ...), or undefined if the body was not ours. */
  readonly code: string | undefined;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    const e = typeof body === 'object' && body !== null ? (body as Partial<ErrorBody>) : {};
    super(`dmaemu answered ${status}${e.code ? ` ${e.code}` : ''}: ${e.message ?? JSON.stringify(body)}`);
    this.name = 'DmaemuHttpError';
    this.status = status;
    this.code = e.code;
    this.body = body;
  }
}

interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

function ok<T>(r: FetchResult<T>): T {
  if (!r.response.ok || r.data === undefined) throw new DmaemuHttpError(r.response.status, r.error);
  return r.data;
}

/**
 * A map call's answer as a union that narrows on `error` (or on `handle === null`): when Linux
 * fails the call (dma_map_sg returns 0, dma_map_page gives DMA_MAPPING_ERROR, dma_alloc_coherent
 * NULL) the answer carries `error` and no handle; otherwise no `error` and a handle.
 *
 *   const r = await s.mapPage({ phys: '0x90000000', size: 4096, dir: 'to_device' });
 *   if (r.error) console.log(r.error.errno);   // r.handle: null
 *   else await s.unmap({ handle: r.handle });  // r.handle: number
 */
export type Outcome<T extends { handle: number | null; error?: unknown }> =
  | (Omit<T, 'handle' | 'error'> & { handle: number; error?: undefined })
  | (Omit<T, 'handle' | 'error'> & { handle: null; error: NonNullable<T['error']> });

/** The answers of the three calls that map: each narrows on `error`. */
export type MapSgAnswer = Outcome<PostAnswer<Op<'map_sg'>>>;
export type MapPageAnswer = Outcome<PostAnswer<Op<'map_page'>>>;
export type AllocCoherentAnswer = Outcome<PostAnswer<Op<'alloc_coherent'>>>;

/** The answer as an Outcome, after checking the service kept its side: `error` exactly when no handle. */
function outcome<T extends { handle: number | null; error?: unknown }>(a: T): Outcome<T> {
  if ((a.error === undefined) !== (a.handle !== null)) throw new Error(`dmaemu answered a map call with handle ${String(a.handle)} and ${a.error === undefined ? 'no' : 'an'} error`);
  return a as Outcome<T>;
}

export interface PagesOption {
  /** Also list one {iova, phys} row per IOMMU granule (`?pages=true`). */
  pages?: boolean;
}

const pagesQuery = (o?: PagesOption) => (o?.pages ? { pages: true } : {});

/** One session of a dmaemu service: the DMA-API calls, memory, tables, and close(). */
export function sessionClient(http: Client<paths>, id: string) {
  const path = { id };
  return {
    id,
    mapSg: async (body: RequestBody<Op<'map_sg'>>, o?: PagesOption): Promise<MapSgAnswer> =>
      outcome(ok(await http.POST('/v1/sessions/{id}/map_sg', { params: { path, query: pagesQuery(o) }, body }))),
    mapPage: async (body: RequestBody<Op<'map_page'>>, o?: PagesOption): Promise<MapPageAnswer> =>
      outcome(ok(await http.POST('/v1/sessions/{id}/map_page', { params: { path, query: pagesQuery(o) }, body }))),
    unmap: async (body: RequestBody<Op<'unmap'>>) => ok(await http.POST('/v1/sessions/{id}/unmap', { params: { path }, body })),
    sync: async (body: RequestBody<Op<'sync'>>) => ok(await http.POST('/v1/sessions/{id}/sync', { params: { path }, body })),
    allocCoherent: async (body: RequestBody<Op<'alloc_coherent'>>): Promise<AllocCoherentAnswer> =>
      outcome(ok(await http.POST('/v1/sessions/{id}/alloc_coherent', { params: { path }, body }))),
    freeCoherent: async (body: RequestBody<Op<'free_coherent'>>) => ok(await http.POST('/v1/sessions/{id}/free_coherent', { params: { path }, body })),
    flush: async (body: RequestBody<Op<'flush'>> = {}) => ok(await http.POST('/v1/sessions/{id}/flush', { params: { path }, body })),
    batch: async (body: RequestBody<Op<'batch'>>) => ok(await http.POST('/v1/sessions/{id}/batch', { params: { path }, body })),
    /**
     * The same call packed both ways (docs/api.md "Binary /batch"): the same ops in, the same
     * results out as batch(), at a fraction of the service's CPU per op.
     */
    batchBinary: async (body: RequestBody<Op<'batch'>>): Promise<PostAnswer<Op<'batch'>>> => {
      const r = await http.POST('/v1/sessions/{id}/batch', {
        params: { path },
        body,
        bodySerializer: (b) => encodeBatchRequest(b.ops as BatchOpIn[]),
        headers: { 'content-type': BATCH_BINARY_TYPE, accept: BATCH_RESULTS_BINARY_TYPE },
        parseAs: 'arrayBuffer',
      });
      if (!r.response.ok || r.data === undefined) throw new DmaemuHttpError(r.response.status, r.error);
      return { results: decodeBatchResults(new Uint8Array(r.data)) };
    },
    cpuWrite: async (body: RequestBody<Op<'cpu/write'>>) => ok(await http.POST('/v1/sessions/{id}/cpu/write', { params: { path }, body })),
    cpuRead: async (body: RequestBody<Op<'cpu/read'>>) => ok(await http.POST('/v1/sessions/{id}/cpu/read', { params: { path }, body })),
    deviceWrite: async (body: RequestBody<Op<'device/write'>>) => ok(await http.POST('/v1/sessions/{id}/device/write', { params: { path }, body })),
    deviceRead: async (body: RequestBody<Op<'device/read'>>) => ok(await http.POST('/v1/sessions/{id}/device/read', { params: { path }, body })),
    /** Live mappings, a page at a time: pass the previous answer's `next` as `after`. */
    mappings: async (query: { after?: number; limit?: number } = {}) => ok(await http.GET('/v1/sessions/{id}/mappings', { params: { path, query } })),
    debug: async () => ok(await http.GET('/v1/sessions/{id}/debug', { params: { path } })),
    faults: async () => ok(await http.GET('/v1/sessions/{id}/faults', { params: { path } })),
    summary: async () => ok(await http.GET('/v1/sessions/{id}', { params: { path } })),
    /** DELETE the session; the answer is the leak report. */
    close: async () => ok(await http.DELETE('/v1/sessions/{id}', { params: { path } })),
  };
}

export type DmaemuSession = ReturnType<typeof sessionClient> & { config: Schemas['SessionConfig'] };

export interface ClientOptions {
  /** A fetch to use instead of the global one (tests, proxies, custom agents). */
  fetch?: typeof globalThis.fetch;
}

/** A typed client for the dmaemu service at `baseUrl` (e.g. http://127.0.0.1:3000). */
export function createDmaemuClient(baseUrl: string, options: ClientOptions = {}) {
  const http = createClient<paths>({ baseUrl: baseUrl.replace(/\/+$/, ''), ...(options.fetch ? { fetch: options.fetch } : {}) });
  return {
    /** The raw openapi-fetch client: every path of the document, typed. */
    http,
    healthz: async () => ok(await http.GET('/healthz')),
    /** POST /v1/sessions (every field optional: Linux's defaults) → a session client. */
    async createSession(config: RequestBody<'/v1/sessions'> = {}): Promise<DmaemuSession> {
      const created = ok(await http.POST('/v1/sessions', { body: config }));
      return { ...sessionClient(http, created.id), config: created.config };
    },
    /** A client for a session that already exists (its id). */
    session: (id: string) => sessionClient(http, id),
  };
}

export type DmaemuClient = ReturnType<typeof createDmaemuClient>;
