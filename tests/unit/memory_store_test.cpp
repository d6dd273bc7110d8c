// berth::memory_store: the store conformance kit (both ways of running it), the kit's factory
// concepts, and what only the memory store promises.

#include <catch2/catch.hpp>

#include <berth/stores/memory.hpp>
#include <berth/testing/store_conformance.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace berth;
namespace conformance = berth::testing::store_conformance;

namespace {

/// The plainest factory: a store by value (memory_store is not even movable).
struct memory_store_factory {
    static memory_store make() { return {}; }
};

/// A factory whose reopen() hands out a second handle on the store make() made, so that the kit's
/// two-handle paths run here too.
struct shared_memory_store_factory {
    std::shared_ptr<memory_store> made;
    std::shared_ptr<memory_store> make() { return made = std::make_shared<memory_store>(); }
    std::shared_ptr<memory_store> reopen() const { return made; }
};

struct unique_memory_store_factory {
    static std::unique_ptr<memory_store> make() { return std::make_unique<memory_store>(); }
};

struct not_a_store_factory {
    static int make() { return 0; }
};
struct reopens_something_else {
    static memory_store make() { return {}; }
    static int reopen() { return 0; }
};

}  // namespace

static_assert(conformance::store_factory<memory_store_factory>);
static_assert(conformance::store_factory<unique_memory_store_factory>);
static_assert(std::is_same_v<conformance::store_t<unique_memory_store_factory>, memory_store>);
static_assert(conformance::reopenable_store_factory<shared_memory_store_factory>);
static_assert(!conformance::reopenable_store_factory<memory_store_factory>);
static_assert(!conformance::store_factory<not_a_store_factory>);
static_assert(!conformance::reopenable_store_factory<reopens_something_else>);

BERTH_STORE_CONFORMANCE_TESTS(memory_store_factory, "[memory_store]")

TEMPLATE_TEST_CASE("store conformance through run_all, with a second handle and a unique_ptr", "[memory_store]",
                   shared_memory_store_factory, unique_memory_store_factory) {
    conformance::run_all<TestType>();
}

TEST_CASE("memory_store objects do not share state", "[memory_store]") {
    testing::manual_clock clock;
    memory_store a;
    memory_store b;
    auto const local = a.ensure_local_environment("company-a", clock.now());
    CHECK_FALSE(b.get_environment(local.id));
    CHECK(b.list_environments("company-a", {}).empty());
    CHECK(b.ensure_local_environment("company-a", clock.now()).id != local.id);
    a.acquire_lease(new_lease{.id = "lease-1", .company_id = "company-a", .environment_id = local.id}, clock.now(),
                    std::nullopt);
    CHECK_FALSE(b.get_lease("lease-1"));
}

TEST_CASE("memory_store lists are consistent snapshots while writers move leases", "[memory_store]") {
    // Writers toggle leases active <-> retained, so a lease is active exactly at odd epochs and
    // never has released_at. A list that saw half a write would break that.
    testing::manual_clock clock;
    memory_store store;
    auto const env = store.ensure_local_environment("company-a", clock.now());
    constexpr int leases = 4;
    constexpr int moves = 300;
    for (int i = 0; i < leases; ++i)
        store.acquire_lease(
            new_lease{.id = "lease-" + std::to_string(i), .company_id = "company-a", .environment_id = env.id},
            clock.now(), std::nullopt);

    std::atomic<bool> done{false};
    std::atomic<int> torn{0};
    std::atomic<int> reads{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r)
        readers.emplace_back([&] {
            while (!done.load()) {
                for (auto const& l : store.list_leases(env.id, {})) {
                    bool const active = l.status == lease_status::active;
                    if (active != (l.epoch % 2 == 1) || l.released_at || l.updated_at != l.last_used_at) ++torn;
                }
                ++reads;
            }
        });
    std::vector<std::thread> writers;
    for (int i = 0; i < leases; ++i)
        writers.emplace_back([&, i] {
            // On a loaded machine the readers may not run before the writers finish: start writing
            // only once both have read, so reads and writes overlap.
            while (reads.load() < 2) std::this_thread::yield();
            auto const id = "lease-" + std::to_string(i);
            for (int m = 0; m < moves; ++m) {
                auto const epoch = static_cast<std::uint64_t>(m + 1);
                store.transition_lease(
                    lease_transition{.id = id,
                                     .expected_epoch = epoch,
                                     .to = epoch % 2 == 1 ? lease_status::retained : lease_status::active},
                    clock.now(), std::nullopt);
            }
        });
    for (auto& w : writers) w.join();
    done = true;
    for (auto& r : readers) r.join();

    CHECK(torn.load() == 0);
    CHECK(reads.load() > 0);
    for (auto const& l : store.list_leases(env.id, {})) {
        INFO(l.id);
        CHECK(l.epoch == moves + 1);
        CHECK(l.status == lease_status::active);
    }
}

