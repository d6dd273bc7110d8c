// A plugin worker for berth's tests, written against upstream's SDK exactly as a Paperclip plugin
// author writes one (definePlugin + startWorkerRpcHost): berth must host it unchanged.
//
// It implements every environment method. Lease calls echo their params back in the lease metadata
// (so the tests see the exact payload berth sent). environmentExecute runs the real command
// locally, streaming its output through ctx.execution.log, except for a few command names that
// make the worker misbehave on purpose (see `hooks` below).
import { spawn } from "node:child_process";
import { definePlugin, startWorkerRpcHost } from "@paperclipai/plugin-sdk";

let ctx = null;
const calls = [];

function record(method, params) {
  calls.push({ method, params });
}

const hooks = {
  // Exit in the middle of the call, after a word on stderr.
  async crash(p) {
    process.stderr.write(`about to crash in ${p.args?.[0] ?? "execute"}\n`);
    setTimeout(() => process.exit(3), 20);
    return new Promise(() => {});
  },
  // Answer after args[0] milliseconds.
  async sleep(p) {
    const ms = Number(p.args?.[0] ?? 1000);
    await new Promise((r) => setTimeout(r, ms));
    return { exitCode: 0, timedOut: false, stdout: `slept ${ms}`, stderr: "" };
  },
  // Write lines that are not JSON-RPC (and an overlong one when asked), then answer normally.
  async garbage(p) {
    process.stdout.write("this is not json\n");
    process.stdout.write('{"jsonrpc":"1.0","id":1,"result":{}}\n');
    process.stdout.write("[1,2,3]\n");
    process.stdout.write('{"jsonrpc":"2.0","id":999999,"result":"nobody asked"}\n');
    process.stdout.write("\n   \n");
    if (p.args?.[0]) process.stdout.write("x".repeat(Number(p.args[0])) + "\n");
    return { exitCode: 0, timedOut: false, stdout: "after garbage", stderr: "" };
  },
  // Write to stderr (lines and a partial line), then answer.
  async stderr() {
    for (let i = 0; i < 3; i++) process.stderr.write(`stderr line ${i}\n`);
    process.stderr.write("no newline at the end");
    return { exitCode: 0, timedOut: false, stdout: "wrote to stderr", stderr: "" };
  },
  // Call the host (a worker→host request), report what came back.
  async "ask-host"() {
    try {
      const config = await ctx.config.get();
      return { exitCode: 0, timedOut: false, stdout: JSON.stringify({ ok: config }), stderr: "" };
    } catch (err) {
      return { exitCode: 1, timedOut: false, stdout: JSON.stringify({ code: err.code, message: err.message }), stderr: "" };
    }
  },
  // Throw: the SDK answers WORKER_ERROR with this message.
  async throw(p) {
    throw new Error(p.args?.[0] ?? "the plugin threw");
  },
  // Report the params of every call so far (as JSON on stdout).
  async calls() {
    return { exitCode: 0, timedOut: false, stdout: JSON.stringify(calls), stderr: "" };
  },
  // Answer now; args[0] ms later, when no call is in flight, log and ask the host for its config
  // (what an idle worker writes must still be read).
  async later(p) {
    const ms = Number(p.args?.[0] ?? 100);
    setTimeout(async () => {
      ctx.logger.info("later");
      try {
        ctx.logger.info(`later config ${JSON.stringify(await ctx.config.get())}`);
      } catch (err) {
        ctx.logger.info(`later error ${err.message}`);
      }
    }, ms);
    return { exitCode: 0, timedOut: false, stdout: "later scheduled", stderr: "" };
  },
  // Stream args as chunks, alternating streams, then answer.
  async chunks(p) {
    const parts = p.args ?? [];
    parts.forEach((c, i) => ctx.execution.log(i % 2 === 0 ? "stdout" : "stderr", c));
    return { exitCode: 0, timedOut: false, stdout: parts.filter((_, i) => i % 2 === 0).join(""), stderr: parts.filter((_, i) => i % 2 === 1).join("") };
  },
};

function runLocally(p) {
  return new Promise((resolve) => {
    const child = spawn(p.command, p.args ?? [], {
      cwd: p.cwd || undefined,
      env: { ...process.env, ...(p.env ?? {}) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = p.timeoutMs ? setTimeout(() => { timedOut = true; child.kill("SIGTERM"); }, p.timeoutMs) : null;
    child.stdout.on("data", (d) => { const s = d.toString(); stdout += s; ctx.execution.log("stdout", s); });
    child.stderr.on("data", (d) => { const s = d.toString(); stderr += s; ctx.execution.log("stderr", s); });
    child.on("error", (err) => { if (timer) clearTimeout(timer); resolve({ exitCode: 127, timedOut: false, stdout, stderr: String(err.message) }); });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ exitCode: code, signal: signal ?? undefined, timedOut, stdout, stderr });
    });
    if (p.stdin) child.stdin.end(p.stdin); else child.stdin.end();
  });
}

const plugin = definePlugin({
  async setup(c) {
    ctx = c;
  },
  async onHealth() {
    return { status: "ok", message: "test plugin" };
  },
  async onEnvironmentValidateConfig(p) {
    record("environmentValidateConfig", p);
    return { ok: true, normalizedConfig: p.config };
  },
  async onEnvironmentProbe(p) {
    record("environmentProbe", p);
    return { ok: true, summary: `probed ${p.driverKey}` };
  },
  async onEnvironmentAcquireLease(p) {
    record("environmentAcquireLease", p);
    if (p.config?.failAcquire) throw new Error(String(p.config.failAcquire));
    return {
      providerLeaseId: `lease-${p.runId}`,
      metadata: { acquiredWith: p, remoteCwd: "/work" },
      expiresAt: p.config?.expiresAt ?? null,
    };
  },
  async onEnvironmentResumeLease(p) {
    record("environmentResumeLease", p);
    if (p.leaseMetadata?.failResume || String(p.providerLeaseId).includes("gone")) throw new Error(`cannot resume ${p.providerLeaseId}`);
    return { providerLeaseId: p.providerLeaseId, metadata: { resumedWith: p } };
  },
  async onEnvironmentReleaseLease(p) {
    record("environmentReleaseLease", p);
    if (p.leaseMetadata?.failRelease) throw new Error("release failed");
  },
  async onEnvironmentDestroyLease(p) {
    record("environmentDestroyLease", p);
    if (p.leaseMetadata?.failDestroy) throw new Error("destroy failed");
  },
  async onEnvironmentRealizeWorkspace(p) {
    record("environmentRealizeWorkspace", p);
    return { cwd: "/work/realized", metadata: { realizedWith: p.workspace ?? null } };
  },
  async onEnvironmentExecute(p) {
    record("environmentExecute", p);
    const hook = hooks[p.command];
    return hook ? hook(p) : runLocally(p);
  },
  async onEnvironmentSyncIn(p) {
    record("environmentSyncIn", p);
    return { ok: true };
  },
  async onEnvironmentSyncOut(p) {
    record("environmentSyncOut", p);
    return { ok: true };
  },
});

startWorkerRpcHost({ plugin });
