// HTTP-side test helpers: a JSON client over `app.inject` that checks the wire rules API.md
// states for *every* response (lowercase hex addresses, no JSON number at or past 2^53, errors
// in Fastify's shape with a documented code and no stack trace), so each test only has to say
// what its own rule decides.

import type { FastifyInstance } from 'fastify';
import { ERROR_CODES } from '../../src/core/errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

export interface Reply {
  status: number;
  headers: Record<string, unknown>;
  text: string;
  body: Obj;
}

/**
 * A wire value as text for a match or a message: a string as it is, anything else as its JSON,
 * so a value of the wrong shape shows itself instead of "[object Object]".
 */
export function asText(v: Json | undefined): string {
  return typeof v === 'string' ? v : v === undefined ? 'undefined' : JSON.stringify(v);
}

/** 2^53: past this a JSON number stops being exact in every JavaScript client. */
const TWO_POW_53 = 2 ** 53;

/** Violations of the wire conventions in a parsed JSON value (empty when it is clean). */
export function wireViolations(v: unknown, path = '$'): string[] {
  if (typeof v === 'number') {
    return Math.abs(v) >= TWO_POW_53 ? [`${path}: number ${v} is at or past 2^53 (must be a hex string)`] : [];
  }
  if (typeof v === 'string') {
    // An address: hex on output is lowercase with a 0x prefix.
    if (/^0[xX][0-9a-fA-F]+$/.test(v) && !/^0x[0-9a-f]+$/.test(v)) return [`${path}: address ${v} is not lowercase hex`];
    return [];
  }
  if (Array.isArray(v)) return v.flatMap((x, i) => wireViolations(x, `${path}.${i}`));
  if (v !== null && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => wireViolations(x, `${path}.${k}`));
  return [];
}

/** Violations of API.md's error shape `{ statusCode, error, code, message }`. */
export function errorViolations(status: number, body: Obj, text: string): string[] {
  const out: string[] = [];
  const keys = Object.keys(body).sort().join(',');
  if (keys !== 'code,error,message,statusCode') out.push(`error body keys are ${keys}`);
  if (body.statusCode !== status) out.push(`statusCode ${asText(body.statusCode)} differs from HTTP status ${status}`);
  const code = body.code;
  if (typeof code !== 'string' || !(code in ERROR_CODES)) out.push(`code ${asText(code)} is not in ERROR_CODES`);
  else if (ERROR_CODES[code as keyof typeof ERROR_CODES].status !== status) out.push(`code ${code} is documented with another status`);
  // A V8 stack frame ("    at fn (file.ts:12:5)") or a source path must never reach a client.
  if (/\n\s+at\s|\.[cm]?[jt]s:\d+:\d+|node_modules|"stack"/.test(text)) out.push('error body carries a stack trace or a source path');
  return out;
}

export interface ClientOptions {
  /** Every error code seen, so a suite can check it met each documented code. */
  seenCodes?: Set<string>;
}

export interface RequestOptions {
  query?: string;
  headers?: Record<string, string>;
  /** Sent as-is (a string) instead of JSON-encoding `body`. */
  raw?: string;
}

/** A JSON client over app.inject; throws when a response breaks the wire conventions. */
export function client(app: FastifyInstance, opts: ClientOptions = {}) {
  async function request(method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown, ro: RequestOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...ro.headers };
    let payload: string | undefined;
    if (ro.raw !== undefined) payload = ro.raw;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await app.inject({ method, url: ro.query ? `${url}?${ro.query}` : url, headers, ...(payload === undefined ? {} : { payload }) });
    const text = res.body;
    const isJson = String(res.headers['content-type'] ?? '').startsWith('application/json');
    const parsed = (isJson && text.length > 0 ? JSON.parse(text) : {}) as Obj;
    const problems = isJson ? wireViolations(parsed) : [];
    if (res.statusCode >= 400) {
      problems.push(...errorViolations(res.statusCode, parsed, text));
      if (typeof parsed.code === 'string') opts.seenCodes?.add(parsed.code);
    }
    if (problems.length > 0) throw new Error(`${method} ${url} → ${res.statusCode}: ${problems.join('; ')}\n${text.slice(0, 500)}`);
    return { status: res.statusCode, headers: res.headers, text, body: parsed };
  }
  return {
    request,
    get: (url: string, ro?: RequestOptions) => request('GET', url, undefined, ro),
    post: (url: string, body?: unknown, ro?: RequestOptions) => request('POST', url, body, ro),
    del: (url: string) => request('DELETE', url),
    /** POST /v1/sessions; fails loudly unless it answers 201. */
    async session(config: unknown = {}): Promise<{ id: string; url: string; config: Obj }> {
      const r = await request('POST', '/v1/sessions', config);
      if (r.status !== 201) throw new Error(`POST /v1/sessions → ${r.status}: ${r.text}`);
      const id = r.body.id as string;
      return { id, url: `/v1/sessions/${id}`, config: r.body.config as Obj };
    },
  };
}

export type Client = ReturnType<typeof client>;
