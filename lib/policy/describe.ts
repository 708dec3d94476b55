// The effective policy in plain words with its numbers, for `fsguard policy`: an operator
// should be able to read what gets banned, when, and for how long, without opening the code.
import { describeCallRules } from './calls/describe.js';
import { RULES, type Rule, type RuleScope } from './rules.js';
import { isBaseOnlyKey, POLICY_KEYS, policyKnobDoc, settingsForProfile, type PolicyKey, type PolicySettings } from './settings.js';
import { formatDuration as dur } from '../text/duration.js';

/** The ban lengths of the first few offences (without jitter). */
export function banLadder(s: PolicySettings, steps = 5): number[] {
  const out: number[] = [];
  for (let i = 0; i < steps; i++) out.push(Math.min(s.banMaxSeconds, s.banSeconds * Math.pow(s.banIncrementFactor, i)));
  return out;
}

export function describePolicy(s: PolicySettings): string[] {
  const lines: string[] = [];
  const say = (t: string): void => { lines.push(t); };
  say('Who is trusted');
  say(`  Never banned: ${s.allow.join(', ') || '(nothing)'} and FreeSWITCH's own addresses (from each event).`);
  say(`  A source is proven legitimate by a successful authentication (REGISTER or INVITE) or a live registration; it stays proven ${dur(s.legitimacySeconds)} after its last success.`);
  say(`  A challenge not answered within ${dur(s.answerTimeoutSeconds)} counts unanswered (an answer arriving later takes it back); unanswered challenges prove nothing about the source (UDP can be forged), and over UDP even answered failures can be forged (FreeSWITCH does not bind a nonce to an address).`);
  say('');
  const ruleLine = (r: Rule): string => `  ${r.id.padEnd(36)} ${r.summary(s)}`;
  say('Sources with no proven legitimacy are banned for');
  for (const r of RULES) if (r.scope === 'unproven_source') say(ruleLine(r));
  say(`  (windows slide in eighths: "within about ${dur(s.shortWindowSeconds)}" means the last ${dur(s.shortWindowSeconds * 7 / 8)}-${dur(s.shortWindowSeconds)})`);
  say('');
  say('Proven sources (sites) are banned only for');
  for (const r of RULES) if (r.scope === 'proven_site') say(ruleLine(r));
  say(s.forgedFailureShieldUsers > 0
    ? `  ...and never on answered failures alone once ${s.forgedFailureShieldUsers}+ users are registered there and its profile takes UDP (${s.failuresForgeable ? 'failures can be forged' : 'this profile: they cannot'}): a forged_failures alert instead.`
    : '  (forgedFailureShieldUsers is 0: answered failures ban a site whatever its size)');
  say(`  A user failing ${s.misprovisionedFailures}+ times there without success is a misprovisioned_device alert, not a ban; unanswered challenges there are a spoofed_challenges alert.`);
  say('');
  say(`IPv6: evidence from unproven hosts is also added up per /${s.ipv6PrefixLength}; the prefix is banned once the evidence comes from ${s.prefixMinAddresses}+ addresses, never when a proven host lives in it, for`);
  for (const r of RULES) if (r.scope === 'ipv6_prefix') say(ruleLine(r));
  say('');
  for (const line of describeCallRules(s)) say(line);
  say('');
  say(`Clock: event time; an event more than ${dur(s.maxEventLeadSeconds)} ahead of the wall clock, or a jump of more than ${dur(s.clockStepSeconds)} that the next event does not confirm, does not move it; sources may differ by ${dur(s.maxSourceSkewSeconds)}.`);
  say('');
  const ladder = banLadder(s).map((seconds) => dur(seconds));
  say(`Ban length: ${dur(s.banSeconds)}, times ${s.banIncrementFactor} per repeat offence (${ladder.join(', ')}, …) up to ${dur(s.banMaxSeconds)}, plus up to ${Math.round(s.banJitterFraction * 100)}% deterministic jitter; offences are remembered ${dur(s.offenceMemorySeconds)}.`);
  say(`After a manual unban the target cannot be banned again for ${dur(s.unbanGraceSeconds)}.`);
  say(`Alerts: near_miss at ${Math.round(s.nearMissFraction * 100)}% of a threshold, once ${dur(s.nearMissHoldSeconds)} passed without a ban; at most one per kind, source and user every ${dur(s.alertIntervalSeconds)}.`);
  say(`Memory: at most ${s.maxTrackedSources} unproven sources, ${s.maxLegitimateSources} proven sources, ${s.maxTrackedPrefixes} prefixes, ${s.maxUsersPerSource} users and ${s.maxPendingChallengesPerSource} pending challenges per source; idle sources expire after ${dur(s.longWindowSeconds)}.`);
  return lines;
}

export function describeOverrides(
  base: PolicySettings,
  overrides: Readonly<Record<string, Partial<PolicySettings>>>,
  watchedProfiles: readonly string[] | null,
): string[] {
  const lines: string[] = [];
  const names = Object.keys(overrides);
  lines.push(watchedProfiles ? `Watched profiles: ${watchedProfiles.join(', ')} (events from others are ignored).` : 'Watched profiles: all.');
  if (names.length === 0) { lines.push('No per-profile overrides: every profile uses the policy above.'); return lines; }
  for (const name of names) {
    const ignored = watchedProfiles !== null && !watchedProfiles.includes(name);
    lines.push(`Profile ${name}${ignored ? ' (not watched: this override is ignored)' : ''}:`);
    const eff = settingsForProfile(base, overrides, name);
    for (const key of Object.keys(overrides[name]!) as PolicyKey[]) {
      lines.push(`  ${key} = ${JSON.stringify(eff[key])} (default ${JSON.stringify(base[key])}): ${policyKnobDoc(key)}`);
    }
  }
  return lines;
}

/** Every knob with its value and meaning, for `fsguard policy --json`. */
export function policyAsJson(s: PolicySettings): Record<string, { value: unknown; doc: string }> {
  const out: Record<string, { value: unknown; doc: string }> = {};
  for (const key of POLICY_KEYS) out[key] = { value: s[key], doc: policyKnobDoc(key) };
  return out;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/**
 * One scope's rules as the markdown table in docs/policy.md (test/policy-docs.test.ts checks
 * the docs carry exactly this): id, the fact it reads, when it fires with these settings,
 * the keys it takes its numbers from, and the situation it answers.
 */
export function ruleTableMarkdown(s: PolicySettings, scope: RuleScope): string[] {
  const rows = ['| rule | reads | fires when (defaults) | settings | real-world situation |', '|---|---|---|---|---|'];
  for (const r of RULES) {
    if (r.scope !== scope) continue;
    rows.push(`| \`${r.id}\` | \`${r.fact}\` | ${cell(r.summary(s))} | ${r.keys.map((k) => `\`${k}\``).join(', ')} | ${cell(r.situation)} |`);
  }
  return rows;
}

function defaultText(key: PolicyKey, v: unknown): string {
  if (key === 'scannerUserAgents') return `${(v as readonly string[]).length} tool names`;
  return `\`${JSON.stringify(v)}\``;
}

/** Every knob as the markdown table in docs/policy.md. */
export function knobTableMarkdown(s: PolicySettings): string[] {
  const rows = ['| key | default | per profile | meaning |', '|---|---|---|---|'];
  for (const key of POLICY_KEYS) rows.push(`| \`${key}\` | ${defaultText(key, s[key])} | ${isBaseOnlyKey(key) ? 'no' : 'yes'} | ${cell(policyKnobDoc(key))} |`);
  return rows;
}
