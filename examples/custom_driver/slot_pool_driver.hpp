#pragma once
// A custom environment driver, from the archetype up: examples/custom_driver/main.cpp composes it
// into a stack with the local driver, and berth's tests run the driver conformance kit on it
// (tests/unit/driver_conformance_test.cpp). docs/concepts.md quotes this file.

#include <berth/concepts/diagnostics.hpp>
#include <berth/concepts/environment_driver.hpp>
#include <berth/model/enum_string.hpp>

#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

//[custom_driver
// A driver for "plugin" environments that hands out numbered slots of a pretend device pool.
class slot_pool_driver {
public:
    using driver_concept = berth::driver_tag;                        // opt in to the concept
    static constexpr std::string_view name = "slot-pool";                 // its own name
    static constexpr berth::driver_kind family = berth::driver_kind::plugin;  // upstream's stored family

    // Required: create the provider side of a lease and describe it. Called concurrently: be thread-safe.
    berth::lease_grant acquire(berth::acquire_request const& r) const {
        std::lock_guard lk(pool_->mu);
        auto const slot = pool_->next++;
        pool_->held.insert("slot-" + std::to_string(slot));
        return {.provider = "slot-pool",
                .provider_lease_id = "slot-" + std::to_string(slot),
                .expires_at = {},
                .metadata = {{"driver", "plugin"}, {"slot", slot}, {"runId", r.heartbeat_run_id.value_or("")}}};
    }

    // Required: let go of it. `to` is the status the lease is moving to. Safe to call twice, and on
    // a lease this process never acquired (an orphan): only a slot this driver holds is given back.
    berth::release_outcome release(berth::environment const&, berth::environment_lease const& l,
                                   berth::lease_status to) const {
        std::printf("slot_pool_driver: releasing %s as %s\n", l.provider_lease_id.value_or("?").c_str(),
                    berth::to_string(to));
        std::lock_guard lk(pool_->mu);
        if (l.provider_lease_id) pool_->held.erase(*l.provider_lease_id);
        return {.cleanup_status = berth::cleanup_status::success, .failure_reason = {}};
    }

    // Optional capability: realize the workspace (the orchestrator calls it because the driver has
    // it, whatever its family): each slot has a directory of its own on the device.
    berth::workspace_realization realize_workspace(berth::realize_request const& r) const {
        auto const dir = "/slots/" + r.lease.provider_lease_id.value_or("unknown");
        return {.cwd = dir, .remote_cwd = dir, .metadata = {}};
    }

    // Optional capability: probe (never throws).
    berth::probe_result probe(berth::environment const&) const noexcept {
        return {.ok = true, .summary = "Slot pool is reachable.", .details = {}};
    }

    // Not part of the driver concept: the slots out now (the conformance kit checks that release
    // gives back what acquire took).
    [[nodiscard]] std::set<std::string> slots_held() const {
        std::lock_guard lk(pool_->mu);
        return pool_->held;
    }

private:
    struct pool {  // shared by copies: the orchestrator holds the driver by value
        std::mutex mu;
        int next = 1;
        std::set<std::string> held;
    };
    std::shared_ptr<pool> pool_ = std::make_shared<pool>();
};
static_assert(berth::verified_driver<slot_pool_driver>);  // every requirement, one message each
static_assert(berth::driver_with_probe<slot_pool_driver> && berth::driver_with_realize_workspace<slot_pool_driver>);
static_assert(!berth::driver_with_execute<slot_pool_driver>);  // execute is refused at run time, clearly
//]
