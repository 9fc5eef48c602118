// `make vm-profile`: the filter's request path in V8 without Envoy, to see where a request's
// time goes inside the VM. A proxy-wasm host (ABI 0.2.1) written for this: it serves the
// bench's GET (or 1 KB POST) from memory, counts every host call the filter makes per
// request and the bytes copied across, and times each callback. V8 is node's, compiled
// with TurboFan after a warm-up, as Envoy compiles with TurboFan (proxy-wasm-cpp-host turns
// Liftoff off). The host's own calls cost what this script costs, not what Envoy's cost,
// so compare filters by their host-call counts and by the VM's share of the time; the
// throughput figures are `make bench`'s, through Envoy.
//
// usage: node bench/vm/host.mjs FILTER.wasm PLUGIN_CONFIG_FILE TOKEN_FILE [get|post] [REQUESTS]
import fs from "node:fs";
import { WASI } from "node:wasi";

const [wasmPath, configPath, tokenPath, kind = "get", requests = "20000"] = process.argv.slice(2);
const token = fs.readFileSync(tokenPath, "utf8").trim();
const config = fs.readFileSync(configPath);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const HEADERS = {
  get: [[":method", "GET"], [":path", "/repos/octo-org/hello-world/issues/1347/comments?per_page=50&page=2&since=2024-01-01T00:00:00Z"],
    ["x-github-api-version", "2022-11-28"]],
  post: [[":method", "POST"], [":path", "/repos/octo-org/hello-world/issues"],
    ["content-type", "application/json"], ["content-length", "1024"]],
}[kind];
// What Envoy's connection manager adds before the filters run, and what the bench sends.
const REQUEST = [...HEADERS.slice(0, 2), [":authority", "localhost"], [":scheme", "http"],
  ["authorization", `Bearer ${token}`], ["accept", "application/json"], ["user-agent", "apiguard-bench"],
  ["x-bench-route", "direct"], ...HEADERS.slice(2), ["x-forwarded-proto", "http"],
  ["x-request-id", "3f1c2f8e-8c1d-4b8a-9d55-2b7c8f0e4a11"]];
const RESPONSE = [[":status", "200"], ["content-type", "application/json"], ["content-length", "11"]];
const BODY = encoder.encode(JSON.stringify({ title: "Found a bug", body: "x".repeat(1024 - 61), labels: ["bug"] }).slice(0, 1024));

let exports, memory;
const view = () => new DataView(memory.buffer);
const text = (at, size) => decoder.decode(new Uint8Array(memory.buffer, at, size));
const copy = (at, size) => new Uint8Array(memory.buffer).slice(at, at + size);

let counting = false;
const calls = new Map();
let copied = 0;
function count(name, bytes = 0) {
  if (!counting) return;
  calls.set(name, (calls.get(name) || 0) + 1);
  copied += bytes;
}
// The host hands data to the VM in memory the VM allocates (`proxy_on_memory_allocate`).
function give(data, pointerAt, sizeAt) {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const at = bytes.length ? exports.proxy_on_memory_allocate(bytes.length) : 0;
  if (bytes.length) new Uint8Array(memory.buffer).set(bytes, at);
  view().setUint32(pointerAt, at, true);
  view().setUint32(sizeAt, bytes.length, true);
  if (counting) copied += bytes.length;
  return 0;
}
// A header map serialized as the ABI has it; kept with the map until the map changes.
function serialized(map) {
  if (map.bytes) return map.bytes;
  const pairs = map.map(([k, v]) => [encoder.encode(k), encoder.encode(v)]);
  const size = pairs.reduce((n, [k, v]) => n + 8 + k.length + v.length + 2, 4);
  const bytes = new Uint8Array(size);
  const out = new DataView(bytes.buffer);
  out.setUint32(0, pairs.length, true);
  let at = 4;
  for (const [k, v] of pairs) { out.setUint32(at, k.length, true); out.setUint32(at + 4, v.length, true); at += 8; }
  for (const [k, v] of pairs) { bytes.set(k, at); at += k.length + 1; bytes.set(v, at); at += v.length + 1; }
  map.bytes = bytes;
  return bytes;
}
const template = map => { const copy = map.slice(); copy.bytes = serialized(map); return copy; };
let request = [], response = [];
const headerMap = type => (type === 0 ? request : type === 2 ? response : []);
const changed = map => { map.bytes = null; return 0; };

