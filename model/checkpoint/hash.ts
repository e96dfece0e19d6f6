/** sha256 helpers (hex digests). */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { readCheckpointMeta } from './load.ts';

/** Lowercase hex sha256 of a file, streamed (does not load the file into memory). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Lowercase hex sha256 of bytes in memory. */
export function sha256Bytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 of the checkpoint's weights file (named in meta.json) as it is on disk now (computed, not read from meta.json). */
export async function checkpointWeightsSha256(dir: string): Promise<string> {
  return sha256File(join(dir, (await readCheckpointMeta(dir)).weights.file));
}
