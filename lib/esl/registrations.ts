// Live registrations from `api show registrations as json`.
//
// FreeSWITCH (mod_commands show_function) answers from its core `registrations` table:
//   {"row_count":2,"rows":[{"reg_user":"1000","realm":"pbx.example.com","token":"<call-id>",
//     "url":"sofia/internal/sip:1000@10.0.0.5:5060","expires":"1795255267",
//     "network_ip":"198.51.100.10","network_port":"5060","network_proto":"udp",
//     "hostname":"pbx1","metadata":""}]}
// (cJSON_PrintUnformatted, every value a string, `expires` the absolute unix time), and
// `{"row_count": 0}\n` when the table is empty. The table has no user agent column (sofia
// passes `registration_metadata`, not the agent, as metadata). An error is `-ERR …` text.
import { parseIp } from '../net/ip.js';
import type { LiveRegistration } from '../events/auth-event.js';
import { MAX_FIELD_CHARS } from '../events/normalize.js';

export const REGISTRATIONS_API_COMMAND = 'show registrations as json';

export type RegistrationsResult =
  | {
    readonly ok: true;
    readonly registrations: LiveRegistration[];
    /** Rows without a usable `network_ip` (or not objects), left out. */
    readonly skippedRows: number;
  }
  | { readonly ok: false; readonly reason: string };

function field(row: Readonly<Record<string, unknown>>, name: string): string {
  const v = row[name];
  if (typeof v !== 'string') return '';
  return v.length > MAX_FIELD_CHARS ? v.slice(0, MAX_FIELD_CHARS) : v;
}

/** Parses the api/response body; never throws. */
export function parseRegistrations(body: string): RegistrationsResult {
  const text = body.trim();
  if (text === '') return { ok: false, reason: 'empty answer' };
  if (text.startsWith('-ERR') || text.startsWith('-USAGE')) {
    return { ok: false, reason: text.split('\n', 1)[0]!.slice(0, 200) };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ok: false, reason: `not JSON: ${JSON.stringify(text.slice(0, 60))}` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return { ok: false, reason: 'not a JSON object' };
  }
  const rows = (doc as Record<string, unknown>).rows;
  if (rows === undefined) {
    // `{"row_count": 0}`: FreeSWITCH leaves `rows` out when the table is empty.
    const count = (doc as Record<string, unknown>).row_count;
    if (count === 0 || count === '0') return { ok: true, registrations: [], skippedRows: 0 };
    return { ok: false, reason: 'no rows and no row_count of 0' };
  }
  if (!Array.isArray(rows)) return { ok: false, reason: '`rows` is not an array' };
  const registrations: LiveRegistration[] = [];
  let skippedRows = 0;
  for (const row of rows as unknown[]) {
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      skippedRows++;
      continue;
    }
    const r = row as Readonly<Record<string, unknown>>;
    const ipText = r.network_ip;
    const source = typeof ipText === 'string' ? parseIp(ipText) : null;
    if (!source) {
      skippedRows++;
      continue;
    }
    const expires = field(r, 'expires');
    const expiresAtSec = /^\d{1,12}$/.test(expires) && Number(expires) > 0 ? Number(expires) : null;
    registrations.push({
      source,
      user: field(r, 'reg_user'),
      realm: field(r, 'realm'),
      // No agent in the core table; a future FreeSWITCH or another module may add one.
      userAgent: field(r, 'user_agent') || field(r, 'agent'),
      expiresAtSec,
    });
  }
  return { ok: true, registrations, skippedRows };
}
