// docs/policy.md carries the rule table and the knob table exactly as lib/policy generates
// them: a rule or knob changed in the code and not in the docs (or the other way) fails here.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { knobTableMarkdown, ruleTableMarkdown } from '../lib/policy/describe.js';
import { RULES, type RuleScope } from '../lib/policy/rules.js';
import { DEFAULT_POLICY_SETTINGS, POLICY_KEYS } from '../lib/policy/settings.js';

const DOC = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');
const THREATS = readFileSync(new URL('../../docs/threat-model.md', import.meta.url), 'utf8');

function block(open: string, close: string): string[] {
  const at = DOC.indexOf(open);
  if (at < 0) return [];
  const end = DOC.indexOf(close, at);
  return DOC.slice(at + open.length, end).trim().split('\n');
}

for (const scope of ['unproven_source', 'proven_site', 'ipv6_prefix'] as RuleScope[]) {
  t.test(`docs/policy.md: the ${scope} rule table is the code's`, async (t) => {
    t.same(block(`<!-- rules:${scope} -->`, '<!-- /rules -->'), ruleTableMarkdown(DEFAULT_POLICY_SETTINGS, scope));
  });
}

t.test('docs/policy.md: every knob, with its default and meaning', async (t) => {
  t.same(block('<!-- knobs -->', '<!-- /knobs -->'), knobTableMarkdown(DEFAULT_POLICY_SETTINGS));
});

t.test('every rule id and knob is named in the docs; every rule is explained', async (t) => {
  for (const r of RULES) t.match(DOC, `\`${r.id}\``, r.id);
  for (const k of POLICY_KEYS) t.match(DOC, `\`${k}\``, k);
  t.equal(new Set(RULES.map((r) => r.id)).size, RULES.length, 'rule ids are unique');
  t.match(THREATS, /never registered/, 'the threat model says what remains possible');
  t.match(THREATS, /failuresForgeable/, 'and what an operator can do');
});
