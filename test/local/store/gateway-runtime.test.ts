import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { writerHost } from '../../../functions/shared/writers.ts';
import {
  type GatewayRuntime,
  localExportBucket,
  readGatewayRuntime,
  removeGatewayRuntime,
  writeGatewayRuntime,
} from '../../../local/store/gateway-runtime.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

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
    expect(await readGatewayRuntime(dir)).toEqual({ ...runtime(process.pid), host: writerHost() });
    await removeGatewayRuntime(dir);
    expect(await readGatewayRuntime(dir)).toBeNull();
  });

  it('one of a gateway in another pid namespace runs while its gateway.pid names it and is fresh', async () => {
    const other = anotherHost();
    const file = path.join(dir, 'gateway.json');
    const pidFile = path.join(dir, 'gateway.pid');
    // A gateway in a container: its pid (this process's own, pids from 1 there; or one free here) says nothing here.
    for (const pid of [process.pid, 99_999_999]) {
      const theirs = { ...runtime(pid), host: other };
      await writeFile(file, JSON.stringify(theirs));
      await writeFile(pidFile, `${pid}@${other} 4242`); // touched every 10 s while it runs
      // Before: a pid free here read as no gateway running (a command used this shell's PORT), this process's as one.
      expect(await readGatewayRuntime(dir)).toEqual(theirs);
      const stoppedAt = new Date(Date.now() - 31_000);
      await utimes(pidFile, stoppedAt, stoppedAt); // killed, its container stopped: no longer touched
      expect(await readGatewayRuntime(dir)).toBeNull();
      await writeFile(pidFile, `${pid}@${writerHost()} 4242`); // a gateway of this namespace holds the folder now
      expect(await readGatewayRuntime(dir)).toBeNull();
      await rm(pidFile);
      expect(await readGatewayRuntime(dir)).toBeNull();
    }
    expect(JSON.parse(await readFile(file, 'utf8')).host).toBe(other);
  });

  it('one left by a killed gateway is ignored; a damaged one is read as none too, but said once on stderr', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
      await writeGatewayRuntime(dir, runtime(dead));
      expect(await readGatewayRuntime(dir)).toBeNull();
      expect(stderr).not.toHaveBeenCalled();
      // The commands that work without a gateway still do (null), but the user is told. Before: silently none.
      const file = path.join(dir, 'gateway.json');
      for (const [text, reason] of [
        ['{"pid": ', 'not valid JSON'],
        ['null', 'no process id'],
        ['{"url": "http://127.0.0.1:3000"}', 'no process id'],
      ]) {
        stderr.mockClear();
        await writeFile(file, text!);
        expect(await readGatewayRuntime(dir)).toBeNull();
        expect(await readGatewayRuntime(dir)).toBeNull();
        expect(stderr).toHaveBeenCalledTimes(1); // once, however often a command reads it
        const line = String(stderr.mock.calls[0]![0]);
        expect(line).toContain(`${file} is damaged (${reason}`);
        expect(line).toContain('restart the gateway of this folder to write it again, or delete it if none runs');
      }
    } finally {
      stderr.mockRestore();
    }
  });

  it('the export bucket: CONVERSATION_EXPORT_S3_BUCKET, else the running gateway’s, else the default', async () => {
    expect(await localExportBucket(dir, {})).toBe('revops-conversations');
    await writeGatewayRuntime(dir, runtime(process.pid));
    expect(await localExportBucket(dir, {})).toBe('other-bucket');
    expect(await localExportBucket(dir, { CONVERSATION_EXPORT_S3_BUCKET: 'mine' })).toBe('mine');
  });
});
