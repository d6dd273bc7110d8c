// Not an SDK plugin: a worker that answers `initialize` and `health`, but ignores `shutdown` and
// SIGTERM, so the tests see the host's escalation to SIGKILL.
import { createInterface } from "node:readline";

process.on("SIGTERM", () => {});
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const msg = JSON.parse(line);
  if (msg.method === "initialize") {
    process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id: msg.id, result: { ok: true, supportedMethods: [] } }) + "\n");
  } else if (msg.method === "health") {
    process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id: msg.id, result: { status: "ok" } }) + "\n");
  }
});
rl.on("close", () => {});
setInterval(() => {}, 1 << 30);
