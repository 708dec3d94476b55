// The comment fsguard stores on each set element. It is the only per-ban state that lives
// in the kernel, so it carries what a restarted daemon needs (which rule, how many
// offences) in a small, parseable format:
//
//   fsguard rule=<rule> n=<offences>[ note=<free text to the end>]
//
// `nft list` prints comments inside double quotes without escaping, and attacker-controlled
// text (user agents) can reach the note, so everything is reduced to printable ASCII
// without quotes or backslashes, and capped well below nft's 253-byte limit.

export interface BanComment {
  /** Stable rule identifier (`[A-Za-z0-9_.:-]`, other characters become `_`). */
  readonly rule: string;
  /** How many times this target has been banned, this ban included (≥ 1). */
  readonly offences: number;
  /** Optional human note (operator's `--reason`); sanitized and truncated to fit. */
  readonly note?: string;
}

/** Stored comments never exceed this many bytes (nft fails above 253). */
export const MAX_COMMENT_BYTES = 128;
const MAX_RULE_LENGTH = 48;
const MAX_OFFENCES = 999_999_999;
const PREFIX = 'fsguard ';

/**
 * Printable ASCII only: control characters (newlines, ESC of ANSI sequences), quotes,
 * backslashes and anything non-ASCII become `?`. Reads at most `maxLength` characters of
 * the input, so a 64 KB hostile string costs no more than a short one.
 */
export function sanitizeCommentText(text: string, maxLength: number = MAX_COMMENT_BYTES): string {
  let out = '';
  const n = Math.min(text.length, maxLength);
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    out += c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x27 && c !== 0x5c ? text[i] : '?';
  }
  return out;
}

export function sanitizeRule(rule: string): string {
  const cleaned = rule.slice(0, MAX_RULE_LENGTH).replace(/[^A-Za-z0-9_.:-]/g, '_');
  return cleaned.length > 0 ? cleaned : 'unknown';
}

export function formatBanComment(comment: BanComment): string {
  const offences = Number.isFinite(comment.offences)
    ? Math.min(MAX_OFFENCES, Math.max(1, Math.floor(comment.offences)))
    : 1;
  const head = `${PREFIX}rule=${sanitizeRule(comment.rule)} n=${offences}`;
  if (comment.note === undefined || comment.note.length === 0) return head;
  const room = MAX_COMMENT_BYTES - head.length - ' note='.length;
  if (room <= 0) return head;
  return `${head} note=${sanitizeCommentText(comment.note, room)}`;
}

const COMMENT_PATTERN = /^fsguard rule=([A-Za-z0-9_.:-]{1,48}) n=(\d{1,9})(?: note=(.*))?$/;

/** Parses a comment written by `formatBanComment`; null for anything else (foreign elements). */
export function parseBanComment(text: string): BanComment | null {
  const m = COMMENT_PATTERN.exec(text);
  if (!m) return null;
  const offences = Number(m[2]);
  const rule = m[1]!;
  return m[3] === undefined ? { rule, offences } : { rule, offences, note: m[3] };
}
