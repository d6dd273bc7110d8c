// The store seam: the orchestrator asks only for berth::orchestrator_store (environment_source +
// lease_store + activity_sink, 13 members), and the lease rules live once (model/lease_rules.hpp).
// A minimal store defined only here composes with run_orchestrator for a plain lease stack, and
// berth's two stores refuse the same input with the same code and the same message.

#include <catch2/catch.hpp>

#include <berth/model/lease_rules.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>
#include <berth/stores/sqlite.hpp>
#include <berth/testing/fake_driver.hpp>
#include <berth/testing/manual_clock.hpp>

#include <map>
#include <mutex>
#include <string>
#include <vector>

using namespace berth;

namespace {

/// A plain lease store in 13 members: environments come from a fixed list (no create / list /
/// update), leases and events live in maps. Every rule and refusal comes from lease_rules, so it
/// behaves as berth's stores do without writing one message of its own.
class tiny_store {
public:
    explicit tiny_store(std::vector<environment> envs) {
        for (auto& e : envs) environments_.emplace(e.id, std::move(e));
    }

    // ---- environment_source (2) ----
    std::optional<environment> get_environment(std::string_view id) {
        std::lock_guard lk(mu_);
        auto const it = environments_.find(std::string(id));
        return it == environments_.end() ? std::nullopt : std::optional(it->second);
    }
    environment ensure_local_environment(std::string_view company_id, timestamp) {
        std::lock_guard lk(mu_);
        for (auto const& [id, e] : environments_)
            if (e.company_id == company_id && e.driver == driver_kind::local) return e;
        throw store_error(store_errc::not_found, "no local environment configured");
    }

    // ---- lease_store (9) ----
    std::optional<environment_lease> get_lease(std::string_view id) {
        std::lock_guard lk(mu_);
        auto const it = leases_.find(std::string(id));
        return it == leases_.end() ? std::nullopt : std::optional(it->second);
    }
    std::vector<environment_lease> list_leases(std::string_view environment_id, lease_filter const& f) {
        return select([&](environment_lease const& l) {
            return l.environment_id == environment_id && (!f.status || l.status == *f.status);
        });
    }
    std::vector<environment_lease> list_run_leases(std::string_view run_id, lease_filter const& f) {
        return select([&](environment_lease const& l) {
            return l.heartbeat_run_id == run_id && (!f.status || l.status == *f.status);
        });
    }
    environment_lease acquire_lease(new_lease const& in, timestamp now, std::optional<activity_event> ev) {
        lease_rules::validate(in);
        std::lock_guard lk(mu_);
        auto const env = environments_.find(in.environment_id);
        if (env == environments_.end()) throw lease_rules::environment_not_found(in.environment_id);
        lease_rules::check_company(in, env->second.company_id);
        if (leases_.contains(in.id)) throw lease_rules::lease_exists(in.id);
        admit(env->second, in.reuse_scope);
        auto lease = lease_rules::make_lease(in, now);
        leases_.emplace(lease.id, lease);
        if (ev) events_.push_back(std::move(*ev));
        return lease;
    }
    environment_lease transition_lease(lease_transition const& t, timestamp now, std::optional<activity_event> ev) {
        std::lock_guard lk(mu_);
        auto const it = leases_.find(t.id);
        if (it == leases_.end()) throw lease_rules::lease_not_found(t.id);
        auto& l = it->second;
        lease_rules::check_transition(t.id, l.status, l.epoch, t.expected_epoch, t.to);
        if (lease_rules::reactivates(l.status, t.to)) admit(environments_.at(l.environment_id), l.reuse_scope);
        lease_rules::apply_transition(l, t, now);
        if (ev) events_.push_back(std::move(*ev));
        return l;
    }
    std::optional<environment_lease> update_lease_metadata(std::string_view id, std::optional<json_object> md,
                                                           timestamp now) {
        std::lock_guard lk(mu_);
        auto const it = leases_.find(std::string(id));
        if (it == leases_.end()) return std::nullopt;
        it->second.metadata = std::move(md);
        it->second.last_used_at = it->second.updated_at = now;
        return it->second;
    }
    environment_lease renew_lease(std::string_view id, std::uint64_t epoch, std::optional<timestamp> expires,
                                  timestamp now) {
        std::lock_guard lk(mu_);
        auto const it = leases_.find(std::string(id));
        if (it == leases_.end()) throw lease_rules::lease_not_found(id);
        lease_rules::check_renewal(id, it->second.status, it->second.epoch, epoch);
        it->second.expires_at = expires;
        it->second.last_used_at = it->second.updated_at = now;
        return it->second;
    }
    std::vector<environment_lease> release_leases_for_run(std::string_view run_id, lease_status to, timestamp now) {
        lease_rules::check_release_target(to);
        std::lock_guard lk(mu_);
        std::vector<environment_lease> out;
        for (auto& [id, l] : leases_)
            if (l.heartbeat_run_id == run_id && l.status == lease_status::active) {
                lease_rules::apply_transition(l, {.id = id, .expected_epoch = l.epoch, .to = to}, now);
                out.push_back(l);
            }
        return out;
    }
    std::vector<environment_lease> list_expired_leases(timestamp now) {
        return select([&](environment_lease const& l) {
            return l.status == lease_status::active && l.expires_at && *l.expires_at <= now;
        });
    }

