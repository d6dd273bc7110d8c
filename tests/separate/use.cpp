// A TU that uses an extern-instantiated orchestrator: the four steps of a run through
// berth::run_orchestrator<app::stack>, whose members instantiate.cpp compiles. Run as a test
// (separate_compilation.runs): it links (every member used is instantiated there) and works.
#include "stack.hpp"

#include <cstdio>

int main() {
    berth::memory_store store;
    berth::run_orchestrator<app::stack> orch{store, berth::local_driver{}};
    auto const acq = orch.acquire_for_run(
        {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "separate-compilation-run"});
    auto const real = orch.realize_for_run({.env = acq.env, .lease = acq.lease, .workspace_cwd = "/tmp"});
    auto const r = orch.execute(acq.env, real.lease, {.program = "sh", .args = {"-c", "echo separately compiled"}});
    auto const rel = orch.release_for_run({.company_id = "acme",
                                           .agent_id = std::nullopt,
                                           .heartbeat_run_id = "separate-compilation-run",
                                           .outcome = r.exit_code == 0 ? berth::run_outcome::succeeded
                                                                       : berth::run_outcome::failed});
    std::fputs(r.stdout_text.c_str(), stdout);
    if (rel.released.size() != 1 || !rel.errors.empty()) {
        std::printf("release: %zu released, %zu errors\n", rel.released.size(), rel.errors.size());
        return 1;
    }
    std::printf("exit %d, lease %s\n", r.exit_code.value_or(-1), berth::to_string(rel.released.front().status));
    return r.exit_code.value_or(1);
}
