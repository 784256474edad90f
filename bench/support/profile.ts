/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went:
 * - by owner: each sample is charged to the nearest frame on its stack that is a package (node_modules/<pkg>) or
 *   one of our files (functions/…, local/…), so time spent inside Node internals (fs, http, streams, JSON) on
 *   behalf of the embedded S3 or our execution store lands on them;
 * - top functions by self time;
 * - inclusive time of chosen functions of ours (everything they did synchronously).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ASYNC_HOOKS_GROUP, dependencyGroups } from './dependency-groups.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  /** Only samples taken while the load ran (start-up and shutdown excluded). */
  total_ms: number;
  idle_ms: number;
  busy_ms: number;
  by_owner: { owner: string; ms: number; share_of_busy: number }[];
  top_self: { function: string; where: string; ms: number; share_of_busy: number }[];
  inclusive: { function: string; where: string; ms: number; share_of_busy: number }[];
}

function ownerOf(url: string, functionName: string, root: string, groups: Map<string, string>): string | null {
  if (!url) {
    if (functionName === '(garbage collector)') return 'V8 garbage collector';
    if (functionName === '(program)') return 'V8/native (program)';
    if (functionName === '(idle)') return 'idle';
    return null;
  }
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = clean.slice(nm + '/node_modules/'.length).split('/');
    const name = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    return groups.get(name) ?? name;
  }
  if (clean.startsWith(root)) {
    const rel = path.relative(root, clean);
    return rel;
  }
  return null; // node:internal and other runtime code: charged to its caller
}

function shortWhere(url: string, line: number, root: string): string {
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('/node_modules/');
  const rel =
    nm >= 0 ? clean.slice(nm + '/node_modules/'.length) : clean.startsWith(root) ? path.relative(root, clean) : clean;
  return rel ? `${rel}:${line + 1}` : '(native)';
}

export async function summarizeProfile(
  file: string,
  root: string,
  inclusiveOf: RegExp,
  options: { top?: number; windows?: [number, number][] } = {},
): Promise<ProfileSummary> {
  const top = options.top ?? 15;
  const windows = options.windows ?? [];
  const inWindow = (us: number) => windows.length === 0 || windows.some(([from, to]) => us >= from && us <= to);
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const groups = dependencyGroups(root);
  const ownerCache = new Map<number, string>();
  const owner = (id: number): string => {
    const cached = ownerCache.get(id);
    if (cached) return cached;
    let cur: number | undefined = id;
    let found = 'Node runtime (I/O callbacks, HTTP, microtasks; no JS caller)';
    while (cur !== undefined) {
      const n = byId.get(cur)!;
      // Promise init/destroy hooks run inside whatever created the promise: charge them to the hook.
      if (
        n.callFrame.url === 'node:internal/async_hooks' &&
        /promiseInitHook|destroyTracking|emitHook|emitInit|emitBefore|emitAfter|emitDestroy/.test(
          n.callFrame.functionName,
        )
      ) {
        found = ASYNC_HOOKS_GROUP;
        break;
      }
      const o = ownerOf(n.callFrame.url, n.callFrame.functionName, root, groups);
      if (o) {
        found = o;
        break;
      }
      cur = parent.get(cur);
    }
    ownerCache.set(id, found);
    return found;
  };
  const selfMs = new Map<number, number>();
  let total = 0;
  let clock = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    clock += profile.timeDeltas[i] ?? 0;
    if (!inWindow(clock)) continue;
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    total += ms;
    const id = profile.samples[i]!;
    selfMs.set(id, (selfMs.get(id) ?? 0) + ms);
  }
  const owners = new Map<string, number>();
  const selfByFunction = new Map<string, { function: string; where: string; ms: number }>();
  const inclusive = new Map<string, { function: string; where: string; ms: number }>();
  for (const [id, ms] of selfMs) {
    const o = owner(id);
    owners.set(o, (owners.get(o) ?? 0) + ms);
    const n = byId.get(id)!;
    const where = shortWhere(n.callFrame.url, n.callFrame.lineNumber, root);
    const key = `${n.callFrame.functionName}@${where}`;
    const entry = selfByFunction.get(key) ?? { function: n.callFrame.functionName || '(anonymous)', where, ms: 0 };
    entry.ms += ms;
    selfByFunction.set(key, entry);
    // Inclusive: each distinct matching frame on the stack, once per sample.
    const seen = new Set<string>();
    let cur: number | undefined = id;
    while (cur !== undefined) {
      const f = byId.get(cur)!;
      const w = shortWhere(f.callFrame.url, f.callFrame.lineNumber, root);
      const k = `${f.callFrame.functionName}@${w}`;
      if (!seen.has(k) && inclusiveOf.test(`${f.callFrame.url} ${f.callFrame.functionName}`)) {
        seen.add(k);
        const e = inclusive.get(k) ?? { function: f.callFrame.functionName || '(anonymous)', where: w, ms: 0 };
        e.ms += ms;
        inclusive.set(k, e);
      }
      cur = parent.get(cur);
    }
  }
  const idle = owners.get('idle') ?? 0;
  const busy = total - idle;
  const share = (ms: number) => Math.round((ms / busy) * 1000) / 10;
  const r = (ms: number) => Math.round(ms);
  return {
    file,
    total_ms: r(total),
    idle_ms: r(idle),
    busy_ms: r(busy),
    by_owner: [...owners.entries()]
      .filter(([o]) => o !== 'idle')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([o, ms]) => ({ owner: o, ms: r(ms), share_of_busy: share(ms) })),
    top_self: [...selfByFunction.values()]
      .filter((e) => e.function !== '(idle)')
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((e) => ({ ...e, ms: r(e.ms), share_of_busy: share(e.ms) })),
    inclusive: [...inclusive.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((e) => ({ ...e, ms: r(e.ms), share_of_busy: share(e.ms) })),
  };
}
