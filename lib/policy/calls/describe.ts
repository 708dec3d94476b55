// The call rules in plain words for `fsguard policy`, read off the rule table.
import type { PolicySettings } from '../settings.js';
import { CALL_RULES } from './rules.js';

export function describeCallRules(s: PolicySettings): string[] {
  const lines: string[] = [];
  lines.push('Calls (CHANNEL_HANGUP_COMPLETE of watched profiles)');
  lines.push(`  Probing evidence: unauthenticated calls in a public context (${s.callPublicContexts.join(', ') || 'none'}) that end unrouted (no route: 404) or refused by the dialplan.`);
  lines.push(`  International-looking numbers start with ${s.callInternationalPrefixes.join(' ')}; premium-looking with ${s.callPremiumPrefixes.join(' ')} (6+ more characters after the prefix).`);
  lines.push(`  An unauthenticated call answered for ${s.callProofMinSeconds} s or more proves its source (a carrier, an ITSP trunk) like a successful authentication does: its misdials never ban it. Carriers sending from many addresses: add their ranges to allow.`);
  lines.push('  Sources with no proven legitimacy are banned for');
  for (const r of CALL_RULES) {
    if (r.scope === 'account') continue;
    lines.push(`    ${r.id.padEnd(38)} ${r.explain(s)}${r.scope === 'prefix' ? ` (IPv6 /${s.ipv6PrefixLength}, evidence from ${s.prefixMinAddresses}+ addresses, no proven host inside)` : ''}`);
  }
  const fraud = CALL_RULES.find((r) => r.id === 'toll_fraud')!;
  lines.push('  Authenticated accounts');
  lines.push(`    ${fraud.id.padEnd(38)} ${fraud.explain(s)}`);
  lines.push('  fsguard bans the prober; the dialplan must still refuse what it should (fsguard sees a call only once it has ended).');
  return lines;
}
