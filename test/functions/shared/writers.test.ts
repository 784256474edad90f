import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readlink, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostTagOf, writerHost } from '../../../functions/shared/writers.ts';

describe('writerHost: the host name, the pid namespace and the machine id', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'writers-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const tagOfHostAndNamespace = async () =>
    createHash('sha256')
      .update([hostname(), await readlink('/proc/self/ns/pid')].join('\n'))
      .digest('hex')
      .slice(0, 8);

  it('two machines of one host name (the same pid namespace id: the host’s own) get two tags', async () => {
    const a = path.join(dir, 'a-machine-id');
    const b = path.join(dir, 'b-machine-id');
    await writeFile(a, `${'a'.repeat(32)}\n`);
    await writeFile(b, `${'b'.repeat(32)}\n`);
    // Before: the tag was of the host name and the namespace alone, one tag for both machines.
    expect(hostTagOf([a])).not.toBe(hostTagOf([b]));
    expect(hostTagOf([a])).toMatch(/^[0-9a-f]{8}$/);
    expect(hostTagOf([a])).toBe(hostTagOf([a])); // the same machine, the same tag
  });

  it('the first file that holds one is read (/etc/machine-id, else /var/lib/dbus/machine-id)', async () => {
    const dbus = path.join(dir, 'dbus-machine-id');
    await writeFile(dbus, 'c'.repeat(32));
    expect(hostTagOf([path.join(dir, 'absent'), dbus])).toBe(hostTagOf([dbus]));
  });

  it('none, or none usable (uninitialized, empty, a FIFO): the tag of the host name and namespace, as before', async () => {
    const fifo = path.join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const uninitialized = path.join(dir, 'uninitialized');
    await writeFile(uninitialized, 'uninitialized\n');
    const empty = path.join(dir, 'empty');
    await writeFile(empty, '');
    const before = await tagOfHostAndNamespace();
    expect(hostTagOf([path.join(dir, 'absent')])).toBe(before);
    expect(hostTagOf([fifo, uninitialized, empty])).toBe(before); // the FIFO not waited on
  });

  it('this process’s tag is read once, with the machine’s files', () => {
    expect(writerHost()).toBe(hostTagOf(['/etc/machine-id', '/var/lib/dbus/machine-id']));
    expect(writerHost()).toBe(writerHost());
  });
});
