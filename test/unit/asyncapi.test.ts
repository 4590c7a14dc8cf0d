/**
 * The AsyncAPI document (/asyncapi.json) and docs/protocol.md: valid AsyncAPI 3, covering every
 * frame, error code and close code of protocol v1, examples that pass their own schemas (and the
 * gateway's validator), and a committed page that matches the generator.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser, type AsyncAPIDocumentInterface, type MessageInterface } from '@asyncapi/parser';
import { Value } from '@sinclair/typebox/value';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { asyncApiDocument, jsonSchema, protocolFrames } from '../../shared/protocol/asyncapi.ts';
import { CLOSE_CODES, ERROR_CODES } from '../../shared/protocol/codes.ts';
import { renderProtocolMarkdown } from '../../shared/protocol/markdown.ts';
import { PendingRequests, Requests } from '../../shared/protocol/schemas.ts';
import { parseRequest } from '../../shared/protocol/validate.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Protocol v1 as PROTOCOL.md names it (checked against PROTOCOL.md itself below when it is there). */
const REQUEST_TYPES = ['join', 'leave', 'publish', 'typing', 'history', 'presence', 'direct', 'notifications.list', 'notifications.read', 'refresh', 'ping'];
const EVENT_TYPES = ['welcome', 'message', 'presence', 'typing', 'direct', 'notification', 'notifications.read', 'error'];
/** Additive events beyond PROTOCOL.md (documented here and in the AsyncAPI document). */
const ADDITIVE_EVENT_TYPES = ['stats'];
const HTTP_ROUTES = [
  'POST /api/tickets',
  'POST /api/notifications',
  'POST /api/rooms/{room}/messages',
  'GET /api/rooms/{room}/presence',
  'GET /sse',
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'GET /asyncapi.json',
];

