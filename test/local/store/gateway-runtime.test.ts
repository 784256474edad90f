import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type GatewayRuntime,
  localExportBucket,
  readGatewayRuntime,
  removeGatewayRuntime,
  writeGatewayRuntime,
} from '../../../local/store/gateway-runtime.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'gateway-runtime-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const runtime = (pid: number): GatewayRuntime => ({
  pid,
  url: 'http://127.0.0.1:41234',
  s3_endpoint: 'http://127.0.0.1:41235',
  bucket: 'other-bucket',
  export_enabled: false,
  started_at: '2026-12-01T18:00:00.000Z',
});

describe('gateway.json: where the gateway of a data directory runs', () => {
  it('is read back while its process lives, and gone once removed', async () => {
    await writeGatewayRuntime(dir, runtime(process.pid));
    expect(await readGatewayRuntime(dir)).toEqual(runtime(process.pid));
    await removeGatewayRuntime(dir);
    expect(await readGatewayRuntime(dir)).toBeNull();
  });

  it('one left by a killed gateway, or a damaged one, is ignored', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeGatewayRuntime(dir, runtime(dead));
    expect(await readGatewayRuntime(dir)).toBeNull();
    await writeFile(path.join(dir, 'gateway.json'), '{"pid": ');
    expect(await readGatewayRuntime(dir)).toBeNull();
  });

  it('the export bucket: CONVERSATION_EXPORT_S3_BUCKET, else the running gateway’s, else the default', async () => {
    expect(await localExportBucket(dir, {})).toBe('revops-conversations');
    await writeGatewayRuntime(dir, runtime(process.pid));
    expect(await localExportBucket(dir, {})).toBe('other-bucket');
    expect(await localExportBucket(dir, { CONVERSATION_EXPORT_S3_BUCKET: 'mine' })).toBe('mine');
  });
});
