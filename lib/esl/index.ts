// Public surface of the ESL source. Everything else in lib/esl is an implementation detail.
export {
  EslEventSource, ESL_SOURCE_DEFAULTS, SUBSCRIPTION_COMMAND,
  type AuthRejection, type EslDropReason, type HeartbeatInfo, type EslLogger, type EslSourceDeps, type EslSourceListener,
  type EslSourceOptions, type EslTimers, type TimerHandle,
} from './esl-source.js';
export type { EslConnector, EslLink, EslLinkHandlers } from './modesl-link.js';
export {
  DEFAULT_FRAME_LIMITS, EslFrameParser, decodePlainValue, parsePlainEventBody,
  type EslFrame, type FrameDropReason, type FrameLimits, type FrameSink, type PlainEventHeaders,
} from './frame-parser.js';
export { DEFAULT_EVENT_GAP_THRESHOLD, EventSequenceTracker, readCoreUuid, readSequence, type EventGap } from './event-sequence.js';
export { parseRegistrations, REGISTRATIONS_API_COMMAND, type RegistrationsResult } from './registrations.js';
