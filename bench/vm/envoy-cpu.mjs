// Envoy's own CPU time per request for a wasm filter: a figure a loaded machine disturbs
// far less than `make bench`'s requests per second (which need a quiet machine). Starts
// Envoy (.tools/envoy, one worker, V8) with the filter before a direct response, sends
// the bench's GET (the `make vm-profile` inputs: its token, its bundle) over 8 keep-alive
// connections, and reads Envoy's user + system time from /proc around the measured
// requests, after a warm-up of half as many. Loopback TCP work the kernel does in softirq
// is not charged to Envoy, so the figure is below 1 / (requests per second) of `make
// bench`; compare filters by the difference, alternating runs (see BENCHMARKS.md, Stop 27).
//
// usage (after `make vm-profile`):
//   node bench/vm/envoy-cpu.mjs FILTER.wasm PLUGIN_CONFIG_FILE ROOT_ID TOKEN_FILE [REQUESTS] [PORT]
// e.g. the floor: target/wasm32-wasip1/release/bench_noop_filter.wasm target/vm-profile/floor.config noop
//      apiguard:  target/wasm32-wasip1/release/apiguard_filter.wasm target/vm-profile/full.bundle.json apiguard
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";

const [wasm, configFile, rootId, tokenFile, requests = "20000", port = "18080"] = process.argv.slice(2);
const n = Number(requests);
const token = fs.readFileSync(tokenFile, "utf8").trim();
const config = {
  static_resources: { listeners: [{
    name: "bench", address: { socket_address: { address: "127.0.0.1", port_value: Number(port) } },
    filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      stat_prefix: "bench",
      route_config: { virtual_hosts: [{ name: "direct", domains: ["*"], routes: [
        { match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "{\"ok\":true}" } } }] }] },
      http_filters: [
        { name: "filter", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", config: {
          name: rootId, root_id: rootId,
          vm_config: { vm_id: rootId, runtime: "envoy.wasm.runtime.v8", code: { local: { filename: path.resolve(wasm) } } },
          configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: fs.readFileSync(configFile, "utf8") },
        } } },
        { name: "envoy.filters.http.router", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } },
      ] } }] }] }] },
};
const configPath = path.join(os.tmpdir(), `apiguard-envoy-cpu-${port}.json`);
fs.writeFileSync(configPath, JSON.stringify(config));
const envoy = spawn(".tools/envoy", ["-c", configPath, "--concurrency", "1", "-l", "error", "--base-id", port],
  { stdio: ["ignore", "ignore", "inherit"] });
// utime + stime of every thread, in microseconds (clock ticks of 10 ms).
const cpu = () => {
  const fields = fs.readFileSync(`/proc/${envoy.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
};

// The bench's GET, as `host.mjs` serves it.
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const headers = { authorization: `Bearer ${token}`, accept: "application/json", "user-agent": "apiguard-bench",
  "x-github-api-version": "2022-11-28", "x-request-id": "3f1c2f8e-8c1d-4b8a-9d55-2b7c8f0e4a11" };
const target = "/repos/octo-org/hello-world/issues/1347/comments?per_page=50&page=2&since=2024-01-01T00:00:00Z";
const one = () => new Promise((done, fail) => {
  const request = http.get({ host: "127.0.0.1", port, path: target, headers, agent }, response => {
    response.resume();
    response.on("end", () => done(response.statusCode));
  });
  request.on("error", fail);
});
async function send(count) {
  let left = count;
  const statuses = {};
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (left-- > 0) {
      const status = await one();
      statuses[status] = (statuses[status] || 0) + 1;
    }
  }));
  return statuses;
}

try {
  // Compiling a large module with TurboFan only (as Envoy does) takes a while under load.
  for (let waited = 0; ; waited += 200) {
    try { await one(); break; } catch (error) {
      if (waited > 180_000 || envoy.exitCode !== null) throw new Error(`Envoy did not answer: ${error.message}`);
      await new Promise(resolve => setTimeout(resolve, 200));
    }
  }
  await send(n / 2);
  const before = cpu();
  const started = performance.now();
  const statuses = await send(n);
  const spent = cpu() - before;
  console.log(`${path.basename(wasm)} ${path.basename(configFile)}: Envoy CPU ${(spent / n).toFixed(1)} us per request`
    + ` (wall ${(((performance.now() - started) * 1000) / n).toFixed(1)} us), statuses ${JSON.stringify(statuses)}`);
} finally {
  envoy.kill();
  agent.destroy();
}
