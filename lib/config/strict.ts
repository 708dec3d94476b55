// Reads a config tree strictly against a schema written in convict's form ({ doc, format,
// default, env, sensitive }, plus optional min/max/items/parse). convict's own loader is not
// used for values because it coerces instead of validating: parseInt("80 21") is 80,
// parseFloat("2h") is 2, and any boolean text but "false" is true. Here every value is read
// exactly or reported, every problem at once:
//   - an unknown key in the file, an unknown FSGUARD_* variable (with a near match if any);
//   - durations (*Seconds keys): seconds or a number with a unit (lib/text/duration.ts);
//   - booleans: JSON true/false, from the environment "true"/"false";
//   - ports, whole numbers ('int'), numbers: JSON numbers in range; from the environment their
//     plain decimal text;
//   - lists: JSON lists, from the environment comma-separated;
//   - a leaf with its own `parse` (the policy knobs) reads itself.
// Each problem names the key (and the variable), the value and what was expected.
import { DURATION_FORMS, parseDurationSeconds } from '../text/duration.js';

export type ConfigSchemaNode = { [key: string]: unknown };

type Parse = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problem: string };

interface Leaf {
  readonly doc?: string;
  readonly format?: unknown;
  readonly default: unknown;
  readonly env?: string;
  readonly sensitive?: boolean;
  readonly min?: number;
  readonly max?: number;
  /** Kind of list items: 'string' (default) or 'port'. */
  readonly items?: 'string' | 'port';
  readonly parse?: (raw: unknown, fromEnv: boolean) => Parse;
}

export interface ConfigTree {
  readonly value: Record<string, unknown>;
  readonly problems: readonly string[];
}

