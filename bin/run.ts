/**
 * Process plumbing shared by the entry points: configuration errors end the process with a message
 * naming the variable (exit 2); SIGTERM or SIGINT runs the graceful shutdown once, with one log line
 * when it starts and one when it is done (exit 0).
 *
 * One stop may arrive as several signals: Ctrl-C sends SIGINT to the whole process group, and
 * `npm run` also relays the SIGINT or SIGTERM it gets to its child, so node sees the same stop twice
 * within milliseconds. A signal within REPEAT_WINDOW_MS of the first is that same stop and changes
 * nothing; a later one is someone asking again, and ends the process at once (exit 1) without
 * waiting for the drain.
 */
import { hostname } from 'node:os';
import { ConfigError } from '../shared/config.ts';
import { randomId } from '../shared/ids.ts';
import type { Logger } from '../shared/log.ts';
import { NativeUwsError } from '../gateway/uws.ts';

export const REPEAT_WINDOW_MS = 1000;

export function defaultNodeId(): string {
  return `${hostname().split('.')[0]}-${randomId(3)}`;
}

export interface Stoppable {
  log: Logger;
  stop(): Promise<void>;
}

export async function runMain(name: string, start: () => Promise<Stoppable>): Promise<void> {
  let running: Stoppable;
  try {
    running = await start();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof NativeUwsError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    }
    process.stderr.write(`${name}: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  }
  const { log } = running;
  let firstSignalAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstSignalAt !== undefined) {
      if (Date.now() - firstSignalAt < REPEAT_WINDOW_MS) return;
      process.stderr.write(`${name}: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    firstSignalAt = Date.now();
    log.info({ signal }, 'shutting down');
    running.stop().then(
      () => {
        log.info({ ms: Date.now() - firstSignalAt! }, 'shut down');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err: String(err), ms: Date.now() - firstSignalAt! }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
