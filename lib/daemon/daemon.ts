// `fsguard run`: wires config → ESL source → Guard (policy) → nft writer, serves metrics,
// and handles the process lifecycle: SIGTERM/SIGINT write the pending batch and exit 0,
// SIGHUP reloads the config.
import type { Server } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { ConfigError, loadConfig, type FsguardConfig } from '../config/config.js';
import { EslEventSource } from '../esl/index.js';
import { loadLineScannerModule } from '../events/line-scanner.js';
import { nftRunnerFromConfig } from '../cli/nft-writer.js';
import { LISTING_DEADLINE_MS, LibnftablesRunner, NftError, NftSetWriter, nftJson, resolveNftLayout, systemScheduler, unansweredMessage, type NftBackend, type Scheduler } from '../nft/index.js';
import type { Logger } from '../obs/logger.js';
import { FsguardMetrics, serveMetrics } from '../obs/metrics.js';
import { createPolicy } from '../policy/engine.js';
import { allowedEverywhere } from '../policy/settings.js';
import { SwitchAddresses } from '../policy/switch-addresses.js';
import { DaemonOps } from '../status/wiring.js';
import { BanJournal, banJournalPath } from './ban-journal.js';
import { DaemonCluster } from '../cluster/daemon-cluster.js';
import { Guard } from './guard.js';
import { NftTableWatch } from './nft-monitor.js';

/** The policy's clock advances on this timer too, so silent sources are still judged. */
const TICK_MS = 1000;
/** A periodic reconcile waits at least this many times its own duration before the next. */
const RECONCILE_SHARE = 20;
/** ... but is put off at most this long while bans are queued for nft. */
const RECONCILE_MAX_DEFER_MS = 30_000;
/**
 * How far V8 lets the old generation grow past what survived the last full collection before
 * it collects again. Left to itself V8 allows up to 4× on a machine with memory to spare, and
 * under an address spray every tracked source is evicted within a second and becomes
 * old-generation garbage: ~80 MB of policy state at the default caps made a 420-530 MB
 * process. 50 % keeps the heap near 1.5× the live state, for more frequent full collections
 * (incremental and concurrent; they only happen when the state churns). It is a growth rate,
 * not a size limit: larger caps make a larger heap, never an out-of-memory crash.
 */
export const HEAP_GROWING_PERCENT = 50;

/**
 * The V8 flags `fsguard run` sets for itself, each unless node was started with that flag (an
 * operator's choice in the unit file wins):
 * - HEAP_GROWING_PERCENT (above);
 * - the event reader's wasm compiled by the optimizing compiler when it loads, not first by
 *   Liftoff and then again when it is hot: the tier-up stalled the main thread for
 *   milliseconds, a few times in a fresh daemon's first seconds of traffic, in the reader of the
 *   very event whose ban was waited for; compiling it all at once is paid once, at start
 *   (figures: bench/RESULTS.md, session 5).
 */
export const DAEMON_V8_FLAGS: readonly { readonly name: string; readonly flag: string }[] = [
  { name: 'heap-growing-percent', flag: `--heap-growing-percent=${HEAP_GROWING_PERCENT}` },
  { name: 'liftoff', flag: '--no-liftoff' },
  { name: 'wasm-lazy-compilation', flag: '--no-wasm-lazy-compilation' },
];

/** Sets DAEMON_V8_FLAGS, but those node was started with (in either spelling, with or without `no-`). */
export function applyDaemonV8Flags(execArgv: readonly string[], setV8Flags: (flags: string) => void): void {
  for (const { name, flag } of DAEMON_V8_FLAGS) {
    const own = new RegExp(`^--(no[-_])?${name.replace(/-/g, '[-_]')}(=|$)`);
    if (!execArgv.some((a) => own.test(a))) setV8Flags(flag);
  }
}

/** At start, nftables must answer (table set up, bans read back) within this long, or fsguard exits. */
export const NFT_START_DEADLINE_MS = 10_000;
/** Each later call into libnftables gets this long before it is reported hung and its context dropped. */
const NFT_CALL_DEADLINE_MS = 5000;
/**
 * After a stop signal, pending bans get this long to reach the kernel and the library's calls
 * in flight (a reconcile's listing has a 2 min deadline) this long to end, together: past it
 * the daemon exits without them, well within systemd's TimeoutStopSec (15 s). The bans in the
 * kernel stay (timed elements); those not written yet are in the journal for the next start.
 */
