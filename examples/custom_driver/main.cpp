// A custom environment driver, from the archetype up, composed into a stack with the local driver.
// docs/concepts.md quotes this file; it is built and run as a test, so the documentation cannot rot.

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/src.hpp>
#include <berth/stores/memory.hpp>

#include <atomic>
#include <cstdio>

//[custom_driver
// A driver for "plugin" environments that hands out numbered slots of a pretend device pool.
class slot_pool_driver {
public:
    using driver_concept = berth::driver_tag;                        // opt in to the concept
    static constexpr std::string_view name = "slot-pool";                 // its own name
    static constexpr berth::driver_kind family = berth::driver_kind::plugin;  // upstream's stored family

    // Required: create the provider side of a lease and describe it. Called concurrently: be thread-safe.
    berth::lease_grant acquire(berth::acquire_request const& r) const {
        auto const slot = next_->fetch_add(1);
        return {.provider = "slot-pool",
                .provider_lease_id = "slot-" + std::to_string(slot),
                .expires_at = {},
                .metadata = {{"driver", "plugin"}, {"slot", slot}, {"runId", r.heartbeat_run_id.value_or("")}}};
    }

    // Required: let go of it. `to` is the status the lease is moving to.
    berth::release_outcome release(berth::environment const&, berth::environment_lease const& l,
                                   berth::lease_status to) const {
        std::printf("slot_pool_driver: releasing %s as %s\n", l.provider_lease_id->c_str(), berth::to_string(to));
        return {.cleanup_status = berth::cleanup_status::success, .failure_reason = {}};
    }

    // Optional capability: probe (never throws).
    berth::probe_result probe(berth::environment const&) const noexcept {
        return {.ok = true, .summary = "Slot pool is reachable.", .details = {}};
    }

private:
    std::shared_ptr<std::atomic<int>> next_ = std::make_shared<std::atomic<int>>(1);
};
static_assert(berth::environment_driver<slot_pool_driver>);
static_assert(berth::driver_with_probe<slot_pool_driver>);
static_assert(!berth::driver_with_execute<slot_pool_driver>);  // execute is refused at run time, clearly
//]

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
    auto const released = run.finish(berth::run_outcome::succeeded);
    bool const ok = released.errors.empty() && released.released.size() == 1 &&
                    released.released[0].status == berth::lease_status::released;
    std::printf("%s\n", ok ? "released" : "release failed");
    return ok ? 0 : 1;
}
