/**
 * Globs of the JWT `rooms` claim (`private:team-*`): `*` matches any run of characters, possibly
 * empty; every other character matches itself. There is no escape and no `?`.
 *
 * The claim is text from a token, so the matcher must not let a pattern choose how long it runs.
 * A regular expression built from it backtracks: `private:a*a*a*a*a*a*a*a*a*b` against a room of
 * 120 `a`s explores every way of splitting the `a`s between the stars before failing. Here the
 * literal pieces between the stars are matched left to right, each at its first occurrence after
 * the previous one. Taking the first occurrence is never wrong, because whatever a later occurrence
 * could still match, the text after an earlier one can match too; so no choice is ever revisited,
 * and a match costs at most one left-to-right search per piece: O(pattern × room) characters
 * compared in the worst case, usually about the room's length.
 */
export function globMatch(pattern: string, text: string): boolean {
  const star = pattern.indexOf('*');
  if (star < 0) return pattern === text;
  const pieces = pattern.split('*');
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  // The first piece is anchored at the start and the last at the end, and they may not overlap:
  // `ab*ba` does not match `aba`.
  if (text.length < first.length + last.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  let at = first.length;
  const end = text.length - last.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const piece = pieces[i]!;
    if (piece.length === 0) continue;
    const found = text.indexOf(piece, at);
    if (found < 0 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}
