// Timing is injected so tests can drive batching and retry backoff without sleeping.

/** Cancels a scheduled callback; calling it after the callback ran is harmless. */
export type CancelScheduled = () => void;

export interface Scheduler {
  schedule(callback: () => void, delayMs: number): CancelScheduled;
}

export interface Clock {
  /** Unix time in milliseconds. */
  nowMs(): number;
}

export const systemScheduler: Scheduler = {
  schedule(callback, delayMs) {
    // setTimeout(0) waits at least 1 ms; "now" means after the current I/O callbacks.
    if (delayMs <= 0) {
      const immediate = setImmediate(callback);
      return () => clearImmediate(immediate);
    }
    const handle = setTimeout(callback, delayMs);
    return () => clearTimeout(handle);
  },
};

export const systemClock: Clock = { nowMs: () => Date.now() };

export function delay(scheduler: Scheduler, ms: number): Promise<void> {
  return new Promise((resolve) => {
    scheduler.schedule(resolve, ms);
  });
}
