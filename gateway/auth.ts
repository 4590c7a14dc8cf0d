/**
 * Who is connecting: JWT verification (jose), identities, and which rooms an identity may join.
 *
 * Keys: `JWT_SECRET` (HS256), `JWT_PUBLIC_KEY_FILE` (a PEM public key: RS256 for RSA, ES256 for
 * P-256), or `JWT_JWKS_FILE` (a local JSON Web Key Set, key chosen by `kid`). Claims: `sub` is the
 * user id (required), `name` the display name (default: `sub`), `rooms` a list of patterns of
 * `private:*` rooms the user may join (`*` matches any run of characters; at most
 * MAX_ROOM_PATTERNS patterns of at most MAX_ROOM_PATTERN_LENGTH characters, or the token is
 * refused), `exp` when the connection must have refreshed its token. `iss`/`aud` are checked when configured; clock skew of
 * `JWT_CLOCK_SKEW_S` is allowed.
 */
import { createHmac, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UnsecuredJWT, createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, importSPKI, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Config } from '../shared/config.ts';
import { isUserId, toWellFormed } from '../shared/protocol/constants.ts';
import type { User } from '../shared/protocol/schemas.ts';
import { globMatch } from './glob.ts';
import { bearer, cookieValue } from './values.ts';

export interface Identity {
  user: User;
  /** Patterns of private rooms this identity may join. */
  rooms: string[];
  /** When the credentials expire (ms since the epoch); undefined: never. */
  expiresAt?: number;
}

/** Why credentials were refused: the label of `rt_gateway_auth_failures_total{reason}`. */
export type AuthFailure = 'missing' | 'invalid_token' | 'expired' | 'ticket' | 'anonymous_disabled' | 'invalid_username' | 'unavailable';

/** Credentials were missing, malformed, expired or not trusted. `reason` is safe to show. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly kind: AuthFailure,
    readonly reason: string,
  ) {
    super(reason);
  }
}

const PRIVATE_PREFIX = 'private:';
/** The `rooms` of every identity without patterns: one array, not one per connection. */
export const NO_PATTERNS: string[] = Object.freeze([]) as unknown as string[];
const MAX_TOKEN_LENGTH = 8192;
/** The latest time a JavaScript Date can represent (ms since the epoch). */
const MAX_DATE_MS = 8.64e15;
/** Most patterns a `rooms` claim may list; a token with more is refused (close 4001, HTTP 401). */
export const MAX_ROOM_PATTERNS = 256;
/** Longest pattern a `rooms` claim may hold (a room name has at most 128 characters). */
export const MAX_ROOM_PATTERN_LENGTH = 256;

export class Authenticator {
  private constructor(
    /**
     * RS256/ES256: a WebCrypto key imported once (or the JWKS lookup, which caches its imports):
     * given a KeyObject, jose imports the key again on every verification.
     */
    private readonly key: Promise<CryptoKey> | JWTVerifyGetKey | undefined,
    private readonly algorithms: string[],
    private readonly cfg: Config,
    /**
     * HS256: the secret, for a signature check in this thread (`verifyHs256`). WebCrypto runs each
     * HMAC as a thread-pool job: a hand-off to another thread and back per connection, which on a
     * busy core (or a pod limited to one) cost more than the whole rest of a connect.
     */
    private readonly secret?: Buffer,
  ) {}

