// What the call rules rest on, in plain words for `fsguard policy` (the rules themselves are
// rows of the rule table and listed with the others).
import type { PolicySettings } from '../settings.js';

export function describeCallRules(s: PolicySettings): string[] {
  const lines: string[] = [];
  lines.push('Calls (CHANNEL_HANGUP_COMPLETE of watched profiles): the call_* rules above');
  lines.push(`  A probing call: unauthenticated, in a public context (${s.callPublicContexts.join(', ') || 'none'}), ended unrouted (no route: 404) or refused by the dialplan; each number counts once per ${s.longWindowSeconds / 3600} h.`);
  lines.push(`  International-looking numbers start with ${s.callInternationalPrefixes.join(' ')}; premium-looking with ${s.callPremiumPrefixes.join(' ')} (6+ more characters after the prefix).`);
  lines.push(`  An unauthenticated call answered for ${s.callProofMinSeconds} s or more proves its source (a carrier, an ITSP trunk) for ${s.legitimacySeconds / 3600} h: no call rule bans it, whatever its misdials. Carriers sending from many addresses: their ranges go in allow.`);
  lines.push(`  toll_fraud: an authenticated account dialling ${s.tollFraudDestinations} international/premium numbers new to it within ${s.tollFraudWindowSeconds / 60} min (plus its own usual peak), or ${s.tollFraudNewAddressDestinations} from an address it never used, raises a toll_fraud alert naming account, address and numbers; ${s.tollFraudBan ? `the address is banned${s.tollFraudBanSites ? ', even a site with several accounts' : ' unless it is a proven site with several accounts'}` : 'banning the address is opt-in (tollFraudBan)'}.`);
  lines.push('  fsguard bans the prober; the dialplan must still refuse what it should (fsguard sees a call only once it has ended).');
  return lines;
}
