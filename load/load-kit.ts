// The client side both HTTP load scripts (load-http.ts, load-persist.ts) share: autocannon with
// its types, the map_sg(8)+unmap pair every connection repeats, and session creation.

import { createRequire } from 'node:module';

export interface AcRequest {
  method?: string;
  path?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  setupRequest?: (req: AcRequest, ctx: Record<string, unknown>) => AcRequest;
  onResponse?: (status: number, body: string, ctx: Record<string, unknown>) => void;
}

export interface AcResult {
  requests: { average: number; total: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
  /** CPU seconds the server process spent over the measured run (Linux /proc), when asked. */
  serverCpuS?: number;
}

export const autocannon = createRequire(import.meta.url)('autocannon') as (opts: Record<string, unknown>) => Promise<AcResult>;

export const JSON_HEADERS = { 'content-type': 'application/json' };

/** The scatterlist every pair maps: eight page-aligned 4 KiB entries 2 MiB apart (the odd ones one page further). */
export const SG = Array.from({ length: 8 }, (_, i) => ({ phys: `0x${(0x90000000 + i * 0x200000 + (i % 2) * 0x1000).toString(16)}`, length: 4096 }));
const MAP_BODY = JSON.stringify({ dir: 'to_device', sg: SG });

/** map_sg then unmap of the handle it returned, on every connection. */
export function pairRequests(base: string): AcRequest[] {
  return [
    {
      method: 'POST',
      path: `${base}/map_sg`,
      headers: JSON_HEADERS,
      body: MAP_BODY,
      onResponse: (_status, body, ctx) => {
        ctx.handle = (JSON.parse(body) as { handle: number }).handle;
      },
    },
    {
      method: 'POST',
      path: `${base}/unmap`,
      headers: JSON_HEADERS,
      setupRequest: (req, ctx) => ({ ...req, body: JSON.stringify({ handle: ctx.handle }) }),
    },
  ];
}

export async function createSession(url: string): Promise<string> {
  const res = await fetch(`${url}/v1/sessions`, { method: 'POST', headers: JSON_HEADERS, body: '{}' });
  if (res.status !== 201) throw new Error(`session create answered ${res.status}`);
  return ((await res.json()) as { id: string }).id;
}
