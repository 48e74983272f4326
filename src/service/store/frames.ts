// The on-disk framing of an op log: a file starts with MAGIC, then frames of
//   u32le payload length | u32le crc32(kind byte + payload) | u8 kind | payload
// so a torn tail (a crash mid-write) and a flipped bit are both detected, and a file that is
// not an op log at all is recognised from its first bytes.
//
// A run of zero bytes after the last frame is not part of the log (the writer preallocates
// space so that an fdatasync need not also commit a new file size).
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
  /** The last frame is incomplete or fails its checksum with nothing after it: a torn write. */
  | { kind: 'torn'; offset: number }
  /** A frame fails its checksum and more bytes follow: the file is damaged, not merely cut short. */
  | { kind: 'corrupt'; offset: number; reason: string };

export interface DecodedFrames {
  frames: Frame[];
  /** Bytes of the valid prefix (MAGIC + whole, intact frames). */
  validBytes: number;
  problem: FrameProblem | null;
}

function zeroFrom(buf: Buffer, at: number): boolean {
  for (let i = at; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
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
    if (buf.length - at < HEADER) return { frames, validBytes: at, problem: { kind: 'torn', offset: at } };
    const len = buf.readUInt32LE(at);
    const end = at + HEADER + len;
    if (end > buf.length) return { frames, validBytes: at, problem: { kind: 'torn', offset: at } };
    const kindByte = buf[at + 8];
    const sumOk = crc32(buf.subarray(at + 8, end)) === buf.readUInt32LE(at + 4);
    const kind: FrameKind | undefined = kindByte === KIND_BYTE.J ? 'J' : kindByte === KIND_BYTE.S ? 'S' : undefined;
    if (!sumOk || kind === undefined) {
      // Nothing but zeros (or nothing) after it: the last write was cut short.
      if (zeroFrom(buf, end)) return { frames, validBytes: at, problem: { kind: 'torn', offset: at } };
      return { frames, validBytes: at, problem: { kind: 'corrupt', offset: at, reason: sumOk ? `unknown frame kind ${String(kindByte)}` : 'checksum mismatch' } };
    }
    frames.push({ kind, payload: buf.subarray(at + HEADER, end), offset: at });
    at = end;
  }
  return { frames, validBytes: at, problem: null };
}
