/**
 * Which of the project's own dependencies brings each installed package in, from package-lock.json: the profile
 * then says "Powertools" for time spent in the X-Ray SDK, and "AWS SDK v3" for @smithy/*. Our own files (the
 * embedded S3 is local/store/) are charged by path.
 * A package reachable from several is charged to the first group below that reaches it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const ASYNC_HOOKS_GROUP = 'async_hooks destroy tracking (cls-hooked, loaded with the X-Ray SDK by the Tracer)';

const GROUPS: [label: string, roots: string[]][] = [
  [ASYNC_HOOKS_GROUP, ['cls-hooked']],
  [
    'AWS SDK v3 clients (S3, Lambda)',
    ['@aws-sdk/client-s3', '@aws-sdk/client-lambda', '@aws-sdk/client-sqs', '@aws-sdk/client-sfn'],
  ],
  [
    'Powertools (logger, metrics, tracer + X-Ray SDK)',
    ['@aws-lambda-powertools/logger', '@aws-lambda-powertools/metrics', '@aws-lambda-powertools/tracer'],
  ],
  ['local engine (aws-local-stepfunctions)', ['aws-local-stepfunctions']],
  ['valibot', ['valibot']],
  ['tsx (TypeScript loader)', ['tsx']],
];

interface LockPackage {
  dependencies?: Record<string, string>;
}

export function dependencyGroups(projectRoot: string): Map<string, string> {
  const lock = JSON.parse(readFileSync(path.join(projectRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockPackage>;
  };
  const depsOf = new Map<string, string[]>();
  for (const [key, pkg] of Object.entries(lock.packages)) {
    const i = key.lastIndexOf('node_modules/');
    if (i < 0) continue;
    const name = key.slice(i + 'node_modules/'.length);
    depsOf.set(name, [...(depsOf.get(name) ?? []), ...Object.keys(pkg.dependencies ?? {})]);
  }
  const group = new Map<string, string>();
  for (const [label, roots] of GROUPS) {
    const queue = [...roots];
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (group.has(name)) continue;
      group.set(name, label);
      queue.push(...(depsOf.get(name) ?? []));
    }
  }
  return group;
}
