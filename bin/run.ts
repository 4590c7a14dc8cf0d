/**
 * Process plumbing shared by the entry points: configuration errors end the process with a message
 * naming the variable (exit 2), SIGTERM/SIGINT run the shutdown once, a second signal forces exit.
 */
import { hostname } from 'node:os';
import { ConfigError } from '../shared/config.ts';
import { randomId } from '../shared/ids.ts';
import { NativeUwsError } from '../gateway/uws.ts';

export function defaultNodeId(): string {
  return `${hostname().split('.')[0]}-${randomId(3)}`;
}

export async function runMain(name: string, start: () => Promise<() => Promise<void>>): Promise<void> {
  let stop: (() => Promise<void>) | undefined;
  try {
    stop = await start();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof NativeUwsError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    }
    process.stderr.write(`${name}: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  }
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`${name}: ${sig} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop!().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${name}: shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