    // ---- activity_sink (2) ----
    void record_activity(activity_event const& e) {
        std::lock_guard lk(mu_);
        events_.push_back(e);
    }
    std::vector<activity_event> list_activity(activity_filter const&) {
        std::lock_guard lk(mu_);
        return events_;
    }

private:
    template <class Pred>
    std::vector<environment_lease> select(Pred p) {
        std::lock_guard lk(mu_);
        std::vector<environment_lease> out;
        for (auto const& [id, l] : leases_)
            if (p(l)) out.push_back(l);
        return out;
    }
    void admit(environment const& env, std::optional<std::string> const& scope) {
        std::int64_t active = 0;
        std::optional<std::string_view> holder;
        for (auto const& [id, l] : leases_) {
            if (l.environment_id != env.id || l.status != lease_status::active) continue;
            ++active;
            if (scope && l.reuse_scope == scope) holder = l.id;
        }
        lease_rules::check_capacity(env.name, env.id, lease_rules::max_active_leases(env), active);
        lease_rules::check_reuse_scope(env.id, scope, holder);
    }

    std::mutex mu_;
    std::map<std::string, environment> environments_;
    std::map<std::string, environment_lease> leases_;
    std::vector<activity_event> events_;
};

static_assert(orchestrator_store<tiny_store>);
static_assert(!environment_store<tiny_store> && !workspace_store<tiny_store> && !persistence_backend<tiny_store>,
              "the tiny store implements the orchestrator's slices only");

using fake_sandbox = testing::fake_driver<driver_kind::sandbox>;
using tiny_stack = stack<drivers<fake_sandbox>, policies<ephemeral>, tiny_store, testing::manual_clock>;

environment sandbox_env(std::string id, json_object config = {}) {
    return environment{.id = id, .company_id = "acme", .name = "box " + id, .driver = driver_kind::sandbox,
                       .config = std::move(config)};
}

}  // namespace

// Instantiated whole over the smallest store it accepts: no member function needs more.
using minimal_store_stack = stack<drivers<archetypes::driver>, policies<archetypes::policy>,
                                  archetypes::orchestrator_store, archetypes::clock>;
template class berth::run_orchestrator<minimal_store_stack>;

