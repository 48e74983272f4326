// Every HTTP error leaves in Fastify's shape { statusCode, error, code, message } with a code
// from ERROR_CODES; validation messages name the field; nothing internal (stacks, messages of
// unexpected exceptions) reaches a client.

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { DmaemuError, ERROR_CODES, type ErrorCode } from '../core/errors.js';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'DMAEMU_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'DMAEMU_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'DMAEMU_MALFORMED_BODY',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'DMAEMU_MALFORMED_BODY',
  FST_ERR_CTP_INVALID_JSON_BODY: 'DMAEMU_MALFORMED_BODY',
};

/**
 * Answers a plugin gives to the client's own request headers, raised as http-errors objects with
 * their status (@fastify/static's send: a Range past the file's end, an If-Match or
 * If-Unmodified-Since that does not hold). They are the client's doing, so they keep their status
 * and their headers (416's Content-Range) instead of falling through to DMAEMU_INTERNAL.
 */
const PLUGIN_STATUSES: Partial<Record<number, ErrorCode>> = {
  412: 'DMAEMU_PRECONDITION_FAILED',
  416: 'DMAEMU_RANGE_NOT_SATISFIABLE',
};

/** The fields an http-errors object carries besides Fastify's. */
interface HttpErrorFields {
  status?: unknown;
  headers?: unknown;
}

function pluginStatus(err: FastifyError & HttpErrorFields): ErrorCode | undefined {
  const status = typeof err.statusCode === 'number' ? err.statusCode : err.status;
  return typeof status === 'number' ? PLUGIN_STATUSES[status] : undefined;
}

/** Only the headers that describe the refusal (416's Content-Range) travel with it. */
function refusalHeaders(err: HttpErrorFields): Record<string, string> {
  const h = err.headers;
  if (typeof h !== 'object' || h === null) return {};
  const range = (h as Record<string, unknown>)['Content-Range'];
  return typeof range === 'string' ? { 'content-range': range } : {};
}

/** The request header a plugin's refusal answers, for the message: `headers.range: …`. */
function refusedHeader(code: ErrorCode, req: FastifyRequest): string {
  if (code === 'DMAEMU_RANGE_NOT_SATISFIABLE') return 'headers.range';
  return req.headers['if-match'] === undefined ? 'headers.if-unmodified-since' : 'headers.if-match';
}

interface Issue {
  instancePath: string;
  message?: string;
  params?: { keys?: string[] };
}

/** `body.sg.0.phys: must be a hex string …` — where, then what. */
function validationError(err: FastifyError & { validation: Issue[] }): DmaemuError {
  const issue = err.validation[0] as Issue;
  const where = [err.validationContext ?? 'body', ...issue.instancePath.split('/').filter(Boolean)];
  if (issue.params?.keys?.length) where.push(issue.params.keys.join(','));
  const field = where.join('.');
  return new DmaemuError('DMAEMU_INVALID_ARGUMENT', issue.message ?? 'invalid value', field);
}

export function errorHandler(err: FastifyError & HttpErrorFields, req: FastifyRequest, reply: FastifyReply): void {
  let e: DmaemuError;
  const fromPlugin = pluginStatus(err);
  if (err instanceof DmaemuError) e = err;
  else if (hasZodFastifySchemaValidationErrors(err)) e = validationError(err);
  else if (err.code && FASTIFY_CODES[err.code]) {
    const code = FASTIFY_CODES[err.code] as ErrorCode;
    e = new DmaemuError(code, code === 'DMAEMU_MALFORMED_BODY' ? err.message : ERROR_CODES[code].doc);
  }
  else if (fromPlugin) {
    e = new DmaemuError(fromPlugin, ERROR_CODES[fromPlugin].doc, refusedHeader(fromPlugin, req));
    void reply.headers(refusalHeaders(err));
  }
  else if (err instanceof SyntaxError || (err.statusCode === 400 && err.code?.startsWith('FST_ERR_CTP'))) e = new DmaemuError('DMAEMU_MALFORMED_BODY', 'the body is not valid JSON');
  else e = new DmaemuError('DMAEMU_INTERNAL', 'internal error (logged on the server)');
  if (e.statusCode >= 500) req.log.error({ err }, 'internal error');
  void reply.code(e.statusCode).send(e.toBody());
}

/**
 * Errors Fastify's router raises before any route runs (its `frameworkErrors` option): a URL
 * whose percent-escapes do not decode (FST_ERR_BAD_URL) and a path parameter over
 * maxParamLength, 100 characters (FST_ERR_MAX_PARAM_LENGTH, which Fastify would answer 414 in its
 * own shape). Both are a wrong request: 400 naming the URL. Anything else goes to errorHandler.
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const path = req.url.split('?')[0] ?? '';
  if (err.code === 'FST_ERR_BAD_URL' || err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    const what = err.code === 'FST_ERR_BAD_URL' ? 'a percent-escape that does not decode' : 'a path segment longer than 100 characters';
    const e = new DmaemuError('DMAEMU_INVALID_ARGUMENT', `${what} (${path.slice(0, 120)}${path.length > 120 ? '…' : ''})`, 'url');
    void reply.code(e.statusCode).send(e.toBody());
    return;
  }
  errorHandler(err, req, reply);
}

export function notFoundHandler(req: FastifyRequest, reply: FastifyReply): void {
  const e = new DmaemuError('DMAEMU_ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0] ?? ''} (see /openapi.json)`);
  void reply.code(e.statusCode).send(e.toBody());
}
