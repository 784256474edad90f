import { Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A listening server that cannot accept a connection (the process out of file descriptors: EMFILE) emits 'error' on
 * itself, as Node's net module does (`accept EMFILE`). Before: the gateway's was unlistened, so the process ended with
 * every conversation in flight; the embedded S3's was swallowed without a word. Now each says so in one line (once
 * until a connection is accepted again) and goes on serving.
 */
const servers: Server[] = [];
let world: TestWorld;
beforeAll(async () => {
  const listen = Server.prototype.listen;
  const spy = vi.spyOn(Server.prototype, 'listen').mockImplementation(function (this: Server, ...args: unknown[]) {
    servers.push(this);
    return (listen as (...a: unknown[]) => Server).apply(this, args);
  });
  try {
    world = await startWorld();
  } finally {
    spy.mockRestore();
  }
});
afterAll(async () => {
  await world?.close();
});

/** The error Node's net module emits on a server whose accept(2) failed (errnoException(err, 'accept')). */
const acceptFailed = (code: 'EMFILE' | 'ENFILE') =>
  Object.assign(new Error(`accept ${code}`), { code, errno: code === 'EMFILE' ? -24 : -23, syscall: 'accept' });

const serverOn = (url: string) => {
  const port = Number(new URL(url).port);
  const server = servers.find((s) => s.listening && (s.address() as AddressInfo | null)?.port === port);
  if (!server) throw new Error(`no server on ${url}`);
  return server;
};

describe('a connection a listening server could not accept', () => {
  it.each([
    ['the gateway', () => world.gateway.url],
    ['the embedded S3', () => world.gateway.s3Endpoint],
  ])('%s: one line saying so and what to do, not one per connection; it goes on serving', async (name, url) => {
    const server = serverOn(url());
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      // Before (the gateway): thrown out of emit, an uncaught exception that ended the process.
      server.emit('error', acceptFailed('EMFILE'));
      server.emit('error', acceptFailed('EMFILE'));
      expect(printed).toHaveBeenCalledTimes(1);
      const line = String(printed.mock.calls[0]![0]);
      expect(line).toContain(
        `webhook-gateway: ${name} at 127.0.0.1:${new URL(url()).port} could not accept a connection`,
      );
      expect(line).toContain('(accept EMFILE); it goes on serving: the process is out of file descriptors');
      expect(line).toContain('ulimit -n');

      // Still serving: a conversation runs, delivered and exported through the embedded S3.
      const res = await world.post(SEED_REQUEST);
      expect(res.status).toBe(200);
      expect(res.body.tracking.delivery_status).toBe('delivered');
      expect(await world.listKeys(folderOf(res.body.conversation_id))).toHaveLength(4);

      // A connection accepted since: the next failure is said again.
      const accepted = new Promise((resolve) => server.once('connection', resolve));
      const socket = connect(Number(new URL(url()).port), '127.0.0.1');
      await accepted;
      socket.destroy();
      server.emit('error', acceptFailed('ENFILE'));
      expect(printed).toHaveBeenCalledTimes(2);
      expect(String(printed.mock.calls[1]![0])).toContain('(accept ENFILE)');
    } finally {
      printed.mockRestore();
    }
  });
});