TEST_CASE("a 13-member store composes with run_orchestrator for a plain lease stack", "[store_seams]") {
    testing::manual_clock clock;
    tiny_store store({sandbox_env("e1", {{"maxActiveLeases", 1}})});
    fake_sandbox sandbox;
    auto const state = sandbox.shared_state();
    run_orchestrator<tiny_stack> orch{store, clock, sandbox};

    auto const acq = orch.acquire_for_run(
        {.company_id = "acme", .environment_id = "e1", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    CHECK(acq.lease.status == lease_status::active);
    CHECK(acq.lease.epoch == 1);
    // The store's capacity rule (from lease_rules) holds through the orchestrator.
    try {
        (void)orch.acquire_for_run(
            {.company_id = "acme", .environment_id = "e1", .agent_id = std::nullopt, .heartbeat_run_id = "run-2"});
        FAIL("a second lease exceeded maxActiveLeases = 1");
    } catch (environment_run_error const& e) {
        CHECK(e.code() == environment_error_code::lease_acquire_failed);
        CHECK_THAT(e.what(), Catch::Contains("maxActiveLeases = 1"));
    }
    CHECK(state->live_provider_leases().size() == 1);  // the refused lease's provider side was undone

    auto const res = orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    CHECK(res.errors.empty());
    REQUIRE(res.released.size() == 1);
    CHECK(res.released[0].status == lease_status::released);
    CHECK(store.get_lease(acq.lease.id)->released_at == clock.now());
    CHECK(state->live_provider_leases().empty());
    auto const events = store.list_activity({});
    REQUIRE(events.size() == 2);
    CHECK(events[0].action == actions::lease_acquired);
    CHECK(events[1].action == actions::lease_released);
}

namespace {

/// Every refusal a lease store words, made against a store `S`: (code, message) in order.
template <class S>
std::vector<std::pair<store_errc, std::string>> refusals(S& s) {
    auto const now = timestamp::from_micros(1767225600000000);
    auto const env = s.create_environment(
        new_environment{.company_id = "c1", .name = "pool", .driver = driver_kind::sandbox,
                        .config = {{"maxActiveLeases", 2}}},
        now);
    auto const bad = s.create_environment(
        new_environment{.company_id = "c1", .name = "bad", .driver = driver_kind::sandbox,
                        .config = {{"maxActiveLeases", "many"}}},
        now);
    auto lease = [&](std::string id, std::optional<std::string> scope = std::nullopt) {
        return new_lease{.id = std::move(id), .company_id = "c1", .environment_id = env.id,
                         .heartbeat_run_id = "run", .reuse_scope = std::move(scope)};
    };
    std::vector<std::pair<store_errc, std::string>> out;
    // Environment ids differ between two stores; every other word of a refusal must not.
    auto normalised = [&](std::string m) {
        for (auto const& [id, name] : {std::pair{env.id, "<env>"}, std::pair{bad.id, "<bad>"}})
            for (auto p = m.find(id); p != std::string::npos; p = m.find(id)) m.replace(p, id.size(), name);
        return m;
    };
    auto refused = [&](auto&& write) {
        try {
            write();
            out.emplace_back(store_errc::backend_failure, "accepted");
        } catch (store_error const& e) {
            out.emplace_back(e.code(), normalised(e.what()));
        }
    };
    refused([&] { s.acquire_lease(new_lease{.company_id = "c1", .environment_id = env.id}, now, std::nullopt); });
    refused([&] { s.acquire_lease(new_lease{.id = "x", .environment_id = env.id}, now, std::nullopt); });
    refused([&] { s.acquire_lease(new_lease{.id = "x", .company_id = "c1"}, now, std::nullopt); });
    refused([&] { s.acquire_lease(lease("x", ""), now, std::nullopt); });
    refused([&] {
        s.acquire_lease(new_lease{.id = "x", .company_id = "c1", .environment_id = "nowhere"}, now, std::nullopt);
    });
    refused([&] {
        s.acquire_lease(new_lease{.id = "x", .company_id = "c2", .environment_id = env.id}, now, std::nullopt);
    });
    refused([&] {
        s.acquire_lease(new_lease{.id = "x", .company_id = "c1", .environment_id = bad.id}, now, std::nullopt);
    });
    s.acquire_lease(lease("a", "scope-1"), now, std::nullopt);
    refused([&] { s.acquire_lease(lease("a"), now, std::nullopt); });
    refused([&] { s.acquire_lease(lease("b", "scope-1"), now, std::nullopt); });
    s.acquire_lease(lease("b"), now, std::nullopt);
    refused([&] { s.acquire_lease(lease("c"), now, std::nullopt); });
    refused([&] { s.transition_lease({.id = "nope", .expected_epoch = 1}, now, std::nullopt); });
    refused([&] { s.transition_lease({.id = "a", .expected_epoch = 7}, now, std::nullopt); });
    refused([&] { s.transition_lease({.id = "a", .expected_epoch = 1, .to = lease_status::active}, now, std::nullopt); });
    s.transition_lease({.id = "a", .expected_epoch = 1, .to = lease_status::retained}, now, std::nullopt);
    s.transition_lease({.id = "b", .expected_epoch = 1, .to = lease_status::released}, now, std::nullopt);
    s.acquire_lease(lease("c", "scope-1"), now, std::nullopt);
    refused([&] { s.transition_lease({.id = "a", .expected_epoch = 2, .to = lease_status::active}, now, std::nullopt); });
    refused([&] { s.transition_lease({.id = "a", .expected_epoch = 1, .to = lease_status::active}, now, std::nullopt); });
    refused([&] { s.renew_lease("nope", 1, std::nullopt, now); });
    refused([&] { s.renew_lease("b", 3, std::nullopt, now); });
    refused([&] { s.renew_lease("a", 2, std::nullopt, now); });
    refused([&] { s.release_leases_for_run("run", lease_status::active, now); });
    return out;
}

}  // namespace

TEST_CASE("memory_store and sqlite_store refuse alike, with lease_rules' codes and messages", "[store_seams]") {
    memory_store memory;
    auto sqlite = sqlite_store::open(":memory:");
    auto const m = refusals(memory);
    auto const q = refusals(sqlite);
    REQUIRE(m.size() == q.size());
    for (std::size_t i = 0; i < m.size(); ++i) {
        INFO("refusal " << i << ": memory \"" << m[i].second << "\", sqlite \"" << q[i].second << "\"");
        CHECK(m[i].first != store_errc::backend_failure);
        CHECK(m[i] == q[i]);
    }
    // Spot checks of lease_rules' wording.
    CHECK(q[0].second == "A lease needs an id (id is empty).");
    CHECK(q[1].second == "A lease needs a company id (company_id is empty).");
    CHECK(q[2].second == "A lease needs an environment id (environment_id is empty).");
    CHECK(q[3].first == store_errc::invalid_argument);
    CHECK(q[4].second == "Environment \"nowhere\" not found.");
    CHECK_THAT(q[5].second, Catch::Contains("belongs to company \"c1\""));
    CHECK_THAT(q[6].second, Catch::Contains("maxActiveLeases = \"many\""));
    CHECK(q[7].second == "Lease \"a\" already exists.");
    CHECK(q[8].second == "Environment \"<env>\" already has an active lease in reuse scope \"scope-1\" (a).");
    CHECK(q[9].second == "Environment \"pool\" (<env>) already has 2 active leases, its limit (maxActiveLeases = 2).");
    CHECK(q[10].first == store_errc::not_found);
    CHECK(q[11].first == store_errc::stale_epoch);
    CHECK(q[12].first == store_errc::illegal_transition);
    CHECK(q[13].first == store_errc::conflict);  // resuming into a scope c holds
    CHECK(q[14].first == store_errc::stale_epoch);  // a stale resume is stale before anything else
    CHECK(q[15].first == store_errc::not_found);
    CHECK(q[16].first == store_errc::stale_epoch);
    CHECK(q[17].first == store_errc::illegal_transition);
    CHECK(q[18].first == store_errc::illegal_transition);
}
