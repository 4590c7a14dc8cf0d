/**
 * Renders docs/protocol.md from the AsyncAPI document (asyncapi.ts), and from nothing else, so the
 * page people read and the document machines read cannot say different things. `npm run
 * docs:protocol` writes the page; a unit test fails when the committed page is stale.
 */

type Json = Record<string, unknown>;
type Schema = Json & {
  type?: string;
  title?: string;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  const?: unknown;
};

const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
export function slug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
const table = (head: string[], rows: string[][]) =>
  [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');

/**
 * An example frame: on one line when short, as frames are sent; otherwise one field a line, and an
 * array that is still too long one element a line, so that long frames stay readable.
 */
export function formatExample(payload: unknown): string {
  const line = JSON.stringify(payload);
  if (line.length <= 100 || !payload || typeof payload !== 'object' || Array.isArray(payload)) return line;
  const fields = Object.entries(payload).map(([k, v]) => {
    const one = `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`;
    if (one.length <= 100 || !Array.isArray(v) || v.length === 0) return one;
    return `  ${JSON.stringify(k)}: [\n${v.map((x) => `    ${JSON.stringify(x)}`).join(',\n')}\n  ]`;
  });
  return `{\n${fields.join(',\n')}\n}`;
}

const exampleBlock = (payload: unknown) => '```json\n' + formatExample(payload) + '\n```';

class Renderer {
  private readonly schemas: Record<string, Schema>;
  constructor(private readonly doc: Json) {
    this.schemas = obj(obj(doc.components).schemas) as Record<string, Schema>;
  }

  /** `#/channels/ws/messages/joinRequest` → the message object. */
  resolve(ref: unknown): Json {
    let target: unknown = ref;
    for (let hops = 0; hops < 8; hops++) {
      const pointer = str(obj(target).$ref);
      if (!pointer) return obj(target);
      target = pointer
        .replace(/^#\//, '')
        .split('/')
        .reduce<unknown>((at, part) => obj(at)[part.replace(/~1/g, '/').replace(/~0/g, '~')], this.doc);
    }
    throw new Error(`unresolvable $ref ${JSON.stringify(ref)}`);
  }

  private link(title: string): string | undefined {
    if (title === 'ErrorCode') return '[ErrorCode](#error-codes)';
    if (title === 'CloseCode') return '[CloseCode](#close-codes)';
    return title in this.schemas ? `[${title}](#${slug(title)})` : undefined;
  }

  typeOf(s: Schema, top = false): string {
    if (!top && s.title) {
      const link = this.link(s.title);
      if (link) return link;
    }
    if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
    if (s.anyOf) return s.anyOf.map((x) => this.typeOf(x)).join(' or ');
    if (s.type === 'array') return `${s.items ? this.typeOf(s.items) : 'any'}[]`;
    const limits: string[] = [];
    const n = (k: string) => (typeof s[k] === 'number' ? (s[k] as number) : undefined);
    if (s.type === 'string') {
      const [min, max] = [n('minLength'), n('maxLength')];
      if (min !== undefined && max !== undefined) limits.push(`${min}–${max} chars`);
      else if (max !== undefined) limits.push(`max ${max} chars`);
      else if (min === 1) limits.push('non-empty');
      else if (min) limits.push(`at least ${min} chars`);
      if (typeof s.pattern === 'string') limits.push(`matching \`${s.pattern}\``);
    }
    if (s.type === 'integer' || s.type === 'number') {
      const [min, max] = [n('minimum'), n('maximum')];
      if (min !== undefined && max !== undefined) limits.push(`${min}–${max}`);
      else if (min !== undefined) limits.push(`≥ ${min}`);
      else if (max !== undefined) limits.push(`≤ ${max}`);
    }
    return `${s.type ?? 'any'}${limits.length ? ` (${limits.join(', ')})` : ''}`;
  }

  /** Rows of a field table; objects and arrays of objects without a type of their own are flattened (`rooms[].seq`). */
  fieldRows(s: Schema, prefix = ''): string[][] {
    const rows: string[][] = [];
    const required = new Set(s.required ?? []);
    for (const [name, p] of Object.entries(s.properties ?? {})) {
      const desc = p.description ?? (name === 'type' && p.const !== undefined ? 'Frame type.' : '');
      rows.push([`\`${prefix}${name}\``, this.typeOf(p), required.has(name) ? 'yes' : 'no', desc]);
      const linked = (x: Schema) => Boolean(x.title && this.link(x.title));
      if (p.type === 'object' && p.properties && !linked(p)) rows.push(...this.fieldRows(p, `${prefix}${name}.`));
      if (p.type === 'array' && p.items?.type === 'object' && p.items.properties && !linked(p.items)) {
        rows.push(...this.fieldRows(p.items, `${prefix}${name}[].`));
      }
    }
    return rows;
  }

  fields(s: Schema): string {
    const rows = this.fieldRows(s);
    return rows.length ? table(['Field', 'Type', 'Required', 'Description'], rows) : '_No fields._';
  }

  message(m: Json, heading: string): string[] {
    const payload = obj(m.payload) as Schema;
    const out = [heading, ''];
    if (payload.description) out.push(payload.description, '');
    out.push(this.fields(payload), '');
    const examples = Array.isArray(m.examples) ? (m.examples as Json[]) : [];
    for (const e of examples) out.push('Example:', '', exampleBlock(e.payload), '');
    return out;
  }
}

/** docs/protocol.md for `doc` (an AsyncAPI 3 document from `asyncApiDocument()`). */
export function renderProtocolMarkdown(doc: Json): string {
  const r = new Renderer(doc);
  const info = obj(doc.info);
  const components = obj(doc.components);
  const operations = Object.entries(obj(doc.operations)).map(([id, op]) => ({ id, op: obj(op) }));
  const channels = obj(doc.channels);
  const ws = obj(channels.ws);
  const sse = obj(channels.sse);
  const onChannel = (op: Json, channel: string) => str(obj(op.channel).$ref) === `#/channels/${channel}`;
  const sends = operations.filter(({ op }) => op.action === 'send' && onChannel(op, 'ws'));
  const receives = operations.filter(({ op }) => op.action === 'receive' && onChannel(op, 'ws'));
  const firstMessage = (op: Json) => r.resolve((op.messages as unknown[])[0]);

  const out: string[] = [
    `# ${str(info.title)} — version ${str(info.version)}`,
    '',
    '<!-- Generated by `npm run docs:protocol` from shared/protocol/ (the AsyncAPI document served at /asyncapi.json). Do not edit by hand. -->',
    '',
    `The machine-readable form of this page is the AsyncAPI ${str(doc.asyncapi)} document the gateway serves at \`/asyncapi.json\`;`,
    'both are generated from the schemas the server validates with (`shared/protocol/schemas.ts`) and the code table (`shared/protocol/codes.ts`).',
    '',
    str(info.description),
    '',
    '## Frames at a glance',
    '',
  ];

  const glance: string[][] = [];
  for (const { op } of sends) {
    const m = firstMessage(op);
    const reply = r.resolve((obj(op.reply).messages as unknown[])[0]);
    const title = str(m.title);
    glance.push([`[${title}](#${slug(title)})`, 'client → server', `[${str(reply.title)}](#${slug(str(reply.title))}) or \`error\``]);
  }
  for (const { op } of receives) {
    const title = str(firstMessage(op).title);
    glance.push([`[${title}](#${slug(title)})`, 'server → client', '']);
  }
  out.push(table(['Frame', 'Direction', 'Answer'], glance), '');

  out.push('## Connecting', '', str(ws.summary), '', str(ws.description), '');
  const servers = Object.entries(obj(doc.servers)).map(([name, s]) => {
    const sv = obj(s);
    return [`\`${name}\``, `\`${str(sv.protocol)}://${str(sv.host)}${str(sv.pathname)}\``, str(sv.description)];
  });
  out.push(table(['Server', 'URL', 'Description'], servers), '');
  const binding = obj(obj(ws.bindings).ws);
  const params = (s: unknown) =>
    Object.entries(obj(obj(s).properties)).map(([name, p]) => [`\`${name}\``, r.typeOf(p as Schema), str(obj(p).description)]);
  out.push(`Query parameters of \`${str(binding.method)} ${str(ws.address)}\`:`, '', table(['Parameter', 'Type', 'Description'], params(binding.query)), '');
  out.push('Headers of the upgrade:', '', table(['Header', 'Type', 'Description'], params(binding.headers)), '');
  const schemes = Object.entries(obj(components.securitySchemes)).map(([name, s]) => {
    const sc = obj(s);
    const where = sc.type === 'http' ? `\`Authorization: ${str(sc.scheme).replace(/^b/, 'B')} <${str(sc.bearerFormat)}>\`` : `${str(sc.in)} \`${str(sc.name)}\``;
    return [`\`${name}\``, where, str(sc.description)];
  });
  out.push('Credentials (one of):', '', table(['Scheme', 'Where', 'Description'], schemes), '');

  out.push('## Requests', '', 'Client → server. Each answer carries the `id` of its request.', '');
  for (const { op } of sends) {
    const m = firstMessage(op);
    out.push(...r.message(m, `### ${str(m.title)}`));
    if (op.description) out.push(str(op.description), '');
    for (const ref of obj(op.reply).messages as unknown[]) {
      const reply = r.resolve(ref);
      if (reply.name === 'error') continue;
      out.push(...r.message(reply, `#### ${str(reply.title)}`));
    }
  }

  out.push('## Events', '', 'Server → client, without a request (an `error` also answers a failed request).', '');
  for (const { op } of receives) out.push(...r.message(firstMessage(op), `### ${str(firstMessage(op).title)}`));

  out.push('## Types', '');
  for (const [name, s] of Object.entries(obj(components.schemas))) {
    if (name === 'ErrorCode' || name === 'CloseCode') continue;
    const schema = s as Schema;
    out.push(`### ${name}`, '');
    if (schema.description) out.push(schema.description, '');
    out.push(r.fields(schema), '');
  }

  const errorCodes = (components['x-rt-error-codes'] as Json[] | undefined) ?? [];
  out.push('## Error codes', '', 'The `code` of an `error` frame and of an HTTP error body. The connection stays open after an `error`.', '');
  out.push(
    table(
      ['Code', 'HTTP status', 'Meaning', 'The client should'],
      errorCodes.map((e) => [`\`${str(e.code)}\``, String(e.status), str(e.description), str(e.client)]),
    ),
    '',
  );
  const closeCodes = (components['x-rt-close-codes'] as Json[] | undefined) ?? [];
  out.push('## Close codes', '', 'WebSocket close codes the server uses. Resume means reconnecting with `?session=<sessionId>`.', '');
  out.push(
    table(
      ['Code', 'Name', 'Meaning', 'The client should'],
      closeCodes.map((c) => [String(c.code), `\`${str(c.name)}\``, str(c.meaning), str(c.client)]),
    ),
    '',
  );

  out.push('## Server-Sent Events', '');
  out.push(`\`GET ${str(sse.address)}\`: ${str(sse.summary)}`, '', str(sse.description), '');
  const sseOp = operations.find(({ op }) => onChannel(op, 'sse'))?.op ?? {};
  const sseQuery = obj(obj(obj(sseOp.bindings).http).query);
  out.push(table(['Parameter', 'Type', 'Description'], params(sseQuery)), '');
  const sseEvents = ((sseOp.messages as unknown[] | undefined) ?? []).map((m) => {
    const msg = r.resolve(m);
    return `[\`${str(msg['x-rt-type'])}\`](#${slug(str(msg.title))})`;
  });
  out.push(`Events: ${sseEvents.join(', ')}.`, '');

  out.push('## HTTP API', '', 'Served by the gateway. Errors are JSON [HttpError](#httperror) bodies with the status of their [code](#error-codes).', '');
  for (const e of (doc['x-rt-http-api'] as Json[] | undefined) ?? []) {
    out.push(`### \`${str(e.method)} ${str(e.path)}\``, '');
    out.push(str(e.summary), '', `Authentication: ${str(e.auth)}.`, '');
    const query = Object.entries(obj(e.query)).map(([k, v]) => [`\`${k}\``, str(v)]);
    if (query.length) out.push(table(['Query parameter', 'Description'], query), '');
    const request = obj(e.request);
    if (request.schema) {
      const name = str(obj(request.schema).$ref).split('/').pop() ?? '';
      out.push(`Request body (\`${str(request.contentType)}\`): [${name}](#${slug(name)})`, '');
    }
    const responses = ((e.responses as Json[] | undefined) ?? []).map((res) => {
      const name = str(obj(res.schema).$ref).split('/').pop() ?? '';
      return [String(res.status), str(res.description), res.contentType ? `\`${str(res.contentType)}\`` : '', name ? `[${name}](#${slug(name)})` : ''];
    });
    out.push(table(['Status', 'When', 'Content type', 'Body'], responses), '');
  }

  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}
