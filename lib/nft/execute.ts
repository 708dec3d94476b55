// One nft transaction with bounded retries of transient failures. Everything that talks to
// nft goes through here, so the retry rule is the same for setup, bans and read-back.
import { classifyRun, NftError } from './errors.js';
import type { NftCallOptions, NftInput, NftRunner } from './libnftables.js';
import { delay, type Scheduler } from './scheduler.js';

export interface RetryPolicy {
  /** Retries after the first attempt, for retryable failures only. */
  readonly maxRetries: number;
  /** First backoff; doubles per retry up to `maxDelayMs`. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({ maxRetries: 4, baseDelayMs: 50, maxDelayMs: 2000 });

export type NftExecution =
  | { readonly ok: true; readonly output: string }
  | { readonly ok: false; readonly error: NftError };

export interface ExecuteOptions {
  readonly retry: RetryPolicy;
  readonly scheduler: Scheduler;
  /** Called for every failed attempt that is reported (retried ones too), never swallowed. */
  readonly onRunFailed?: (error: NftError, willRetry: boolean) => void;
}

export async function executeNft(runner: NftRunner, commands: NftInput, options: ExecuteOptions, call: NftCallOptions = {}): Promise<NftExecution> {
  for (let attempt = 0; ; attempt++) {
    const result = await runner.run(commands, call);
    const error = classifyRun(result, runner.library);
    if (!error) return { ok: true, output: result.kind === 'completed' ? result.output : '' };
    const willRetry = error.retryable && attempt < options.retry.maxRetries;
    // Only whole-run failures are reported here; content errors are the caller's to split.
    if (error.retryable || error.fatal) options.onRunFailed?.(error, willRetry);
    if (!willRetry) return { ok: false, error };
    await delay(options.scheduler, Math.min(options.retry.maxDelayMs, options.retry.baseDelayMs * 2 ** attempt));
  }
}
