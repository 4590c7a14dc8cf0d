import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Requests, type AnyRequest, type RequestType } from './schemas.ts';

const checkers = new Map<string, TypeCheck<(typeof Requests)[RequestType]>>(
  Object.entries(Requests).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
);

export type ParseResult =
  | { ok: true; request: AnyRequest }
  | { ok: false; code: 'bad_request' | 'unknown_type'; message: string; id?: string | number };

function pickId(v: unknown): string | number | undefined {
  if (typeof v === 'string' && v.length <= 128) return v;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  return undefined;
}

/**
 * Parses and validates one client frame. Never throws. On failure the result names the first
 * invalid field (`/room: Expected string to match ...`) and carries the request id when one was
 * readable, so the error can be correlated.
 */
export function parseRequest(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: 'bad_request', message: 'malformed JSON' };
  }
  return checkRequest(value);
}

/** Validates a frame already parsed (a worker reading the frame a gateway forwarded). Never throws. */
export function checkRequest(value: unknown): ParseResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'bad_request', message: 'a frame must be a JSON object' };
  }
  const frame = value as Record<string, unknown>;
  const id = pickId(frame.id);
  if (typeof frame.type !== 'string') {
    return { ok: false, code: 'bad_request', message: '/type: required string', id };
  }
  const checker = checkers.get(frame.type);
  if (!checker) {
    return { ok: false, code: 'unknown_type', message: `unknown type "${frame.type.slice(0, 64)}"`, id };
  }
  if (!checker.Check(frame)) {
    const first = checker.Errors(frame).First();
    const path = first?.path || '/';
    return { ok: false, code: 'bad_request', message: `${path}: ${first?.message ?? 'invalid'}`, id };
  }
  return { ok: true, request: frame as AnyRequest };
}

/** The request id of a frame, if it has a readable one (for answering frames refused unparsed). */
export function requestIdOf(text: string): string | number | undefined {
  try {
    const v = JSON.parse(text) as { id?: unknown };
    return typeof v === 'object' && v !== null ? pickId(v.id) : undefined;
  } catch {
    return undefined;
  }
}
