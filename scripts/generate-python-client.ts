// Writes clients/python/dmaemu_client.py from the service's own /openapi.json
// (`npm run client:python`): a TypedDict per schema (nested objects get their own, named after
// their place: MapSgResult's `segments` items are MapSgResultSegments), and a Client with one
// method per operation, named by its operationId, over urllib and json (the standard library
// only). test/python-client.test.ts fails when the committed file differs from a fresh one.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../client/generate.js';

export const PYTHON_CLIENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../clients/python/dmaemu_client.py');

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  items?: Schema | Schema[];
  prefixItems?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  description?: string;
};
type Op = {
  operationId: string;
  summary?: string;
  parameters?: { in: string; name: string; required?: boolean; schema: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
};

const PY_KEYWORDS = new Set(['False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif', 'else', 'except', 'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise', 'return', 'try', 'while', 'with', 'yield']);

const pascal = (s: string): string => s.replace(/(^|[_\W]+)(\w)/g, (_m, _p, c: string) => c.toUpperCase());

class Emitter {
  readonly classes: string[] = [];
  private readonly named = new Set<string>();

  /** A Python type for `s`; objects with properties become TypedDicts named `name`. */
  type(s: Schema, name: string): string {
    if (s.$ref) return s.$ref.split('/').pop() ?? 'Any';
    const alts = s.anyOf ?? s.oneOf;
    if (alts) {
      const nonNull = alts.filter((a) => a.type !== 'null');
      const union = [...new Set(nonNull.map((a, i) => this.type(a, nonNull.length > 1 ? `${name}${i}` : name)))].join(', ');
      const inner = nonNull.length > 1 ? `Union[${union}]` : union;
      return nonNull.length < alts.length ? `Optional[${inner}]` : inner;
    }
    if (s.const !== undefined) return `Literal[${JSON.stringify(s.const)}]`;
    if (s.enum) return `Literal[${s.enum.map((v) => JSON.stringify(v)).join(', ')}]`;
    const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
    if (types.length > 1) {
      const nonNull = types.filter((t) => t !== 'null').map((t) => this.type({ ...s, type: t }, name));
      const inner = nonNull.length > 1 ? `Union[${nonNull.join(', ')}]` : (nonNull[0] ?? 'None');
      return types.includes('null') ? `Optional[${inner}]` : inner;
    }
    switch (types[0]) {
      case 'string':
        return 'str';
      case 'integer':
        return 'int';
      case 'number':
        return 'float';
      case 'boolean':
        return 'bool';
      case 'null':
        return 'None';
      case 'array': {
        if (s.prefixItems) return `Tuple[${s.prefixItems.map((p, i) => this.type(p, `${name}${i}`)).join(', ')}]`;
        const items = Array.isArray(s.items) ? s.items[0] : s.items;
        return `List[${items ? this.type(items, name.replace(/s$/, '') === name ? `${name}Item` : name) : 'Any'}]`;
      }
      case 'object': {
        if (!s.properties || Object.keys(s.properties).length === 0) {
          const v = typeof s.additionalProperties === 'object' ? this.type(s.additionalProperties, `${name}Value`) : 'Any';
          return `Dict[str, ${v}]`;
        }
        this.typedDict(name, s);
        return name;
      }
      default:
        return 'Any';
    }
  }

  /** Field lists already emitted, so a shape met again (an IovaRange in every answer) is an alias. */
  private readonly byShape = new Map<string, string>();

  typedDict(name: string, s: Schema): void {
    if (this.named.has(name)) return;
    this.named.add(name);
    const required = new Set(s.required ?? []);
    const fields = Object.entries(s.properties ?? {}).map(([field, fs]) => {
      const t = this.type(fs, `${name}${pascal(field)}`);
      return [field, required.has(field) ? t : `NotRequired[${t}]`] as const;
    });
    const shape = JSON.stringify(fields);
    const same = this.byShape.get(shape);
    if (same) {
      this.classes.push(`${name} = ${same}`);
      return;
    }
    this.byShape.set(shape, name);
    // A field named like a Python keyword (sync's `for`) needs the functional form.
    if (fields.some(([f]) => PY_KEYWORDS.has(f) || !/^[A-Za-z_]\w*$/.test(f))) {
      this.classes.push(`${name} = TypedDict(${JSON.stringify(name)}, {\n${fields.map(([f, t]) => `    ${JSON.stringify(f)}: ${JSON.stringify(t)},`).join('\n')}\n})`);
      return;
    }
    const lines = [`class ${name}(TypedDict):`];
    if (s.description) lines.push(`    """${s.description.replace(/\\/g, '\\\\').replace(/"""/g, "'''")}"""`);
    for (const [f, t] of fields) lines.push(`    ${f}: ${t}`);
    if (fields.length === 0) lines.push('    pass');
    this.classes.push(lines.join('\n'));
  }
}

const jsonSchemaOf = (c?: Record<string, { schema: Schema }>): Schema | undefined => c?.['application/json']?.schema;

export async function pythonSource(): Promise<string> {
  const doc = (await openApiDocument()) as { info: { version: string }; paths: Record<string, Record<string, Op>>; components: { schemas: Record<string, Schema> } };
  const e = new Emitter();
  for (const [name, s] of Object.entries(doc.components.schemas)) {
    if (s.type === 'object' && s.properties) e.typedDict(name, s);
    else e.classes.push(`${name} = ${e.type(s, `${name}Value`)}`);
  }
  const methods: string[] = [];
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = op.parameters ?? [];
      const pathParams = params.filter((x) => x.in === 'path');
      const query = params.filter((x) => x.in === 'query');
      const body = jsonSchemaOf(op.requestBody?.content);
      const okStatus = Object.keys(op.responses).find((s) => s.startsWith('2')) ?? '200';
      const answer = jsonSchemaOf(op.responses[okStatus]?.content);
      const isJson = answer !== undefined;
      const ret = isJson ? e.type(answer, `${pascal(op.operationId)}Answer`) : 'str';
      const args = ['self', ...pathParams.map((x) => `${x.name}: str`)];
      if (body) args.push(`body: ${e.type(body, `${pascal(op.operationId)}Body`)}${op.operationId === 'create_session' || op.operationId === 'flush' ? ' = {}' : ''}`);
      if (query.length > 0) args.push('*', ...query.map((q) => `${q.name}: Optional[${e.type(q.schema, `${pascal(op.operationId)}${pascal(q.name)}`)}] = None`));
      const url = p.replace(/\{(\w+)\}/g, (_m, n: string) => `{urllib.parse.quote(${n}, safe='')}`);
      methods.push(
        [
          `    def ${op.operationId}(${args.join(', ')}) -> ${ret}:`,
          `        """${method.toUpperCase()} ${p}${op.summary ? `: ${op.summary.replace(/"""/g, "'''").replace(/\\/g, '\\\\')}` : ''}"""`,
          `        return self._call(${JSON.stringify(method.toUpperCase())}, f${JSON.stringify(url)}, ${body ? 'body' : 'None'}, {${query.map((q) => `${JSON.stringify(q.name)}: ${q.name}`).join(', ')}}, ${isJson ? 'True' : 'False'})  # type: ignore[no-any-return]`,
        ].join('\n'),
      );
    }
  }
  return `# Generated by \`npm run client:python\` (scripts/generate-python-client.ts) from the service's
# /openapi.json (dmaemu ${doc.info.version}): do not edit. test/python-client.test.ts fails when it is stale.
#
# A typed client for a running dmaemu service, standard library only (urllib, json, typing):
#
#     from dmaemu_client import Client
#     c = Client("http://127.0.0.1:3000")
#     s = c.create_session({"layout": "linux"})
#     r = c.map_sg(s["id"], {"dir": "to_device", "sg": [{"phys": "0x90000000", "length": 65536}]})
#     r["segments"]   # [{'dma_address': '0xffff0000', 'dma_length': 65536}]
#
# HTTP errors (4xx/5xx) raise DmaemuHttpError with the service's stable \`code\`; failures Linux
# itself reports are answers (\`error\`, 200), as on the wire.
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Literal, NotRequired, Optional, Tuple, TypedDict, Union  # Python >= 3.11


${e.classes.join('\n\n\n')}


class DmaemuHttpError(Exception):
    """An HTTP error answer: \`status\`, the stable \`code\` (DMAEMU_...), the whole \`body\`."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.code: Optional[str] = body.get("code") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"dmaemu answered {status}{' ' + self.code if self.code else ''}: {message}")


class Client:
    """One method per operation of the OpenAPI document, named by its operationId."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any, query: Dict[str, Any], is_json: bool) -> Any:
        q = {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in query.items() if v is not None}
        url = self.base_url + path + ("?" + urllib.parse.urlencode(q) if q else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                text = res.read().decode()
        except urllib.error.HTTPError as e:
            raw = e.read().decode()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw
            raise DmaemuHttpError(e.code, parsed) from None
        return json.loads(text) if is_json else text

${methods.join('\n\n')}
`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(PYTHON_CLIENT, await pythonSource());
  console.log(`wrote ${path.relative(process.cwd(), PYTHON_CLIENT)}`);
}
