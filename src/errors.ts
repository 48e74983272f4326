// The one error module of the core. Every rejection of nonsense input is a DmaemuError with a
// stable code and, where it applies, the name of the offending field; the HTTP layer maps the
// code to a status. Failures that Linux itself reports (ENOMEM, EIO, ...) are *not* errors:
// they come back as results (see KernelErrno).

export type ErrorCode =
  | 'DMAEMU_INVALID_ARGUMENT' // 400: a value Linux would never accept (the field is named)
  | 'DMAEMU_NOT_FOUND' // 404: unknown session or handle
  | 'DMAEMU_LIMIT' // 429: a configured limit (sessions, mappings, touched memory, ...)
  | 'DMAEMU_INTERNAL'; // 500: an invariant of the emulator broke (a bug in dmaemu)

export class DmaemuError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  constructor(code: ErrorCode, message: string, field?: string) {
    super(field ? `${field}: ${message}` : message);
    this.name = 'DmaemuError';
    this.code = code;
    this.field = field;
  }
}

export function invalid(field: string, message: string): DmaemuError {
  return new DmaemuError('DMAEMU_INVALID_ARGUMENT', message, field);
}

export function notFound(what: string): DmaemuError {
  return new DmaemuError('DMAEMU_NOT_FOUND', `${what} not found`);
}

export function limitExceeded(field: string, message: string): DmaemuError {
  return new DmaemuError('DMAEMU_LIMIT', message, field);
}

/** An emulator invariant broke: never the caller's fault, never silent. */
export function internal(message: string): DmaemuError {
  return new DmaemuError('DMAEMU_INTERNAL', message);
}

/** The errno a failing kernel DMA-API call reports. */
export type KernelErrno = 'ENOMEM' | 'EIO' | 'EINVAL';

export interface KernelError {
  errno: KernelErrno;
  message: string;
}
