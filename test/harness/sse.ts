import { Inbox } from './wait.ts';

/** A minimal EventSource for tests: fetch with a streaming body, parsed per the SSE format. */
export interface SseEvent {
  event: string;
  id?: string;
  data: string;
  json: Record<string, unknown>;
}

export class SseClient {
  private readonly inbox = new Inbox<SseEvent>((events) => JSON.stringify(events.map((e) => e.event)));
  /** Events received and not taken by `next` yet, oldest first. */
  readonly events: SseEvent[] = this.inbox.items;
  comments = 0;
  retry?: number;
  ended = false;
  private constructor(
    readonly status: number,
    readonly headers: Headers,
    private readonly abort: AbortController,
  ) {}

  /** Opens `url`; resolves once the response head arrived (any status). */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const abort = new AbortController();
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
    const client = new SseClient(res.status, res.headers, abort);
    if (res.ok && res.body) void client.read(res.body);
    else {
      client.ended = true;
      client.inbox.end(() => new Error('stream ended'));
      client.errorBody = await res.text();
    }
    return client;
  }

  errorBody = '';

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          this.dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // Aborted or cut.
    }
    this.ended = true;
    this.inbox.end(() => new Error('stream ended'));
  }

  private dispatch(block: string): void {
    let event = 'message';
    let id: string | undefined;
    const data: string[] = [];
    let isComment = true;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      isComment = false;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry') this.retry = Number(value);
    }
    if (isComment) {
      this.comments++;
      return;
    }
    if (data.length === 0) return;
    const e: SseEvent = { event, id, data: data.join('\n'), json: JSON.parse(data.join('\n')) as Record<string, unknown> };
    this.inbox.push(e);
  }

  next(pred: (e: SseEvent) => boolean = () => true, timeoutMs = 5000): Promise<SseEvent> {
    return this.inbox.next(pred, timeoutMs);
  }

  take(event: string, n: number, timeoutMs = 10_000): Promise<SseEvent[]> {
    return this.inbox.take((e) => e.event === event, n, timeoutMs);
  }

  close(): void {
    this.abort.abort();
  }
}
