// The smallest environment plugin: acquire and execute only (no release, resume, destroy, sync),
// so the tests see what berth does with a worker that advertises little.
import { definePlugin, startWorkerRpcHost } from "@paperclipai/plugin-sdk";

const plugin = definePlugin({
  async setup() {},
  async onEnvironmentAcquireLease(p) {
    return { providerLeaseId: null, metadata: {}, expiresAt: "not a date" };
  },
  async onEnvironmentExecute(p) {
    return { exitCode: 0, timedOut: false, stdout: "", stderr: "" };
  },
});

startWorkerRpcHost({ plugin });
