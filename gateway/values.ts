/**
 * Values read off an HTTP request, parsed by functions that cannot throw on any string: a request
 * is attacker-controlled text, and one exception in a uWS callback would end the process. Each
 * returns `undefined` (or a safe default) for what it cannot read; callers answer with the
 * documented error.
 */

/** `decodeURIComponent` that answers `undefined` for malformed percent-encoding or lone surrogates. */
export function decodeComponent(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/**
 * The value of cookie `name` in a `Cookie` header, percent-decoded. `undefined` when it is absent;
 * `null` when it is present but not decodable (the caller refuses it as a malformed credential).
 */
export function cookieValue(header: string, name: string): string | null | undefined {
  if (!header || !name) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeComponent(part.slice(eq + 1).trim()) ?? null;
  }
  return undefined;
}

/** A `Host` header that is a plain `host[:port]` authority (a DNS name, IPv4 or `[IPv6]`), else `undefined`. */
const AUTHORITY = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?)*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

export function hostAuthority(host: string): string | undefined {
  if (host.length === 0 || host.length > 255 || !AUTHORITY.test(host)) return undefined;
  const colon = host.lastIndexOf(':');
  if (colon > host.lastIndexOf(']')) {
    const port = Number(host.slice(colon + 1));
    if (!(port >= 1 && port <= 65535)) return undefined;
  }
  return host.toLowerCase();
}

/** A `Bearer` credential from an `Authorization` header. */
export function bearer(authorization: string): string | undefined {
  const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(authorization);
  return m ? m[1] : undefined;
}
