// The on-disk framing of an op log: a file starts with MAGIC, then frames of
//   u32le payload length | u32le crc32(kind byte + payload) | u8 kind | payload
// so a torn tail (a crash mid-write) and a flipped bit are both detected, and a file that is
// not an op log at all is recognised from its first bytes.
//
// A run of zero bytes after the last frame is not part of the log (the writer preallocates
// space so that an fdatasync need not also commit a new file size).
//
// Torn or damaged (docs/persistence.md "Torn tails and damage"): only an incomplete *last*
// record — its length runs past the end of the file, or the file (or the log, before the
// preallocated zeros) ends inside it — with no intact frame anywhere after it is a torn tail,
// which the store may cut off. Anything else wrong is damage, reported with its offset.
//
// Invariants: encodeFrame(k, p) decodes back to exactly (k, p); decodeFrames never throws on
// arbitrary bytes: it reports where the valid prefix ends and why.

import { crc32 } from 'node:zlib';

export const MAGIC = Buffer.from('DMAEMU-OPLOG-1\n', 'latin1');
const HEADER = 9;

/** 'J': a JSON record; 'S': a session snapshot (binary). */
export type FrameKind = 'J' | 'S';
const KIND_BYTE: Record<FrameKind, number> = { J: 0x4a, S: 0x53 };

export interface Frame {
  kind: FrameKind;
  payload: Buffer;
  /** Byte offset of the frame in the file. */
  offset: number;
}

export function encodeFrame(kind: FrameKind, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out[8] = KIND_BYTE[kind];
  payload.copy(out, HEADER);
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

export type FrameProblem =
  | { kind: 'foreign' }
  /**
   * The log's last record is incomplete: its header or its payload runs past the end of the file
   * (or into the preallocated zeros that end the log), and no intact frame starts anywhere after
   * it. A write cut short by a crash looks like this, and nothing else does.
   */
  | { kind: 'torn'; offset: number }
  /**
   * Anything else that is wrong: a bad checksum, an unknown kind or an impossible length with an
   * intact frame somewhere after it, or a complete last frame whose checksum fails (a flipped bit,
   * not a cut). The file is damaged: never truncated, never rewritten.
   */
  | { kind: 'corrupt'; offset: number; reason: string };

export interface DecodedFrames {
  frames: Frame[];
  /** Bytes of the valid prefix (MAGIC + whole, intact frames). */
  validBytes: number;
  problem: FrameProblem | null;
}

function zeroFrom(buf: Buffer, at: number, end = buf.length): boolean {
  for (let i = at; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Whether an intact frame (known kind, whole, checksum right) starts at `at`. */
function intactAt(buf: Buffer, at: number): boolean {
  if (buf.length - at < HEADER) return false;
  const kindByte = buf[at + 8];
  if (kindByte !== KIND_BYTE.J && kindByte !== KIND_BYTE.S) return false;
  const end = at + HEADER + buf.readUInt32LE(at);
  return end <= buf.length && crc32(buf.subarray(at + 8, end)) === buf.readUInt32LE(at + 4);
}

/** The first offset after `from` where an intact frame starts, or -1: records after a bad frame make it damage, not a torn tail. */
export function intactFrameAfter(buf: Buffer, from: number): number {
  for (let at = from + 1; at + HEADER <= buf.length; at++) if (intactAt(buf, at)) return at;
  return -1;
}

/**
 * Where the last write stopped inside frame [at, end): a torn frame's bytes end in the zeros the
 * writer preallocated (or in the end of the file) — a JSON record never holds a zero byte, and a
 * state frame is only ever written whole (compaction writes a new file and renames it).
 */
function cutShort(buf: Buffer, at: number, end: number): boolean {
  if (end > buf.length) return true;
  return buf[end - 1] === 0 && zeroFrom(buf, end);
}

export function decodeFrames(buf: Buffer): DecodedFrames {
  if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    // A crash between creating the file and writing its magic leaves a prefix of it: torn, not foreign.
    if (buf.length < MAGIC.length && MAGIC.subarray(0, buf.length).equals(buf)) return { frames: [], validBytes: 0, problem: { kind: 'torn', offset: 0 } };
    return { frames: [], validBytes: 0, problem: { kind: 'foreign' } };
  }
  const frames: Frame[] = [];
  let at = MAGIC.length;
  while (at < buf.length) {
    // No frame has kind byte 0: zeros here are the writer's preallocated tail (file-op-store.ts), the end of the log.
    if ((buf.length - at < HEADER || buf[at + 8] === 0) && zeroFrom(buf, at)) return { frames, validBytes: at, problem: null };
    const bad = (reason: string, torn: boolean): DecodedFrames => {
      const after = intactFrameAfter(buf, at);
      if (torn && after < 0) return { frames, validBytes: at, problem: { kind: 'torn', offset: at } };
      const where = after >= 0 ? `, with an intact record at byte ${after} after it` : '';
      return { frames, validBytes: at, problem: { kind: 'corrupt', offset: at, reason: reason + where } };
    };
    if (buf.length - at < HEADER) return bad('a record header cut short', true);
    const len = buf.readUInt32LE(at);
    const end = at + HEADER + len;
    if (end > buf.length) return bad(`a record length of ${len} bytes runs past the end of the file`, true);
    const kindByte = buf[at + 8];
    const sumOk = crc32(buf.subarray(at + 8, end)) === buf.readUInt32LE(at + 4);
    const kind: FrameKind | undefined = kindByte === KIND_BYTE.J ? 'J' : kindByte === KIND_BYTE.S ? 'S' : undefined;
    if (!sumOk || kind === undefined) return bad(sumOk ? `unknown frame kind ${String(kindByte)}` : 'checksum mismatch', cutShort(buf, at, end));
    frames.push({ kind, payload: buf.subarray(at + HEADER, end), offset: at });
    at = end;
  }
  return { frames, validBytes: at, problem: null };
}
