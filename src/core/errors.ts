// The one error module of the core. Every rejection is a DmaemuError with a stable code from
// ERROR_CODES (its HTTP status lives here too, so routes and /batch map errors the same way)
// and, where it applies, the name of the offending field. Failures that Linux itself reports
// (ENOMEM, EIO, ...) are *not* errors: they come back as results (MapFailure in mapping.ts).

export const ERROR_CODES = {
  DMAEMU_INVALID_ARGUMENT: { status: 400, doc: 'A value Linux would never accept; the message names the field' },
  DMAEMU_SESSION_NOT_FOUND: { status: 404, doc: 'No live session has that id (never existed, deleted or expired)' },
  DMAEMU_HANDLE_NOT_FOUND: { status: 404, doc: 'No live mapping or coherent buffer has that handle' },
  DMAEMU_TOO_MANY_SESSIONS: { status: 429, doc: 'Live sessions are at DMAEMU_MAX_SESSIONS' },
  DMAEMU_TOO_MANY_MAPPINGS: { status: 429, doc: 'Live mappings in the session are at DMAEMU_MAX_MAPPINGS' },
  DMAEMU_TOO_MANY_SG_ENTRIES: { status: 429, doc: 'A scatterlist longer than DMAEMU_MAX_SG_ENTRIES' },
  DMAEMU_TOO_MANY_BATCH_OPS: { status: 429, doc: 'A batch longer than DMAEMU_MAX_BATCH_OPS' },
  DMAEMU_MEMORY_LIMIT: { status: 429, doc: "The session's touched emulated RAM would exceed its memory_limit" },
  // 507, not 429: the whole service is full, not this client too fast; retrying (what 429 invites) cannot help until some session frees memory.
  DMAEMU_MEMORY_BUDGET: { status: 507, doc: "The service-wide memory budget (DMAEMU_MEMORY_BUDGET) cannot hold the call's footprint; nothing was done. Unmap, free or delete sessions" },
  DMAEMU_MALFORMED_BODY: { status: 400, doc: 'The body is not valid JSON (or carries __proto__ / constructor.prototype keys)' },
  DMAEMU_ROUTE_NOT_FOUND: { status: 404, doc: 'No such endpoint (see /openapi.json)' },
  DMAEMU_BODY_TOO_LARGE: { status: 413, doc: 'The body exceeds DMAEMU_BODY_LIMIT bytes (default 8 MiB)' },
  DMAEMU_REQUEST_TOO_COSTLY: { status: 413, doc: "The request's estimated work (ops + scatterlist entries + page rows + 4 KiB pages touched) exceeds DMAEMU_MAX_REQUEST_COST; nothing was done" },
  DMAEMU_RESPONSE_TOO_LARGE: { status: 413, doc: "The request's estimated answer exceeds DMAEMU_MAX_RESPONSE_BYTES (a trace import: the answers its log would keep); nothing was done" },
  DMAEMU_UNSUPPORTED_MEDIA_TYPE: { status: 415, doc: 'Bodies must be application/json (POST /batch also takes application/vnd.dmaemu.batch)' },
  DMAEMU_PRECONDITION_FAILED: { status: 412, doc: "A static file's If-Match / If-Unmodified-Since precondition does not hold (RFC 9110 §13.1)" },
  DMAEMU_RANGE_NOT_SATISFIABLE: { status: 416, doc: "A static file's Range lies past its end; Content-Range gives its length (RFC 9110 §15.5.17)" },
  DMAEMU_TRACE_UNAVAILABLE: { status: 409, doc: "The session's history was compacted into a snapshot: no trace from creation exists any more" },
  DMAEMU_PERSISTENCE_FAILED: { status: 503, doc: "The session's op log could not be written (disk full, I/O error): the call is not durable and the session refuses further calls" },
  DMAEMU_INTERNAL: { status: 500, doc: 'An invariant of the emulator broke: a bug in dmaemu, never silent' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  507: 'Insufficient Storage',
};

export class DmaemuError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  constructor(code: ErrorCode, message: string, field?: string) {
    super(field ? `${field}: ${message}` : message);
    this.name = 'DmaemuError';
    this.code = code;
    this.field = field;
  }

  get statusCode(): number {
    return ERROR_CODES[this.code].status;
  }

  /** Fastify's error shape. */
  toBody(): { statusCode: number; error: string; code: string; message: string } {
    const statusCode = this.statusCode;
    return { statusCode, error: STATUS_TEXT[statusCode] ?? 'Error', code: this.code, message: this.message };
  }
}

export function invalid(field: string, message: string): DmaemuError {
  return new DmaemuError('DMAEMU_INVALID_ARGUMENT', message, field);
}

export function internal(message: string): DmaemuError {
  return new DmaemuError('DMAEMU_INTERNAL', message);
}
