/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions and the source areas
 * (package, Node internals or project file) with the most self time. Used to find what bounds
 * Baton when a benchmark aim is missed; see docs/benchmarks.md.
 *
 * Usage: node bench/cpuprofile-top.ts FILE.cpuprofile [N]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (file === undefined) throw new Error("usage: node bench/cpuprofile-top.ts FILE.cpuprofile [N]");
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** Groups a script URL into the area a reader would act on. */
function area(url: string): string {
  if (url === "") return "(native / V8)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return `pkg ${pkg[1]}`;
  if (url.startsWith("node:")) return url.replace(/^node:internal\/([^/]+).*/, "node:$1");
  const src = /\/(src|bench|bin)\/(.*)$/.exec(url);
  return src === null ? url : `${src[1]}/${src[2]}`;
}

const label = (node: ProfileNode): string => {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || "(anonymous)"}  ${area(url)}${url === "" ? "" : `:${lineNumber + 1}`}`;
};

// Self time: each sample is charged to the node on top of the stack, for the delta after it.
// Total time: also to every distinct function below it on the stack.
const fn = new Map<string, number>();
const inclusive = new Map<string, number>();
const areas = new Map<string, number>();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i]!);
  const us = profile.timeDeltas[i + 1] ?? 0;
  if (node === undefined) continue;
  const key = label(node);
  fn.set(key, (fn.get(key) ?? 0) + us);
  areas.set(area(node.callFrame.url), (areas.get(area(node.callFrame.url)) ?? 0) + us);
  total += us;
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const k = label(byId.get(id)!);
    if (!seen.has(k)) inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    seen.add(k);
  }
}

const print = (title: string, m: Map<string, number>): void => {
  console.log(`\n${title}`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
  }
};
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`);
print("self time by area", areas);
print("self time by function", fn);
// Project code only: where in Baton's own call paths the time is spent, callees included.
print("total time (callees included) of project functions", new Map([...inclusive].filter(([k]) => / {2}(src|bin)\//.test(k))));
