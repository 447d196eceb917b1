// Open-loop HTTP/2 load over TLS, for the edge benchmarks (run by bench/edgeload.py).
//
// Why Node: the Python generator (httpx) spent more CPU per request than the
// service it measured on the same two cores, and h2load sends each client's
// requests in aligned bursts, so both measured themselves. Node's built-in
// http2 client costs a few percent of a core at 200 requests/s and needs no
// package. Requests go out on a fixed schedule; each latency counts from its
// scheduled start, so a stalled target shows as latency (no coordinated
// omission). At most MAX_IN_FLIGHT requests are outstanding: beyond that a
// request is counted as an error, never silently delayed.
//
// usage: node h2_open_loop.mjs <spec.json>
// spec: {url, ca_file, rate, seconds, warmup_seconds, connections, method,
//        headers_list: [{..}, ..]  (request i sends headers_list[i % n]),
//        unique_header: name or null (a fresh UUID per request, e.g. idempotency-key),
//        bodies: [string, ..]  (request i sends bodies[i % n])}
// prints one JSON line: {latencies_ms: [...sorted], errors, statuses: {code: n}, elapsed_s}
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import http2 from "node:http2";

const MAX_IN_FLIGHT = 2000;
const MAX_CONNECTIONS = 64;
const REQUEST_TIMEOUT_MS = 10000;

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const url = new URL(spec.url);
const connections = Math.min(Math.max(1, spec.connections ?? 8), MAX_CONNECTIONS);
if (!(spec.rate > 0 && spec.rate <= 5000 && spec.seconds > 0 && spec.seconds <= 600)) {
  throw new Error("rate must be in (0, 5000] and seconds in (0, 600]");
}
const ca = fs.readFileSync(spec.ca_file);
const sessions = [];
for (let i = 0; i < connections; i++) {
  sessions.push(http2.connect(url.origin, { ca, servername: url.hostname === "127.0.0.1" ? "localhost" : url.hostname }));
}

function send(i) {
  return new Promise((resolve) => {
    const session = sessions[i % sessions.length];
    const body = spec.bodies[i % spec.bodies.length];
    const headers = {
      ":method": spec.method ?? "POST",
      ":path": url.pathname + url.search,
      "content-type": "application/json",
      ...spec.headers_list[i % spec.headers_list.length],
    };
    if (spec.unique_header) headers[spec.unique_header] = randomUUID();
    const req = session.request(headers);
    let status = 0;
    const timer = setTimeout(() => { req.close(http2.constants.NGHTTP2_CANCEL); }, REQUEST_TIMEOUT_MS);
    req.on("response", (headers) => { status = headers[":status"]; });
    req.on("data", () => {});
    req.on("end", () => { clearTimeout(timer); resolve(status); });
    req.on("error", () => { clearTimeout(timer); resolve(0); });
    if (body) req.end(body); else req.end();
  });
}

async function phase(seconds, record) {
  const interval = 1000 / spec.rate;
  const total = Math.floor(spec.rate * seconds);
  const start = performance.now() + 20;
  const latencies = [];
  const statuses = {};
  let errors = 0;
  let inFlight = 0;
  const pending = [];
  for (let i = 0; i < total; i++) {
    const scheduled = start + i * interval;
    const wait = scheduled - performance.now();
    // No busy-wait: a spinning generator would take CPU from what it measures.
    // A late timer only makes the latency (counted from `scheduled`) larger.
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= MAX_IN_FLIGHT) { errors++; continue; }
    inFlight++;
    pending.push(send(i).then((status) => {
      inFlight--;
      if (!record) return;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status >= 200 && status < 300) latencies.push(performance.now() - scheduled);
      else errors++;
    }));
  }
  await Promise.all(pending);
  return { latencies, statuses, errors, elapsed_s: (performance.now() - start) / 1000 };
}

if (spec.warmup_seconds > 0) await phase(spec.warmup_seconds, false);
const result = await phase(spec.seconds, true);
result.latencies.sort((a, b) => a - b);
for (const s of sessions) s.close();
process.stdout.write(JSON.stringify({ latencies_ms: result.latencies, errors: result.errors, statuses: result.statuses, elapsed_s: result.elapsed_s }) + "\n");
