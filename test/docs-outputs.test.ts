// The outputs the docs show are the service's: each walk-through's ```sh blocks run for real
// (bash and curl against a live server on 127.0.0.1), and the ```json block that follows a block
// must be exactly what it printed (the session id and the server's address are the only things
// that differ from run to run; the docs' own are put back before comparing). A shown
// "request → answer" pair in docs/api.md is posted and compared the same way. A JSON block
// that leaves something out (with "…") must say so: the word "abbreviated" in the lines just
// above it.
//
// Lines that start the server (`npm run build`, `node dist/…`) and the closing `kill %1` are not
// run: the test's own server stands in for them.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildApp } from '../src/service/app.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Block {
  lang: string;
  text: string;
  /** The prose between the previous block and this one. */
  before: string;
  line: number;
}

/** The fenced blocks of a Markdown file, in order. */
export function blocksOf(markdown: string): Block[] {
  const out: Block[] = [];
  const lines = markdown.split('\n');
  let prose: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i] ?? '');
    if (!open) {
      prose.push(lines[i] ?? '');
      continue;
    }
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] ?? ''); i++) body.push(lines[i] ?? '');
    out.push({ lang: open[1] ?? '', text: body.join('\n'), before: prose.join('\n'), line: start + 1 });
    prose = [];
  }
  return out;
}

/** Concatenated JSON values (curl prints one answer after another, often without a newline). */
export function jsonValues(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i;
    } else if ((c === '}' || c === ']') && --depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
  }
  return out;
}

/** Lines the test's own server replaces. */
const SERVER_LINE = /^\s*(npm run build|PORT=\S+ node dist\/|kill %1|BASE=\S+ examples\/)/;

/**
 * A shell block the walk-through runs: curl calls (with the shell around them), or only variable
 * assignments; never one that installs, builds or starts anything (npm, npx, docker…).
 */
function runnable(b: Block): boolean {
  if (b.lang !== 'sh') return false;
  const lines = b.text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#') && !SERVER_LINE.test(l));
  if (lines.some((l) => /\b(npm|npx|docker|podman|git)\b/.test(l))) return false;
  return b.text.includes('curl') || (lines.length > 0 && lines.every((l) => /^[A-Z_]+=\S+$/.test(l.trim())));
}

/** Runs a file's curl blocks in one bash; each block's output, keyed by the block's index. */
async function runBlocks(blocks: Block[], base: string, docBase: string, docId: string): Promise<Map<number, string>> {
  const marker = '@@dmaemu-docs-block@@';
  const script = ['set -u', `DOCID=''`, `base_real='${base}'`];
  blocks.forEach((b, i) => {
    if (!runnable(b)) return;
    const text = b.text
      .split('\n')
      .filter((l) => !SERVER_LINE.test(l))
      .join('\n')
      .split(docBase)
      .join(base)
      .split(docId)
      .join('$DOCID');
    script.push(`echo '${marker}${i}'`, text, 'echo', `DOCID=\${DOCID:-$(cat "$TMPOUT" 2>/dev/null | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)}`);
  });
  // Every curl's answer also goes to $TMPOUT, so the first session id is known to later blocks.
  const prelude = 'TMPOUT=$(mktemp); trap \'rm -f "$TMPOUT"\' EXIT; curl() { command curl "$@" | tee -a "$TMPOUT"; }';
  const { stdout } = await run('bash', ['-c', `${prelude}\n${script.join('\n')}`], { cwd: root, maxBuffer: 16 << 20 });
  const out = new Map<number, string>();
  for (const part of stdout.split(marker).slice(1)) {
    const nl = part.indexOf('\n');
    out.set(Number(part.slice(0, nl)), part.slice(nl + 1));
  }
  return out;
}

const app = await buildApp({ logLevel: 'silent', dataDir: null });
const base = (await app.listen({ host: '127.0.0.1', port: 0 })).replace(/\/$/, '');
t.teardown(() => app.close());

