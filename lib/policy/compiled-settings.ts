// One profile's policy settings, checked and pre-computed in µs: what every rule, window and
// timer of the engine reads. Each profile with an override gets its own, so every key a
// profile may override reaches every rule and window fed by that profile's events.
import { parseCidrs, type Cidr } from '../net/ip.js';
import { policySettingsProblems, type PolicySettings } from './settings.js';

export const US = 1_000_000;

export interface RuleSettings {
  readonly profile: string;
  readonly raw: PolicySettings;
  readonly allow: readonly Cidr[];
  readonly scannerPatterns: readonly string[];
  readonly shortWindowUs: number;
  readonly longWindowUs: number;
  readonly answerTimeoutUs: number;
  readonly floodAgeUs: number;
  readonly alertIntervalUs: number;
  readonly legitimacyUs: number;
  readonly offenceMemoryUs: number;
  readonly graceUs: number;
}

export function compileSettings(profile: string, s: PolicySettings): RuleSettings {
  const problems = policySettingsProblems(s, profile === '' ? 'policy' : `profiles.${profile}`);
  if (problems.length) throw new Error(`invalid policy settings: ${problems.join('; ')}`);
  const allow = parseCidrs(s.allow);
  return {
    profile,
    raw: s,
    allow,
    scannerPatterns: s.scannerUserAgents.map((p) => p.toLowerCase()),
    shortWindowUs: s.shortWindowSeconds * US,
    longWindowUs: s.longWindowSeconds * US,
    answerTimeoutUs: s.answerTimeoutSeconds * US,
    floodAgeUs: s.challengeFloodAgeSeconds * US,
    alertIntervalUs: s.alertIntervalSeconds * US,
    legitimacyUs: s.legitimacySeconds * US,
    offenceMemoryUs: s.offenceMemorySeconds * US,
    graceUs: s.unbanGraceSeconds * US,
  };
}
