// Builds the nft writer from config; shared by the daemon and the ban/unban/bans commands.
import type { NftConfig } from '../config/config.js';
import {
  LibnftablesBackend, LibnftablesRunner, NftSetWriter, resolveNftLayout, type LibnftablesRunnerOptions, type NftSetWriterOptions,
} from '../nft/index.js';

/** The library named by nft.library, unless `options.backend` says otherwise. */
export function nftRunnerFromConfig(nft: NftConfig, options: LibnftablesRunnerOptions = {}): LibnftablesRunner {
  return new LibnftablesRunner({ backend: options.backend ?? new LibnftablesBackend(nft.library), ...options });
}

export function nftWriterFromConfig(nft: NftConfig, options: NftSetWriterOptions = {}, runner: LibnftablesRunner = nftRunnerFromConfig(nft)): NftSetWriter {
  const layout = resolveNftLayout(nft);
  return new NftSetWriter(runner, layout, { batchMs: nft.batchMs, ...options });
}
