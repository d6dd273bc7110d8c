// A custom environment driver (slot_pool_driver.hpp), composed into a stack with the local driver.
// It is built and run as a test, so the documentation that quotes it cannot rot.

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/src.hpp>
#include <berth/stores/memory.hpp>

#include "slot_pool_driver.hpp"

#include <cstdio>

int main() {
    using stack = berth::stack<berth::drivers<berth::local_driver, slot_pool_driver>,
                               berth::policies<berth::ephemeral>, berth::memory_store>;
    berth::memory_store store;
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}, slot_pool_driver{}};

    auto const pool = store.create_environment({.company_id = "acme", .name = "GPU slots",
                                                .driver = berth::driver_kind::plugin},
                                               orch.clock().now());
    std::printf("probe: %s\n", orch.probe(pool).summary.c_str());

    berth::run_scope run{orch, {.company_id = "acme", .environment_id = pool.id,
                                .agent_id = std::nullopt, .heartbeat_run_id = "run-1"}};
    std::printf("leased %s (%s)\n", run.lease().provider_lease_id->c_str(), berth::to_string(run.lease().status));
    // realized because the driver has realize_workspace (capabilities decide, not the family)
    std::printf("realized at %s\n", run.realize("/unused").cwd.c_str());
    auto const released = run.finish(berth::run_outcome::succeeded);
    bool const ok = released.errors.empty() && released.released.size() == 1 &&
                    released.released[0].status == berth::lease_status::released;
    std::printf("%s\n", ok ? "released" : "release failed");
    return ok ? 0 : 1;
}
