/**
 * The AsyncAPI document (/asyncapi.json) and docs/protocol.md: valid AsyncAPI 3, covering every
 * frame, error code and close code of protocol v1, examples that pass their own schemas (and the
 * gateway's validator), and a committed page that matches the generator.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser, type AsyncAPIDocumentInterface, type MessageInterface } from '@asyncapi/parser';
import { Value } from '@sinclair/typebox/value';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { asyncApiDocument, jsonSchema, protocolFrames } from '../../shared/protocol/asyncapi.ts';
import { CLOSE_CODES, ERROR_CODES } from '../../shared/protocol/codes.ts';
import { renderProtocolMarkdown } from '../../shared/protocol/markdown.ts';
import { Events, Requests } from '../../shared/protocol/schemas.ts';
import { parseRequest } from '../../shared/protocol/validate.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Protocol v1: every type is written out here, so that adding or dropping one is a visible change. */
const REQUEST_TYPES = ['join', 'leave', 'publish', 'typing', 'history', 'presence', 'direct', 'read', 'conversations', 'notifications.list', 'notifications.read', 'refresh', 'ping'];
const EVENT_TYPES = ['welcome', 'message', 'presence', 'typing', 'direct', 'read', 'notification', 'notifications.read', 'error'];
/** Events beyond the chat protocol proper (the gateways' dashboard feed). */
const ADDITIVE_EVENT_TYPES = ['stats'];
const HTTP_ROUTES = [
  'POST /api/tickets',
  'POST /api/notifications',
  'POST /api/rooms/{room}/messages',
  'GET /api/rooms/{room}/presence',
  'GET /api/users/{user}/conversations',
  'GET /sse',
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'GET /asyncapi.json',
];

/** The source files of the server (gateway/, worker/, shared/), by path. */
function serverSources(): Map<string, string> {
  const out = new Map<string, string>();
  for (const dir of ['gateway', 'worker', 'shared']) {
    for (const name of readdirSync(resolve(root, dir), { recursive: true, encoding: 'utf8' })) {
      if (name.endsWith('.ts')) out.set(`${dir}/${name}`, readFileSync(resolve(root, dir, name), 'utf8'));
    }
  }
  return out;
}

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

  it('has a schema for exactly the request and event types of protocol v1', () => {
    expect(Object.keys(Requests).sort()).toEqual([...REQUEST_TYPES].sort());
    expect(Object.keys(Events).sort()).toEqual([...EVENT_TYPES, ...ADDITIVE_EVENT_TYPES].sort());
  });

  it('lets the gateway accept every request type and only those', () => {
    for (const type of REQUEST_TYPES) {
      const verdict = parseRequest(JSON.stringify({ type }));
      expect(verdict.ok || verdict.code !== 'unknown_type', type).toBe(true);
    }
    expect(parseRequest(JSON.stringify({ type: 'subscribe' }))).toMatchObject({ ok: false, code: 'unknown_type' });
  });

  it('marks nothing as planned: the document describes only what the server serves', () => {
    expect(JSON.stringify(doc)).not.toContain('x-rt-status');
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

  it('codes.ts has every error code and close code the server uses', () => {
    const errorCodes = new Set<string>();
    const closeNames = new Set<string>();
    for (const [path, text] of serverSources()) {
      for (const m of text.matchAll(/new RtError\('([a-z_]+)'/g)) errorCodes.add(m[1]!);
      for (const m of text.matchAll(/errorFrame\([^,()]+, '([a-z_]+)'/g)) errorCodes.add(m[1]!);
      if (!path.startsWith('shared/protocol/')) for (const m of text.matchAll(/CLOSE_CODES\.([A-Z_]+)/g)) closeNames.add(m[1]!);
    }
    // The scan finds codes the server is known to use (it would find none if the patterns broke).
    expect([...errorCodes]).toEqual(expect.arrayContaining(['bad_request', 'too_large']));
    expect([...closeNames]).toEqual(expect.arrayContaining(['UNAUTHORIZED', 'TRY_AGAIN_LATER', 'GOING_AWAY']));
    expect(Object.keys(ERROR_CODES)).toEqual(expect.arrayContaining([...errorCodes]));
    expect(Object.keys(CLOSE_CODES)).toEqual(expect.arrayContaining([...closeNames]));
  });

  it('describes every HTTP route the gateway serves, and only those', () => {
    const routes = (doc['x-rt-http-api'] as { method: string; path: string }[]).map((e) => `${e.method} ${e.path}`);
    expect(routes.sort()).toEqual([...HTTP_ROUTES].sort());
    const served = new Set<string>();
    for (const [path, text] of serverSources()) {
      if (!path.startsWith('gateway/')) continue;
      // app.get('/healthz', …) and app.post(\n    '/api/rooms/:room/messages', …)
      for (const m of text.matchAll(/\bapp\.(get|post)\(\s*'(\/[^'*]*)'/g)) served.add(`${m[1]!.toUpperCase()} ${m[2]!.replace(/:([a-z]+)/g, '{$1}')}`);
    }
    expect([...served].sort()).toEqual([...HTTP_ROUTES].sort());
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
      expect(parseRequest(JSON.stringify(frame.example)), frame.key).toMatchObject({ ok: true });
      expect(parsed.messages().get(frame.key)!.payload()!.json(), frame.key).toMatchObject(jsonSchema(Requests[frame.type as keyof typeof Requests]));
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
