/**
 * Where the running gateway can be reached, for the CLI (docs/operations.md): `<dataDir>/gateway.json`, written
 * once the gateway is up and removed when it stops. A command run without PORT or LOCAL_S3_PORT (another shell,
 * another directory) finds the gateway through it; one left by a killed gateway is ignored (its process is gone; in
 * another pid namespace, its gateway.pid no longer kept fresh: local/store/data-dir-lock.ts).
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { WebhookType } from '../../functions/domain/conversation.ts';
import type { BreakerPolicy } from '../../functions/domain/endpoints.ts';
import { readDataText } from '../../functions/shared/local-files.ts';
import { DEFAULTS, settings } from '../../functions/shared/settings.ts';
import { writerHost, writerState } from '../../functions/shared/writers.ts';
import { holdsDataDir } from './data-dir-lock.ts';
import { writeJsonAtomic } from './json-files.ts';

export interface GatewayRuntime {
  pid: number;
  /**
   * The host tag of its pid (functions/shared/writers.ts): a command in another pid namespace (on the host, the
   * gateway in a container) knows it runs by its fresh gateway.pid, not by a pid that says nothing there. Absent in a
   * file written by an older gateway (judged by its pid alone).
   */
  host?: string;
  url: string;
  s3_endpoint: string;
  bucket: string;
  export_enabled: boolean;
  started_at: string;
  /**
   * Each type's deployed receiver, as the gateway was started with it (its `*_WEBHOOK_URL`, else the built-in
   * receiver): `endpoints list` in another shell shows where the gateway delivers, not what that shell's variables
   * say. Absent in a file written by an older gateway.
   */
  delivery_urls?: Record<WebhookType, string | null>;
  /**
   * The circuit breaker it judges receivers by (its ENDPOINT_FAILURE_THRESHOLD and ENDPOINT_DISABLE_AFTER_DAYS):
   * `endpoints list` in another shell says failing or healthy as the gateway does. Absent from an older gateway's.
   */
  breaker?: BreakerPolicy;
  /**
   * The file it signs deliveries with (DELIVERY_SIGNING_SECRETS_FILE, else the data folder's), null when it signs with
   * DELIVERY_SIGNING_SECRETS: `endpoints set --secret` in another shell rotates the secret the gateway uses. Absent
   * from an older gateway's.
   */
  delivery_secrets_file?: string | null;
}

const fileOf = (dataDir: string) => path.join(dataDir, 'gateway.json');

export async function writeGatewayRuntime(dataDir: string, runtime: GatewayRuntime): Promise<void> {
  await writeJsonAtomic(fileOf(dataDir), { ...runtime, host: writerHost() });
}

export async function removeGatewayRuntime(dataDir: string): Promise<void> {
  await rm(fileOf(dataDir), { force: true });
}

/** The damaged files already said, each with what it held: a command that reads one three times says so once. */
const told = new Set<string>();

/**
 * The running gateway of `dataDir`, or null when none runs there (no file, or one left by a killed gateway). A
 * damaged one (not JSON, no process id, a file it may not read) is read as none too, so that the commands that work
 * without a gateway still do, but not silently: stderr names it and what to do (docs/operations.md, "After a crash").
 */
export async function readGatewayRuntime(dataDir: string): Promise<GatewayRuntime | null> {
  const file = fileOf(dataDir);
  let text: string;
  try {
    const read = await readDataText(file, { maxBytes: 64 * 1024 });
    if (read === null) return null;
    text = read;
  } catch (error) {
    return damaged(file, (error as Error).message, '');
  }
  let runtime: GatewayRuntime | null;
  try {
    runtime = JSON.parse(text) as GatewayRuntime | null;
  } catch (error) {
    return damaged(file, `not valid JSON: ${(error as Error).message}`, text);
  }
  if (!Number.isInteger(runtime?.pid)) return damaged(file, 'no process id', text);
  if (!runtime) return null;
  // Its pid checked here when it ran in this pid namespace (or wrote no host); else its gateway.pid's heartbeat.
  const state = writerState({ pid: runtime.pid, host: runtime.host ?? null });
  if (state === 'fresh')
    return (await holdsDataDir(dataDir, { pid: runtime.pid, host: runtime.host! })) ? runtime : null;
  return state === 'alive' || state === 'this process' ? runtime : null;
}

function damaged(file: string, reason: string, text: string): null {
  if (!told.has(`${file}\n${text}`)) {
    told.add(`${file}\n${text}`);
    process.stderr.write(
      `webhook-gateway: ${file} is damaged (${reason}), read as no gateway running: this command uses this shell's PORT and settings; restart the gateway of this folder to write it again, or delete it if none runs\n`,
    );
  }
  return null;
}

/**
 * The export bucket a command on this machine reads: CONVERSATION_EXPORT_S3_BUCKET when set, else the running
 * gateway's (it may have been started with another), else the default.
 */
export async function localExportBucket(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return settings(env).exportBucket ?? (await readGatewayRuntime(dataDir))?.bucket ?? DEFAULTS.exportBucket;
}
