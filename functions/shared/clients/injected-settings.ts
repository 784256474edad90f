/**
 * Client settings that the process hosting the handlers adds before it loads them. The local gateway gives the S3
 * client its in-process transport to the embedded S3 (local/store/in-process-s3-transport.ts); on Lambda nothing is
 * added. Handlers never read this: only the client modules beside it, once, when they build their client.
 */
type Service = 's3';

const injected = new Map<Service, object>();
const built = new Set<Service>();

export function injectClientSettings(service: Service, settings: object): void {
  if (built.has(service) && injected.get(service) !== settings) {
    throw new Error(`the ${service} client is already built: inject its settings before the handlers are loaded`);
  }
  injected.set(service, settings);
}

/** What was injected for the service's client (nothing on Lambda); marks the client as built. */
export function injectedSettings(service: Service): object {
  built.add(service);
  return injected.get(service) ?? {};
}
