// Summarises a V8 CPU profile of `host.mjs` (node --cpu-prof): the time under the
// filter's request-header callback, as a tree of the filter's functions (Rust symbols,
// shortened), merged by name and cut below a share of the callback's time.
//
// usage: node bench/vm/summary.mjs PROFILE.cpuprofile [DEPTH] [MIN_PERCENT]
import fs from "node:fs";

const [file, depth = "5", minPercent = "1.5"] = process.argv.slice(2);
const profile = JSON.parse(fs.readFileSync(file, "utf8"));
const nodes = new Map(profile.nodes.map(node => [node.id, node]));
const own = new Map();
profile.samples.forEach((id, i) => own.set(id, (own.get(id) || 0) + (profile.timeDeltas[i] || 0)));
const inclusive = new Map();
(function total(node) {
  let time = own.get(node.id) || 0;
  for (const child of node.children || []) time += total(nodes.get(child));
  inclusive.set(node.id, time);
  return time;
})(profile.nodes[0]);

// `_ZN15apiguard_filter6policy7inspect...17h<hash>E` -> `apiguard_filter::policy::inspect...`
const shorten = symbol => symbol.startsWith("_ZN")
  ? symbol.slice(3).replace(/17h[0-9a-f]{16}E$/, "").replace(/(\d+)/g, "::").replace(/^::/, "").replace(/\$LT\$/g, "<").replace(/\$GT\$/g, ">").replace(/\$u20\$/g, " ").replace(/\.\./g, "::").slice(0, 120)
  : symbol.slice(0, 120) || "(anonymous)";

const roots = profile.nodes.filter(node => node.callFrame.functionName === "proxy_on_request_headers").map(node => node.id);
const whole = roots.reduce((sum, id) => sum + inclusive.get(id), 0);
function show(ids, level, indent) {
  const merged = new Map();
  for (const id of ids) {
    const node = nodes.get(id);
    const entry = merged.get(node.callFrame.functionName) || { time: 0, children: [] };
    entry.time += inclusive.get(id);
    entry.children.push(...(node.children || []));
    merged.set(node.callFrame.functionName, entry);
  }
  for (const [name, entry] of [...merged].sort((a, b) => b[1].time - a[1].time)) {
    const percent = (100 * entry.time) / whole;
    if (percent < Number(minPercent)) continue;
    console.log(`${indent}${percent.toFixed(1).padStart(5)} %  ${shorten(name)}`);
    if (level > 0) show(entry.children, level - 1, `${indent}  `);
  }
}
console.log(`time under proxy_on_request_headers: ${(whole / 1000).toFixed(0)} ms of samples`);
show(roots, Number(depth), "");
