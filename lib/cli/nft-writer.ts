// Builds the nft writer from config; shared by the daemon and the ban/unban/bans commands.
import type { NftConfig } from '../config/config.js';
import { NftSetWriter, SpawnNftRunner, resolveNftLayout, type NftSetWriterOptions } from '../nft/index.js';

export function nftWriterFromConfig(nft: NftConfig, options: NftSetWriterOptions = {}): NftSetWriter {
  const layout = resolveNftLayout(nft);
  return new NftSetWriter(new SpawnNftRunner({ binary: nft.binary }), layout, { batchMs: nft.batchMs, ...options });
}
