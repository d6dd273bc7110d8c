// bench_compile_cost's "before": tests/separate/use.cpp's four steps in a header-only TU that
// instantiates the orchestrator itself (no BERTH_EXTERN_ORCHESTRATOR, no BERTH_SEPARATE_COMPILATION).
#include <berth/drivers/local.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/policies/retain_on_failure.hpp>
#include <berth/stores/memory.hpp>

using stack = berth::stack<berth::drivers<berth::local_driver>,
                           berth::policies<berth::ephemeral, berth::retain_on_failure>, berth::memory_store>;

int main() {
    berth::memory_store store;
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}};
    auto const acq = orch.acquire_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run"});
    auto const real = orch.realize_for_run({.env = acq.env, .lease = acq.lease, .workspace_cwd = "/tmp"});
    auto const r = orch.execute(acq.env, real.lease, {.program = "true"});
    auto const rel = orch.release_for_run(
        {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run", .outcome = berth::run_outcome::succeeded});
    return r.exit_code.value_or(1) + static_cast<int>(rel.errors.size());
}
