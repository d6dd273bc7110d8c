#pragma once
//! @file
//! berth::reap_orphan_sandboxes — recovery's part for bubblewrap sandboxes: removes the sandbox
//! directories under the provider's state root that no live lease of the orchestrator's store
//! holds any more (their lease ended without deleting them, or was never recorded: the host died
//! between making the sandbox and writing its lease), and kills what of them still runs.
//!
//! @code
//! auto const report = berth::recover(orch);               // ends the leases of dead holders
//! auto const reaped = berth::reap_orphan_sandboxes(       // then the sandboxes nothing holds
//!     orch, orch.driver<berth::sandbox_driver<berth::bubblewrap>>().provider<berth::bubblewrap>());
//! @endcode
//!
//! A sandbox is held when its environment has an `active`, `retained` or `pending_cleanup` lease
//! with its provider lease id. A sandbox whose environment this store does not know is left alone:
//! another store (another berth-run database) may share the state root. See
//! bubblewrap::reap_orphans for what else is spared (a sandbox its maker may still record).

#include <berth/drivers/sandbox/bubblewrap.hpp>  // berth::bubblewrap
#include <berth/model/lease.hpp>                 // lease_status, lease_filter
#include <berth/model/paging.hpp>                // no_limit

#include <chrono>  // std::chrono::seconds
#include <map>       // std::map
#include <optional>  // std::optional
#include <set>     // std::set
#include <string>  // std::string

namespace berth {

/// Removes `bw`'s orphan sandboxes (see the file comment), judged against `orch.store()`.
/// Never throws for one sandbox: what could not be judged or removed is in `errors`.
template <class Orch>
[[nodiscard]] bubblewrap::reap_result reap_orphan_sandboxes(Orch const& orch, bubblewrap const& bw,
                                                            std::chrono::seconds grace = std::chrono::minutes(10)) {
    auto& store = orch.store();
    // environment id → the provider lease ids its live leases hold (nullopt: not this store's).
    std::map<std::string, std::optional<std::set<std::string>>> held_by_env;
    auto held = [&](bubblewrap::state_directory const& d) {
        auto const* env = d.owner.if_contains("environmentId");
        if (env == nullptr || !env->is_string()) return true;  // cannot be looked up: left alone
        std::string const id(env->get_string());
        auto it = held_by_env.find(id);
        if (it == held_by_env.end()) {
            std::optional<std::set<std::string>> ids;
            if (store.get_environment(id)) {
                ids.emplace();
                for (auto const s : {lease_status::active, lease_status::retained, lease_status::pending_cleanup})
                    for (auto const& l : store.list_leases(id, lease_filter{.status = s, .limit = no_limit}))
                        if (l.provider_lease_id) ids->insert(*l.provider_lease_id);
            }
            it = held_by_env.emplace(id, std::move(ids)).first;
        }
        return !it->second || it->second->count(d.name) > 0;
    };
    return bw.reap_orphans(held, grace);
}

}  // namespace berth
