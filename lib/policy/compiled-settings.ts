// One profile's policy settings, checked and pre-computed in µs: what every rule, window and
// timer of the engine reads. Each profile with an override gets its own, so every key a
// profile may override reaches every rule and window fed by that profile's events.
import { parseCidrs, type Cidr } from '../net/ip.js';
import { counterWindow, type CounterWindow } from './counters.js';
import { policySettingsProblems, type PolicySettings } from './settings.js';

export const US = 1_000_000;

export interface RuleSettings {
  readonly profile: string;
  readonly raw: PolicySettings;
  readonly allow: readonly Cidr[];
  readonly scannerPatterns: readonly string[];
  /** The windows (each with the base settings' length of it: see CounterWindow). */
  readonly shortWindow: CounterWindow;
  readonly longWindow: CounterWindow;
  readonly answerTimeoutUs: number;
  readonly floodAgeUs: number;
  readonly alertIntervalUs: number;
  readonly legitimacyUs: number;
  readonly offenceMemoryUs: number;
  readonly graceUs: number;
}

/** A profile's settings (`base`: the base settings', compiled; null when these are the base). */
export function compileSettings(profile: string, s: PolicySettings, base: RuleSettings | null = null): RuleSettings {
  const problems = policySettingsProblems(s, profile === '' ? 'policy' : `profiles.${profile}`);
  if (problems.length) throw new Error(`invalid policy settings: ${problems.join('; ')}`);
  const allow = parseCidrs(s.allow);
  return {
    profile,
    raw: s,
    allow,
    scannerPatterns: s.scannerUserAgents.map((p) => p.toLowerCase()),
    shortWindow: counterWindow(s.shortWindowSeconds * US, base !== null ? base.shortWindow : null),
    longWindow: counterWindow(s.longWindowSeconds * US, base !== null ? base.longWindow : null),
    answerTimeoutUs: s.answerTimeoutSeconds * US,
    floodAgeUs: s.challengeFloodAgeSeconds * US,
    alertIntervalUs: s.alertIntervalSeconds * US,
    legitimacyUs: s.legitimacySeconds * US,
    offenceMemoryUs: s.offenceMemorySeconds * US,
    graceUs: s.unbanGraceSeconds * US,
  };
}