function isLeaf(node: unknown): node is Leaf {
  return typeof node === 'object' && node !== null && 'default' in node;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const DECIMAL = /^-?\d+(?:\.\d+)?$/;
const WHOLE = /^-?\d+$/;

function range(leaf: Leaf, n: number, unit = ''): string | null {
  if (leaf.min !== undefined && n < leaf.min) return `must be at least ${leaf.min}${unit}`;
  if (leaf.max !== undefined && n > leaf.max) return `must be at most ${leaf.max}${unit}`;
  return null;
}

function numberFrom(raw: unknown, fromEnv: boolean, whole: boolean): number | null {
  if (fromEnv) {
    if (typeof raw !== 'string') return null;
    const t = raw.trim();
    return (whole ? WHOLE : DECIMAL).test(t) ? Number(t) : null;
  }
  if (typeof raw !== 'number' || !Number.isFinite(raw)) return null;
  return whole && !Number.isInteger(raw) ? null : raw;
}

/** A port 1..65535; a listening port may allow 0 (`min: 0`: any free port). */
function parsePort(raw: unknown, fromEnv: boolean, min = 1): Parse {
  const n = numberFrom(raw, fromEnv, true);
  if (n === null || n < min || n > 65535) return { ok: false, problem: `expected a port number (a whole number ${min}..65535)` };
  return { ok: true, value: n };
}

function parseLeaf(name: string, leaf: Leaf, raw: unknown, fromEnv: boolean): Parse {
  if (leaf.parse) return leaf.parse(raw, fromEnv);
  const format = leaf.format;
  if (format === 'port') return parsePort(raw, fromEnv, leaf.min ?? 1);
  if (format === 'int' || format === 'integer' || format === 'nat') {
    const n = numberFrom(raw, fromEnv, true);
    if (n === null || (format === 'nat' && n < 0)) return { ok: false, problem: `expected a whole number${leaf.min !== undefined ? ` ${leaf.min}..${leaf.max ?? ''}` : ''}` };
    const r = range(leaf, n);
    return r ? { ok: false, problem: r } : { ok: true, value: n };
  }
  if (format === Number) {
    if (name.endsWith('Seconds')) {
      const s = parseDurationSeconds(raw);
      if (s === null) return { ok: false, problem: `expected a duration: ${DURATION_FORMS}` };
      const r = range(leaf, s, ' s');
      return r ? { ok: false, problem: r } : { ok: true, value: s };
    }
    const n = numberFrom(raw, fromEnv, false);
    if (n === null) return { ok: false, problem: fromEnv ? 'expected a number' : 'expected a number (a JSON number)' };
    const r = range(leaf, n);
    return r ? { ok: false, problem: r } : { ok: true, value: n };
  }
  if (format === Boolean) {
    if (fromEnv ? raw === 'true' || raw === 'false' : typeof raw === 'boolean') return { ok: true, value: raw === true || raw === 'true' };
    return { ok: false, problem: fromEnv ? 'expected true or false' : 'expected true or false (a JSON boolean)' };
  }
  if (format === String) {
    return typeof raw === 'string' ? { ok: true, value: raw } : { ok: false, problem: 'expected a string' };
  }
  if (Array.isArray(format)) {
    return format.includes(raw) ? { ok: true, value: raw } : { ok: false, problem: `expected one of ${format.map((f) => JSON.stringify(f)).join(', ')}` };
  }
  if (format === Array) {
    let list: unknown[];
    if (fromEnv && typeof raw === 'string') list = raw.split(',').map((v) => v.trim()).filter((v) => v !== '');
    else if (Array.isArray(raw)) list = raw;
    else return { ok: false, problem: fromEnv ? 'expected a comma-separated list' : 'expected a list' };
    const out: unknown[] = [];
    for (let i = 0; i < list.length; i++) {
      if (leaf.items === 'port') {
        const p = parsePort(list[i], fromEnv);
        if (!p.ok) return { ok: false, problem: `[${i}] = ${JSON.stringify(list[i])}: ${p.problem}` };
        out.push(p.value);
      } else if (leaf.items === 'string' && typeof list[i] !== 'string') {
        return { ok: false, problem: `[${i}] = ${JSON.stringify(list[i])}: expected a string` };
      } else {
        out.push(list[i]);
      }
    }
    return { ok: true, value: out };
  }
  if (format === Object) {
    let v = raw;
    if (fromEnv && typeof raw === 'string') {
      try { v = JSON.parse(raw); } catch { return { ok: false, problem: 'expected a JSON object' }; }
    }
    return isPlainObject(v) ? { ok: true, value: v } : { ok: false, problem: 'expected an object' };
  }
  if (typeof format === 'function') {
    // A convict format function (validates, throws): from the environment, a number-valued key
    // gets its plain decimal text as a number, never a prefix of one.
    let v = raw;
    if (fromEnv && typeof leaf.default === 'number') {
      const n = numberFrom(raw, true, false);
      if (n === null) return { ok: false, problem: 'expected a number' };
      v = n;
    }
    try {
      (format as (x: unknown) => void)(v);
      return { ok: true, value: v };
    } catch (err) {
      return { ok: false, problem: err instanceof Error ? err.message : String(err) };
    }
  }
  return { ok: true, value: raw };
}

/** Levenshtein distance, for "did you mean" on unknown keys and variables. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function nearest(name: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) { bestD = d; best = k; }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(name.length / 5)) ? best : null;
}

function shown(leaf: Leaf, raw: unknown): string {
  return leaf.sensitive ? '[redacted]' : JSON.stringify(raw);
}

/**
 * The config from `file` (the parsed JSON object) and `env` over the schema's defaults, with
 * every problem found. Leaves that fail keep their default so the rest can still be checked.
 */
export function readConfigTree(
  schema: ConfigSchemaNode,
  file: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  options: { readonly ignoreEnv?: (name: string) => boolean } = {},
): ConfigTree {
  const problems: string[] = [];
  const knownEnv = new Set<string>();
  const ignored = options.ignoreEnv ?? ((): boolean => false);
  const walk = (node: ConfigSchemaNode, input: unknown, path: string[]): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    const where = path.join('.');
    let given: Record<string, unknown> = {};
    if (input !== undefined) {
      if (isPlainObject(input)) given = input;
      else problems.push(`${where} = ${JSON.stringify(input)}: expected an object of keys (${Object.keys(node).join(', ')})`);
    }
    for (const key of Object.keys(given)) {
      if (!Object.prototype.hasOwnProperty.call(node, key)) {
        const near = nearest(key, Object.keys(node));
        problems.push(`${[...path, key].join('.')}: unknown key${near ? ` (did you mean ${[...path, near].join('.')}?)` : ''} (known in ${where || 'the top level'}: ${Object.keys(node).join(', ')})`);
      }
    }
    for (const [key, child] of Object.entries(node)) {
      const name = [...path, key].join('.');
      if (isLeaf(child)) {
        if (child.env) knownEnv.add(child.env);
        const envRaw = child.env !== undefined ? env[child.env] : undefined;
        const fromEnv = envRaw !== undefined;
        const has = fromEnv || Object.prototype.hasOwnProperty.call(given, key);
        if (!has) { out[key] = structuredClone(child.default); continue; }
        const raw = fromEnv ? envRaw : given[key];
        const r = parseLeaf(key, child, raw, fromEnv);
        if (r.ok) { out[key] = r.value; continue; }
        out[key] = structuredClone(child.default);
        const label = fromEnv ? `${child.env} (${name})` : name;
        problems.push(r.problem.startsWith('[') ? `${label}${r.problem}` : `${label} = ${shown(child, raw)}: ${r.problem}`);
      } else if (isPlainObject(child)) {
        out[key] = walk(child, given[key], [...path, key]);
      }
    }
    return out;
  };
  const value = walk(schema, file, []);
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('FSGUARD_') || knownEnv.has(name) || ignored(name)) continue;
    const near = nearest(name, [...knownEnv]);
    problems.push(`${name}: unknown variable${near ? ` (did you mean ${near}?)` : ''}: fsguard reads FSGUARD_<SECTION>_<KEY> for each config key, e.g. FSGUARD_ESL_HOST`);
  }
  return { value, problems };
}
