// How verify shows a stored path or link target: client bytes, so escaped twice over — the
// manifest's own escaping (`\n`, `\t`, `\\`, `\xHH` for bytes that are not UTF-8: the same text
// as in manifest.tsv, so a line can be found there) and then core's escapeText for the Unicode
// format and separator characters that UTF-8 may carry (bidi overrides, U+2028, C1 controls).
import { escapeText } from '@ssh-r-sync/core/internal';

/** Shows a path's bytes (a latin1 string) as one safe line fragment. */
export type ShowPath = (bytes: string) => string;

// showPath over plugin-manifest's escapeName (the module is loaded on demand).
export function pathShower(escapeName: (bytes: string) => string): ShowPath {
  return (bytes) => escapeText(Buffer.from(escapeName(bytes), 'latin1').toString('utf8'));
}
