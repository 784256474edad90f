import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { GATEWAY_ANSWER_MS } from '../../../local/cli/deliveries.ts';
import { CliError, gatewayUrl } from '../../../local/cli/shared.ts';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { pendingEnvelope } from '../../support/aws-fixtures.ts';
import { runMain } from '../../support/cli.ts';

/** Where `deliveries redrive`/`resend` find the running gateway: --url, GATEWAY_URL, gateway.json, or PORT. */
describe('the gateway URL of the CLI', () => {
  let dataDir: string;
  const saved = { GATEWAY_URL: process.env.GATEWAY_URL, PORT: process.env.PORT };
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'gateway-url-'));
  });
  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  it('an empty GATEWAY_URL counts as unset, as every variable does (docs/configuration.md)', async () => {
    process.env.PORT = '41234';
    process.env.GATEWAY_URL = '';
    expect(await gatewayUrl(undefined, dataDir)).toBe('http://127.0.0.1:41234');
    process.env.GATEWAY_URL = 'http://127.0.0.1:9/';
    expect(await gatewayUrl(undefined, dataDir)).toBe('http://127.0.0.1:9');
  });

  it('a --url or GATEWAY_URL that is no http(s) address is named as such, not as a gateway that is not running', async () => {
    process.env.GATEWAY_URL = '';
    await expect(gatewayUrl('127.0.0.1:3000', dataDir)).rejects.toThrow(
      new CliError(
        `--url must be the gateway's http:// address, e.g. http://127.0.0.1:3000 (what npm start prints); got "127.0.0.1:3000"`,
      ),
    );
    process.env.GATEWAY_URL = 'notaurl';
    await expect(gatewayUrl(undefined, dataDir)).rejects.toThrow(
      /^GATEWAY_URL must be the gateway's http:\/\/ address/,
    );
    expect(await gatewayUrl('https://gw.example:8443/', dataDir)).toBe('https://gw.example:8443');
  });

  it('a --url that answers but is not the gateway (another server, the embedded S3) is said so, not a JSON SyntaxError', async () => {
    const other = createServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      const id = 'webhook_20261203_014742_testing_phase3valid_c65swbapsr';
      const result = await runMain(['deliveries', 'resend', id, '--url', url], { LOCAL_DATA_DIR: dataDir });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `webhook-gateway: ${url} answered the resend of ${id} with HTTP 403 (application/xml), not the local gateway's JSON: is it the gateway's address? Use the URL npm start prints (--url or GATEWAY_URL)\n`,
      );
    } finally {
      other.close();
    }
  });

  it('a gateway that takes the resend and never answers (suspended with Ctrl-Z, hung) is said so after 150 s, not "not running" after 5 minutes', async () => {
    let taken = 0;
    const hung = createServer(() => {
      taken += 1; // never answered
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    const id = 'webhook_20261203_014742_testing_phase3valid_c65swbapsr';
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const ran = runMain(['deliveries', 'resend', id, '--url', url], { LOCAL_DATA_DIR: dataDir });
      await vi.waitFor(() => expect(taken).toBe(1), { timeout: 10_000, interval: 20 });
      await vi.advanceTimersByTimeAsync(GATEWAY_ANSWER_MS - 1);
      expect(await Promise.race([ran.then(() => 'ended'), Promise.resolve('waiting')])).toBe('waiting');
      await vi.advanceTimersByTimeAsync(1);
      const result = await ran;
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        new RegExp(
          `^webhook-gateway: the gateway at ${url} took the resend of ${id} but did not answer within 150 s \\(suspended with Ctrl-Z, or hung\\): `,
        ),
      );
    } finally {
      vi.useRealTimers();
      hung.closeAllConnections();
      hung.close();
    }
  });

  it("a delivery the gateway no longer holds (its 404 in the contract's error shape) is one result of a redrive, not its end", async () => {
    const envelope = pendingEnvelope('gone404');
    const id = envelope.conversation_id;
    await new LocalFailedDeliveryStore(dataDir).put(envelope);
    const message = `no failed delivery of ${id} is stored (none was owed, or its file was deleted): nothing was attempted`;
    const gateway = createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success: false, error: { code: 'NOT_FOUND', message } }));
    });
    await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
    try {
      const result = await runMain(['deliveries', 'redrive', id, '--url', url], { LOCAL_DATA_DIR: dataDir });
      // Before, the gateway's 404 had no error and was read as this result; in the contract's shape it must be still.
      expect(result.stdout).toContain(`[1/1] ${id} → not_found: ${message}`);
      expect(result.stdout).toContain('redrove 1: 1 not found');
      // Nothing was redriven of the one asked for: exit 1 (it was 0, as though it had been).
      expect(result.code, result.stderr).toBe(1);
      // In an --all it is one no longer owed: the rest done, the command is done.
      const all = await runMain(['deliveries', 'redrive', '--all', '--url', url], { LOCAL_DATA_DIR: dataDir });
      expect(all.stdout).toContain(`[1/1] ${id} → not_found: ${message}`);
      expect(all.code, all.stderr).toBe(0);
    } finally {
      gateway.close();
    }
  });
  it('a gateway still starting (503 STARTING, as its listener answers before its engine is up) is asked again after its Retry-After, not a refusal', async () => {
    // Before: "the gateway refused the resend of <id>: the gateway is starting", exit 1, for a command sent right
    // after npm start. Retry-After 0 here (the gateway says 1): nothing in the test waits for time.
    const id = 'webhook_20261203_014742_testing_phase3valid_c65swbapsr';
    let asked = 0;
    const starting = createServer((req, res) => {
      asked += 1;
      req.resume();
      if (asked <= 2) {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
        res.end(JSON.stringify({ success: false, error: { code: 'STARTING', message: 'the gateway is starting' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ conversation_id: id, status: 'delivered' }));
    });
    await new Promise<void>((r) => starting.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(starting.address() as AddressInfo).port}`;
    try {
      const result = await runMain(['deliveries', 'resend', id, '--url', url], { LOCAL_DATA_DIR: dataDir });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`${id} resent → delivered`);
      expect(asked).toBe(3);
    } finally {
      starting.close();
    }
  });
});