// The capacity count and the reuse-scope check read an index of active leases that every status
// change must keep right: a lease ended by transition_lease or release_leases_for_run leaves it, a
// retained lease resumed enters it again, a refused resume changes nothing.
TEST_CASE("memory_store capacity and reuse scopes follow every status change over a long history",
          "[memory_store]") {
    testing::manual_clock clock;
    memory_store store;
    auto const env = store.create_environment(
        new_environment{.company_id = "c", .name = "pool", .driver = driver_kind::local, .config = {{"maxActiveLeases", 2}}},
        clock.now());
    auto lease = [&](std::string id, std::optional<std::string> scope = std::nullopt) {
        return new_lease{.id = std::move(id), .company_id = "c", .environment_id = env.id,
                         .heartbeat_run_id = "run", .reuse_scope = std::move(scope)};
    };
    auto refused_with = [&](store_errc code, auto&& write) {
        try {
            write();
        } catch (store_error const& e) {
            return e.code() == code;
        }
        return false;
    };
    for (int i = 0; i < 300; ++i) {  // a history of ended leases that must not count
        auto const a = store.acquire_lease(lease("t" + std::to_string(i)), clock.now(), std::nullopt);
        auto const b = store.acquire_lease(lease("r" + std::to_string(i)), clock.now(), std::nullopt);
        REQUIRE(refused_with(store_errc::capacity_exceeded,
                             [&] { (void)store.acquire_lease(lease("x"), clock.now(), std::nullopt); }));
        store.transition_lease({.id = a.id, .expected_epoch = a.epoch, .to = lease_status::released}, clock.now(),
                               std::nullopt);
        REQUIRE(store.release_leases_for_run("run", lease_status::failed, clock.now()).size() == 1);
        (void)b;
    }
    // Retained leases hold no capacity and no scope; resuming one takes both again.
    auto const kept = store.acquire_lease(lease("kept", std::string("environment")), clock.now(),
                                          std::nullopt);
    auto const retained = store.transition_lease(
        {.id = kept.id, .expected_epoch = kept.epoch, .to = lease_status::retained}, clock.now(), std::nullopt);
    auto const holder = store.acquire_lease(lease("holder", std::string("environment")), clock.now(),
                                            std::nullopt);
    CHECK(refused_with(store_errc::conflict, [&] {
        (void)store.transition_lease({.id = retained.id, .expected_epoch = retained.epoch, .to = lease_status::active},
                                     clock.now(), std::nullopt);
    }));
    store.transition_lease({.id = holder.id, .expected_epoch = holder.epoch, .to = lease_status::released},
                           clock.now(), std::nullopt);
    auto const resumed = store.transition_lease(
        {.id = retained.id, .expected_epoch = retained.epoch, .to = lease_status::active}, clock.now(), std::nullopt);
    CHECK(resumed.status == lease_status::active);
    auto const second = store.acquire_lease(lease("second"), clock.now(), std::nullopt);
    CHECK(refused_with(store_errc::capacity_exceeded,
                       [&] { (void)store.acquire_lease(lease("third"), clock.now(), std::nullopt); }));
    store.transition_lease({.id = second.id, .expected_epoch = second.epoch, .to = lease_status::released},
                           clock.now(), std::nullopt);
    CHECK(refused_with(store_errc::conflict, [&] {
        (void)store.acquire_lease(lease("scope", std::string("environment")), clock.now(), std::nullopt);
    }));
}