export const STOP_LIMIT_MS = 10_000;

export interface DaemonDeps {
  readonly logger: Logger & { level: string };
  /** Where the one-line fatal reason goes (stderr) besides the log. */
  readonly fatal: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Registers a signal handler; returns the unregister function. */
  readonly onSignal: (signal: NodeJS.Signals, handler: () => void) => () => void;
  /** V8 flags for this process (see HEAP_GROWING_PERCENT); default v8.setFlagsFromString. */
  readonly setV8Flags?: (flags: string) => void;
  /** Node's own flags; default process.execArgv. */
  readonly execArgv?: readonly string[];
  /** libnftables (tests wrap it to inject faults); default the library named by nft.library. */
  readonly nftBackend?: NftBackend;
  /** Runs the libnftables deadlines (each call's, the start's and the stop's); default real timers. */
  readonly nftScheduler?: Scheduler;
  /**
   * Called with the exit code instead of returning it when a libnftables call is still hung at
   * exit (it holds a worker thread that a normal exit would wait for forever): `_exit`.
   */
  readonly exitNow?: (code: number) => void;
}

function eslOptions(c: FsguardConfig) {
  return {
    host: c.esl.host,
    port: c.esl.port,
    password: c.esl.password,
    profiles: c.esl.profiles.length ? c.esl.profiles : null,
    reconnectMaxMs: c.esl.reconnectMaxSeconds * 1000,
    authRetryMs: c.esl.authRetrySeconds * 1000,
    heartbeatTimeoutMs: c.esl.heartbeatTimeoutSeconds * 1000,
    eventGapThreshold: c.esl.eventGapThreshold,
  };
}

function nftRunner(config: FsguardConfig, deps: DaemonDeps, limits: { maxContexts?: number; maxHungCalls?: number } = {}): LibnftablesRunner {
  const options = { timeoutMs: NFT_CALL_DEADLINE_MS, scheduler: deps.nftScheduler ?? systemScheduler, ...limits };
  return deps.nftBackend ? new LibnftablesRunner({ backend: deps.nftBackend, ...options }) : nftRunnerFromConfig(config.nft, options);
}

/** The daemon's writer: its own libnftables contexts (bans are written off the main thread). */
function writerFor(runner: LibnftablesRunner, config: FsguardConfig, logger: Logger, metrics: FsguardMetrics, onTableRecreated: () => void, onFailure: (message: string) => void = () => {}): NftSetWriter {
  return new NftSetWriter(runner, resolveNftLayout(config.nft), {
    batchMs: config.nft.batchMs,
    observer: {
      batchWritten: () => metrics.nftBatches.inc(),
      elementRefused: (target, message) => {
        metrics.nftErrors.inc();
        onFailure(`nft refused ${target.text}: ${message}`);
        logger.error({ target: target.text, nft: message }, 'nft refused a ban element');
      },
      runFailed: (error, willRetry) => {
        metrics.nftErrors.inc();
        onFailure(`nft run failed: ${error.message}`);
        if (error.kind === 'timeout') metrics.nftHungCalls.inc();
        logger[willRetry ? 'warn' : 'error']({ kind: error.kind, nft: error.detail, willRetry }, `nft run failed: ${error.message}`);
      },
      tableRecreated: () => {
        logger.warn({}, 'fsguard\'s nft table was missing and has been recreated');
        onTableRecreated();
      },
    },
  });
}