  /** Loads the configured key; throws a message naming the variable when a key file is unusable. */
  static fromConfig(cfg: Config): Authenticator {
    if (cfg.jwtSecret) return new Authenticator(undefined, ['HS256'], cfg, Buffer.from(cfg.jwtSecret, 'utf8'));
    if (cfg.jwtPublicKeyFile) {
      let pem: string;
      let key: KeyObject;
      try {
        pem = readFileSync(cfg.jwtPublicKeyFile, 'utf8');
        key = createPublicKey(pem);
      } catch (err) {
        throw new Error(`JWT_PUBLIC_KEY_FILE=${cfg.jwtPublicKeyFile}: not a readable PEM public key (${(err as Error).message})`);
      }
      const alg = key.asymmetricKeyType === 'rsa' ? 'RS256' : key.asymmetricKeyType === 'ec' ? 'ES256' : undefined;
      if (!alg) throw new Error(`JWT_PUBLIC_KEY_FILE=${cfg.jwtPublicKeyFile}: an RSA or P-256 key is needed, got ${key.asymmetricKeyType}`);
      const spki = key.export({ type: 'spki', format: 'pem' }).toString();
      return new Authenticator(imported(importSPKI(spki, alg)), [alg], cfg);
    }
    if (cfg.jwtJwksFile) {
      let jwks: JWTVerifyGetKey;
      try {
        jwks = createLocalJWKSet(JSON.parse(readFileSync(cfg.jwtJwksFile, 'utf8')));
      } catch (err) {
        throw new Error(`JWT_JWKS_FILE=${cfg.jwtJwksFile}: not a readable JSON Web Key Set (${(err as Error).message})`);
      }
      return new Authenticator(jwks, ['RS256', 'ES256'], cfg);
    }
    return new Authenticator(undefined, [], cfg);
  }

  get enabled(): boolean {
    return this.key !== undefined || this.secret !== undefined;
  }

  /** Verifies a JWT and returns its identity; rejects with AuthError. Never logs the token. */
  async verify(token: string): Promise<Identity> {
    const checked = this.check(token);
    if (checked instanceof AuthError) throw checked;
    return checked;
  }

  /**
   * `verify`, answered at once where no await is needed (HS256, and every refusal found before
   * the signature): an Identity or the AuthError, else a promise (RS256/ES256, JWKS).
   */
  check(token: string): Identity | AuthError | Promise<Identity> {
    if (!this.enabled) return new AuthError('invalid_token', 'token authentication is not configured');
    if (token.length > MAX_TOKEN_LENGTH) return new AuthError('invalid_token', 'token too long');
    if (this.secret) {
      try {
        return this.identityOf(this.verifyHs256(token, this.secret));
      } catch (err) {
        return err instanceof AuthError ? err : joseRefusal(err);
      }
    }
    return this.verifyWithJose(token);
  }

  private async verifyWithJose(token: string): Promise<Identity> {
    let payload;
    try {
      const key = typeof this.key === 'function' ? this.key : await this.key;
      ({ payload } = await jwtVerify(token, key as CryptoKey, {
        algorithms: this.algorithms,
        issuer: this.cfg.jwtIssuer,
        audience: this.cfg.jwtAudience,
        clockTolerance: this.cfg.jwtClockSkewS,
      }));
    } catch (err) {
      throw joseRefusal(err);
    }
    return this.identityOf(payload);
  }

  /**
   * An HS256 JWS checked with node:crypto in this thread, then its claims by jose: the verified
   * payload goes to jose's `UnsecuredJWT.decode` under a header of its own, so `exp`, `nbf`, `iss`,
   * `aud` and the clock skew are validated by the same code as every other token. The token's own
   * header must say HS256 and carry nothing that changes how it is read (`crit`, `b64`).
   */
  private verifyHs256(token: string, secret: Buffer): JWTPayload {
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    if (dot1 < 0 || dot2 < 0 || token.indexOf('.', dot2 + 1) >= 0) throw new joseErrors.JWSInvalid('not a compact JWS');
    const header = decodeProtectedHeader(token);
    if (header.alg !== 'HS256') throw new joseErrors.JOSEAlgNotAllowed('alg not allowed');
    if (header.crit !== undefined || header.b64 !== undefined) throw new joseErrors.JWSInvalid('unsupported header parameter');
    const signature = token.slice(dot2 + 1);
    if (!BASE64URL.test(signature)) throw new joseErrors.JWSInvalid('signature is not base64url');
    const expected = createHmac('sha256', secret).update(token.slice(0, dot2)).digest();
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new joseErrors.JWSSignatureVerificationFailed();
    return UnsecuredJWT.decode(`${NONE_HEADER}.${token.slice(dot1 + 1, dot2)}.`, {
      issuer: this.cfg.jwtIssuer,
      audience: this.cfg.jwtAudience,
      clockTolerance: this.cfg.jwtClockSkewS,
    }).payload;
  }