/** The contract, when the repository sits next to it (../shared/PROTOCOL.md). */
function protocolMd(): string | undefined {
  const path = resolve(root, '../shared/PROTOCOL.md');
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

function section(md: string, heading: string): string {
  const start = md.indexOf(`## ${heading}`);
  expect(start, `PROTOCOL.md has a "## ${heading}" section`).toBeGreaterThanOrEqual(0);
  const end = md.indexOf('\n## ', start + 3);
  return md.slice(start, end < 0 ? undefined : end);
}

const all = (text: string, re: RegExp) => [...text.matchAll(re)].map((m) => m[1]!);

type Raw = Record<string, unknown>;
const typeOf = (m: MessageInterface) => (m.payload()?.json() as Raw | undefined)?.properties as Record<string, Raw> | undefined;
const frameType = (m: MessageInterface) => typeOf(m)?.type?.const as string | undefined;

describe('AsyncAPI document', () => {
  const doc = asyncApiDocument();
  let parsed: AsyncAPIDocumentInterface;

  beforeAll(async () => {
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(doc));
    const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`);
    expect(errors).toEqual([]);
    expect(document).toBeDefined();
    parsed = document!;
  });

  it('is valid AsyncAPI 3.0.0 (no error diagnostics from @asyncapi/parser)', () => {
    expect(parsed.version()).toBe('3.0.0');
    expect(parsed.info().version()).toBe('1');
    expect(parsed.channels().get('ws')?.address()).toBe('/ws');
    expect(parsed.channels().get('sse')?.address()).toBe('/sse');
  });

  it('is valid for any server URL, and describes it', async () => {
    const custom = asyncApiDocument({ serverUrl: 'wss://chat.example.com/rt' });
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(custom));
    expect(diagnostics.filter((d) => d.severity === 0)).toEqual([]);
    const ws = document!.servers().get('websocket')!;
    expect([ws.protocol(), ws.host(), ws.pathname()]).toEqual(['wss', 'chat.example.com', '/rt']);
    expect(document!.servers().get('http')!.protocol()).toBe('https');
  });

  it('sends every request type, each with its reply and error as the answer', () => {
    const sends = parsed.operations().all().filter((op) => op.isSend());
    const sent = new Map<string, (typeof sends)[number]>();
    for (const op of sends) for (const m of op.messages().all()) sent.set(frameType(m)!, op);
    expect([...sent.keys()].sort()).toEqual([...REQUEST_TYPES].sort());
    for (const [type, op] of sent) {
      const answers = op.reply()?.messages().all() ?? [];
      const answerTypes = answers.map(frameType).sort();
      expect(answerTypes, `answers to ${type}`).toEqual(type === 'ping' ? ['error', 'pong'] : ['error', 'reply']);
      for (const m of [...op.messages().all(), ...answers]) expect(m.correlationId()?.location(), m.id()).toBe('$message.payload#/id');
    }
  });

  it('receives every event type on the WebSocket', () => {
    const received = parsed
      .operations()
      .all()
      .filter((op) => op.isReceive() && op.channels().all().some((c) => c.address() === '/ws'))
      .flatMap((op) => op.messages().all().map(frameType));
    expect([...received].sort()).toEqual([...EVENT_TYPES, ...ADDITIVE_EVENT_TYPES].sort());
  });

  it('names the same request and event types as PROTOCOL.md', () => {
    const md = protocolMd();
    if (md) {
      const requests = all(section(md, 'Frames from the client'), /^\| `([a-z.]+)` \|/gm);
      const events = all(section(md, 'Frames from the server'), /^- `([a-z.]+)` —/gm);
      expect(requests.sort()).toEqual([...REQUEST_TYPES].sort());
      expect(events.sort()).toEqual([...EVENT_TYPES].sort());
    }
  });

  it('marks exactly the requests the gateway does not handle yet as planned', () => {
    const status = new Map<string, unknown>();
    for (const op of parsed.operations().all().filter((o) => o.isSend())) {
      status.set(frameType(op.messages().all()[0]!)!, op.extensions().get('x-rt-status')?.value());
    }
    for (const type of Object.keys(Requests)) expect(status.get(type), type).toBeUndefined();
    for (const type of Object.keys(PendingRequests)) expect(status.get(type), type).toBe('planned');
    expect(Object.keys(Requests).filter((t) => t in PendingRequests)).toEqual([]);
  });

  it('documents every error code and close code of codes.ts', () => {
    const components = doc.components as Raw;
    const schemas = components.schemas as Record<string, { anyOf: { const: unknown; description: string }[] }>;
    expect(schemas.ErrorCode!.anyOf.map((v) => v.const)).toEqual(Object.keys(ERROR_CODES));
    expect(schemas.CloseCode!.anyOf.map((v) => v.const)).toEqual(Object.values(CLOSE_CODES).map((c) => c.code));
    expect(components['x-rt-error-codes']).toEqual(Object.entries(ERROR_CODES).map(([code, e]) => ({ code, ...e })));
    expect(components['x-rt-close-codes']).toEqual(Object.entries(CLOSE_CODES).map(([name, c]) => ({ name, ...c })));
    const error = parsed.messages().get('error')!;
    expect((typeOf(error)!.code!.anyOf as { const: string }[]).map((v) => v.const)).toEqual(Object.keys(ERROR_CODES));
  });

  it('codes.ts has every error code and close code of PROTOCOL.md', () => {
    const md = protocolMd();
    if (md) {
      const errors = section(md, 'Errors and close codes');
      const errorCodes = all(errors.slice(0, errors.indexOf('\n\n')), /`([a-z_]+)`/g);
      const closeCodes = all(errors, /^\| (\d{4}) \|/gm).map(Number);
      expect(errorCodes.length).toBeGreaterThanOrEqual(10);
      expect(closeCodes.length).toBeGreaterThanOrEqual(9);
      expect(Object.keys(ERROR_CODES)).toEqual(expect.arrayContaining(errorCodes));
      expect(Object.values(CLOSE_CODES).map((c) => c.code)).toEqual(expect.arrayContaining(closeCodes));
    }
  });

  it('describes every HTTP route of PROTOCOL.md', () => {
    const routes = (doc['x-rt-http-api'] as { method: string; path: string }[]).map((e) => `${e.method} ${e.path}`);
    expect(routes.sort()).toEqual([...HTTP_ROUTES].sort());
    const md = protocolMd();
    if (md) expect(all(section(md, 'HTTP API'), /`((?:GET|POST) \/[^`?\s]*)/g).sort()).toEqual([...HTTP_ROUTES].sort());
  });

  it('has an example of every message, valid against its own schema and the document payload', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    const frames = protocolFrames();
    expect(frames.map((f) => f.key).sort()).toEqual(Object.keys((doc.components as Raw).messages as Raw).sort());
    for (const frame of frames) {
      const message = parsed.messages().get(frame.key)!;
      const examples = message.examples().all();
      expect(examples.length, frame.key).toBeGreaterThan(0);
      for (const example of examples) {
        const payload = example.payload();
        expect(Value.Check(frame.schema, payload), `${frame.key}: ${[...Value.Errors(frame.schema, payload)].map((e) => `${e.path} ${e.message}`).join('; ')}`).toBe(true);
        const validate = ajv.compile(message.payload()!.json());
        expect(validate(payload), `${frame.key}: ${ajv.errorsText(validate.errors)}`).toBe(true);
        expect((payload as Raw).type).toBe(frame.type);
      }
    }
  });

  it('rejects a frame of the wrong shape (the schema checks are not vacuous)', () => {
    for (const frame of protocolFrames()) {
      expect(Value.Check(frame.schema, { ...frame.example, type: 'bogus' }), frame.key).toBe(false);
      const required = (jsonSchema(frame.schema).required as string[]).filter((k) => k !== 'type');
      for (const field of required) {
        const { [field]: _dropped, ...rest } = frame.example;
        expect(Value.Check(frame.schema, rest), `${frame.key} without ${field}`).toBe(false);
      }
    }
  });

  it('carries the request schemas the gateway validates with', () => {
    for (const frame of protocolFrames().filter((f) => f.kind === 'request')) {
      const parsedRequest = parseRequest(JSON.stringify(frame.example));
      if (frame.status === 'implemented') {
        expect(parsedRequest, frame.key).toMatchObject({ ok: true });
        expect(parsed.messages().get(frame.key)!.payload()!.json(), frame.key).toMatchObject(jsonSchema(Requests[frame.type as keyof typeof Requests]));
      } else {
        expect(parsedRequest, frame.key).toMatchObject({ ok: false, code: 'unknown_type' });
      }
    }
  });

  it('is plain JSON: no TypeBox symbols, no $id', () => {
    const text = JSON.stringify(doc);
    expect(JSON.parse(text)).toEqual(doc);
    expect(text).not.toContain('"$id"');
  });
});

describe('docs/protocol.md', () => {
  const page = readFileSync(resolve(root, 'docs/protocol.md'), 'utf8');

  it('is what `npm run docs:protocol` generates from the document now', () => {
    expect(page === renderProtocolMarkdown(asyncApiDocument()), 'docs/protocol.md is stale: run `npm run docs:protocol`').toBe(true);
  });

  it('documents every frame, error code and close code', () => {
    for (const frame of protocolFrames()) {
      expect(page, frame.key).toMatch(new RegExp(`^#{3,4} ${frame.title.replace(/`/g, '').replace(/\./g, '\\.')}$`, 'm'));
    }
    for (const code of Object.keys(ERROR_CODES)) expect(page).toContain(`| \`${code}\` |`);
    for (const { code } of Object.values(CLOSE_CODES)) expect(page).toContain(`| ${code} |`);
  });
});
