import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, CHROMIUM, launchBrowser, rawGet, skipBrowser } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * An export holds what a sender wrote. Opened in the developer's browser as HTML — a page elsewhere navigates it to
 * the embedded S3 with `?response-content-type=text/html` — it must run nothing: its origin is a loopback page, which
 * the operator routes and the embedded S3 itself trust (docs/security.md, The local operator surfaces).
 */
if (skipBrowser) {
  console.warn(`embedded S3 browser test SKIPPED: ${CHROMIUM} is missing (install it: apt-get install -y chromium).`);
}

let world: TestWorld;
let exportUrl: string;

beforeAll(async () => {
  world = await startWorld();
  const pause = `${world.gateway.url}/local/endpoints/general/pause`;
  const posted = await world.post({
    ...SEED_REQUEST,
    query: `deals <script>window.__xss=1;fetch('${pause}',{method:'POST'})</script> <img src=x onerror="window.__xss=2">`,
  });
  const id = posted.body.conversation_id as string;
  const key = (await world.listKeys()).find((k) => k.endsWith(`${id}/conversation.json`))!;
  exportUrl = `${world.gateway.s3Endpoint}/${world.gateway.bucket}/${key}?response-content-type=text/html`;
});
afterAll(async () => {
  await world?.close();
});

describe("the embedded S3's answers are inert in a browser", () => {
  it('every answer, the export served as text/html included, is sandboxed (CSP sandbox, nosniff)', async () => {
    const res = await rawGet(exportUrl);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html');
    expect(res.body).toContain('<script>window.__xss=1');
    expect(res.headers['content-security-policy']).toMatch(/(^|; )sandbox($|;)/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const refused = await rawGet(exportUrl, { host: 'attacker.example' });
    expect(refused.status).toBe(403);
    expect(refused.headers['content-security-policy']).toMatch(/sandbox/);
  });

  it.skipIf(skipBrowser)(
    "opened as HTML, a sender's script in an export neither runs nor reaches the operator routes",
    async () => {
      const browser: Browser = await launchBrowser();
      try {
        await browser.page.goto(exportUrl);
        await browser.page.waitForLoadState('networkidle'); // a fetch the script might have sent has landed
        expect(await browser.page.evaluate(() => (globalThis as { __xss?: number }).__xss)).toBeUndefined();
        const endpoints = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as {
          webhook_type: string;
          paused_at: string | null;
        }[];
        expect(endpoints.find((e) => e.webhook_type === 'general')?.paused_at).toBeNull();
      } finally {
        await browser.close();
      }
    },
  );
});
