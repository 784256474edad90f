import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { readJson, writeJsonAtomic } from './json-files.ts';

/**
 * Local deliveries are signed like AWS ones. When DELIVERY_SIGNING_SECRETS is not set, one `whsec_` secret per
 * webhook type is made on first start and kept in `<dataDir>/delivery-signing-secrets.json`, so a receiver can
 * verify across restarts.
 */
export async function localDeliverySecrets(dataDir: string): Promise<{ json: string; file: string }> {
  const file = path.join(dataDir, 'delivery-signing-secrets.json');
  let secrets = await readJson<Record<string, string>>(file);
  if (!secrets) {
    secrets = Object.fromEntries(WEBHOOK_TYPES.map((t) => [t, `whsec_${randomBytes(24).toString('base64')}`]));
    await writeJsonAtomic(file, secrets);
  }
  return { json: JSON.stringify(secrets), file };
}
