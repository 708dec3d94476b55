// `fsguard check`: is this installation able to protect? Validates the config, that nft
// works with our table, and that the event socket accepts the password. One line per
// problem (never the password), non-zero exit if any.
import { ConfigError, loadConfig, type FsguardConfig } from '../config/config.js';
import { EslEventSource } from '../esl/index.js';
import { silentLogger } from '../obs/logger.js';
import { parseArgs, UsageError } from './args.js';
import { checkCluster } from '../cluster/cli.js';
import type { CliIo } from './main.js';
import { nftRunnerFromConfig } from './nft-writer.js';
import { compareLayout, exitWithHungCalls, foreignTableError, inspectTable, resolveNftLayout, systemClock, systemScheduler, type NftRunner } from '../nft/index.js';
import { checkNotify } from '../notify/check.js';

const ESL_CHECK_TIMEOUT_MS = 5000;
const NFT_CHECK_TIMEOUT_MS = 10_000;
const NO_RETRY = { maxRetries: 0, baseDelayMs: 0, maxDelayMs: 0 };

/** Problems are thrown as one Error whose message has one `nft: ` line per problem. */
async function checkNft(config: FsguardConfig, runner: NftRunner): Promise<string> {
  const layout = resolveNftLayout(config.nft);
  try {
    const inspection = await inspectTable(runner, layout, systemClock, { retry: NO_RETRY, scheduler: systemScheduler });
    const name = `inet ${layout.table}`;
    if (inspection.table === null) return `nft: ok (libnftables answers; table ${name} will be created by fsguard run)`;
    if (!inspection.owned) throw new Error(`nft: ${foreignTableError(layout).message}`);
    if (inspection.earlier) {
      return `nft: ok (table ${name} was made by an earlier fsguard, before its sets carried the mark: fsguard run adopts it — adds the sets this version has, rebuilds its chain — and keeps its ${inspection.list.bans.length} bans)`;
    }
    const report = compareLayout(layout, inspection.table);
    if (report.mismatches.length > 0) {
      const fix = report.unrepairable.length > 0 ? 'fsguard run refuses this table' : 'fsguard run repairs these';
      throw new Error([...report.mismatches.map((m) => `nft: ${m}`), `nft: (${fix})`].join('\n'));
    }
    return `nft: ok (table ${name}, fsguard's layout, ${inspection.list.bans.length} bans)`;
  } finally {
    if (runner.hungCalls === 0) await runner.close?.();
  }
}

function checkEsl(config: FsguardConfig): Promise<string> {
  const where = `${config.esl.host}:${config.esl.port}`;
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (ok: boolean, line: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void source.stop().finally(() => (ok ? resolve(line) : reject(new Error(line))));
    };
    const source = new EslEventSource({
      host: config.esl.host, port: config.esl.port, password: config.esl.password, profiles: null,
      handshakeTimeoutMs: ESL_CHECK_TIMEOUT_MS,
    }, {
      onEvent() {}, onEventReceived() {}, onDropped() {}, onRegistrations() {}, onDisconnected() {},
      onConnected: () => finish(true, `esl: ok (${where}, logged in and subscribed)`),
      onAuthRejected: (kind) => finish(false, kind === 'invalid_password'
        ? `esl: ${where} refused the password (set esl.password or FSGUARD_ESL_PASSWORD)`
        : `esl: ${where} rejected us by ACL (event_socket.conf.xml apply-inbound-acl)`),
    }, { logger: silentLogger() });
    const timer = setTimeout(() => finish(false, `esl: cannot log in to ${where} within ${ESL_CHECK_TIMEOUT_MS / 1000} s (is FreeSWITCH running with mod_event_socket listening there?)`), ESL_CHECK_TIMEOUT_MS);
    source.start();
  });
}

export async function runCheckCommand(argv: string[], configFile: string | null, io: CliIo): Promise<number> {
  const { positionals } = parseArgs(argv, {}, 'check');
  if (positionals.length) throw new UsageError(`check: unexpected argument ${positionals[0]}`);
  const problems: string[] = [];
  const ok = (line: string): void => { io.stdout.write(`${line}\n`); };
  let config: FsguardConfig;
  try {
    const loaded = loadConfig(configFile, io.env);
    ok(`config: ok (${loaded.source})`);
    for (const w of loaded.warnings) io.stderr.write(`config: warning: ${w}\n`);
    config = loaded.config;
  } catch (err) {
    for (const p of err instanceof ConfigError ? err.problems : [String(err)]) io.stderr.write(`config: ${p}\n`);
    return 1;
  }
  const runner = nftRunnerFromConfig(config.nft, { timeoutMs: NFT_CHECK_TIMEOUT_MS, maxHungCalls: 1 });
  const [results, notifyResult] = await Promise.all([
    Promise.allSettled([checkNft(config, runner), checkEsl(config), ...(config.cluster.enabled ? [checkCluster(config)] : [])]),
    checkNotify(config.notify).then((v) => ({ ok: true as const, v }), (err: unknown) => ({ ok: false as const, err })),
  ]);
  for (const r of results) {
    if (r.status === 'fulfilled') ok(r.value);
    else problems.push(r.reason instanceof Error ? r.reason.message : String(r.reason));
  }
  // Notification lines (lib/notify/check.ts): already prefixed, never holding a secret.
  if (notifyResult.ok) {
    for (const line of notifyResult.v.ok) ok(line);
    problems.push(...notifyResult.v.problems);
  } else {
    problems.push(`notify: ${notifyResult.err instanceof Error ? notifyResult.err.message : String(notifyResult.err)}`);
  }
  for (const p of problems) io.stderr.write(`${p.startsWith('esl:') || p.startsWith('nft:') || p.startsWith('cluster:') || p.startsWith('notify:') ? '' : 'nft: '}${p}\n`);
  const code = problems.length ? 1 : 0;
  // A hung libnftables call holds a worker thread that a normal exit would wait for.
  if (runner.hungCalls > 0) exitWithHungCalls(code);
  return code;
}