/** Files whose shell blocks are walked through against a server, and the server address they show. */
const WALKS: Record<string, string> = {
  'docs/walkthrough-stale-data.md': 'http://127.0.0.1:3999',
  'README.md': 'http://127.0.0.1:3000',
};

for (const [file, docBase] of Object.entries(WALKS)) {
  t.test(`${file}: every JSON output shown after a shell block is what running the block prints`, async (t) => {
    const blocks = blocksOf(readFileSync(path.join(root, file), 'utf8'));
    const docId = /"id":"([\w-]{22})"/.exec(blocks.filter((b) => b.lang === 'json').map((b) => b.text).join('\n'))?.[1] ?? 'no-session-id-shown';
    const outputs = await runBlocks(blocks, base, docBase, docId);
    let checked = 0;
    blocks.forEach((b, i) => {
      const prev = blocks[i - 1];
      if (b.lang !== 'json' || prev?.lang !== 'sh' || b.before.trim() !== '' || !outputs.has(i - 1)) return;
      const printed = (outputs.get(i - 1) ?? '').split(base).join(docBase);
      const realId = /"id":"([\w-]{22})"/.exec([...outputs.values()].join('\n'))?.[1];
      const got = jsonValues(realId ? printed.split(realId).join(docId) : printed);
      t.same(got, jsonValues(b.text), `${file}:${b.line}: the output of the block at line ${prev.line}`);
      checked++;
    });
    t.ok(checked >= 1, `${checked} outputs checked`);
  });
}

t.test('docs/api.md: each request → answer pair is what the service answers in a fresh session', async (t) => {
  const blocks = blocksOf(readFileSync(path.join(root, 'docs/api.md'), 'utf8'));
  let checked = 0;
  for (let i = 1; i < blocks.length; i++) {
    const [req, res] = [blocks[i - 1], blocks[i]];
    if (req?.lang !== 'json' || res?.lang !== 'json' || res.before.trim() !== '→') continue;
    // The heading above names the call: "### `/map_sg` — …".
    const heading = [...blocks.slice(0, i - 1).map((b) => b.before), req.before].join('\n').match(/^### `(\/[\w/]+)`/gm)?.pop();
    const call = heading?.slice(5, -1) ?? '';
    const s = (await (await fetch(`${base}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { id: string };
    const r = await fetch(`${base}/v1/sessions/${s.id}${call}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: req.text });
    t.same(await r.json(), jsonValues(res.text)[0], `docs/api.md:${res.line}: POST ${call}`);
    checked++;
  }
  t.ok(checked >= 1, `${checked} pairs checked`);
});

t.test('a JSON block that leaves something out (…) says it is abbreviated', async (t) => {
  const unmarked: string[] = [];
  for (const file of ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]) {
    for (const b of blocksOf(readFileSync(path.join(root, file), 'utf8'))) {
      const above = b.before.split('\n').slice(-3).join('\n');
      if (b.lang === 'json' && b.text.includes('…') && !/abbreviated/i.test(above)) unmarked.push(`${file}:${b.line}`);
    }
  }
  t.same(unmarked, []);
});

t.test('the checker can fail: a wrong output is a difference, a JSON stream splits into its values', async (t) => {
  t.same(jsonValues('{"written":12}{"handle":1,"s":"}{"}\n[1,2]'), [{ written: 12 }, { handle: 1, s: '}{' }, [1, 2]]);
  const md = '```sh\ncurl -s -d \'{"phys":"0x81000000","data":"ERERERERERERERER"}\' $S/cpu/write\n```\n```json\n{"written":13}\n```\n';
  const [sh, json] = blocksOf(md);
  t.equal(sh?.lang, 'sh');
  t.equal(json?.before, '', 'the output block follows the command directly');
  t.notSame(jsonValues('{"written":12}'), jsonValues(json?.text ?? ''), '12 bytes written is not the 13 the block claims');
});
