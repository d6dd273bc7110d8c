// A small environment plugin written with upstream's SDK, exactly as for Paperclip: berth hosts it
// unchanged (`berth-run --plugin examples/plugin/worker.mjs -- COMMAND`).
//
// Its "environment" is a scratch directory on this machine: acquire creates one, execute runs the
// command there (streaming its output with ctx.execution.log), release removes it. The host's cwd
// (the workspace on the host's side) is used only when it lies inside the scratch directory.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { definePlugin, startWorkerRpcHost } from "@paperclipai/plugin-sdk";

let ctx;

const plugin = definePlugin({
  async setup(c) {
    ctx = c;
  },

  async onEnvironmentProbe(p) {
    return { ok: true, summary: `scratch directories under ${tmpdir()}` };
  },

  async onEnvironmentAcquireLease(p) {
    const dir = mkdtempSync(join(tmpdir(), `scratch-${p.runId.slice(0, 8)}-`));
    return { providerLeaseId: dir, metadata: { remoteCwd: dir } };
  },

  async onEnvironmentReleaseLease(p) {
    if (p.providerLeaseId) rmSync(p.providerLeaseId, { recursive: true, force: true });
  },

  async onEnvironmentDestroyLease(p) {
    if (p.providerLeaseId) rmSync(p.providerLeaseId, { recursive: true, force: true });
  },

  async onEnvironmentExecute(p) {
    const dir = p.lease?.providerLeaseId ?? null;
    return new Promise((resolve) => {
      const child = spawn(p.command, p.args ?? [], {
        cwd: p.cwd && dir && p.cwd.startsWith(dir) ? p.cwd : dir ?? undefined,
        env: { ...process.env, ...(p.env ?? {}) },
      });
      let stdout = "";
      let stderr = "";
      let timedOut = false;
      const timer = p.timeoutMs ? setTimeout(() => { timedOut = true; child.kill("SIGTERM"); }, p.timeoutMs) : null;
      child.stdout.on("data", (d) => { stdout += d; ctx.execution.log("stdout", d.toString()); });
      child.stderr.on("data", (d) => { stderr += d; ctx.execution.log("stderr", d.toString()); });
      child.on("error", (err) => resolve({ exitCode: 127, timedOut: false, stdout, stderr: err.message }));
      child.on("close", (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ exitCode: code, signal, timedOut, stdout, stderr });
      });
      child.stdin.end(p.stdin ?? "");
    });
  },
});

startWorkerRpcHost({ plugin });
