/**
 * What a heap grew by between two V8 heap snapshots (from `--heapsnapshot-signal`), grouped by
 * object kind and constructor, optionally per connection. Used by `node bench/fanout.ts --heap`
 * to show what an idle Baton connection holds; see docs/benchmarks.md, "Gateway fan-out".
 *
 * Usage: node bench/heapsnapshot-diff.ts BEFORE.heapsnapshot AFTER.heapsnapshot [PER=1] [N=25]
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

interface Group {
  count: number;
  bytes: number;
}

/** Self size by "kind name" (strings, arrays and code each as one group). */
function groups(file: string): { groups: Map<string, Group>; total: number } {
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [number, number, number];
  const out = new Map<string, Group>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + typeAt]!] ?? "?";
    const size = snap.nodes[i + sizeAt]!;
    const name = snap.strings[snap.nodes[i + nameAt]!] ?? "";
    let key: string;
    if (type === "object" || type === "closure" || type === "native") key = `${type} ${name.slice(0, 60)}`;
    else if (type === "hidden" || type === "synthetic" || type === "object shape") key = `${type} ${name.slice(0, 40)}`;
    else key = `(${type})`;
    const g = out.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += size;
    out.set(key, g);
    total += size;
  }
  return { groups: out, total };
}

const [before, after, perArg, topArg] = process.argv.slice(2);
if (before === undefined || after === undefined) throw new Error("usage: node bench/heapsnapshot-diff.ts BEFORE AFTER [PER] [N]");
const per = Number(perArg ?? 1);
const top = Number(topArg ?? 25);
const a = groups(before);
const b = groups(after);
const delta = [...b.groups].map(([key, g]) => {
  const was = a.groups.get(key) ?? { count: 0, bytes: 0 };
  return { key, count: g.count - was.count, bytes: g.bytes - was.bytes };
});
delta.sort((x, y) => y.bytes - x.bytes);
const growth = b.total - a.total;
console.log(`heap (self sizes): ${(a.total / 2 ** 20).toFixed(1)} MiB -> ${(b.total / 2 ** 20).toFixed(1)} MiB, +${(growth / per).toFixed(0)} B per unit (${per} units)`);
console.log(`${"B/unit".padStart(8)}  ${"objs/unit".padStart(9)}  share  group`);
for (const d of delta.slice(0, top)) {
  console.log(`${(d.bytes / per).toFixed(0).padStart(8)}  ${(d.count / per).toFixed(2).padStart(9)}  ${((100 * d.bytes) / growth).toFixed(0).padStart(4)}%  ${d.key}`);
}
