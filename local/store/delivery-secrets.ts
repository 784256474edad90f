import { randomBytes } from 'node:crypto';
import { chmod, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { parseSecretsBySource, type SecretsBySource } from '../../functions/domain/signatures.ts';
import {
  createExclusive,
  type LockWait,
  readDataText,
  SECRETS_READ,
  withFileLock,
} from '../../functions/shared/local-files.ts';
import { readJson, removeCopiesOfGoneWriters, writeJsonAtomic } from './json-files.ts';

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
  // What a start or an `endpoints set --secret` killed in the middle of writing the file left aside (a copy of every
  // secret) goes now, wherever the file lives: the retention sweep looks only in the data folder, a day later.
  const name = path.basename(file);
  await removeCopiesOfGoneWriters(path.dirname(file), [name, `${name}.lock`]);
  let secrets = await readJson<Record<string, string | string[]>>(file, SECRETS_READ);
  let fixedMode: string | null = null;
  if (!secrets && file !== deliverySecretsFile(dataDir))
    throw new Error(
      `DELIVERY_SIGNING_SECRETS_FILE: ${file} does not exist: write the secrets there ({"deal_analysis": "whsec_…", …}), or unset it to use ${deliverySecretsFile(dataDir)} (made on first start)`,
    );
  if (!secrets) {
    const made = Object.fromEntries(WEBHOOK_TYPES.map((t) => [t, `whsec_${randomBytes(24).toString('base64')}`]));
    // Made only where none is: a gateway starting while `endpoints set --secret` makes it (or two commands at once)
    // must not replace the other's secrets with its own. The one that lost reads the winner's.
    // Owner-only, like the data folder (docs/security.md): a command run before the first start may make it.
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    if (await createExclusive(file, `${JSON.stringify(made, null, 2)}\n`, SECRET_FILE_MODE)) secrets = made;
    else return localDeliverySecrets(dataDir, file);
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
 * started: the running gateway's Deliver reads the file again when it changes (DELIVERY_SIGNING_SECRETS_FILE). `wait`:
 * how its lock is waited for (the command says on stderr when it waits for another container's writer).
 */
export async function changeLocalDeliverySecrets(
  dataDir: string,
  type: string,
  change: (current: string[]) => string[],
  chosen?: string,
  wait?: LockWait,
): Promise<{ file: string; secrets: string[] }> {
  const { file } = await localDeliverySecrets(dataDir, chosen);
  // A read-modify-write under the file's lock (functions/shared/local-files.ts, as the receivers' files are changed):
  // two `endpoints set --secret` at once each change their own type, and neither write loses the other's.
  return withFileLock(
    file,
    async () => {
      const all = (await readJson<Record<string, string | string[]>>(file, SECRETS_READ)) ?? {};
      const current = all[type];
      const secrets = change(current === undefined ? [] : Array.isArray(current) ? current : [current]);
      await writeJsonAtomic(file, { ...all, [type]: secrets.length === 1 ? secrets[0] : secrets }, SECRET_FILE_MODE);
      return { file, secrets };
    },
    wait,
  );
}

/**
 * Whether `file` is the data folder's secrets file and is not there yet: the first start makes it, one secret per type
 * (localDeliverySecrets), so a listing says that rather than `unsigned`. A file the user named is never made.
 */
export async function secretsMadeAtFirstStart(dataDir: string, file: string | null): Promise<boolean> {
  if (file !== deliverySecretsFile(dataDir)) return false;
  return stat(file).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
  );
}

/**
 * The secrets of a delivery secrets file by type, to count them (`endpoints list`, the console's Endpoints page),
 * never making one: null without a file (secrets in DELIVERY_SIGNING_SECRETS) or when it is not there or cannot be
 * used (the gateway's start and each delivery say why).
 */
export async function readDeliverySecrets(file: string | null): Promise<SecretsBySource | null> {
  if (!file) return null;
  try {
    return parseSecretsBySource((await readDataText(file, SECRETS_READ)) ?? '', 'it');
  } catch {
    return null;
  }
}
