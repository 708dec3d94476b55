// Start-up of the kernel side: our table is created when there is none, checked when there
// is one, repaired only when it is ours, and refused when it is not.
import { addElements, deleteElements, element, elements, prefix } from './builders.js';
import { NftError } from './errors.js';
import { executeNft, type ExecuteOptions } from './execute.js';
import { chainRepairCommands, compareLayout, createTableScript, missingSetsScript, type LayoutReport, type NftLayout } from './layout.js';
import type { NftRunner } from './libnftables.js';
import { inspectTable, type KernelBan, type TableInspection } from './readback.js';
import type { Clock } from './scheduler.js';

export function foreignTableError(layout: NftLayout): NftError {
  const name = `inet ${layout.table}`;
  return new NftError('foreign-table',
    `table ${name} exists and was not created by fsguard (none of its sets carries fsguard's mark, and it holds more than an earlier fsguard's sets and rules): fsguard will not touch it; set nft.table to another name`,
    `table ${name} is not fsguard's`);
}

export function layoutError(layout: NftLayout, report: LayoutReport): NftError {
  return new NftError('layout',
    `table inet ${layout.table} does not have fsguard's layout and cannot be repaired without deleting bans: ${report.unrepairable.join('; ')}`,
    report.unrepairable.join('; '));
}

/**
 * Makes our table match the layout and returns what it holds (for the read-back of bans).
 * Safe on every start and while bans exist: no set of ours is flushed or deleted; the chain
 * is rebuilt only when it differs. Throws the NftError (check `.fatal` / `.kind`) when the
 * library is missing, not permitted, the table is someone else's, or a set has the wrong shape.
 */
export async function ensureNftTable(runner: NftRunner, layout: NftLayout, execute: ExecuteOptions, clock: Clock): Promise<TableInspection> {
  let inspection = await inspectTable(runner, layout, clock, execute);
  if (inspection.table === null) {
    const created = await executeNft(runner, createTableScript(layout), execute);
    if (!created.ok) throw created.error;
    inspection = await inspectTable(runner, layout, clock, execute);
    if (inspection.table === null) throw new NftError('missing-table', `table inet ${layout.table} vanished right after it was created`, 'vanished');
  }
  // A table an earlier fsguard made (before the mark) is adopted: the sets added since are
  // created with the mark below, the chain rebuilt, its bans kept.
  if (!inspection.owned) throw foreignTableError(layout);
  const report = compareLayout(layout, inspection.table!);
  if (report.unrepairable.length > 0) throw layoutError(layout, report);
  for (const repair of [missingSetsScript(layout, report), chainRepairCommands(layout, report)]) {
    if (repair === null) continue;
    const repaired = await executeNft(runner, repair, execute);
    if (!repaired.ok) throw repaired.error;
  }
  return moveSlash64s(runner, layout, execute, inspection);
}

/**
 * /64 bans an earlier fsguard put in the interval set move to the /64 set (see layout.ts), in
 * one transaction, with what is left of their time and their comment.
 */
async function moveSlash64s(runner: NftRunner, layout: NftLayout, execute: ExecuteOptions, inspection: TableInspection): Promise<TableInspection> {
  const moving = inspection.list.bans.filter((b) => b.set === 'set6net' && b.target.prefixLength === 64);
  if (moving.length === 0) return inspection;
  const { family, table } = layout;
  const kept = moving.filter((b) => b.expiresSeconds !== 0).map((b) => element(b.target.network, {
    ...(b.expiresSeconds !== null ? { timeout: b.expiresSeconds } : {}),
    ...(b.comment !== null ? { comment: b.comment } : {}),
  }));
  const moved = await executeNft(runner, [
    ...(kept.length > 0 ? [addElements(elements(family, table, layout.set6p64, kept))] : []),
    deleteElements(elements(family, table, layout.set6net, moving.map((b) => prefix(b.target.network, 64)))),
  ], execute);
  if (!moved.ok) throw moved.error;
  const movedBans = new Set(moving);
  const bans = inspection.list.bans.map((b): KernelBan => (movedBans.has(b) ? { ...b, set: 'set6p64' } : b));
  return { ...inspection, list: { ...inspection.list, bans } };
}
