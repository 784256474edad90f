import { createRequire } from 'node:module';

/** asl-validator (CommonJS): validates a definition's structure, and with the options its paths and ARNs. */
export const aslValidator = createRequire(import.meta.url)('asl-validator') as (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (sep?: string) => string };
