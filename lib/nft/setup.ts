import { executeNft, type ExecuteOptions } from './execute.js';
import { setupCommands, type NftLayout } from './layout.js';
import type { NftRunner } from './runner.js';

/**
 * Creates (or repairs) fsguard's table, sets and chain in one transaction. Safe to run on
 * every start and while bans exist: no set is flushed or deleted. Throws the NftError
 * (check `.fatal` / `.kind`) when nft is missing, not permitted, or refuses the layout
 * (e.g. a set of that name exists with another type).
 */
export async function ensureNftTable(runner: NftRunner, layout: NftLayout, execute: ExecuteOptions): Promise<void> {
  const result = await executeNft(runner, setupCommands(layout), execute);
  if (!result.ok) throw result.error;
}
