// A sandbox provider plugin for berth's tests, written against upstream's SDK exactly as a
// Paperclip plugin author writes one (definePlugin + startWorkerRpcHost). Its manifest (given by
// the test) declares an environment driver of kind "sandbox_provider"; berth reaches it through
// berth::plugin_sandbox_provider.
//
// A "sandbox" is a directory under $BERTH_TEST_SBX_ROOT/sandboxes/<providerLeaseId>: it outlives
// the worker process, as a cloud sandbox outlives a crashed worker, so a restarted worker still
// serves the leases of the one before. Every call is appended to $BERTH_TEST_SBX_ROOT/calls.jsonl
// ({method, params}) for the tests to read.
//
// Misbehaviour on purpose:
// - $BERTH_TEST_SBX_FAIL_STARTS = N: the first N starts (counted in $BERTH_TEST_SBX_ROOT/starts)
//   exit at once, before the RPC host is up (a worker that is slow to come up);
// - config.failAcquire / failRelease / failDestroy (a message): that call throws it;
// - resume throws when the sandbox's directory is gone, or config.failResume is set; it answers
//   an empty providerLeaseId when config.resumeEmpty is set;
// - execute commands `crash` (exit mid-call), `sleep MS`, `chunks A B ...` (streamed chunks).
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = process.env.BERTH_TEST_SBX_ROOT;
if (!root) {
  process.stderr.write("BERTH_TEST_SBX_ROOT is not set\n");
  process.exit(2);
}
mkdirSync(join(root, "sandboxes"), { recursive: true });

const failStarts = Number(process.env.BERTH_TEST_SBX_FAIL_STARTS ?? 0);
if (failStarts > 0) {
  const counter = join(root, "starts");
  const n = (existsSync(counter) ? Number(readFileSync(counter, "utf8")) : 0) + 1;
  writeFileSync(counter, String(n));
  if (n <= failStarts) {
    process.stderr.write(`start ${n} of ${failStarts} failing on purpose\n`);
    process.exit(1);
  }
}

// Imported only now, so that a start failing on purpose fails fast (a static import would load
// the SDK first).
const { definePlugin, startWorkerRpcHost } = await import("@paperclipai/plugin-sdk");

let ctx = null;
let sequence = 0;

function record(method, params) {
  appendFileSync(join(root, "calls.jsonl"), JSON.stringify({ method, params }) + "\n");
}
function sandboxDir(id) {
  return join(root, "sandboxes", String(id));
}

function runIn(dir, p) {
  return new Promise((resolve) => {
    const child = spawn(p.command, p.args ?? [], {
      cwd: p.cwd || dir,
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

const hooks = {
  async crash() {
    process.stderr.write("sandbox worker crashing mid-call\n");
    setTimeout(() => process.exit(3), 20);
    return new Promise(() => {});
  },
  async sleep(p) {
    const ms = Number(p.args?.[0] ?? 1000);
    await new Promise((r) => setTimeout(r, ms));
    return { exitCode: 0, timedOut: false, stdout: `slept ${ms}`, stderr: "" };
  },
  async chunks(p) {
    const parts = p.args ?? [];
    parts.forEach((c, i) => ctx.execution.log(i % 2 === 0 ? "stdout" : "stderr", c));
    return { exitCode: 0, timedOut: false, stdout: parts.filter((_, i) => i % 2 === 0).join(""), stderr: parts.filter((_, i) => i % 2 === 1).join("") };
  },
};

const plugin = definePlugin({
  async setup(c) {
    ctx = c;
  },
  async onEnvironmentProbe(p) {
    record("environmentProbe", p);
    return { ok: true, summary: `sandbox provider ${p.driverKey} is ready` };
  },
  async onEnvironmentAcquireLease(p) {
    record("environmentAcquireLease", p);
    if (p.config?.failAcquire) throw new Error(String(p.config.failAcquire));
    const id = `${p.driverKey}-${process.pid}-${++sequence}`;
    mkdirSync(sandboxDir(id));
    return {
      providerLeaseId: id,
      metadata: { remoteCwd: sandboxDir(id), shellCommand: "sh", sandboxName: id },
      expiresAt: p.config?.expiresAt ?? null,
    };
  },
  async onEnvironmentResumeLease(p) {
    record("environmentResumeLease", p);
    if (p.config?.failResume) throw new Error(`cannot resume ${p.providerLeaseId}: ${p.config.failResume}`);
    if (!existsSync(sandboxDir(p.providerLeaseId))) throw new Error(`sandbox ${p.providerLeaseId} is gone`);
    if (p.config?.resumeEmpty) return { providerLeaseId: "" };
    return { providerLeaseId: p.providerLeaseId, metadata: { resumedBy: process.pid } };
  },
  async onEnvironmentReleaseLease(p) {
    record("environmentReleaseLease", p);
    if (p.config?.failRelease) throw new Error(String(p.config.failRelease));
    // A lease the host keeps for reuse keeps its sandbox (upstream's host releases it at the end
    // of each run); any other release deletes it.
    if (!p.leaseMetadata?.reusableSandboxLease && p.providerLeaseId) rmSync(sandboxDir(p.providerLeaseId), { recursive: true, force: true });
  },
  async onEnvironmentDestroyLease(p) {
    record("environmentDestroyLease", p);
    if (p.config?.failDestroy) throw new Error(String(p.config.failDestroy));
    if (p.providerLeaseId) rmSync(sandboxDir(p.providerLeaseId), { recursive: true, force: true });
  },
  async onEnvironmentRealizeWorkspace(p) {
    record("environmentRealizeWorkspace", p);
    const dir = sandboxDir(p.lease?.providerLeaseId);
    mkdirSync(join(dir, "workspace"), { recursive: true });
    return { cwd: join(dir, "workspace"), metadata: { realizedBy: p.driverKey } };
  },
  async onEnvironmentExecute(p) {
    record("environmentExecute", p);
    const hook = hooks[p.command];
    if (hook) return hook(p);
    const dir = sandboxDir(p.lease?.providerLeaseId);
    if (!existsSync(dir)) return { exitCode: 125, timedOut: false, stdout: "", stderr: `no sandbox ${p.lease?.providerLeaseId}` };
    return runIn(dir, p);
  },
});

startWorkerRpcHost({ plugin });
