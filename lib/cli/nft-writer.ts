// Builds the nft writer from config; shared by the daemon and the ban/unban/bans commands.
import type { NftConfig } from '../config/config.js';
import { NftSetWriter, SpawnNftRunner, resolveNftLayout, type NftSetWriterOptions } from '../nft/index.js';

export function nftWriterFromConfig(nft: NftConfig, options: NftSetWriterOptions = {}): NftSetWriter {
  const layout = resolveNftLayout({
    table: nft.table,
    set4: nft.set4,
    set6: nft.set6,
    set6net: nft.set6net,
    chain: nft.chain,
    chainPriority: nft.chainPriority,
    ports: nft.ports,
  });
  return new NftSetWriter(new SpawnNftRunner({ binary: nft.binary }), layout, { batchMs: nft.batchMs, ...options });
}