  /** The identity a verified payload describes; throws AuthError for claims rt itself needs. */
  private identityOf(payload: JWTPayload): Identity {
    const { sub, name, rooms, exp } = payload as { sub?: unknown; name?: unknown; rooms?: unknown; exp?: unknown };
    if (!isUserId(sub)) throw new AuthError('invalid_token', 'token has no valid sub');
    // jose checked that a present `exp` is a number; one past what a Date can hold is refused here.
    const expiresAt = typeof exp === 'number' ? (exp + this.cfg.jwtClockSkewS) * 1000 : undefined;
    if (expiresAt !== undefined && !(Math.abs(expiresAt) <= MAX_DATE_MS)) throw new AuthError('invalid_token', 'token claim exp is not valid');
    // Cut to 128 characters, a name could end in half a surrogate pair: replaced, not refused.
    const display = typeof name === 'string' && name.length > 0 ? toWellFormed(name.slice(0, 128)) : sub;
    const patterns = Array.isArray(rooms) ? rooms.filter((r): r is string => typeof r === 'string') : [];
    // Refused rather than cut: a token that lists a room it cannot use would fail later, at a join.
    if (patterns.length > MAX_ROOM_PATTERNS) throw new AuthError('invalid_token', `token rooms claim lists more than ${MAX_ROOM_PATTERNS} patterns`);
    if (patterns.some((p) => p.length > MAX_ROOM_PATTERN_LENGTH)) {
      throw new AuthError('invalid_token', `token rooms claim has a pattern longer than ${MAX_ROOM_PATTERN_LENGTH} characters`);
    }
    return {
      user: { id: sub, name: display },
      rooms: patterns.length === 0 ? NO_PATTERNS : patterns,
      expiresAt,
    };
  }
}

/** The header under which a verified payload is handed to jose's claim validation. */
const NONE_HEADER = Buffer.from('{"alg":"none"}').toString('base64url');
const BASE64URL = /^[A-Za-z0-9_-]+$/;

function joseRefusal(err: unknown): AuthError {
  return new AuthError(err instanceof joseErrors.JWTExpired ? 'expired' : 'invalid_token', describeJoseError(err));
}

/** A key import that cannot fail later as an unhandled rejection (a failure shows at the first verification). */
function imported(key: Promise<CryptoKey>): Promise<CryptoKey> {
  key.catch(() => undefined);
  return key;
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `token claim ${err.claim} is not valid`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature is not valid';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm is not allowed';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'token key is unknown';
  return 'token is not valid';
}

/** Whether `identity` may join `room`: any room, except `private:*` rooms its claims do not list. */
export function mayJoin(identity: Identity, room: string): boolean {
  if (!room.startsWith(PRIVATE_PREFIX)) return true;
  return identity.rooms.some((pattern) => globMatch(pattern, room));
}

/**
 * The JWT of an upgrade or request: `?token=`, then `Authorization: Bearer`, then the cookie.
 * A cookie that is present but not decodable is refused rather than skipped.
 */
export function tokenFrom(query: URLSearchParams, authorization: string, cookie: string, cookieName: string): string | AuthError | undefined {
  const fromQuery = query.get('token');
  if (fromQuery) return fromQuery;
  const fromHeader = bearer(authorization);
  if (fromHeader) return fromHeader;
  const fromCookie = cookieValue(cookie, cookieName);
  if (fromCookie === null) return new AuthError('invalid_token', `cookie ${cookieName} is not valid percent-encoding`);
  return fromCookie || undefined;
}
