/**
 * The protocol's constants and the total predicates over them: no imports, so the SDK bundles this
 * file without the schema library. Everything that checks a room name, a user id or the
 * subprotocol reads it from here.
 */

/** The protocol version: `info.version` of the AsyncAPI document. */
export const PROTOCOL_VERSION = '1';
/** The WebSocket subprotocol a client may offer; the server selects it. */
export const SUBPROTOCOL = `rt.v${PROTOCOL_VERSION}`;

/** Room names: 1–128 of `A-Z a-z 0-9 _ . : -`. */
export const ROOM_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$';
/** The most messages one `history` (or `notifications.list`) request returns. */
export const MAX_HISTORY_LIMIT = 500;
/** What `history` and `join` return when the request gives no `limit`. */
export const DEFAULT_HISTORY_LIMIT = 50;
/** How long a `typing: true` lasts without being repeated (ms); clients repeat it more often. */
export const TYPING_TTL_MS = 5_000;

/** The longest user id (the JWT `sub`, a `direct`'s `to`, a notification's recipient). */
export const USER_ID_MAX = 256;
/**
 * User ids: 1–256 UTF-16 code units of well-formed text without control characters. Lone
 * surrogates are refused because they cannot be encoded as UTF-8 (NATS subjects, Redis keys and
 * URIs need them to be). Written without the `u` flag so every JSON Schema validator reads it the
 * same way: a character is a non-surrogate, non-control unit or a high surrogate followed by a low.
 */
export const USER_ID_PATTERN = '^(?:[^\\u0000-\\u001f\\u007f\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])+$';

const ROOM_RE = new RegExp(ROOM_PATTERN);
const USER_ID_RE = new RegExp(USER_ID_PATTERN);
const LONE_SURROGATE = /\p{Surrogate}/u;

export function isRoomName(value: unknown): value is string {
  return typeof value === 'string' && ROOM_RE.test(value);
}

export function isUserId(value: unknown): value is string {
  return typeof value === 'string' && value.length <= USER_ID_MAX && USER_ID_RE.test(value);
}

/** Whether a string is valid UTF-16 (no lone surrogate), so it has a UTF-8 encoding. */
export function isWellFormed(value: string): boolean {
  return !LONE_SURROGATE.test(value);
}

/** The string with each lone surrogate replaced by U+FFFD (for display names, which may be cut). */
export function toWellFormed(value: string): string {
  return isWellFormed(value) ? value : value.replace(/\p{Surrogate}/gu, '\ufffd');
}
