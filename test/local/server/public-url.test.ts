import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicBase, resolveOptions } from '../../../local/server/config.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The local gateway behind a reverse proxy (docs/configuration.md, PUBLIC_URL; docs/security.md): the proxy either
 * rewrites Host to 127.0.0.1, where the 202's status URL named the loopback address, useless to its caller, or passes
 * the public Host on, which the loopback-bound gateway refused (403, its DNS-rebinding guard).
 */
type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: any };

function send(
  base: string,
  target: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: target,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON (a console page)
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const accept = (world: TestWorld, host: string) =>
  send(world.gateway.url, '/webhook', {
    method: 'POST',
    headers: { host, 'content-type': 'application/json', prefer: 'respond-async' },
    body: JSON.stringify(SEED_REQUEST),
  });

const STATUS_URL = /\/conversations\/(webhook_[a-z0-9_]+)\?source_system=testing_system$/;

describe('without PUBLIC_URL', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(async () => {
    await world?.close();
  });

  it('the 202 names the API as the caller reached it (its Host), and a public Host is refused on loopback', async () => {
    const host = new URL(world.gateway.url).host;
    const accepted = await accept(world, host);
    expect(accepted.status).toBe(202);
    expect(accepted.body.status_url).toMatch(new RegExp(`^http://${host.replace(/\./g, '\\.')}/conversations/`));
    expect(accepted.headers.location).toBe(accepted.body.status_url);
    await world.gateway.idle();
    const proxied = await send(world.gateway.url, '/health', { headers: { host: 'gateway.example.com' } });
    expect(proxied.status).toBe(403);
    expect(proxied.body.error.message).toContain('127.0.0.1, localhost or [::1] only, not to "gateway.example.com"');
  });
});

describe('with PUBLIC_URL=https://gateway.example.com/gw/', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld({ PUBLIC_URL: 'https://gateway.example.com/gw/' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('the status URL and Location are under PUBLIC_URL, its path prefix kept, whatever Host the proxy passes', async () => {
    for (const host of [new URL(world.gateway.url).host, 'gateway.example.com']) {
      const accepted = await accept(world, host);
      expect(accepted.status).toBe(202);
      expect(accepted.body.status_url).toMatch(/^https:\/\/gateway\.example\.com\/gw\/conversations\/webhook_/);
      expect(accepted.body.status_url).toMatch(STATUS_URL);
      expect(accepted.headers.location).toBe(accepted.body.status_url);
      await world.gateway.idle();
      // The proxy strips /gw: the path it forwards is the status route's.
      const path = new URL(accepted.body.status_url).pathname.replace(/^\/gw/, '');
      const read = await send(world.gateway.url, `${path}?source_system=testing_system`, {
        headers: { host: 'gateway.example.com' },
      });
      expect(read.status).toBe(200);
      expect(read.body.status).toBe('completed');
    }
  });

  it('the public routes answer its host (any case, the default port written out); the console and operator endpoints do not', async () => {
    for (const host of ['gateway.example.com', 'Gateway.Example.COM', 'gateway.example.com:443'])
      expect((await send(world.gateway.url, '/health', { headers: { host } })).status).toBe(200);
    // A page of the public site may call it, as anyone may through the proxy.
    const page = await send(world.gateway.url, '/health', {
      headers: { host: 'gateway.example.com', origin: 'https://elsewhere.example' },
    });
    expect(page.status).toBe(200);
    const unknown = await send(
      world.gateway.url,
      '/conversations/webhook_20250813_103045_testing_x_abc?source_system=a',
      {
        headers: { host: 'gateway.example.com' },
      },
    );
    expect(unknown.status).toBe(404);
    for (const target of ['/console', '/local/deliveries', '/local/receiver/general']) {
      const refused = await send(world.gateway.url, target, { headers: { host: 'gateway.example.com' } });
      expect(refused.status, target).toBe(403);
    }
    // Another name, or the public name on another port, is still a rebound name.
    for (const host of ['other.example.com', 'gateway.example.com:8443']) {
      const other = await send(world.gateway.url, '/health', { headers: { host } });
      expect(other.status, host).toBe(403);
      expect(other.body.error.message).toContain(
        '127.0.0.1, localhost or [::1] and "gateway.example.com" (PUBLIC_URL)',
      );
    }
    // X-Forwarded-Host is not trusted: it names nothing.
    const forwarded = await send(world.gateway.url, '/health', {
      headers: { host: 'other.example.com', 'x-forwarded-host': 'gateway.example.com' },
    });
    expect(forwarded.status).toBe(403);
  });
});

describe('PUBLIC_URL values', () => {
  it.each([
    ['https://gateway.example.com', 'https://gateway.example.com', 'gateway.example.com'],
    ['https://Gateway.Example.com:443/gw/', 'https://gateway.example.com/gw', 'gateway.example.com'],
    ['http://203.0.113.7:8080/a/b', 'http://203.0.113.7:8080/a/b', '203.0.113.7:8080'],
  ])('%s → base %s, host %s', (value, base, host) => {
    expect(publicBase(value)).toEqual({ base, host });
    expect(resolveOptions({}, { PUBLIC_URL: value }).publicUrl).toEqual({ base, host });
  });

  it('none by default', () => {
    expect(resolveOptions({}, {}).publicUrl).toBeNull();
  });

  it.each([
    'gateway.example.com',
    'ftp://gateway.example.com',
    'https://gateway.example.com/gw?x=1',
    'https://gateway.example.com/gw#top',
    'https://user:pass@gateway.example.com',
    'https://',
  ])('%s stops the start with one line naming the variable', (value) => {
    expect(() => resolveOptions({}, { PUBLIC_URL: value })).toThrow(
      `PUBLIC_URL must be the http:// or https:// URL callers reach the gateway by, a path prefix allowed and nothing else (no user, query or fragment), e.g. https://gateway.example.com/gw, got "${value}"`,
    );
  });
});
