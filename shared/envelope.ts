/**
 * What workers publish for the gateways to fan out (clients get the frame part). Requests and
 * their answers between gateways and workers are in `shared/protocol/internal.ts`.
 *
 * User event (worker → gateways, on `subjects.user(user)`; each gateway receives them all through
 * one `subjects.allUsers` subscription):
 *   "<connectionId or ->\n<frame>"
 * delivered to every connection of the user except the one named (`-`: none), for events the
 * originating connection already has as its reply (`notifications.read`).
 *
 * Room event (worker → gateways, on `subjects.room(room)`):
 *   "<seq> <epoch>\n<frame>"
 * `seq` 0 marks events outside the room sequence (presence, typing). The gateway reads the header
 * without parsing the frame and publishes the frame bytes as they are.
 */
const encoder = new TextEncoder();
const NL = 10;
const SPACE = 32;
const DASH = 45;

export function encodeRoomEvent(seq: number, epoch: string, frame: string): Uint8Array {
  return encoder.encode(`${seq} ${epoch}\n${frame}`);
}


const latin1 = new TextDecoder('latin1');

/** Where the parts of a room event's header are (filled in place, so reading one allocates nothing). */
export interface RoomEventSpan {
  seq: number;
  /** The epoch is `data[epochStart, epochEnd)`. */
  epochStart: number;
  epochEnd: number;
  /** Offset of the frame in the payload. */
  offset: number;
}

/** Reads the header of a room event into `out`; false when the payload is not one. */
export function scanRoomEventHeader(data: Uint8Array, out: RoomEventSpan): boolean {
  let seq = 0;
  let i = 0;
  for (; i < data.length && i < 17; i++) {
    const c = data[i]!;
    if (c === SPACE) break;
    if (c < 48 || c > 57) return false;
    seq = seq * 10 + (c - 48);
  }
  if (i === 0 || data[i] !== SPACE) return false;
  const start = i + 1;
  const end = data.indexOf(NL, start);
  if (end < 0 || end - start > 64) return false;
  out.seq = seq;
  out.epochStart = start;
  out.epochEnd = end;
  out.offset = end + 1;
  return true;
}


export function encodeUserEvent(frame: string, exceptConnection = '-'): Uint8Array {
  return encoder.encode(`${exceptConnection}\n${frame}`);
}

/** Reads a user event: the connection to leave out (undefined for none) and the frame's offset. */
export function readUserEventHeader(data: Uint8Array): { except: string | undefined; offset: number } | undefined {
  // Most user events name nobody to leave out: no string to decode then.
  if (data[0] === DASH && data[1] === NL) return { except: undefined, offset: 2 };
  const end = data.indexOf(NL);
  if (end < 0 || end > 64) return undefined;
  const except = latin1.decode(data.subarray(0, end));
  return { except: except === '-' ? undefined : except, offset: end + 1 };
}
