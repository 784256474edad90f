import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * A delivery URL's credentials stay in configuration (docs/security.md, "Delivery URLs outside configuration"): a
 * receiver URL with a secret in its path (Slack's shape) and in its query, answering with a redirect whose Location
 * carries `user:pass@` and a token, through a failed delivery, a redrive and a test delivery. Nothing the gateway
 * writes (attempt log, records, failed deliveries, execution history, exports, logs) nor shows (conversations show,
 * endpoints list, endpoints test, the console) holds any of them; the receiver still got the whole URL.
 */
const PATH_SECRET = 'PathSecret0xq7ZK';
const QUERY_SECRET = 'QuerySecret0xq7ZK';
const LOCATION_PASSWORD = 'LocPassword0xq7ZK';
const LOCATION_TOKEN = 'LocToken0xq7ZK';
const SECRETS = [PATH_SECRET, QUERY_SECRET, LOCATION_PASSWORD, LOCATION_TOKEN];

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

const cli = (args: string[]) =>
  runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url, NO_COLOR: '1' });

/** Every file under `dir` but the receivers' configuration (`endpoints/`, which keeps the URL whole), as text. */
async function filesUnder(dir: string): Promise<{ file: string; text: string }[]> {
  const found: { file: string; text: string }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    if (path.relative(dir, file).split(path.sep).includes('endpoints')) continue;
    found.push({ file, text: (await readFile(file)).toString('latin1') });
  }
  return found;
}

function secretsIn(text: string): string[] {
  return SECRETS.filter((s) => text.includes(s));
}

const redirect = () => ({
  status: 302,
  headers: { location: `http://operator:${LOCATION_PASSWORD}@127.0.0.1:9/moved?token=${LOCATION_TOKEN}` },
});

describe('a delivery URL with secrets in its path and query, redirected to a Location with credentials', () => {
  it('delivers to the whole URL, and records and shows only its origin', async () => {
    const secretPath = `/services/T0SLACK/B0SLACK/${PATH_SECRET}?token=${QUERY_SECRET}`;
    const set = await cli(['endpoints', 'set', 'deal_analysis', '--url', `${world.receiver.url}${secretPath}`]);
    expect(set.code, set.stderr).toBe(0);
    const shown = `${world.receiver.url}/…`;

    // A failed delivery: the redirect is permanent, not followed.
    world.receiver.reply(redirect());
    const res = await world.post(SEED_REQUEST);
    const id = res.body.conversation_id as string;
    expect(res.body.tracking.delivery_status).toBe('failed');
    expect(world.receiver.received.map((r) => r.path)).toEqual([secretPath]);

    // A redrive of it, redirected again.
    world.receiver.reply(redirect());
    const redriven = await cli(['deliveries', 'redrive', id]);
    expect(world.receiver.received.map((r) => r.path)).toEqual([secretPath, secretPath]);

    // A test delivery.
    world.receiver.reply(redirect());
    const tested = await cli(['endpoints', 'test', 'deal_analysis']);
    expect(tested.code).toBe(1);
    expect(tested.stdout).toContain(`to ${shown}`);
    expect(world.receiver.received.at(-1)!.path).toBe(secretPath);

    const shownJson = await cli(['conversations', 'show', id, '--json']);
    const attempts = JSON.parse(shownJson.stdout).delivery_attempts;
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    for (const a of attempts) {
      expect(a.request.url).toBe(shown);
      expect(a.error).toBe('HTTP 302 (a redirect to http://127.0.0.1:9/…, not followed): nope');
      expect(a.response.headers.location).toBe('http://127.0.0.1:9/…');
    }
    const listed = JSON.parse((await cli(['endpoints', 'list', '--json'])).stdout);
    expect(listed.find((v: { webhook_type: string }) => v.webhook_type === 'deal_analysis').url).toBe(shown);

    const outputs = {
      set: set.stdout + set.stderr,
      redrive: redriven.stdout + redriven.stderr,
      test: tested.stdout + tested.stderr,
      show: (await cli(['conversations', 'show', id])).stdout,
      showJson: shownJson.stdout,
      list: (await cli(['endpoints', 'list'])).stdout,
      listJson: JSON.stringify(listed),
      console: await (await fetch(`${world.gateway.url}/console/conversations/${id}`)).text(),
      consoleEndpoints: await (await fetch(`${world.gateway.url}/console/endpoints`)).text(),
      operatorEndpoints: await (await fetch(`${world.gateway.url}/local/endpoints`)).text(),
    };
    expect(outputs.show).toContain(`→ ${shown}`);
    expect(outputs.console).toContain(shown);
    for (const [what, text] of Object.entries(outputs))
      expect({ what, found: secretsIn(text) }).toEqual({ what, found: [] });

    // Exports and every file the gateway wrote: records, attempt log, failed deliveries, journal (execution
    // history), logs, the embedded S3's objects.
    const keys = await world.listKeys();
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect({ key, found: secretsIn(await world.getText(key)) }).toEqual({ key, found: [] });
    const files = await filesUnder(world.dataDir);
    expect(files.some((f) => f.file.includes('journal'))).toBe(true);
    expect(files.filter((f) => secretsIn(f.text).length > 0).map((f) => f.file)).toEqual([]);
  });
});