const shared = new Map();
let version = 1;
const properties = new Map([
  ["source.address", encoder.encode("127.0.0.1:40000")],
  ["response.code", new Uint8Array(new BigInt64Array([200n]).buffer)],
  ["response.code_details", encoder.encode("via_upstream")],
]);
const NOT_FOUND = 1, CAS_MISMATCH = 8;
const env = {
  proxy_log: (level, at, size) => { count("log", size); if (level >= 3) console.error(`filter log (${level}): ${text(at, size)}`); return 0; },
  proxy_set_tick_period_milliseconds: () => { count("set_tick_period"); return 0; },
  proxy_get_buffer_bytes: (type, start, max, pointerAt, sizeAt) => {
    count("get_buffer_bytes");
    if (type === 7) return give(config.subarray(start, start + max), pointerAt, sizeAt);
    if (type === 0) return give(BODY.subarray(start, start + max), pointerAt, sizeAt);
    return NOT_FOUND;
  },
  proxy_set_buffer_bytes: () => { count("set_buffer_bytes"); return 0; },
  proxy_get_header_map_pairs: (type, pointerAt, sizeAt) => { count("get_header_map_pairs"); return give(serialized(headerMap(type)), pointerAt, sizeAt); },
  proxy_get_header_map_value: (type, at, size, pointerAt, sizeAt) => {
    count("get_header_map_value");
    const entry = headerMap(type).find(([name]) => name === text(at, size));
    return entry ? give(entry[1], pointerAt, sizeAt) : NOT_FOUND;
  },
  proxy_add_header_map_value: (type, at, size, valueAt, valueSize) => { count("add_header_map_value", valueSize); headerMap(type).push([text(at, size), text(valueAt, valueSize)]); return changed(headerMap(type)); },
  proxy_replace_header_map_value: (type, at, size, valueAt, valueSize) => { count("replace_header_map_value", valueSize); return changed(headerMap(type)); },
  proxy_remove_header_map_value: (type, at, size) => { count("remove_header_map_value"); const map = headerMap(type); const name = text(at, size); map.splice(0, map.length, ...map.filter(([n]) => n !== name)); return changed(map); },
  proxy_set_header_map_pairs: () => { count("set_header_map_pairs"); return 0; },
  proxy_get_property: (at, size, pointerAt, sizeAt) => {
    const path = text(at, size).replaceAll("\0", ".");
    count(`get_property(${path})`);
    return properties.has(path) ? give(properties.get(path), pointerAt, sizeAt) : NOT_FOUND;
  },
  proxy_set_property: (at, size, valueAt, valueSize) => { count("set_property", valueSize); properties.set(text(at, size).replaceAll("\0", "."), copy(valueAt, valueSize)); return 0; },
  proxy_get_shared_data: (at, size, pointerAt, sizeAt, casAt) => {
    count("get_shared_data");
    const entry = shared.get(text(at, size));
    if (!entry) return NOT_FOUND;
    give(entry.value, pointerAt, sizeAt);
    view().setUint32(casAt, entry.cas, true);
    return 0;
  },
  proxy_set_shared_data: (at, size, valueAt, valueSize, cas) => {
    count("set_shared_data", valueSize);
    const key = text(at, size);
    const entry = shared.get(key);
    if (entry && cas && entry.cas !== cas) return CAS_MISMATCH;
    shared.set(key, { value: copy(valueAt, valueSize), cas: ++version });
    return 0;
  },
  proxy_get_current_time_nanoseconds: at => { count("get_current_time"); view().setBigUint64(at, BigInt(Date.now()) * 1000000n, true); return 0; },
  proxy_define_metric: (type, at, size, idAt) => { count("define_metric"); view().setUint32(idAt, ++version, true); return 0; },
  proxy_increment_metric: () => { count("increment_metric"); return 0; },
  proxy_record_metric: () => { count("record_metric"); return 0; },
  proxy_send_local_response: status => { count("send_local_response"); console.error(`the filter replied ${status}: its request was refused`); process.exitCode = 1; return 0; },
  proxy_set_effective_context: () => { count("set_effective_context"); return 0; },
  proxy_done: () => 0,
};

const module = new WebAssembly.Module(fs.readFileSync(wasmPath));
for (const { module: from, name } of WebAssembly.Module.imports(module)) {
  if (from === "env" && !env[name]) env[name] = () => { count(`${name} (unserved)`); return NOT_FOUND; };
}
const wasi = new WASI({ version: "preview1", returnOnExit: true });
const instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: wasi.wasiImport, env });
({ exports } = instance);
memory = exports.memory;
wasi.initialize(instance);
exports.proxy_on_context_create(1, 0);
exports.proxy_on_vm_start(1, 0);
let started = performance.now();
if (!exports.proxy_on_configure(1, config.length)) throw new Error("the filter refused its configuration");
const configureMs = performance.now() - started;

const REQUEST_TEMPLATE = template(REQUEST), RESPONSE_TEMPLATE = template(RESPONSE);
const spent = { create: 0, request_headers: 0, request_body: 0, response_headers: 0, log_done_delete: 0 };
function exchange(id) {
  request = template(REQUEST_TEMPLATE);
  response = template(RESPONSE_TEMPLATE);
  let at = performance.now(), now;
  const lap = step => { now = performance.now(); spent[step] += now - at; at = now; };
  exports.proxy_on_context_create(id, 1); lap("create");
  exports.proxy_on_request_headers(id, request.length, kind === "post" ? 0 : 1); lap("request_headers");
  if (kind === "post") { exports.proxy_on_request_body(id, BODY.length, 1); lap("request_body"); }
  exports.proxy_on_response_headers(id, response.length, 0); lap("response_headers");
  exports.proxy_on_log(id); exports.proxy_on_done(id); exports.proxy_on_delete(id); lap("log_done_delete");
}
const n = Number(requests);
let id = 2;
for (let i = 0; i < n; i++) exchange(id++); // warm-up: V8 tiers the hot functions up
counting = true;
exchange(id++);
counting = false;
for (const step of Object.keys(spent)) spent[step] = 0;
started = performance.now();
const cpuBefore = process.cpuUsage();
for (let i = 0; i < n; i++) exchange(id++);
const perRequest = ((performance.now() - started) * 1000) / n;
// CPU time (this process, user + system) is what other work on a loaded machine disturbs
// least: it excludes the time this process waited for a core.
const cpu = process.cpuUsage(cpuBefore);
const cpuPerRequest = (cpu.user + cpu.system) / n;
const total = [...calls.values()].reduce((a, b) => a + b, 0);
console.log(`${wasmPath.split("/").pop()} ${configPath.split("/").pop()} (${kind}): configure ${configureMs.toFixed(0)} ms`);
console.log(`  host calls per request: ${total} (${[...calls].map(([k, v]) => `${k} ${v}`).join(", ")}); ${copied} bytes across`);
console.log(`  us per request (V8, this host): ${perRequest.toFixed(1)} (CPU ${cpuPerRequest.toFixed(1)}): ${Object.entries(spent).filter(([, v]) => v).map(([k, v]) => `${k} ${((v * 1000) / n).toFixed(1)}`).join(", ")}`);
