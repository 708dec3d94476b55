// What a dialled number looks like: international, premium-rate, or neither. Only a prefix
// test: fsguard does not know the operator's numbering plan, and a carrier that delivers DIDs
// in E.164 (`+44…`) sends numbers that look international too — which is why the call rules
// weigh unrouted calls from unproven sources only, and why proof from answered calls matters.

export type NumberClass = 'international' | 'premium' | 'other';

/** Characters that must follow a prefix for it to count: `00` + a country code + a subscriber. */
export const MIN_SUBSCRIBER_DIGITS = 6;

export interface NumberPatterns {
  readonly international: readonly string[];
  readonly premium: readonly string[];
}

function matches(number: string, prefixes: readonly string[]): boolean {
  for (const p of prefixes) {
    if (number.length - p.length >= MIN_SUBSCRIBER_DIGITS && number.startsWith(p)) return true;
  }
  return false;
}

/** Premium first: `+1900…` is both, and premium is the more expensive reading. */
export function classifyNumber(number: string, patterns: NumberPatterns): NumberClass {
  if (matches(number, patterns.premium)) return 'premium';
  if (matches(number, patterns.international)) return 'international';
  return 'other';
}

/** International or premium: the destinations toll fraud is after. */
export function isCostly(c: NumberClass): boolean {
  return c !== 'other';
}
