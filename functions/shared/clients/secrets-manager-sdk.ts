/**
 * The part of the Secrets Manager SDK that functions/shared/secrets.ts uses, imported on first use only: a file of
 * the function's asset loaded with the first secret read, with this one command (infra/stage-bundle.ts;
 * docs/performance.md §3).
 */
export { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
