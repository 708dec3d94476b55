// "Sources closest to a threshold", behind one seam: the policy's own
// nearestThresholds(limit) (lib/policy/engine.ts), read from whichever policy is current (a
// config reload replaces it). The status code only ever calls ThresholdInspection.
import type { NearThreshold } from '../policy/engine.js';

export type { NearThreshold };

export interface ThresholdInspection {
  nearestThresholds(limit: number): readonly NearThreshold[];
}

export function thresholdInspection(policy: () => ThresholdInspection): ThresholdInspection {
  return { nearestThresholds: (limit) => policy().nearestThresholds(limit).slice(0, limit) };
}