/** Runs until a stop signal; resolves with the exit code. */
export async function runDaemon(configFile: string | null, initial: FsguardConfig, deps: DaemonDeps): Promise<number> {
  const { logger } = deps;
  // Before anything compiles the event reader's wasm (the ESL source, below).
  applyDaemonV8Flags(deps.execArgv ?? process.execArgv, deps.setV8Flags ?? setFlagsFromString);
  let config = initial;
  const metrics = new FsguardMetrics();
  // The writer recreates a vanished table on its own; the guard then restores every ban.
  let guardRef: Guard | null = null;
  // `fsguard status` and notifications (lib/status, lib/notify); the policy is read through
  // a getter because a reload replaces it.
  // FreeSWITCH's addresses, never banned: one set for the guard, every policy and the cluster.
  const switchAddresses = new SwitchAddresses();
  let policy = createPolicy(config.policy, config.profiles, { switchAddresses });
  const ops: DaemonOps = new DaemonOps(config, {
    logger, metrics,
    configSource: configFile ?? deps.env.FSGUARD_CONFIG ?? 'built-in defaults',
    policy: () => policy,
    bansInForce: () => guard.bansInForce(),
    nftQueued: () => writer.queued,
    cluster: () => cluster?.status() ?? null,
  });
  const runner = nftRunner(config, deps);
  const writer = writerFor(runner, config, logger, metrics, () => {
    guardRef?.onTableRecreated().catch((err: unknown) => logger.error({ err: String(err) }, 'restoring bans failed'));
  }, (message) => ops.status.nftFailed(message));
  const journal = new BanJournal({
    path: banJournalPath(config.nft),
    onError: (message) => logger.error({}, message),
  });
  // With a cluster section the policy is fed the shared stream, not this node's events alone.
  const cluster = config.cluster.enabled ? new DaemonCluster(config, logger, metrics.registry, switchAddresses) : null;
  const guard = new Guard(policy, writer, logger, metrics, { allow: allowedEverywhere(config.policy, config.profiles), journal, switchAddresses, ...cluster?.guardOptions(), observers: ops.observers });
  guardRef = guard;
  /** Ends the process: normally by returning, with `_exit` when a libnftables call is hung. */
  const finish = (code: number): number => {
    if (runner.unfinishedCalls > 0) {
      logger.warn({ hungCalls: runner.hungCalls, unfinishedCalls: runner.unfinishedCalls }, 'a libnftables call has not returned: exiting without waiting for it');
      deps.exitNow?.(code);
    }
    return code;
  };
  // A stop signal during start ends the start, cleanly (nothing was started that could outlive us).
  let stopDuringStart: ((signal: string) => void) | null = null;
  const startSignals = (['SIGTERM', 'SIGINT'] as const).map((signal) => deps.onSignal(signal, () => stopDuringStart?.(signal)));
  const started = await new Promise<'ok' | 'stopped' | Error>((resolve) => {
    const deadline = (deps.nftScheduler ?? systemScheduler).schedule(() => resolve(new NftError('timeout',
      unansweredMessage(NFT_START_DEADLINE_MS / 1000, ' at start'), 'start deadline')), NFT_START_DEADLINE_MS);
    stopDuringStart = (signal) => {
      logger.info({ signal }, 'stopping during start');
      deadline();
      resolve('stopped');
    };
    // The deadline is for a library that does not answer: a cheap call (no set elements) must
    // come back within it. The table's read-back that follows takes as long as the bans need
    // (LISTING_DEADLINE_MS): 300,000 of them took over 10 s to list.
    void runner.run([nftJson.listChains()], { timeoutMs: LISTING_DEADLINE_MS }).then((probe) => {
      if (probe.kind === 'timed-out') return;
      deadline();
      guard.start().then(() => resolve('ok'), (err: unknown) => resolve(err instanceof Error ? err : new Error(String(err))));
    });
  });
  stopDuringStart = null;
  for (const off of startSignals) off();
  if (started !== 'ok') {
    if (started === 'stopped') {
      logger.info({}, 'stopped; bans stay in the kernel until they expire');
      if (runner.unfinishedCalls === 0) await writer.close();
      return finish(0);
    }
    const err = started;
    const msg = err instanceof NftError ? err.message : `cannot set up nftables: ${err.message}`;
    logger.error({ err: err instanceof NftError ? { kind: err.kind, detail: err.detail } : String(err) }, msg);
    deps.fatal(msg);
    if (runner.unfinishedCalls === 0) await writer.close();
    return finish(1);
  }

  let metricsServer: Server | null = null;
  const startMetrics = async (c: FsguardConfig): Promise<void> => {
    if (!c.metrics.enabled) return;
    try {
      const { server, port } = await serveMetrics(metrics, c.metrics.host, c.metrics.port);
      metricsServer = server;
      logger.info({ host: c.metrics.host, port }, 'metrics at /metrics');
    } catch (err) {
      // Protection matters more than metrics: keep running, say why there are none.
      logger.error({ host: c.metrics.host, port: c.metrics.port, err: String(err) }, 'cannot serve metrics');
    }
  };
  await startMetrics(config);
  await ops.start();

  cluster?.start(guard);
  const listener = cluster ? cluster.listenerFor(guard) : guard;
  let source = new EslEventSource(eslOptions(config), listener, { logger });
  // Without the wasm line scanner (a build without dist/wasm) every event body goes to
  // JSON.parse, with the same results, slower: worth a line in the log, not a refusal to run.
  const scanner = loadLineScannerModule();
  if (scanner instanceof Error) logger.warn({ err: scanner.message }, 'the wasm event reader did not load (npm run build makes it): reading event json with JSON.parse, slower');
  source.start();
  logger.info({ esl: `${config.esl.host}:${config.esl.port}`, profiles: config.esl.profiles.length ? config.esl.profiles : 'all', table: `inet ${config.nft.table}` }, 'fsguard running');

  // A deleted table is rebuilt at once, not at the next periodic reconcile: watched on a
  // context of its own (its listings never wait behind a big write).
  const watchRunner = nftRunner(config, deps, { maxContexts: 1, maxHungCalls: 1 });
  const monitor = new NftTableWatch(watchRunner, { family: 'inet', table: config.nft.table, scheduler: systemScheduler }, () => {
    guard.kernelChanged().catch((err: unknown) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'rebuilding the nft table failed; the periodic reconcile retries'));
  }, logger);
  monitor.start();

  // The policy's clock starts at wall time, not at the first event's timestamp: otherwise a
  // source's events stamped in the past (a clock behind, a replayed trace) get bans that
  // "expire" at the first tick, and are banned a second time as repeat offenders.
  guard.tick();
  const tick = setInterval(() => { guard.tick(); ops.status.tick(); }, TICK_MS);
  // The periodic read-back lists every ban: with 100,000 of them that is ~1.5 s of nft and
  // ~10 MB of JSON for the daemon to parse, which every 2 s would take most of a core in a
  // flood. So the next one starts no sooner than RECONCILE_SHARE times the last one's
  // duration after it ended (a small table keeps the configured interval).
  // While bans are still queued for nft (a flood), it is put off — by at most
  // RECONCILE_MAX_DEFER_MS: the monitor catches a deleted table meanwhile, and what the
  // read-back is for (bans lifted or added by hand) can wait that long.
  let reconcile: NodeJS.Timeout | null = null;
  let reconcileStopped = false;
  let lastReconcileAt = Date.now();
  const scheduleReconcile = (delayMs: number): void => {
    reconcile = setTimeout(() => {
      reconcile = null;
      if (writer.queued > 0 && Date.now() - lastReconcileAt < RECONCILE_MAX_DEFER_MS) {
        scheduleReconcile(Math.min(1000, config.nft.reconcileSeconds * 1000));
        return;
      }
      const startedAt = Date.now();
      lastReconcileAt = startedAt;
      guard.reconcile()
        .catch((err: unknown) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'reconcile with the kernel failed; will retry'))
        .finally(() => {
          if (reconcileStopped || reconcile !== null) return;
          scheduleReconcile(Math.max(config.nft.reconcileSeconds * 1000, (Date.now() - startedAt) * RECONCILE_SHARE));
        });
    }, delayMs);
  };
  scheduleReconcile(config.nft.reconcileSeconds * 1000);

  /** Set by the stop signal: a reload still running then starts nothing more. */
  let stopping = false;
  /**
   * Reloads run one after another (two SIGHUPs in a row: the second reads the config the first
   * left, and never starts a second event source beside the first's), and stop() waits for the
   * one running.
   */
  let reloading: Promise<void> = Promise.resolve();
  const reload = async (): Promise<void> => {
    if (stopping) return;
    let next: FsguardConfig;
    try {
      const loaded = loadConfig(configFile, deps.env);
      for (const w of loaded.warnings) logger.warn({}, w);
      next = loaded.config;
    } catch (err) {
      logger.error({ problems: err instanceof ConfigError ? err.problems : [String(err)] }, 'config reload refused; keeping the running config');
      return;
    }
    const changed = (a: unknown, b: unknown): boolean => JSON.stringify(a) !== JSON.stringify(b);
    logger.level = next.log.level;
    if (changed(config.cluster, next.cluster)) logger.warn({}, 'cluster settings changed: they take effect on restart');
    if (changed(config.nft, next.nft)) logger.warn({}, 'nft settings changed: they take effect on restart (bans in the old table stay until they expire)');
    if (changed(config.policy, next.policy) || changed(config.profiles, next.profiles)) {
      policy = createPolicy(next.policy, next.profiles, { switchAddresses });
      guard.replacePolicy(policy, allowedEverywhere(next.policy, next.profiles));
      cluster?.policyChanged(next.policy, next.profiles);
      logger.info({}, 'policy reloaded (evidence gathered so far starts afresh; kernel bans are kept)');
    }
    if (changed(config.esl, next.esl)) {
      await source.stop();
      if (stopping) return;
      source = new EslEventSource(eslOptions(next), listener, { logger });
      source.start();
      logger.info({ esl: `${next.esl.host}:${next.esl.port}` }, 'event socket settings reloaded: reconnecting');
    }
    if (changed(config.metrics, next.metrics)) {
      const old = metricsServer;
      metricsServer = null;
      if (old) await new Promise<void>((resolve) => old.close(() => resolve()));
      if (stopping) return;
      await startMetrics(next);
    }
    await ops.reload(next);
    if (stopping) return;
    if (reconcile !== null) clearTimeout(reconcile);
    config = next;
    scheduleReconcile(next.nft.reconcileSeconds * 1000);
    logger.info({}, 'config reloaded');
  };

  return await new Promise<number>((resolve) => {
    // Once stopping, a second SIGTERM or SIGINT gets the default action (it ends the process:
    // how an operator insists), while a SIGHUP is still taken and ignored until the stop is done:
    // one sent by log rotation must not kill the daemon before its pending bans are written.
    const offHangup = deps.onSignal('SIGHUP', () => {
      reloading = reloading.then(reload).catch((err: unknown) => {
        logger.error({ err: err instanceof Error ? err.message : String(err) }, 'config reload failed part way: what it applied before the failure stays');
      });
    });
    const stop = async (signal: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping: writing pending bans');
      // Bounded (TimeoutStopSec is 15 s): with nft hung, or a listing of a large table running,
      // what is not done by then is left.
      let cancelStopLimit = (): void => undefined;
      const stopLimit = new Promise<false>((r) => { cancelStopLimit = (deps.nftScheduler ?? systemScheduler).schedule(() => r(false), STOP_LIMIT_MS); });
      const withinStopLimit = (work: Promise<unknown>): Promise<boolean> => Promise.race([work.then(() => true), stopLimit]);
      await reloading;
      clearInterval(tick);
      reconcileStopped = true;
      if (reconcile !== null) clearTimeout(reconcile);
      monitor.stop();
      for (const off of unregister) off();
      try {
        await source.stop();
        await cluster?.stop();
        const flushed = await withinStopLimit(guard.flush());
        if (!flushed) {
          logger.error({ queued: writer.queued }, `pending bans not written within ${STOP_LIMIT_MS / 1000} s of the stop signal (nftables hung?)`);
          guard.closeJournal();
          deps.exitNow?.(0);
        } else {
          logger.info({}, 'pending bans written; closing the libnftables contexts');
          // A call still running (a reconcile's listing, the table watch's) is not waited for
          // past the limit: the exit then leaves its worker thread (finish, below).
          const closed = await withinStopLimit(Promise.all([
            ...(runner.hungCalls === 0 ? [writer.close()] : []),
            ...(watchRunner.hungCalls === 0 ? [watchRunner.close()] : []),
          ]));
          if (!closed) {
            logger.warn({ unfinishedCalls: runner.unfinishedCalls + watchRunner.unfinishedCalls }, `a libnftables call (a listing of the table?) still running ${STOP_LIMIT_MS / 1000} s after the stop signal: not waited for (the bans stay in the kernel)`);
          }
        }
        await ops.stop();
      } catch (err) {
        logger.error({ err: String(err) }, 'error while stopping');
      }
      cancelStopLimit();
      const server: Server | null = metricsServer;
      if (server) await new Promise<void>((r) => server.close(() => r()));
      logger.info({}, 'stopped; bans stay in the kernel until they expire');
      if (watchRunner.unfinishedCalls > 0) deps.exitNow?.(0);
      offHangup();
      resolve(finish(0));
    };
    const unregister = [
      deps.onSignal('SIGTERM', () => void stop('SIGTERM')),
      deps.onSignal('SIGINT', () => void stop('SIGINT')),
    ];
  });
}
