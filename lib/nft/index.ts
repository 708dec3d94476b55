// Public API of lib/nft: fsguard's typed libnftables JSON client and ban-set writer.
export { NftSetWriter } from './writer.js';
export type { ElementOutcome, NftElementWrite, NftSetWriterOptions, NftWriteAction, NftWriterObserver } from './writer.js';
export { LibnftablesBackend, LibnftablesRunner, exitWithHungCalls } from './libnftables.js';
export type { LibnftablesRunnerOptions, NftBackend, NftCallResult, NftContext, NftInput, NftRunner, NftRunResult } from './libnftables.js';
export { NftError, classifyRun, unansweredMessage } from './errors.js';
export type { NftErrorKind } from './errors.js';
export {
  BAN_SET_ROLES, NftLayoutError, OWNER_MARK, compareLayout, createTableScript, isPrefixRole, resolveNftLayout, setRoleFor,
} from './layout.js';
export type { BanSetRole, KernelTable, LayoutReport, NftLayout, NftLayoutOptions } from './layout.js';
export { ensureNftTable, foreignTableError } from './setup.js';
export { LISTING_DEADLINE_MS, inspectTable, listKernelBans, parseListOutput } from './readback.js';
export type { KernelBan, KernelBanList, TableInspection } from './readback.js';
export { BannedPrefixes } from './banned-prefixes.js';
export { formatBanComment, parseBanComment, sanitizeCommentText, MAX_COMMENT_BYTES } from './comment.js';
export type { BanComment } from './comment.js';
export { DEFAULT_RETRY_POLICY, executeNft } from './execute.js';
export type { ExecuteOptions, NftExecution, RetryPolicy } from './execute.js';
export { systemClock, systemScheduler } from './scheduler.js';
export type { CancelScheduled, Clock, Scheduler } from './scheduler.js';
export * as nftJson from './builders.js';
export type * from './schema.js';
