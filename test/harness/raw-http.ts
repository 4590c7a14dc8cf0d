/**
 * Requests written byte for byte over TCP, for what `fetch` and `ws` refuse to send: header values
 * with any bytes, malformed percent-encoding, a `Host` that is no authority, a raw query string.
 */
import { connect } from 'node:net';

export interface RawAnswer {
  /** The status code of the first response line, or 0 if the server closed without one. */
  status: number;
  /** Everything received until the server closed, the answer was complete, or `waitMs` passed. */
  text: string;
}

/**
 * Sends `head` (request line and headers, without the blank line) and returns the answer. An
 * upgrade answered 101 is read until the server's first WebSocket frame or close.
 */
export function rawRequest(port: number, head: string | Buffer, waitMs = 3000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, text });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('connect', () => {
      socket.write(Buffer.concat([typeof head === 'string' ? Buffer.from(head, 'utf8') : head, Buffer.from('\r\n\r\n')]));
    });
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (text.startsWith('HTTP/1.1 101')) {
        // A WebSocket: done once its first frame (welcome or close) is here.
        if (text.length > end + 4) finish();
        return;
      }
      // An event stream never ends by itself: its head is the answer.
      if (/\r\ncontent-type: *text\/event-stream/i.test(text.slice(0, end))) return finish();
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (length && text.length >= end + 4 + Number(length[1])) finish();
    });
    socket.on('close', finish);
    socket.on('error', (err) => {
      if (chunks.length > 0) finish();
      else if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
  });
}

/** The upgrade request of a WebSocket to `/ws` with the extra headers given, as raw text. */
export function upgradeHead(target: string, headers: Record<string, string> = {}): string {
  const lines = [
    `GET ${target} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  ];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return lines.join('\r\n');
}

/** The server's first WebSocket frame after a 101, if it is a close frame: its code. */
export function closeCodeOf(answer: RawAnswer): number | undefined {
  const end = answer.text.indexOf('\r\n\r\n');
  if (!answer.text.startsWith('HTTP/1.1 101') || end < 0) return undefined;
  const frame = Buffer.from(answer.text.slice(end + 4), 'latin1');
  if (frame.length < 4 || (frame[0]! & 0x0f) !== 0x8) return undefined;
  return frame.readUInt16BE(2);
}
