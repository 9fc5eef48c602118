// `make vm-profile`'s inputs: an RSA key made now, its JWKS filled into the bench's full
// policy (bench/policies/full.yaml, as bench/src/tokens.rs does), the policy bundled by
// `apiguard bundle` into the plugin configuration Envoy would hand the filter, and an
// RS256 token the policy accepts.
//
// usage: node bench/vm/prepare.mjs APIGUARD_BINARY OUT_DIR
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";

const [apiguard, out] = process.argv.slice(2);
const ISSUER = "https://issuer.bench.example", AUDIENCE = "bench-api";
const { publicKey, privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...publicKey.export({ format: "jwk" }), kid: "vm-profile", alg: "RS256", use: "sig" };
const base64url = value => Buffer.from(value).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const signed = `${base64url(JSON.stringify({ alg: "RS256", kid: jwk.kid, typ: "JWT" }))}.${base64url(JSON.stringify({
  iss: ISSUER, aud: AUDIENCE, sub: "bench-user", scope: "issues:read issues:write", iat: now, exp: now + 86400,
}))}`;
const token = `${signed}.${crypto.sign("sha256", Buffer.from(signed), privateKey).toString("base64url")}`;

fs.mkdirSync(out, { recursive: true });
const policy = fs.readFileSync("bench/policies/full.yaml", "utf8")
  .replace('issuer: "${BENCH_ISSUER}"', `issuer: "${ISSUER}"`)
  .replace('["${BENCH_AUDIENCE}"]', `["${AUDIENCE}"]`)
  .replace('inline_string: "${BENCH_JWKS}"', () => `inline_string: ${JSON.stringify(JSON.stringify({ keys: [jwk] }))}`);
fs.writeFileSync(path.join(out, "full.yaml"), policy);
fs.copyFileSync("bench/policies/bench.openapi.yaml", path.join(out, "bench.openapi.yaml"));
fs.writeFileSync(path.join(out, "full.bundle.json"), execFileSync(apiguard, ["bundle", path.join(out, "full.yaml")]));
fs.writeFileSync(path.join(out, "token"), token);
// The reference filter's plugin configurations (bench/noop-filter): none, and the floor.
fs.writeFileSync(path.join(out, "noop.config"), "");
fs.writeFileSync(path.join(out, "floor.config"), "floor");
