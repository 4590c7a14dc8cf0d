/**
 * Loads uWebSockets.js and refuses its JavaScript fallback.
 *
 * The package we install (`npm:@trufflesuite/uws-js-unofficial`, because upstream is not on the npm
 * registry) quietly falls back to a slow implementation on `ws` when its native binary does not load
 * (another Node ABI, another platform, `UWS_USE_FALLBACK=1`). A gateway on the fallback would work
 * and be many times slower, so it is refused with a message saying why.
 */
import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export class NativeUwsError extends Error {
  override readonly name = 'NativeUwsError';
}

export function loadNativeUws(): typeof UWS {
  const uws = require('uWebSockets.js') as typeof UWS;
  // The native build is a `.node` addon whose exports are the module itself; the fallback is
  // plain JavaScript under dist/ and loads no addon.
  const addon = Object.keys(require.cache).find((k) => /[\\/]uws_[a-z0-9]+_[a-z0-9]+_\d+\.node$/.test(k));
  if (!addon || require.cache[addon]?.exports !== uws) {
    throw new NativeUwsError(
      `uWebSockets.js native binary did not load (platform ${process.platform}-${process.arch}, Node ABI ${process.versions.modules}` +
        `${process.env.UWS_USE_FALLBACK ? ', UWS_USE_FALLBACK is set' : ''}); refusing to run on its slow JavaScript fallback. ` +
        'Use Node 20 on Linux x64/arm64, macOS or Windows x64, and unset UWS_USE_FALLBACK.',
    );
  }
  return uws;
}
