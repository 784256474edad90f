import path from 'node:path';
import { appendLine } from '../../functions/shared/local-files.ts';

/** The built-in delivery receiver: records every delivery it gets (memory + `<dataDir>/receiver/<type>.jsonl`). */
export interface ReceivedDelivery {
  received_at: string;
  path_type: string;
  headers: Record<string, string>;
  body: unknown;
}

/** Kept in memory for GET /local/receiver/<type>; everything stays in the .jsonl files. */
const RECEIVER_MEMORY = 1000;

export class DeliveryReceiver {
  readonly received: ReceivedDelivery[] = [];
  private readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'receiver');
  }

  async record(
    pathType: string,
    headers: Record<string, string | string[] | undefined>,
    rawBody: string,
  ): Promise<ReceivedDelivery> {
    let body: unknown = rawBody;
    try {
      body = JSON.parse(rawBody);
    } catch {
      // kept as text
    }
    const kept: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith('webhook-') || name === 'content-type' || name === 'user-agent') kept[name] = String(value);
    }
    const delivery: ReceivedDelivery = {
      received_at: new Date().toISOString(),
      path_type: pathType,
      headers: kept,
      body,
    };
    this.received.push(delivery);
    if (this.received.length > RECEIVER_MEMORY) this.received.splice(0, this.received.length - RECEIVER_MEMORY);
    const safeType = pathType.replace(/[^a-z0-9_]/gi, '_').slice(0, 40) || 'unknown';
    await appendLine(path.join(this.dir, `${safeType}.jsonl`), `${JSON.stringify(delivery)}\n`);
    return delivery;
  }

  byType(pathType: string): ReceivedDelivery[] {
    return this.received.filter((d) => d.path_type === pathType);
  }
}
