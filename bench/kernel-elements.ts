// The latency figure's stopwatch: when did an element appear in the kernel? A thread of this
// process sits in recv() on a netlink socket subscribed to nftables' multicast group and
// stamps CLOCK_MONOTONIC (process.hrtime, the clock the replay server stamps its writes with)
// the moment the kernel's NEWSETELEM notification wakes it — the kernel sends it while it
// commits the transaction. (Until this pass it was `nft monitor new elements` in a child
// process: its wake-up, its text output, a pipe and the bench's event loop added ~0.5-1 ms and
// most of the tail to every measurement.)
//
// Runs as a worker thread (this file is its own entry point); koffi calls libc directly.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_NETFILTER = 12;
const NFNLGRP_NFTABLES = 7;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_RCVBUF = 8;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWSETELEM = 12;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_DATA_VALUE = 1;

interface Attr { readonly type: number; readonly from: number; readonly to: number }

function* attributes(buf: Buffer, from: number, to: number): Generator<Attr> {
  let at = from;
  while (at + 4 <= to) {
    const len = buf.readUInt16LE(at);
    if (len < 4 || at + len > to) return;
    yield { type: buf.readUInt16LE(at + 2) & 0x3fff, from: at + 4, to: at + len };
    at += (len + 3) & ~3;
  }
}

/** IPv4 keys of the elements a NEWSETELEM message adds to `table` (nfgenmsg, then attributes). */
function addedIpv4(buf: Buffer, from: number, to: number, table: string): string[] {
  const out: string[] = [];
  let ours = false;
  let elements: Attr | null = null;
  for (const a of attributes(buf, from + 4, to)) {
    if (a.type === NFTA_SET_ELEM_LIST_TABLE) ours = buf.toString('utf8', a.from, a.to).replace(/\0+$/, '') === table;
    else if (a.type === NFTA_SET_ELEM_LIST_ELEMENTS) elements = a;
  }
  if (!ours || !elements) return out;
  for (const elem of attributes(buf, elements.from, elements.to)) {
    if (elem.type !== NFTA_LIST_ELEM) continue;
    for (const key of attributes(buf, elem.from, elem.to)) {
      if (key.type !== NFTA_SET_ELEM_KEY) continue;
      for (const value of attributes(buf, key.from, key.to)) {
        if (value.type === NFTA_DATA_VALUE && value.to - value.from === 4) out.push(`${buf[value.from]}.${buf[value.from + 1]}.${buf[value.from + 2]}.${buf[value.from + 3]}`);
      }
    }
  }
  return out;
}

interface WorkerInput { readonly table: string; readonly stop: SharedArrayBuffer }

function watch({ table, stop }: WorkerInput): void {
  const koffi = createRequire(import.meta.url)('koffi') as {
    load(path: string): { func(signature: string): (...args: unknown[]) => number };
  };
  const libc = koffi.load('libc.so.6');
  const socket = libc.func('int socket(int domain, int type, int protocol)');
  const bind = libc.func('int bind(int fd, const void *addr, uint32_t len)');
  const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)');
  const recv = libc.func('intptr_t recv(int fd, void *buf, size_t len, int flags)');
  const close = libc.func('int close(int fd)');
  const fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
  if (fd < 0) throw new Error('cannot open a netfilter netlink socket');
  const addr = Buffer.alloc(12);
  addr.writeUInt16LE(AF_NETLINK, 0);
  addr.writeUInt32LE(1 << (NFNLGRP_NFTABLES - 1), 8);
  if (bind(fd, addr, addr.length) !== 0) throw new Error('cannot join the nftables netlink group');
  // Wake up every 100 ms to see whether to stop; a large buffer for bursts.
  const timeout = Buffer.alloc(16);
  timeout.writeBigInt64LE(0n, 0);
  timeout.writeBigInt64LE(100_000n, 8);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, timeout.length);
  const rcvbuf = Buffer.alloc(4);
  rcvbuf.writeInt32LE(8 * 1024 * 1024, 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf, rcvbuf.length);
  const stopFlag = new Int32Array(stop);
  const buf = Buffer.alloc(256 * 1024);
  parentPort!.postMessage({ ready: true });
  while (Atomics.load(stopFlag, 0) === 0) {
    const n = recv(fd, buf, buf.length, 0);
    const t = process.hrtime.bigint();
    if (n <= 0) continue;
    const seen: string[] = [];
    for (let at = 0; at + 16 <= n;) {
      const len = buf.readUInt32LE(at);
      const type = buf.readUInt16LE(at + 4);
      if (len < 16 || at + len > n) break;
      if (type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM)) seen.push(...addedIpv4(buf, at + 16, at + len, table));
      at += (len + 3) & ~3;
    }
    if (seen.length > 0) parentPort!.postMessage({ t: Number(t), ips: seen });
  }
  close(fd);
}

if (!isMainThread && (workerData as { kernelElements?: boolean } | null)?.kernelElements) watch(workerData as WorkerInput);

/** First time (process.hrtime ns) each IPv4 element was seen added to the table, by the kernel's own notification. */
export class KernelElementWatch {
  readonly firstSeen = new Map<string, number>();
  private readonly stopFlag = new SharedArrayBuffer(4);
  private readonly worker: Worker;
  readonly ready: Promise<void>;

  constructor(table: string) {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { kernelElements: true, table, stop: this.stopFlag } });
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      this.worker.on('message', (m: { ready?: boolean; t?: number; ips?: string[] }) => {
        if (m.ready) { resolve(); return; }
        for (const ip of m.ips ?? []) if (!this.firstSeen.has(ip)) this.firstSeen.set(ip, m.t!);
      });
    });
  }

  async stop(): Promise<void> {
    Atomics.store(new Int32Array(this.stopFlag), 0, 1);
    await new Promise((resolve) => this.worker.once('exit', resolve));
  }
}
