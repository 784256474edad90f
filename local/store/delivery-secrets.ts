import { randomBytes } from 'node:crypto';
import { chmod, stat } from 'node:fs/promises';
import path from 'node:path';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { readJson, writeJsonAtomic } from './json-files.ts';

/**
 * Local deliveries are signed like AWS ones. When DELIVERY_SIGNING_SECRETS is not set, one `whsec_` secret per
 * webhook type is made on first start and kept in `<dataDir>/delivery-signing-secrets.json`, so a receiver can
 * verify across restarts; or they are read from the file DELIVERY_SIGNING_SECRETS_FILE names (docs/configuration.md). The file is its owner's alone (0600): made so, and put back so if it was found readable by
 * others (`fixed` says so, for the start banner).
 */
const SECRET_FILE_MODE = 0o600;

const deliverySecretsFile = (dataDir: string) => path.join(dataDir, 'delivery-signing-secrets.json');

/**
 * The file of the delivery secrets: DELIVERY_SIGNING_SECRETS_FILE when the user set it (a relative path from the
 * current directory), else the data folder's. Null when the user's are in DELIVERY_SIGNING_SECRETS (…_ARN).
 */
export function deliverySecretsFileOf(dataDir: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.DELIVERY_SIGNING_SECRETS || env.DELIVERY_SIGNING_SECRETS_ARN) return null;
  return env.DELIVERY_SIGNING_SECRETS_FILE
    ? path.resolve(env.DELIVERY_SIGNING_SECRETS_FILE)
    : deliverySecretsFile(dataDir);
}

/**
 * The delivery secrets of `file` (the data folder's when not given): made on first use for the data folder's; a file
 * the user named (DELIVERY_SIGNING_SECRETS_FILE) must exist, and is never made up.
 */
export async function localDeliverySecrets(
  dataDir: string,
  chosen?: string,
): Promise<{ json: string; file: string; fixedMode: string | null }> {
  const file = chosen ?? deliverySecretsFile(dataDir);
  let secrets = await readJson<Record<string, string | string[]>>(file);
  let fixedMode: string | null = null;
  if (!secrets && file !== deliverySecretsFile(dataDir))
    throw new Error(
      `DELIVERY_SIGNING_SECRETS_FILE: ${file} does not exist: write the secrets there ({"deal_analysis": "whsec_…", …}), or unset it to use ${deliverySecretsFile(dataDir)} (made on first start)`,
    );
  if (!secrets) {
    secrets = Object.fromEntries(WEBHOOK_TYPES.map((t) => [t, `whsec_${randomBytes(24).toString('base64')}`]));
    await writeJsonAtomic(file, secrets, SECRET_FILE_MODE);
  } else {
    const mode = (await stat(file)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      await chmod(file, SECRET_FILE_MODE);
      fixedMode = mode.toString(8).padStart(4, '0');
    }
  }
  return { json: JSON.stringify(secrets), file, fixedMode };
}

/**
 * Change one type's secrets in the local file (`endpoints set <type> --secret`), made first if the gateway never
 * started: the running gateway's Deliver reads the file again when it changes (DELIVERY_SIGNING_SECRETS_FILE).
 */
export async function changeLocalDeliverySecrets(
  dataDir: string,
  type: string,
  change: (current: string[]) => string[],
  chosen?: string,
): Promise<{ file: string; secrets: string[] }> {
  const { file } = await localDeliverySecrets(dataDir, chosen);
  const all = (await readJson<Record<string, string | string[]>>(file)) ?? {};
  const current = all[type];
  const secrets = change(current === undefined ? [] : Array.isArray(current) ? current : [current]);
  await writeJsonAtomic(file, { ...all, [type]: secrets.length === 1 ? secrets[0] : secrets }, SECRET_FILE_MODE);
  return { file, secrets };
}
