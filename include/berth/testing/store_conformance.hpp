#pragma once
//! @file
//! berth::testing::store_conformance — the persistence contract (the doc comments of
//! concepts/environment_store.hpp, lease_store.hpp and activity_sink.hpp, plus upstream's
//! environmentService behaviour and berth's lease rules) as Catch2 tests that any
//! berth::persistence_backend can be run through. berth runs them on memory_store and
//! sqlite_store; run them on yours.
//!
//! ## A factory
//!
//! The kit makes a fresh store for every check through a *factory*: a default-constructible type
//! with a `make()` member (static or not) that returns a new, empty store — by value, or by any
//! pointer-like handle (`std::unique_ptr<S>`, `std::shared_ptr<S>`). One factory object is created
//! per check, before `make()`, and destroyed after every handle it returned, so it can own what
//! the store lives in (a temporary directory, a database server's schema):
//! @code
//! struct memory_factory {
//!     static berth::memory_store make() { return {}; }   // by value works for non-movable stores too
//! };
//! struct sqlite_factory {
//!     temp_dir dir;                                        // yours: removed in its destructor
//!     berth::sqlite_store make() { return berth::sqlite_store::open(dir.file("berth.db")); }
//!     berth::sqlite_store reopen() { return berth::sqlite_store::open(dir.file("berth.db")); }
//! };
//! @endcode
//! Optional `reopen()`: a *second handle on the same storage* as the one `make()` returned (another
//! connection, another store object on the same file; a `:memory:` SQLite database has none). When
//! the factory has it, the kit calls it once per check, right after `make()`, and splits the work
//! between the two handles: writes through one are read back and fenced through the other, and
//! the races run half their threads on each. Without it, the kit uses the one handle throughout.
//! (Handles in other *processes* are beyond an in-process kit; a multi-process test can still
//! reuse the kit's helpers and a factory's storage.)
//!
//! ## Running the kit
//!
//! One Catch2 test case per rule (best for reports, and to run one rule by name or tag):
//! @code
//! #include <berth/testing/store_conformance.hpp>
//! BERTH_STORE_CONFORMANCE_TESTS(sqlite_factory, "[sqlite_store]")
//! @endcode
//! expands, at namespace scope, to `TEST_CASE("sqlite_factory: <rule>", "[sqlite_store][store_conformance]…")`
//! for every rule. `factory` must be a single identifier (name a template with an alias first);
//! `tags` a string literal. Rules beyond the concept text carry one more tag so that a store that
//! does not implement them can leave them out (`"[my_store]~[reuse_scope]"` on the command line):
//! `[reuse_scope]` — one active lease per reuse scope (berth's, see docs/stores.md).
//!
//! Or every rule as a SECTION of one test case, e.g. over several factories at once:
//! @code
//! TEMPLATE_TEST_CASE("my stores conform", "[my_store]", factory_a, factory_b) {
//!     berth::testing::store_conformance::run_all<TestType>();
//! }
//! @endcode
//! Each check is also a function template of its own (`store_conformance::lease_capacity<F>()`),
//! callable from any test case. The checks' bodies (`store_conformance::checks::*`) are templates
//! on the store type, not on the factory, so several factories of one store compile them once.
//!
//! ## What it checks
//!
//! Environments: create (every field, defaults, new ids; empty name / company id refused naming
//! the field; a second `local` per company refused), get, list (company scope, status and driver
//! filters, newest `updated_at` then `created_at` first, ties newest inserted first), update (patch
//! semantics, null for nullable columns, config replaced not merged, `updated_at`, unknown id →
//! nullopt, becoming a second local refused), ensure_local_environment (the default row, returned
//! as it is later, per company; 8 threads × many companies → one row each).
//! Leases: acquire (every field, epoch 1, validation, not_found, duplicate ids, company of the
//! environment), capacity (`maxActiveLeases`: refusals name environment and limit, only `active`
//! leases count, resuming a retained lease counts, malformed limits refused naming the value),
//! transitions (every from × to pair against berth::can_transition, epoch + 1, released_at null for
//! active/retained, failure_reason / cleanup_status kept unless given, stale epochs refused naming
//! lease and both epochs), metadata replacement bumping last_used_at (and the list order), renewal
//! (CAS, active only, epoch unchanged), release_leases_for_run (only that run's active leases),
//! run and expiry listings, reuse scopes. Paging: lease and activity lists return at most `limit`
//! rows (default_list_limit by default) and a walk by keyset cursor yields the unpaged list.
//! Retention (stores with `prune_history`): old or surplus ended leases go with their events,
//! nothing else does.
//! Runtime services: upsert (every column; company_id and created_at kept on update; empty id,
//! company id or service name refused; another company's id refused), list filters and order,
//! stop of live rows only.
//! Execution workspaces: create (every field, defaults, timestamps, empty company / project / name
//! refused), list (company scope, project / status / issue / branch filters, newest last_used_at
//! first with null last, ties newest inserted first), update (patch semantics, nulls, updated_at).
//! Workspace operations: begin (running), update (patch), get, list (filters, oldest started_at
//! first), an empty company refused; 8 threads recording at once lose nothing.
//! Activity: filters, oldest first, duplicate ids refused; an event is stored with every accepted
//! acquire / transition and never with a refused one, and a refused event refuses its write.
//! Every refusal: the right store_errc and a store left exactly as before (every environment,
//! lease and event compared). Races: 8 threads acquiring on `maxActiveLeases = 2` (never more than
//! 2 active, no lost or phantom lease, successes + refusals = attempts, one event per success),
//! 8 threads moving one lease from one epoch (exactly one wins, the rest get stale_epoch, one
//! event), release_leases_for_run racing single transitions (every lease moved exactly once).
//!
//! Time comes from berth::testing::manual_clock, so every timestamp is checked exactly.
//! Assertions run on the test's thread only (Catch2 2 is not thread-safe): worker threads record
//! what happened and the test checks it after joining them.

#include <berth/concepts/persistence_backend.hpp>  // persistence_backend (what a factory must make)
#include <berth/error.hpp>                         // store_error, store_errc, to_string(store_errc)
#include <berth/model/activity.hpp>                // activity_event, activity_filter, actions
#include <berth/model/environment.hpp>             // environment, new_environment, environment_patch, ...
#include <berth/model/json.hpp>                    // to_json (stores compared as JSON snapshots)
#include <berth/model/lease.hpp>                   // environment_lease, new_lease, lease_transition, lease_filter
#include <berth/model/lease_transitions.hpp>       // can_transition
#include <berth/model/retention.hpp>               // history_retention, prune_result
#include <berth/model/runtime_service.hpp>         // workspace_runtime_service, runtime_service_filter
#include <berth/model/workspace.hpp>               // execution_workspace, workspace_operation and their inputs
#include <berth/testing/manual_clock.hpp>          // manual_clock

#include <boost/json/serialize.hpp>  // serialize (malformed limits in messages)
#include <boost/json/value.hpp>      // boost::json::value (snapshots; printed by Catch on failure)

#include <catch2/catch.hpp>  // TEST_CASE, SECTION, CHECK, REQUIRE, INFO

#include <algorithm>         // std::sort, std::count, std::find
#include <atomic>            // std::atomic
#include <chrono>            // std::chrono_literals
#include <concepts>          // std::default_initializable, std::same_as
#include <cstddef>           // std::size_t, std::ptrdiff_t
#include <cstdint>           // std::uint64_t
#include <exception>         // std::exception
#include <initializer_list>  // std::initializer_list
#include <iterator>          // std::size
#include <latch>             // std::latch (start gates for the races)
#include <memory>            // std::unique_ptr
#include <mutex>             // std::mutex, std::lock_guard
#include <optional>          // std::optional
#include <set>               // std::set
#include <string>            // std::string, std::to_string
#include <string_view>       // std::string_view
#include <thread>            // std::thread, std::this_thread::yield
#include <type_traits>       // std::remove_reference_t, std::conditional_t
#include <utility>           // std::declval, std::move, std::pair
#include <vector>            // std::vector

namespace berth::testing::store_conformance {

// ---- factories and the per-check fixture ---------------------------------------------------------

namespace detail {

template <class H>
    requires persistence_backend<H>
H& deref(H& h) noexcept {
    return h;
}

template <class H>
    requires(!persistence_backend<H>) && requires(H& h) { *h; }
auto deref(H& h) -> decltype(*h) {
    return *h;
}

template <class F>
using handle_t = decltype(std::declval<F&>().make());

template <class H>
using store_of_handle_t = std::remove_reference_t<decltype(deref(std::declval<H&>()))>;

}  // namespace detail

/// A type the kit can make fresh stores with (see the file comment).
template <class F>
concept store_factory = std::default_initializable<F> && requires(F& f) { f.make(); } &&
                        requires(detail::handle_t<F>& h) { detail::deref(h); } &&
                        persistence_backend<detail::store_of_handle_t<detail::handle_t<F>>>;

/// The store type a factory makes.
template <store_factory F>
using store_t = detail::store_of_handle_t<detail::handle_t<F>>;

/// A factory that can also open a second handle on the storage of the store it made.
template <class F>
concept reopenable_store_factory =
    store_factory<F> && requires(F& f) { f.reopen(); } &&
    requires(decltype(std::declval<F&>().reopen())& h) { detail::deref(h); } &&
    std::same_as<detail::store_of_handle_t<decltype(std::declval<F&>().reopen())>, store_t<F>>;

/// What a check works on: a store, a second handle on the same storage (the store itself when the
/// factory cannot reopen), and the clock every timestamp comes from. The checks are templates on
/// the store type, not on the factory, so that several factories of one store share one
/// instantiation of each check (the kit is heavy to compile).
template <persistence_backend S>
struct store_view {
    S& first;
    S& second;
    manual_clock& clock;

    /// The store the factory made.
    [[nodiscard]] S& store() const noexcept { return first; }
    /// The second handle on the same storage, else store().
    [[nodiscard]] S& peer() const noexcept { return second; }
    /// Handle `i % 2` of (store(), peer()): how the races spread their threads.
    [[nodiscard]] S& handle(std::size_t i) const noexcept { return i % 2 == 0 ? first : second; }
};

/// What every check starts from: a factory, a fresh store from it, a manual clock, and (when the
/// factory can reopen) a second handle on the same storage.
template <store_factory F>
class store_fixture {
public:
    store_fixture() : handle_(factory_.make()) {}
    store_fixture(store_fixture const&) = delete;
    store_fixture& operator=(store_fixture const&) = delete;

    /// The store the factory made.
    [[nodiscard]] store_t<F>& store() { return detail::deref(handle_); }

    /// A second handle on the same storage (from `F::reopen()`, opened on first use), else store().
    [[nodiscard]] store_t<F>& peer() {
        if constexpr (reopenable_store_factory<F>) {
            if (!peer_) peer_ = std::make_unique<peer_holder<F>>(factory_);
            return detail::deref(peer_->handle);
        } else {
            return store();
        }
    }

    /// store(), peer() and clock, as the checks take them.
    [[nodiscard]] store_view<store_t<F>> view() { return {store(), peer(), clock}; }

    manual_clock clock{};

private:
    template <class G>
    struct peer_holder {
        explicit peer_holder(G& g) : handle(g.reopen()) {}
        decltype(std::declval<G&>().reopen()) handle;
    };
    struct no_peer {};

    // Declaration order is destruction order reversed: handles go before the factory that owns
    // their storage.
    F factory_{};
    detail::handle_t<F> handle_;
    std::conditional_t<reopenable_store_factory<F>, std::unique_ptr<peer_holder<F>>, no_peer> peer_{};
};

// ---- helpers -------------------------------------------------------------------------------------

namespace detail {

inline environment make_environment(auto& s, timestamp now, std::string company, std::string name,
                                    driver_kind driver = driver_kind::sandbox, json_object config = {}) {
    return s.create_environment(new_environment{.company_id = std::move(company),
                                                .name = std::move(name),
                                                .description = std::nullopt,
                                                .driver = driver,
                                                .status = environment_status::active,
                                                .config = std::move(config),
                                                .metadata = std::nullopt},
                                now);
}

inline new_lease lease_on(environment const& env, std::string id, std::optional<std::string> run = std::nullopt) {
    return new_lease{.id = std::move(id),
                     .company_id = env.company_id,
                     .environment_id = env.id,
                     .heartbeat_run_id = std::move(run)};
}

inline activity_event event_for(std::string id, std::string const& lease_id, std::string company, char const* action,
                                timestamp now, std::optional<std::string> run = std::nullopt) {
    return activity_event{.id = std::move(id),
                          .company_id = std::move(company),
                          .actor_type = "system",
                          .actor_id = "berth",
                          .action = action,
                          .entity_type = "environment_lease",
                          .entity_id = lease_id,
                          .agent_id = std::nullopt,
                          .run_id = std::move(run),
                          .details = json_object{{"leaseId", lease_id}},
                          .created_at = now};
}

/// Runs `f` expecting a store_error with `code`; returns its message ("" when none was thrown).
template <class Fn>
std::string refused(store_errc code, Fn&& f) {
    try {
        f();
    } catch (store_error const& e) {
        INFO("store_error: " << e.what());
        CHECK(std::string(to_string(e.code())) == std::string(to_string(code)));
        return e.what();
    }
    FAIL_CHECK("expected a store_error " << to_string(code) << ", but the operation succeeded");
    return {};
}

/// `text` without any occurrence of `part`: so that a digit looked for in a message cannot come
/// from an id that happens to contain it.
inline std::string without(std::string text, std::string const& part) {
    if (part.empty()) return text;
    for (auto pos = text.find(part); pos != std::string::npos; pos = text.find(part, pos)) text.erase(pos, part.size());
    return text;
}

template <class T>
std::vector<std::string> ids_of(std::vector<T> const& records) {
    std::vector<std::string> out;
    for (auto const& r : records) out.push_back(r.id);
    return out;
}

inline std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

/// Everything a check can see of the store for these companies: their environments, every
/// lease of each, and the whole activity log, as one JSON document.
inline boost::json::value state_of(auto& s, std::initializer_list<std::string_view> companies) {
    boost::json::object out;
    for (auto company : companies) {
        auto const envs = s.list_environments(company, environment_filter{});
        out["environments of " + std::string(company)] = to_json(envs);
        for (auto const& e : envs)
            out["leases of " + e.id] = to_json(s.list_leases(e.id, lease_filter{.limit = no_limit}));
    }
    out["activity"] = to_json(s.list_activity(activity_filter{.limit = no_limit}));
    return out;
}

inline bool has_event(auto& s, std::string const& event_id) {
    for (auto const& e : s.list_activity(activity_filter{.limit = no_limit}))
        if (e.id == event_id) return true;
    return false;
}

/// Exceptions that escaped a worker thread, as text (checked on the test's thread).
class thread_failures {
public:
    void add(std::string what) {
        std::lock_guard lock(mutex_);
        failures_.push_back(std::move(what));
    }
    [[nodiscard]] std::vector<std::string> get() const {
        std::lock_guard lock(mutex_);
        return failures_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> failures_;
};

/// Runs `f(i)` for i in [0, n) on n threads released together; returns what escaped them.
template <class Fn>
std::vector<std::string> run_concurrently(std::size_t n, Fn f) {
    thread_failures failures;
    std::latch start(static_cast<std::ptrdiff_t>(n));
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            try {
                f(i);
            } catch (std::exception const& e) {
                failures.add("thread " + std::to_string(i) + ": " + e.what());
            } catch (...) {
                failures.add("thread " + std::to_string(i) + ": an exception that is not a std::exception");
            }
        });
    for (auto& t : threads) t.join();
    return failures.get();
}

inline void check_no_thread_failures(std::vector<std::string> const& failures) {
    for (auto const& f : failures) FAIL_CHECK(f);
    CHECK(failures.empty());
}

inline void atomic_max(std::atomic<std::size_t>& target, std::size_t value) {
    auto seen = target.load();
    while (value > seen && !target.compare_exchange_weak(seen, value)) {
    }
}

}  // namespace detail

/// The checks, one function per rule, on any store.
namespace checks {

// ---- environments --------------------------------------------------------------------------------

/// create_environment keeps every field, gives new ids and upstream's defaults; get reads it back.
template <class S>
void environment_create_and_get(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const env = s.create_environment(new_environment{.company_id = "company-a",
                                                          .name = "GPU box",
                                                          .description = "two GPUs",
                                                          .driver = driver_kind::ssh,
                                                          .status = environment_status::archived,
                                                          .config = json_object{{"host", "gpu.internal"}},
                                                          .metadata = json_object{{"owner", "ops"}}},
                                          now);
    CHECK_FALSE(env.id.empty());
    CHECK(env.company_id == "company-a");
    CHECK(env.name == "GPU box");
    CHECK(env.description == std::optional<std::string>("two GPUs"));
    CHECK(env.driver == driver_kind::ssh);
    CHECK(env.status == environment_status::archived);
    CHECK(env.config == json_object{{"host", "gpu.internal"}});
    CHECK(env.metadata == std::optional<json_object>(json_object{{"owner", "ops"}}));
    CHECK(env.created_at == now);
    CHECK(env.updated_at == now);

    auto const read = fx.peer().get_environment(env.id);
    REQUIRE(read);
    CHECK(to_json(*read) == to_json(env));

    auto const plain = s.create_environment(new_environment{.company_id = "company-a", .name = "plain"}, now);
    CHECK(plain.id != env.id);
    CHECK_FALSE(plain.description);
    CHECK(plain.driver == driver_kind::local);
    CHECK(plain.status == environment_status::active);
    CHECK(plain.config.empty());
    CHECK_FALSE(plain.metadata);
    CHECK_FALSE(s.get_environment("no-such-environment"));
}

/// Empty names and company ids are refused naming the field; one `local` environment per company.
template <class S>
void environment_create_validates(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const local = s.create_environment(new_environment{.company_id = "company-a", .name = "Local"}, now);
    auto const before = detail::state_of(s, {"company-a", "company-b"});

    auto msg = detail::refused(store_errc::invalid_argument, [&] {
        s.create_environment(new_environment{.company_id = "company-a", .name = ""}, now);
    });
    CHECK_THAT(msg, Catch::Contains("name"));
    msg = detail::refused(store_errc::invalid_argument, [&] {
        s.create_environment(new_environment{.company_id = "", .name = "nameless company"}, now);
    });
    CHECK_THAT(msg, Catch::Contains("company", Catch::CaseSensitive::No));
    msg = detail::refused(store_errc::conflict, [&] {
        s.create_environment(new_environment{.company_id = "company-a", .name = "Local 2"}, now);
    });
    CHECK_THAT(msg, Catch::Contains("company-a"));
    CHECK(detail::state_of(s, {"company-a", "company-b"}) == before);

    // The rule is per company, and only for `local`.
    s.create_environment(new_environment{.company_id = "company-b", .name = "Local"}, now);
    detail::make_environment(s, now, "company-a", "ssh 1", driver_kind::ssh);
    detail::make_environment(s, now, "company-a", "ssh 2", driver_kind::ssh);
    CHECK(s.list_environments("company-a", environment_filter{.driver = driver_kind::ssh}).size() == 2);
    CHECK(detail::ids_of(s.list_environments("company-a", environment_filter{.driver = driver_kind::local})) ==
          std::vector<std::string>{local.id});
}

/// list_environments: one company's rows, filtered by status and driver, newest updated_at first,
/// then newest created_at, then newest inserted.
template <class S>
void environment_list_filters_and_orders(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto& c = fx.clock;
    auto const e1 = detail::make_environment(s, c.now(), "company-a", "e1", driver_kind::ssh);
    c.advance(1s);
    auto const e2 = detail::make_environment(s, c.now(), "company-a", "e2", driver_kind::sandbox);
    c.advance(1s);
    auto const e3 = s.create_environment(new_environment{.company_id = "company-a",
                                                         .name = "e3",
                                                         .driver = driver_kind::sandbox,
                                                         .status = environment_status::archived},
                                         c.now());
    auto const other = detail::make_environment(s, c.now(), "company-b", "other", driver_kind::sandbox);
    c.advance(1s);
    REQUIRE(s.update_environment(e1.id, environment_patch{.name = "e1 renamed"}, c.now()));

    using ids = std::vector<std::string>;
    auto list = [&](environment_filter f) { return detail::ids_of(fx.peer().list_environments("company-a", f)); };
    CHECK(list({}) == ids{e1.id, e3.id, e2.id});
    CHECK(list({.status = environment_status::archived}) == ids{e3.id});
    CHECK(list({.status = environment_status::active}) == ids{e1.id, e2.id});
    CHECK(list({.driver = driver_kind::sandbox}) == ids{e3.id, e2.id});
    CHECK(list({.status = environment_status::active, .driver = driver_kind::sandbox}) == ids{e2.id});
    CHECK(list({.driver = driver_kind::local}).empty());
    CHECK(detail::ids_of(s.list_environments("company-b", {})) == ids{other.id});
    CHECK(s.list_environments("company-none", {}).empty());

    // Equal updated_at: newest created_at first.
    c.advance(1s);
    auto const older = detail::make_environment(s, c.now(), "company-c", "older");
    c.advance(1s);
    auto const newer = detail::make_environment(s, c.now(), "company-c", "newer");
    c.advance(1s);
    REQUIRE(s.update_environment(newer.id, environment_patch{.status = environment_status::active}, c.now()));
    REQUIRE(s.update_environment(older.id, environment_patch{.status = environment_status::active}, c.now()));
    CHECK(detail::ids_of(s.list_environments("company-c", {})) == ids{newer.id, older.id});

    // Equal timestamps: newest inserted first.
    auto const f1 = detail::make_environment(s, c.now(), "company-d", "f1");
    auto const f2 = detail::make_environment(s, c.now(), "company-d", "f2");
    auto const f3 = detail::make_environment(s, c.now(), "company-d", "f3");
    CHECK(detail::ids_of(s.list_environments("company-d", {})) == ids{f3.id, f2.id, f1.id});
}

/// update_environment replaces what the patch engages and nothing else; updated_at = now.
template <class S>
void environment_update_patches(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const env = s.create_environment(new_environment{.company_id = "company-a",
                                                          .name = "box",
                                                          .description = "first",
                                                          .driver = driver_kind::ssh,
                                                          .config = json_object{{"a", 1}, {"b", 2}},
                                                          .metadata = json_object{{"m", true}}},
                                          t0);
    fx.clock.advance(1s);
    auto const t1 = fx.clock.now();

    auto renamed = s.update_environment(env.id, environment_patch{.name = "box 2"}, t1);
    REQUIRE(renamed);
    auto expected = env;
    expected.name = "box 2";
    expected.updated_at = t1;
    CHECK(to_json(*renamed) == to_json(expected));
    CHECK(to_json(*fx.peer().get_environment(env.id)) == to_json(expected));

    fx.clock.advance(1s);
    auto const t2 = fx.clock.now();
    auto const patched = s.update_environment(env.id,
                                              environment_patch{.description = std::optional<std::string>{},
                                                                .driver = driver_kind::sandbox,
                                                                .status = environment_status::archived,
                                                                .config = json_object{{"c", 3}},
                                                                .metadata = std::optional<json_object>{}},
                                              t2);
    REQUIRE(patched);
    expected.description = std::nullopt;
    expected.driver = driver_kind::sandbox;
    expected.status = environment_status::archived;
    expected.config = json_object{{"c", 3}};  // replaced, not merged
    expected.metadata = std::nullopt;
    expected.updated_at = t2;
    CHECK(to_json(*patched) == to_json(expected));
    CHECK(patched->created_at == t0);
    CHECK(to_json(*s.get_environment(env.id)) == to_json(expected));

    auto before = detail::state_of(s, {"company-a"});
    CHECK_FALSE(s.update_environment("no-such-environment", environment_patch{.name = "x"}, t2));
    CHECK_FALSE(s.get_environment("no-such-environment"));
    auto const msg = detail::refused(store_errc::invalid_argument,
                                     [&] { s.update_environment(env.id, environment_patch{.name = ""}, t2); });
    CHECK_THAT(msg, Catch::Contains("name"));
    CHECK(detail::state_of(s, {"company-a"}) == before);

    // Becoming a second local environment is refused; the local one may be patched freely.
    auto const local = s.ensure_local_environment("company-a", t2);
    before = detail::state_of(s, {"company-a"});
    detail::refused(store_errc::conflict,
                    [&] { s.update_environment(env.id, environment_patch{.driver = driver_kind::local}, t2); });
    CHECK(detail::state_of(s, {"company-a"}) == before);
    auto const same_local =
        s.update_environment(local.id, environment_patch{.name = "Here", .driver = driver_kind::local}, t2);
    REQUIRE(same_local);
    CHECK(same_local->name == "Here");
    REQUIRE(s.update_environment(local.id, environment_patch{.driver = driver_kind::ssh}, t2));
    auto const now_local = s.update_environment(env.id, environment_patch{.driver = driver_kind::local}, t2);
    REQUIRE(now_local);
    CHECK(now_local->driver == driver_kind::local);
}

/// ensure_local_environment creates the default local row once per company and then returns it
/// as it is.
template <class S>
void environment_ensure_local_is_idempotent(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const first = s.ensure_local_environment("company-a", t0);
    CHECK_FALSE(first.id.empty());
    CHECK(first.company_id == "company-a");
    CHECK(first.name == default_local_environment_name);
    CHECK(first.description == std::optional<std::string>(default_local_environment_description));
    CHECK(first.driver == driver_kind::local);
    CHECK(first.status == environment_status::active);
    CHECK(first.config.empty());
    CHECK(first.metadata ==
          std::optional<json_object>(json_object{{"managedByBerth", true}, {"defaultForCompany", true}}));
    CHECK(first.created_at == t0);
    CHECK(first.updated_at == t0);
    CHECK(to_json(*fx.peer().get_environment(first.id)) == to_json(first));

    fx.clock.advance(1s);
    auto const again = fx.peer().ensure_local_environment("company-a", fx.clock.now());
    CHECK(to_json(again) == to_json(first));  // not touched: same id, same updated_at
    CHECK(s.list_environments("company-a", {}).size() == 1);

    auto const other = s.ensure_local_environment("company-b", fx.clock.now());
    CHECK(other.id != first.id);
    CHECK(other.company_id == "company-b");

    // Returned as it is, even archived and renamed.
    fx.clock.advance(1s);
    auto const archived = s.update_environment(
        first.id, environment_patch{.name = "Old local", .status = environment_status::archived}, fx.clock.now());
    REQUIRE(archived);
    fx.clock.advance(1s);
    CHECK(to_json(s.ensure_local_environment("company-a", fx.clock.now())) == to_json(*archived));
    CHECK(s.list_environments("company-a", {}).size() == 1);

    // A local environment made by create_environment is the company's local environment.
    auto const made = s.create_environment(new_environment{.company_id = "company-c", .name = "mine"}, t0);
    CHECK(to_json(s.ensure_local_environment("company-c", fx.clock.now())) == to_json(made));

    auto const before = detail::state_of(s, {"company-a", "company-b", "company-c"});
    auto const msg = detail::refused(store_errc::invalid_argument,
                                     [&] { s.ensure_local_environment("", fx.clock.now()); });
    CHECK_THAT(msg, Catch::Contains("company", Catch::CaseSensitive::No));
    CHECK(detail::state_of(s, {"company-a", "company-b", "company-c"}) == before);
}

/// 8 threads calling ensure_local_environment at once get one row, for each of many companies.
template <class S>
void environment_ensure_local_concurrently(store_view<S> fx) {
    constexpr std::size_t threads = 8;
    constexpr int companies = 16;
    (void)fx.peer();  // opened before the threads start
    for (int c = 0; c < companies; ++c) {
        auto const company = "race-company-" + std::to_string(c);
        std::vector<std::string> ids(threads);
        auto const failures = detail::run_concurrently(threads, [&](std::size_t i) {
            ids[i] = fx.handle(i).ensure_local_environment(company, fx.clock.now()).id;
        });
        INFO(company);
        detail::check_no_thread_failures(failures);
        auto const rows = fx.store().list_environments(company, environment_filter{.driver = driver_kind::local});
        REQUIRE(rows.size() == 1);
        for (auto const& id : ids) CHECK(id == rows[0].id);
    }
}

// ---- leases --------------------------------------------------------------------------------------

/// acquire_lease stores an active lease at epoch 1 with every input field and `now` in every
/// timestamp, and its event with it.
template <class S>
void lease_acquire_sets_every_field(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const env = detail::make_environment(s, fx.clock.now(), "company-a", "pool");
    fx.clock.advance(1s);
    auto const now = fx.clock.now();
    new_lease const input{.id = "lease-full",
                          .company_id = "company-a",
                          .environment_id = env.id,
                          .execution_workspace_id = "ew-1",
                          .issue_id = "issue-1",
                          .heartbeat_run_id = "run-1",
                          .lease_policy = lease_policy_kind::retain_on_failure,
                          .provider = "fake",
                          .provider_lease_id = "provider-lease-1",
                          .expires_at = now + 1h,
                          .metadata = json_object{{"agentId", "agent-1"}}};
    auto const ev =
        detail::event_for("event-acquire", "lease-full", "company-a", actions::lease_acquired, now, "run-1");
    auto const lease = s.acquire_lease(input, now, ev);

    CHECK(lease.id == "lease-full");
    CHECK(lease.company_id == "company-a");
    CHECK(lease.environment_id == env.id);
    CHECK(lease.execution_workspace_id == std::optional<std::string>("ew-1"));
    CHECK(lease.issue_id == std::optional<std::string>("issue-1"));
    CHECK(lease.heartbeat_run_id == std::optional<std::string>("run-1"));
    CHECK(lease.status == lease_status::active);
    CHECK(lease.lease_policy == lease_policy_kind::retain_on_failure);
    CHECK(lease.provider == std::optional<std::string>("fake"));
    CHECK(lease.provider_lease_id == std::optional<std::string>("provider-lease-1"));
    CHECK(lease.acquired_at == now);
    CHECK(lease.last_used_at == now);
    CHECK(lease.created_at == now);
    CHECK(lease.updated_at == now);
    CHECK(lease.expires_at == std::optional<timestamp>(now + 1h));
    CHECK_FALSE(lease.released_at);
    CHECK_FALSE(lease.failure_reason);
    CHECK_FALSE(lease.cleanup_status);
    CHECK(lease.metadata == std::optional<json_object>(json_object{{"agentId", "agent-1"}}));
    CHECK(lease.epoch == 1);

    auto const read = fx.peer().get_lease("lease-full");
    REQUIRE(read);
    CHECK(to_json(*read) == to_json(lease));
    auto const listed = s.list_leases(env.id, lease_filter{});
    REQUIRE(listed.size() == 1);
    CHECK(to_json(listed[0]) == to_json(lease));
    CHECK(detail::ids_of(s.list_run_leases("run-1", lease_filter{})) == std::vector<std::string>{"lease-full"});
    auto const events = s.list_activity(activity_filter{.entity_id = "lease-full"});
    REQUIRE(events.size() == 1);
    CHECK(to_json(events[0]) == to_json(ev));

    // Defaults, and no event when none is given.
    auto const plain = s.acquire_lease(detail::lease_on(env, "lease-plain"), now, std::nullopt);
    CHECK(plain.lease_policy == lease_policy_kind::ephemeral);
    CHECK_FALSE(plain.heartbeat_run_id);
    CHECK_FALSE(plain.provider);
    CHECK_FALSE(plain.expires_at);
    CHECK_FALSE(plain.metadata);
    CHECK(plain.epoch == 1);
    CHECK(s.list_activity(activity_filter{}).size() == 1);
    CHECK_FALSE(s.get_lease("no-such-lease"));
}

/// acquire_lease refuses unknown environments, empty and duplicate ids and a company that is not
/// the environment's — writing neither the lease nor its event.
template <class S>
void lease_acquire_validates(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(s, now, "company-a", "pool");
    auto const ev = detail::event_for("event-refused", "lease-x", "company-a", actions::lease_acquired, now);
    auto before = detail::state_of(s, {"company-a", "company-b"});

    auto input = detail::lease_on(env, "lease-x");
    input.environment_id = "no-such-environment";
    auto msg = detail::refused(store_errc::not_found, [&] { s.acquire_lease(input, now, ev); });
    CHECK_THAT(msg, Catch::Contains("no-such-environment"));

    input = detail::lease_on(env, "");
    msg = detail::refused(store_errc::invalid_argument, [&] { s.acquire_lease(input, now, ev); });
    CHECK_THAT(msg, Catch::Contains("id"));
    input = detail::lease_on(env, "lease-x");
    input.company_id = "";
    msg = detail::refused(store_errc::invalid_argument, [&] { s.acquire_lease(input, now, ev); });
    CHECK_THAT(msg, Catch::Contains("company", Catch::CaseSensitive::No));
    input = detail::lease_on(env, "lease-x");
    input.environment_id = "";
    msg = detail::refused(store_errc::invalid_argument, [&] { s.acquire_lease(input, now, ev); });
    CHECK_THAT(msg, Catch::Contains("environment", Catch::CaseSensitive::No));
    input = detail::lease_on(env, "lease-x");
    input.company_id = "company-b";
    detail::refused(store_errc::invalid_argument, [&] { s.acquire_lease(input, now, ev); });
    CHECK(detail::state_of(s, {"company-a", "company-b"}) == before);
    CHECK_FALSE(s.get_lease("lease-x"));

    auto const first = s.acquire_lease(detail::lease_on(env, "lease-1", "run-1"), now, std::nullopt);
    before = detail::state_of(s, {"company-a", "company-b"});
    msg = detail::refused(store_errc::conflict,
                          [&] { s.acquire_lease(detail::lease_on(env, "lease-1", "run-2"), now, ev); });
    CHECK_THAT(msg, Catch::Contains("lease-1"));
    CHECK(detail::state_of(s, {"company-a", "company-b"}) == before);
    CHECK(to_json(*fx.peer().get_lease("lease-1")) == to_json(first));
    CHECK(s.list_run_leases("run-2", lease_filter{}).empty());
}

/// maxActiveLeases: at most that many `active` leases per environment; refusals name the
/// environment and the limit; malformed limits are refused naming the value.
template <class S>
void lease_capacity(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(s, now, "company-a", "capacity pool", driver_kind::sandbox,
                                              json_object{{"maxActiveLeases", 3}});
    auto const unlimited = detail::make_environment(s, now, "company-a", "unlimited pool");
    auto acquire = [&](environment const& e, std::string const& id) {
        auto const ev = detail::event_for("event-" + id, id, "company-a", actions::lease_acquired, now);
        return s.acquire_lease(detail::lease_on(e, id), now, ev);
    };
    auto const a = acquire(env, "lease-a");
    acquire(env, "lease-b");
    acquire(unlimited, "lease-other-1");  // another environment's leases do not count
    acquire(unlimited, "lease-other-2");
    acquire(env, "lease-c");

    auto before = detail::state_of(s, {"company-a"});
    auto const msg = detail::refused(store_errc::capacity_exceeded, [&] { acquire(env, "lease-d"); });
    CHECK_THAT(msg, Catch::Contains(env.id) || Catch::Contains(env.name));
    CHECK_THAT(detail::without(msg, env.id), Catch::Contains("3"));
    CHECK(detail::state_of(s, {"company-a"}) == before);
    CHECK_FALSE(s.get_lease("lease-d"));

    // Only active leases count: a released one frees its slot, and so does a retained one —
    // until it is resumed.
    s.transition_lease(lease_transition{.id = "lease-b", .expected_epoch = 1, .to = lease_status::released}, now,
                       std::nullopt);
    acquire(env, "lease-d");
    s.transition_lease(lease_transition{.id = a.id, .expected_epoch = 1, .to = lease_status::retained}, now, std::nullopt);
    acquire(env, "lease-e");
    CHECK(s.list_leases(env.id, lease_filter{.status = lease_status::active}).size() == 3);
    before = detail::state_of(s, {"company-a"});
    detail::refused(store_errc::capacity_exceeded, [&] {
        s.transition_lease(lease_transition{.id = a.id, .expected_epoch = 2, .to = lease_status::active}, now, std::nullopt);
    });
    CHECK(detail::state_of(s, {"company-a"}) == before);
    s.transition_lease(lease_transition{.id = "lease-e", .expected_epoch = 1, .to = lease_status::failed}, now,
                       std::nullopt);
    auto const resumed =
        s.transition_lease(lease_transition{.id = a.id, .expected_epoch = 2, .to = lease_status::active}, now, std::nullopt);
    CHECK(resumed.status == lease_status::active);
    CHECK(resumed.epoch == 3);

    // A limit that is not a positive integer is refused, naming the value.
    std::vector<std::pair<boost::json::value, std::string>> const malformed{
        {boost::json::value(0), "0"},         {boost::json::value(-1), "-1"},
        {boost::json::value("two"), "two"},   {boost::json::value(1.5), "1.5"},
        {boost::json::value(true), "true"}};
    for (auto const& [value, shown] : malformed) {
        INFO("maxActiveLeases = " << boost::json::serialize(value));
        auto const bad = detail::make_environment(s, now, "company-a", "bad pool", driver_kind::sandbox,
                                                  json_object{{"maxActiveLeases", value}});
        before = detail::state_of(s, {"company-a"});
        auto const bad_msg = detail::refused(store_errc::invalid_argument, [&] { acquire(bad, "lease-bad"); });
        CHECK_THAT(detail::without(bad_msg, bad.id), Catch::Contains(shown));
        CHECK(detail::state_of(s, {"company-a"}) == before);
    }
}

/// transition_lease: status, epoch + 1, last_used_at = updated_at = now, released_at = now except
/// for active/retained, failure_reason / cleanup_status only when given; nothing else changes.
template <class S>
void lease_transition_sets_fields(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const env = detail::make_environment(s, t0, "company-a", "pool");
    for (auto const to : {lease_status::released, lease_status::expired, lease_status::failed,
                          lease_status::pending_cleanup, lease_status::retained}) {
        INFO("active -> " << to_string(to));
        auto const id = std::string("lease-to-") + to_string(to);
        auto input = detail::lease_on(env, id, "run-1");
        input.metadata = json_object{{"k", "v"}};
        input.provider = "fake";
        input.expires_at = t0 + 1h;
        auto const acquired = s.acquire_lease(input, fx.clock.now(), std::nullopt);
        fx.clock.advance(1s);
        auto const now = fx.clock.now();
        auto const ev = detail::event_for("event-" + id, id, "company-a", actions::lease_released, now, "run-1");
        auto const moved = s.transition_lease(lease_transition{.id = id, .expected_epoch = 1, .to = to}, now, ev);
        auto expected = acquired;
        expected.status = to;
        expected.epoch = 2;
        expected.last_used_at = now;
        expected.updated_at = now;
        expected.released_at = to == lease_status::retained ? std::nullopt : std::optional<timestamp>(now);
        CHECK(to_json(moved) == to_json(expected));
        CHECK(to_json(*fx.peer().get_lease(id)) == to_json(expected));
        auto const events = s.list_activity(activity_filter{.entity_id = id});
        REQUIRE(events.size() == 1);
        CHECK(to_json(events[0]) == to_json(ev));
    }

    // Resuming a retained lease: active again, released_at stays null.
    fx.clock.advance(1s);
    auto const resumed = s.transition_lease(
        lease_transition{.id = "lease-to-retained", .expected_epoch = 2, .to = lease_status::active}, fx.clock.now(),
        std::nullopt);
    CHECK(resumed.status == lease_status::active);
    CHECK(resumed.epoch == 3);
    CHECK_FALSE(resumed.released_at);
    CHECK(resumed.last_used_at == fx.clock.now());


    // failure_reason and cleanup_status are written when given and kept when not.
    auto const now = fx.clock.now();
    s.acquire_lease(detail::lease_on(env, "lease-reasons"), now, std::nullopt);
    auto const cleaning = s.transition_lease(lease_transition{.id = "lease-reasons",
                                                              .expected_epoch = 1,
                                                              .to = lease_status::pending_cleanup,
                                                              .failure_reason = "provider_timeout",
                                                              .cleanup_status = cleanup_status::pending},
                                             now, std::nullopt);
    CHECK(cleaning.failure_reason == std::optional<std::string>("provider_timeout"));
    CHECK(cleaning.cleanup_status == std::optional<cleanup_status>(cleanup_status::pending));
    auto const kept = s.transition_lease(
        lease_transition{.id = "lease-reasons", .expected_epoch = 2, .to = lease_status::expired}, now, std::nullopt);
    CHECK(kept.failure_reason == std::optional<std::string>("provider_timeout"));
    CHECK(kept.cleanup_status == std::optional<cleanup_status>(cleanup_status::pending));
    CHECK(kept.epoch == 3);

    s.acquire_lease(detail::lease_on(env, "lease-replaced"), now, std::nullopt);
    s.transition_lease(lease_transition{.id = "lease-replaced",
                                        .expected_epoch = 1,
                                        .to = lease_status::pending_cleanup,
                                        .failure_reason = "first",
                                        .cleanup_status = cleanup_status::pending},
                       now, std::nullopt);
    auto const replaced = s.transition_lease(lease_transition{.id = "lease-replaced",
                                                             .expected_epoch = 2,
                                                             .to = lease_status::failed,
                                                             .failure_reason = "second",
                                                             .cleanup_status = cleanup_status::success},
                                            now, std::nullopt);
    CHECK(replaced.failure_reason == std::optional<std::string>("second"));
    CHECK(replaced.cleanup_status == std::optional<cleanup_status>(cleanup_status::success));
    CHECK(to_json(*s.get_lease("lease-replaced")) == to_json(replaced));
}

/// transition_lease is a compare-and-set on the epoch: a caller holding an older (or any other)
/// epoch is refused with stale_epoch, naming the lease and both epochs, and nothing changes.
template <class S>
void lease_transition_refuses_stale_epoch(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(s, now, "company-a", "pool");
    s.acquire_lease(detail::lease_on(env, "lease-stale"), now, std::nullopt);
    s.transition_lease(lease_transition{.id = "lease-stale", .expected_epoch = 1, .to = lease_status::retained}, now,
                       std::nullopt);
    auto& holder = fx.peer();
    holder.transition_lease(lease_transition{.id = "lease-stale", .expected_epoch = 2, .to = lease_status::active},
                            now, std::nullopt);
    auto const before = detail::state_of(s, {"company-a"});
    auto const ev = detail::event_for("event-stale", "lease-stale", "company-a", actions::lease_released, now);

    auto const msg = detail::refused(store_errc::stale_epoch, [&] {
        s.transition_lease(lease_transition{.id = "lease-stale", .expected_epoch = 7, .to = lease_status::released},
                           now, ev);
    });
    CHECK_THAT(msg, Catch::Contains("lease-stale") && Catch::Contains("7") && Catch::Contains("3"));
    // The holder of epoch 1 (or 2) lost the lease long ago.
    for (std::uint64_t old : {1u, 2u})
        detail::refused(store_errc::stale_epoch, [&] {
            s.transition_lease(
                lease_transition{.id = "lease-stale", .expected_epoch = old, .to = lease_status::released}, now, ev);
        });
    CHECK(detail::state_of(s, {"company-a"}) == before);
    CHECK_FALSE(detail::has_event(s, "event-stale"));

    auto const msg2 = detail::refused(store_errc::not_found, [&] {
        s.transition_lease(lease_transition{.id = "no-such-lease", .expected_epoch = 1, .to = lease_status::released},
                           now, ev);
    });
    CHECK_THAT(msg2, Catch::Contains("no-such-lease"));
    CHECK(detail::state_of(s, {"company-a"}) == before);

    auto const current = s.transition_lease(
        lease_transition{.id = "lease-stale", .expected_epoch = 3, .to = lease_status::released}, now, ev);
    CHECK(current.epoch == 4);
    CHECK(detail::has_event(s, "event-stale"));
}

/// Every (from, to) pair: allowed exactly when berth::can_transition says so; a refused move is
/// illegal_transition naming both statuses, and changes nothing.
template <class S>
void lease_transition_follows_the_table(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(s, now, "company-a", "pool");
    auto const all = {lease_status::active,  lease_status::released, lease_status::expired,
                      lease_status::failed,  lease_status::retained, lease_status::pending_cleanup};
    for (auto const from : all) {
        for (auto const to : all) {
            INFO(to_string(from) << " -> " << to_string(to));
            auto const id = std::string("lease-") + to_string(from) + "-" + to_string(to);
            s.acquire_lease(detail::lease_on(env, id), now, std::nullopt);
            std::uint64_t epoch = 1;
            if (from != lease_status::active)
                epoch = s.transition_lease(lease_transition{.id = id, .expected_epoch = 1, .to = from}, now, std::nullopt)
                            .epoch;
            auto const ev = detail::event_for("event-" + id, id, "company-a", actions::lease_released, now);
            if (can_transition(from, to)) {
                auto const moved =
                    s.transition_lease(lease_transition{.id = id, .expected_epoch = epoch, .to = to}, now, ev);
                CHECK(moved.status == to);
                CHECK(moved.epoch == epoch + 1);
                CHECK(detail::has_event(s, "event-" + id));
            } else {
                auto const before = detail::state_of(s, {"company-a"});
                auto const msg = detail::refused(store_errc::illegal_transition, [&] {
                    s.transition_lease(lease_transition{.id = id, .expected_epoch = epoch, .to = to}, now, ev);
                });
                CHECK_THAT(msg, Catch::Contains(to_string(from)) && Catch::Contains(to_string(to)));
                CHECK(detail::state_of(s, {"company-a"}) == before);
            }
        }
    }
}

/// update_lease_metadata replaces the metadata and bumps last_used_at (so the lease moves to the
/// front of the lists); nothing else changes; an unknown lease gives nullopt.
template <class S>
void lease_metadata_update(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const env = detail::make_environment(s, t0, "company-a", "pool");
    auto input = detail::lease_on(env, "lease-a", "run-1");
    input.metadata = json_object{{"a", 1}, {"b", 2}};
    auto const a = s.acquire_lease(input, t0, std::nullopt);
    fx.clock.advance(1s);
    s.acquire_lease(detail::lease_on(env, "lease-b", "run-1"), fx.clock.now(), std::nullopt);
    using ids = std::vector<std::string>;
    CHECK(detail::ids_of(s.list_leases(env.id, {})) == ids{"lease-b", "lease-a"});

    fx.clock.advance(1s);
    auto const t2 = fx.clock.now();
    auto const updated = s.update_lease_metadata("lease-a", json_object{{"c", 3}}, t2);
    REQUIRE(updated);
    auto expected = a;
    expected.metadata = json_object{{"c", 3}};  // replaced, not merged
    expected.last_used_at = t2;
    expected.updated_at = t2;
    CHECK(to_json(*updated) == to_json(expected));
    CHECK(to_json(*fx.peer().get_lease("lease-a")) == to_json(expected));
    CHECK(detail::ids_of(s.list_leases(env.id, {})) == ids{"lease-a", "lease-b"});
    CHECK(detail::ids_of(s.list_run_leases("run-1", {})) == ids{"lease-a", "lease-b"});

    auto const cleared = s.update_lease_metadata("lease-a", std::nullopt, t2);
    REQUIRE(cleared);
    CHECK_FALSE(cleared->metadata);
    CHECK(cleared->epoch == 1);

    auto const before = detail::state_of(s, {"company-a"});
    CHECK_FALSE(s.update_lease_metadata("no-such-lease", json_object{{"x", 1}}, t2));
    CHECK_FALSE(s.get_lease("no-such-lease"));
    CHECK(detail::state_of(s, {"company-a"}) == before);
}

/// renew_lease: compare-and-set on the epoch, active leases only; replaces expires_at, bumps
/// last_used_at / updated_at, and does not change the epoch.
template <class S>
void lease_renewal(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const env = detail::make_environment(s, t0, "company-a", "pool");
    auto input = detail::lease_on(env, "lease-r");
    input.expires_at = t0 + 10min;
    auto const lease = s.acquire_lease(input, t0, std::nullopt);
    fx.clock.advance(1s);
    auto const t1 = fx.clock.now();

    auto const renewed = s.renew_lease("lease-r", 1, t1 + 30min, t1);
    auto expected = lease;
    expected.expires_at = t1 + 30min;
    expected.last_used_at = t1;
    expected.updated_at = t1;
    CHECK(to_json(renewed) == to_json(expected));
    CHECK(to_json(*fx.peer().get_lease("lease-r")) == to_json(expected));
    auto const cleared = s.renew_lease("lease-r", 1, std::nullopt, t1);
    CHECK_FALSE(cleared.expires_at);
    CHECK(cleared.epoch == 1);

    auto before = detail::state_of(s, {"company-a"});
    auto const msg = detail::refused(store_errc::stale_epoch, [&] { s.renew_lease("lease-r", 5, t1 + 1h, t1); });
    CHECK_THAT(msg, Catch::Contains("lease-r") && Catch::Contains("5"));
    detail::refused(store_errc::not_found, [&] { s.renew_lease("no-such-lease", 1, t1 + 1h, t1); });
    CHECK(detail::state_of(s, {"company-a"}) == before);

    s.transition_lease(lease_transition{.id = "lease-r", .expected_epoch = 1, .to = lease_status::retained}, t1,
                       std::nullopt);
    before = detail::state_of(s, {"company-a"});
    detail::refused(store_errc::illegal_transition, [&] { s.renew_lease("lease-r", 2, t1 + 1h, t1); });
    CHECK(detail::state_of(s, {"company-a"}) == before);
}

/// list_expired_leases(now): active leases with expires_at <= now, oldest expiry first (then
/// oldest inserted); renewing or ending a lease takes it off the list.
template <class S>
void lease_expiry_listing(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const env = detail::make_environment(s, t0, "company-a", "pool");
    auto acquire = [&](std::string const& id, std::optional<timestamp> expires) {
        auto input = detail::lease_on(env, id);
        input.expires_at = expires;
        return s.acquire_lease(input, t0, std::nullopt);
    };
    acquire("lease-a", t0 + 5min);
    acquire("lease-b", t0 + 1min);
    acquire("lease-c", t0 + 10min);
    acquire("lease-d", std::nullopt);
    acquire("lease-released", t0 + 1min);
    acquire("lease-retained", t0 + 1min);
    acquire("lease-g", t0 + 5min);  // same expiry as lease-a, inserted after it
    s.transition_lease(lease_transition{.id = "lease-released", .expected_epoch = 1, .to = lease_status::released},
                       t0, std::nullopt);
    s.transition_lease(lease_transition{.id = "lease-retained", .expected_epoch = 1, .to = lease_status::retained},
                       t0, std::nullopt);

    using ids = std::vector<std::string>;
    auto& p = fx.peer();
    CHECK(p.list_expired_leases(t0).empty());
    CHECK(detail::ids_of(p.list_expired_leases(t0 + 1min - 1us)).empty());
    CHECK(detail::ids_of(p.list_expired_leases(t0 + 1min)) == ids{"lease-b"});
    CHECK(detail::ids_of(p.list_expired_leases(t0 + 5min)) == ids{"lease-b", "lease-a", "lease-g"});
    CHECK(detail::ids_of(p.list_expired_leases(t0 + 1h)) == ids{"lease-b", "lease-a", "lease-g", "lease-c"});

    s.renew_lease("lease-b", 1, t0 + 2h, t0);
    CHECK(detail::ids_of(p.list_expired_leases(t0 + 1h)) == ids{"lease-a", "lease-g", "lease-c"});
    s.transition_lease(lease_transition{.id = "lease-a", .expected_epoch = 1, .to = lease_status::expired}, t0,
                       std::nullopt);
    CHECK(detail::ids_of(p.list_expired_leases(t0 + 1h)) == ids{"lease-g", "lease-c"});
}

/// list_recoverable_leases(host, now), what recover() reads: the active leases held on `host`,
/// the active leases whose expires_at <= now (any holder), and every pending_cleanup lease; each
/// once, oldest inserted first; nothing else (another host's live lease, ended leases).
template <class S>
void lease_recovery_listing(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const env = detail::make_environment(s, t0, "company-a", "pool");
    auto acquire = [&](std::string const& id, std::optional<std::string> host, std::optional<timestamp> expires) {
        auto input = detail::lease_on(env, id);
        input.holder_host = std::move(host);
        input.holder_pid = 4242;
        input.expires_at = expires;
        return s.acquire_lease(input, t0, std::nullopt);
    };
    acquire("lease-here", "host-a", std::nullopt);
    acquire("lease-there-live", "host-b", t0 + 10min);
    acquire("lease-there-due", "host-b", t0 + 1min);
    acquire("lease-nobody-due", std::nullopt, t0 + 1min);
    acquire("lease-here-and-due", "host-a", t0 + 1min);  // listed once
    acquire("lease-cleanup", "host-b", t0 + 10min);
    acquire("lease-released", "host-a", std::nullopt);
    s.transition_lease(lease_transition{.id = "lease-cleanup", .expected_epoch = 1, .to = lease_status::pending_cleanup},
                       t0, std::nullopt);
    s.transition_lease(lease_transition{.id = "lease-released", .expected_epoch = 1, .to = lease_status::released},
                       t0, std::nullopt);

    using ids = std::vector<std::string>;
    auto& p = fx.peer();
    CHECK(detail::ids_of(p.list_recoverable_leases("host-a", t0)) ==
          ids{"lease-here", "lease-here-and-due", "lease-cleanup"});
    CHECK(detail::ids_of(p.list_recoverable_leases("host-a", t0 + 1min)) ==
          ids{"lease-here", "lease-there-due", "lease-nobody-due", "lease-here-and-due", "lease-cleanup"});
    CHECK(detail::ids_of(p.list_recoverable_leases("host-c", t0)) == ids{"lease-cleanup"});
    auto const listed = p.list_recoverable_leases("host-a", t0);
    REQUIRE(listed.size() == 3);
    CHECK(listed[0].holder_host == std::optional<std::string>("host-a"));
    CHECK(listed[0].holder_pid == std::optional<std::int64_t>(4242));
}

/// list_leases / list_run_leases: filtered by status, newest last_used_at first, then greatest id.
template <class S>
void lease_lists_filter_and_order(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto& c = fx.clock;
    auto const env = detail::make_environment(s, c.now(), "company-a", "pool");
    auto const env2 = detail::make_environment(s, c.now(), "company-a", "pool 2");
    s.acquire_lease(detail::lease_on(env, "lease-x", "run-1"), c.now(), std::nullopt);
    c.advance(1s);
    s.acquire_lease(detail::lease_on(env, "lease-y", "run-1"), c.now(), std::nullopt);
    c.advance(1s);
    s.acquire_lease(detail::lease_on(env2, "lease-z", "run-1"), c.now(), std::nullopt);
    s.acquire_lease(detail::lease_on(env, "lease-w", "run-2"), c.now(), std::nullopt);
    c.advance(1s);
    s.transition_lease(lease_transition{.id = "lease-y", .expected_epoch = 1, .to = lease_status::released}, c.now(),
                       std::nullopt);

    using ids = std::vector<std::string>;
    auto& p = fx.peer();
    CHECK(detail::ids_of(p.list_run_leases("run-1", {})) == ids{"lease-y", "lease-z", "lease-x"});
    CHECK(detail::ids_of(p.list_run_leases("run-1", {.status = lease_status::active})) == ids{"lease-z", "lease-x"});
    CHECK(detail::ids_of(p.list_run_leases("run-1", {.status = lease_status::released})) == ids{"lease-y"});
    CHECK(p.list_run_leases("run-none", {}).empty());
    CHECK(detail::ids_of(p.list_leases(env.id, {})) == ids{"lease-y", "lease-w", "lease-x"});
    CHECK(detail::ids_of(p.list_leases(env.id, {.status = lease_status::active})) == ids{"lease-w", "lease-x"});
    CHECK(detail::ids_of(p.list_leases(env2.id, {})) == ids{"lease-z"});
    CHECK(p.list_leases("no-such-environment", {}).empty());

    // Equal last_used_at: the greatest id first, whatever the creation or insertion order (the
    // sort key is the keyset of lease_cursor, so it must be total and the same in every store).
    c.advance(1s);
    auto const env3 = detail::make_environment(s, c.now(), "company-a", "pool 3");
    s.acquire_lease(detail::lease_on(env3, "lease-b", "run-3"), c.now(), std::nullopt);
    c.advance(1s);
    s.acquire_lease(detail::lease_on(env3, "lease-a", "run-3"), c.now(), std::nullopt);
    c.advance(1s);
    s.update_lease_metadata("lease-a", json_object{}, c.now());
    s.update_lease_metadata("lease-b", json_object{}, c.now());
    CHECK(detail::ids_of(p.list_leases(env3.id, {})) == ids{"lease-b", "lease-a"});
    s.acquire_lease(detail::lease_on(env3, "lease-t2", "run-4"), c.now(), std::nullopt);
    s.acquire_lease(detail::lease_on(env3, "lease-t3", "run-4"), c.now(), std::nullopt);
    s.acquire_lease(detail::lease_on(env3, "lease-t1", "run-4"), c.now(), std::nullopt);
    CHECK(detail::ids_of(p.list_run_leases("run-4", {})) == ids{"lease-t3", "lease-t2", "lease-t1"});
}

/// Paging: every lease and activity list returns at most `limit` rows (default_list_limit when
/// not set), and a walk page by page, each page starting after the last row of the one before
/// (lease_cursor_of / activity_cursor_of), yields exactly the unpaged list, in order, with ties
/// of the sort time broken the same way.
template <class S>
void lists_page_with_a_limit_and_a_cursor(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto& p = fx.peer();
    auto& c = fx.clock;
    auto const env = detail::make_environment(s, c.now(), "company-a", "pool");
    // 13 leases in three runs over five instants (ties on last_used_at), some released.
    for (int i = 0; i < 13; ++i) {
        if (i % 3 == 0) c.advance(1s);
        auto const id = "lease-" + std::to_string(100 + (i * 7) % 13);  // ids not in time order
        s.acquire_lease(detail::lease_on(env, id, "run-" + std::to_string(i % 3)), c.now(),
                        detail::event_for("event-" + id, id, "company-a", actions::lease_acquired, c.now(),
                                          "run-" + std::to_string(i % 3)));
        if (i % 4 == 1)
            s.transition_lease(lease_transition{.id = id, .expected_epoch = 1, .to = lease_status::released}, c.now(),
                               std::nullopt);
    }
    auto walk = [](auto list, auto first, std::size_t page_size, auto cursor_of) {
        std::vector<std::string> out;
        auto f = first;
        f.limit = page_size;
        for (int guard = 0; guard < 100; ++guard) {
            auto const page = list(f);
            CHECK(page.size() <= page_size);
            for (auto const& r : page) out.push_back(r.id);
            if (page.size() < page_size) break;
            f.after = cursor_of(page.back());
        }
        return out;
    };
    auto leases_of_env = [&](lease_filter f) { return p.list_leases(env.id, f); };
    auto leases_of_run = [&](lease_filter f) { return p.list_run_leases("run-1", f); };
    auto activity = [&](activity_filter f) { return p.list_activity(f); };
    for (std::size_t page_size : {1u, 2u, 5u}) {
        INFO("page size " << page_size);
        for (auto const status : {std::optional<lease_status>{}, std::optional<lease_status>{lease_status::active},
                                  std::optional<lease_status>{lease_status::released}}) {
            lease_filter const all{.status = status, .limit = no_limit};
            auto const whole = detail::ids_of(leases_of_env(all));
            CHECK(walk(leases_of_env, all, page_size, lease_cursor_of) == whole);
            CHECK(walk(leases_of_run, all, page_size, lease_cursor_of) == detail::ids_of(leases_of_run(all)));
        }
        activity_filter const all{.company_id = "company-a", .limit = no_limit};
        auto const whole = detail::ids_of(activity(all));
        CHECK(whole.size() == 13);
        CHECK(walk(activity, all, page_size, activity_cursor_of) == whole);
        activity_filter const run{.run_id = "run-2", .limit = no_limit};
        CHECK(walk(activity, run, page_size, activity_cursor_of) == detail::ids_of(activity(run)));
    }
    CHECK(p.list_leases(env.id, {.limit = 0}).empty());
    CHECK(p.list_leases(env.id, {}).size() == 13);
    CHECK(p.list_leases(env.id, {.limit = 4}).size() == 4);
    CHECK(p.list_activity({.limit = 3}).size() == 3);

    // A cursor past the last row gives an empty page; one naming a row that is gone still works
    // (it is a position in the order, not a reference to a row).
    auto const last = p.list_leases(env.id, {.limit = no_limit}).back();
    CHECK(p.list_leases(env.id, {.after = lease_cursor_of(last)}).empty());
    auto const newest = p.list_leases(env.id, {.limit = no_limit}).front();
    auto const before_all = lease_cursor{.last_used_at = newest.last_used_at + 1s, .id = "no-such-lease"};
    CHECK(detail::ids_of(p.list_leases(env.id, {.after = before_all})) == detail::ids_of(p.list_leases(env.id, {})));

    // Without a limit the lists stop at default_list_limit.
    auto const env2 = detail::make_environment(s, c.now(), "company-b", "many");
    for (std::size_t i = 0; i < default_list_limit + 3; ++i) {
        auto const id = "many-" + std::to_string(10000 + i);
        s.acquire_lease(detail::lease_on(env2, id), c.now(),
                        detail::event_for("event-" + id, id, "company-b", actions::lease_acquired, c.now()));
    }
    CHECK(p.list_leases(env2.id, {}).size() == default_list_limit);
    CHECK(p.list_leases(env2.id, {.status = lease_status::active}).size() == default_list_limit);
    CHECK(p.list_activity({.company_id = "company-b"}).size() == default_list_limit);
    CHECK(p.list_leases(env2.id, {.limit = no_limit}).size() == default_list_limit + 3);
}

/// prune_history, for a store that offers it (it is not part of the lease_store concept): ended
/// leases (released, expired, failed) older than the cut-off or beyond the newest N of their
/// environment go, each with the events about it; leases that still hold or may hold a resource
/// (active, retained, pending_cleanup) and every other event stay, whatever the batch size.
template <class S>
void history_prunes_ended_leases(store_view<S> fx) {
    if constexpr (!requires(S& st, history_retention const& r) {
                      { st.prune_history(r) } -> std::same_as<prune_result>;
                  }) {
        WARN("the store has no prune_history(history_retention const&): nothing to check");
    } else {
        using namespace std::chrono_literals;
        auto& s = fx.store();
        auto& c = fx.clock;
        auto const t0 = c.now();
        auto const env = detail::make_environment(s, t0, "company-a", "pool");
        auto const env2 = detail::make_environment(s, t0, "company-b", "other");
        auto lease = [&](environment const& e, std::string const& id, std::optional<lease_status> end) {
            s.acquire_lease(detail::lease_on(e, id), c.now(),
                            detail::event_for("acquired-" + id, id, e.company_id, actions::lease_acquired, c.now()));
            if (end == lease_status::pending_cleanup || end == lease_status::retained || !end) {
                if (end)
                    s.transition_lease(lease_transition{.id = id, .expected_epoch = 1, .to = *end}, c.now(),
                                       std::nullopt);
                return;
            }
            c.advance(1s);
            s.transition_lease(lease_transition{.id = id, .expected_epoch = 1, .to = *end}, c.now(),
                               detail::event_for("ended-" + id, id, e.company_id, actions::lease_released, c.now()));
        };
        // Leases that hold, or may hold, a resource: as old as any, never pruned.
        lease(env, "holds-active", std::nullopt);
        lease(env, "holds-retained", lease_status::retained);
        lease(env, "holds-pending", lease_status::pending_cleanup);
        // Ten ended leases in env, ended at t0 + 1s .. t0 + 10s; three in env2.
        lease_status const ends[] = {lease_status::released, lease_status::expired, lease_status::failed};
        for (int i = 1; i <= 10; ++i) lease(env, "ended-" + std::to_string(10 + i), ends[i % 3]);
        for (int i = 1; i <= 3; ++i) lease(env2, "other-" + std::to_string(i), lease_status::released);
        // An event about another kind of entity that happens to share a lease's id stays.
        auto foreign = detail::event_for("about-an-environment", "ended-11", "company-a", actions::lease_acquired, t0);
        foreign.entity_type = "environment";
        s.record_activity(foreign);
        auto& p = fx.peer();
        auto const leases_of = [&](environment const& e) {
            return detail::sorted(detail::ids_of(p.list_leases(e.id, {.limit = no_limit})));
        };
        auto const events = [&] { return detail::sorted(detail::ids_of(p.list_activity({.limit = no_limit}))); };
        using ids = std::vector<std::string>;

        CHECK(s.prune_history({}).leases == 0);
        detail::refused(store_errc::invalid_argument, [&] { s.prune_history({.ended_before = c.now(), .batch = 0}); });
        auto const before = events();

        // By age: ended-11 .. ended-13 ended at t0 + 1s .. 3s (before t0 + 4s); in batches of 2.
        auto const by_age = s.prune_history({.ended_before = t0 + 4s, .batch = 2});
        CHECK(by_age.leases == 3);
        CHECK(by_age.events == 6);  // each pruned lease's acquire and end events
        CHECK(leases_of(env) == ids{"ended-14", "ended-15", "ended-16", "ended-17", "ended-18", "ended-19",
                                    "ended-20", "holds-active", "holds-pending", "holds-retained"});
        CHECK(leases_of(env2) == ids{"other-1", "other-2", "other-3"});  // ended after t0 + 10s
        for (auto const* gone : {"ended-11", "ended-12", "ended-13"}) {
            CHECK_FALSE(p.get_lease(gone));
            CHECK_FALSE(detail::has_event(p, std::string("acquired-") + gone));
            CHECK_FALSE(detail::has_event(p, std::string("ended-") + gone));
        }
        CHECK(detail::has_event(p, "about-an-environment"));
        CHECK(events().size() == before.size() - 6);

        // By count: keep the newest 4 ended leases of each environment (env2 has 3: untouched).
        auto const by_count = s.prune_history({.keep_per_environment = 4, .batch = 1});
        CHECK(by_count.leases == 3);
        CHECK(by_count.events == 6);
        CHECK(leases_of(env) == ids{"ended-17", "ended-18", "ended-19", "ended-20", "holds-active", "holds-pending",
                                    "holds-retained"});
        CHECK(leases_of(env2) == ids{"other-1", "other-2", "other-3"});
        CHECK(detail::has_event(p, "acquired-holds-active"));
        CHECK(detail::has_event(p, "acquired-holds-pending"));

        // Again: nothing left to prune. Then both bounds, either one pruning.
        CHECK(s.prune_history({.ended_before = t0 + 4s, .keep_per_environment = 4}).leases == 0);
        auto const both = s.prune_history({.ended_before = t0 + 8s, .keep_per_environment = 2});
        CHECK(both.leases == 2 + 1);  // ended-17 by age, ended-18 by count; other-1 by count
        CHECK(leases_of(env) == ids{"ended-19", "ended-20", "holds-active", "holds-pending", "holds-retained"});
        CHECK(leases_of(env2) == ids{"other-2", "other-3"});
        CHECK(p.get_lease("holds-retained")->status == lease_status::retained);
    }
}

/// release_leases_for_run moves that run's `active` leases, and only those: other runs' leases and
/// the run's already-ended or retained leases are untouched.
template <class S>
void lease_release_for_run(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const env1 = detail::make_environment(s, t0, "company-a", "pool 1");
    auto const env2 = detail::make_environment(s, t0, "company-a", "pool 2");
    auto const a1 = s.acquire_lease(detail::lease_on(env1, "lease-a1", "run-a"), t0, std::nullopt);
    auto const a2 = s.acquire_lease(detail::lease_on(env2, "lease-a2", "run-a"), t0, std::nullopt);
    s.acquire_lease(detail::lease_on(env1, "lease-a3", "run-a"), t0, std::nullopt);
    s.acquire_lease(detail::lease_on(env1, "lease-a4", "run-a"), t0, std::nullopt);
    s.acquire_lease(detail::lease_on(env1, "lease-b1", "run-b"), t0, std::nullopt);
    s.acquire_lease(detail::lease_on(env1, "lease-n1"), t0, std::nullopt);
    s.transition_lease(lease_transition{.id = "lease-a3", .expected_epoch = 1, .to = lease_status::released}, t0,
                       std::nullopt);
    s.transition_lease(lease_transition{.id = "lease-a4", .expected_epoch = 1, .to = lease_status::retained}, t0,
                       std::nullopt);
    auto snapshot = [&](std::initializer_list<char const*> ids) {
        boost::json::array out;
        for (auto const* id : ids) out.push_back(to_json(s.get_lease(id)));
        return out;
    };
    auto const others = snapshot({"lease-a3", "lease-a4", "lease-b1", "lease-n1"});

    fx.clock.advance(1s);
    auto const t1 = fx.clock.now();
    auto const released = fx.peer().release_leases_for_run("run-a", lease_status::failed, t1);
    CHECK(detail::sorted(detail::ids_of(released)) == std::vector<std::string>{"lease-a1", "lease-a2"});
    for (auto const& before : {a1, a2}) {
        auto expected = before;
        expected.status = lease_status::failed;
        expected.epoch = 2;
        expected.released_at = t1;
        expected.last_used_at = t1;
        expected.updated_at = t1;
        CHECK(to_json(*s.get_lease(before.id)) == to_json(expected));
        for (auto const& r : released)
            if (r.id == before.id) CHECK(to_json(r) == to_json(expected));
    }
    CHECK(snapshot({"lease-a3", "lease-a4", "lease-b1", "lease-n1"}) == others);

    auto const state = detail::state_of(s, {"company-a"});
    CHECK(s.release_leases_for_run("run-a", lease_status::released, t1).empty());
    CHECK(s.release_leases_for_run("run-none", lease_status::released, t1).empty());
    detail::refused(store_errc::illegal_transition,
                    [&] { s.release_leases_for_run("run-b", lease_status::active, t1); });
    CHECK(detail::state_of(s, {"company-a"}) == state);

    // Retained: released_at stays null.
    auto const retained = s.release_leases_for_run("run-b", lease_status::retained, t1);
    REQUIRE(retained.size() == 1);
    CHECK(retained[0].id == "lease-b1");
    CHECK(retained[0].status == lease_status::retained);
    CHECK(retained[0].epoch == 2);
    CHECK_FALSE(retained[0].released_at);
    CHECK_FALSE(s.get_lease("lease-b1")->released_at);
}

/// One active lease per reuse scope: within an environment, at most one `active` lease holds a
/// given `reuse_scope` key (an opaque string its lease policy chose; model/lease_rules.hpp).
/// Leases without a key have no scope; retained leases free theirs, and resuming into a taken
/// scope is refused; refusals name the scope and its holder.
template <class S>
void lease_reuse_scope(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(s, now, "company-a", "pool");
    auto const env2 = detail::make_environment(s, now, "company-a", "pool 2");
    auto acquire = [&](environment const& e, std::string const& id, std::optional<std::string> scope) {
        auto input = detail::lease_on(e, id);
        input.reuse_scope = std::move(scope);
        // The policy is not the scope: the store compares keys only.
        input.lease_policy = lease_policy_kind::reuse_by_execution_workspace;
        auto const ev = detail::event_for("event-" + id, id, "company-a", actions::lease_acquired, now);
        return s.acquire_lease(input, now, ev);
    };
    auto const first = acquire(env, "lease-env", "environment");
    CHECK(first.reuse_scope == "environment");
    CHECK(s.get_lease("lease-env")->reuse_scope == "environment");
    acquire(env2, "lease-env-2", "environment");  // another environment: its own scope
    auto before = detail::state_of(s, {"company-a"});
    auto const msg = detail::refused(store_errc::conflict, [&] { acquire(env, "lease-env-again", "environment"); });
    CHECK_THAT(msg, Catch::Contains("lease-env") && Catch::Contains("\"environment\"") && Catch::Contains(env.id));
    CHECK(detail::state_of(s, {"company-a"}) == before);
    detail::refused(store_errc::invalid_argument, [&] { acquire(env, "lease-empty-scope", ""); });
    CHECK(detail::state_of(s, {"company-a"}) == before);

    acquire(env, "lease-e1", std::nullopt);  // no key: no scope
    acquire(env, "lease-e2", std::nullopt);
    acquire(env, "lease-ws-1", "workspace:ew-1");
    acquire(env, "lease-ws-2", "workspace:ew-2");
    before = detail::state_of(s, {"company-a"});
    detail::refused(store_errc::conflict, [&] { acquire(env, "lease-ws-1-again", "workspace:ew-1"); });
    CHECK(detail::state_of(s, {"company-a"}) == before);

    s.transition_lease(lease_transition{.id = "lease-ws-1", .expected_epoch = 1, .to = lease_status::retained}, now,
                       std::nullopt);
    acquire(env, "lease-ws-1-next", "workspace:ew-1");
    before = detail::state_of(s, {"company-a"});
    auto const resume_msg = detail::refused(store_errc::conflict, [&] {
        s.transition_lease(lease_transition{.id = "lease-ws-1", .expected_epoch = 2, .to = lease_status::active}, now,
                           std::nullopt);
    });
    CHECK_THAT(resume_msg, Catch::Contains("lease-ws-1-next"));
    CHECK(detail::state_of(s, {"company-a"}) == before);
    s.transition_lease(lease_transition{.id = "lease-ws-1-next", .expected_epoch = 1, .to = lease_status::released},
                       now, std::nullopt);
    auto const resumed = s.transition_lease(
        lease_transition{.id = "lease-ws-1", .expected_epoch = 2, .to = lease_status::active}, now, std::nullopt);
    CHECK(resumed.epoch == 3);
    CHECK(resumed.status == lease_status::active);
    CHECK(resumed.reuse_scope == "workspace:ew-1");
}

// ---- activity ------------------------------------------------------------------------------------

/// record_activity / list_activity: events come back as written, filtered by company, run and
/// entity (type and id, or id alone), oldest created_at first, then smallest id; a duplicate id is refused.
template <class S>
void activity_filters_and_orders(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto const t0 = fx.clock.now();
    auto const t1 = t0 + 1s;
    auto const t2 = t0 + 2s;
    auto e1 = detail::event_for("event-1", "lease-1", "company-a", actions::lease_acquired, t1, "run-1");
    auto e2 = detail::event_for("event-2", "lease-2", "company-a", actions::lease_acquired, t0, "run-2");
    e2.agent_id = "agent-7";
    e2.actor_type = "agent";
    e2.details = json_object{{"nested", json_object{{"n", 1}}}, {"list", boost::json::array{1, 2}}};
    auto const e3 = detail::event_for("event-3", "lease-1", "company-b", actions::lease_released, t2, "run-1");
    auto const e4 = detail::event_for("event-4", "lease-1", "company-a", actions::lease_released, t1, "run-1");
    auto const e5 = detail::event_for("event-5", "lease-5", "company-a", actions::lease_expired, t2);
    for (auto const& e : {e1, e2, e3, e4, e5}) s.record_activity(e);

    using ids = std::vector<std::string>;
    auto list = [&](activity_filter f) { return detail::ids_of(fx.peer().list_activity(f)); };
    CHECK(list({}) == ids{"event-2", "event-1", "event-4", "event-3", "event-5"});
    CHECK(list({.company_id = "company-a"}) == ids{"event-2", "event-1", "event-4", "event-5"});
    CHECK(list({.run_id = "run-1"}) == ids{"event-1", "event-4", "event-3"});
    CHECK(list({.entity_id = "lease-2"}) == ids{"event-2"});
    CHECK(list({.company_id = "company-a", .run_id = "run-1"}) == ids{"event-1", "event-4"});
    CHECK(list({.company_id = "company-b", .run_id = "run-1", .entity_id = "lease-1"}) == ids{"event-3"});
    CHECK(list({.company_id = "company-none"}).empty());

    auto const read = s.list_activity({.entity_id = "lease-2"});
    REQUIRE(read.size() == 1);
    CHECK(to_json(read[0]) == to_json(e2));
    auto const none = s.list_activity({.entity_id = "lease-5"});
    REQUIRE(none.size() == 1);
    CHECK_FALSE(none[0].run_id);

    auto const before = detail::state_of(s, {"company-a"});
    auto dup = e3;
    dup.action = "environment.something_else";
    auto const msg = detail::refused(store_errc::conflict, [&] { s.record_activity(dup); });
    CHECK_THAT(msg, Catch::Contains("event-3"));
    CHECK(detail::state_of(s, {"company-a"}) == before);

    // An entity is named by type and id: the same id under another type is another entity, and an
    // id alone matches it under every type.
    auto e6 = detail::event_for("event-6", "lease-1", "company-a", actions::lease_acquired, t2, "run-9");
    e6.entity_type = "environment";
    s.record_activity(e6);
    CHECK(list({.entity_type = "environment"}) == ids{"event-6"});
    CHECK(list({.entity_type = "environment_lease", .entity_id = "lease-1"}) == ids{"event-1", "event-4", "event-3"});
    CHECK(list({.entity_id = "lease-1"}) == ids{"event-1", "event-4", "event-3", "event-6"});
    CHECK(list({.company_id = "company-a", .entity_type = "environment", .entity_id = "lease-1"}) == ids{"event-6"});
    CHECK(list({.company_id = "company-a", .run_id = "run-1", .entity_id = "lease-1"}) == ids{"event-1", "event-4"});
    CHECK(list({.entity_type = "environment", .entity_id = "lease-2"}).empty());
}

/// A lease write and its event are one unit: every accepted acquire / transition stores its
/// event, no refused one does, and an event that cannot be stored refuses its write.
template <class S>
void activity_is_atomic_with_lease_writes(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(s, now, "company-a", "pool", driver_kind::sandbox,
                                              json_object{{"maxActiveLeases", 1}});
    auto const env2 = detail::make_environment(s, now, "company-a", "pool 2");
    auto ev = [&](std::string const& id, std::string const& lease) {
        return detail::event_for(id, lease, "company-a", actions::lease_acquired, now);
    };
    auto const acquired_ev = ev("event-acquired", "lease-1");
    s.acquire_lease(detail::lease_on(env, "lease-1"), now, acquired_ev);
    CHECK(detail::has_event(s, "event-acquired"));

    auto const before = detail::state_of(s, {"company-a"});
    auto const refused_ev = ev("event-refused", "lease-2");
    detail::refused(store_errc::capacity_exceeded,
                    [&] { s.acquire_lease(detail::lease_on(env, "lease-2"), now, refused_ev); });
    detail::refused(store_errc::conflict,
                    [&] { s.acquire_lease(detail::lease_on(env2, "lease-1"), now, refused_ev); });
    detail::refused(store_errc::stale_epoch, [&] {
        s.transition_lease(lease_transition{.id = "lease-1", .expected_epoch = 9, .to = lease_status::released}, now,
                           refused_ev);
    });
    detail::refused(store_errc::illegal_transition, [&] {
        s.transition_lease(lease_transition{.id = "lease-1", .expected_epoch = 1, .to = lease_status::active}, now,
                           refused_ev);
    });
    detail::refused(store_errc::not_found, [&] {
        s.transition_lease(lease_transition{.id = "lease-none", .expected_epoch = 1, .to = lease_status::released},
                           now, refused_ev);
    });
    CHECK_FALSE(detail::has_event(s, "event-refused"));
    CHECK(detail::state_of(s, {"company-a"}) == before);

    // An event id that is taken: the lease is not written, the transition not made.
    auto const taken = ev("event-acquired", "lease-3");
    detail::refused(store_errc::conflict, [&] { s.acquire_lease(detail::lease_on(env2, "lease-3"), now, taken); });
    CHECK_FALSE(s.get_lease("lease-3"));
    detail::refused(store_errc::conflict, [&] {
        s.transition_lease(lease_transition{.id = "lease-1", .expected_epoch = 1, .to = lease_status::released}, now,
                           taken);
    });
    CHECK(detail::state_of(s, {"company-a"}) == before);
    CHECK(s.get_lease("lease-1")->epoch == 1);

    auto const released_ev = ev("event-released", "lease-1");
    s.transition_lease(lease_transition{.id = "lease-1", .expected_epoch = 1, .to = lease_status::released}, now,
                       released_ev);
    auto const events = s.list_activity({.entity_id = "lease-1"});
    CHECK(detail::ids_of(events) == std::vector<std::string>{"event-acquired", "event-released"});
    // The capacity the refused acquisitions did not take is there.
    s.acquire_lease(detail::lease_on(env, "lease-2"), now, refused_ev);
    CHECK(detail::has_event(s, "event-refused"));
}

/// Two handles on one storage (when the factory can reopen): what one writes, the other reads and
/// fences against.
template <class S>
void handles_share_storage(store_view<S> fx) {
    auto& a = fx.store();
    auto& b = fx.peer();
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(a, now, "company-a", "pool");
    REQUIRE(b.get_environment(env.id));
    CHECK(b.ensure_local_environment("company-a", now).id == a.ensure_local_environment("company-a", now).id);
    auto const lease = b.acquire_lease(detail::lease_on(env, "lease-shared", "run-1"), now, std::nullopt);
    CHECK(to_json(*a.get_lease("lease-shared")) == to_json(lease));
    a.transition_lease(lease_transition{.id = "lease-shared", .expected_epoch = 1, .to = lease_status::retained}, now,
                       std::nullopt);
    detail::refused(store_errc::stale_epoch, [&] {
        b.transition_lease(lease_transition{.id = "lease-shared", .expected_epoch = 1, .to = lease_status::released},
                           now, std::nullopt);
    });
    CHECK(b.get_lease("lease-shared")->status == lease_status::retained);
}

// ---- races ---------------------------------------------------------------------------------------

/// 8 threads acquiring and releasing on one environment with maxActiveLeases = 2: never more than
/// 2 active, every success listed and every refusal absent, successes + refusals = attempts.
template <class S>
void race_acquire_respects_capacity(store_view<S> fx) {
    constexpr std::size_t threads = 8;
    constexpr int rounds = 40;
    constexpr std::size_t limit = 2;
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(fx.store(), now, "company-a", "contended pool", driver_kind::sandbox,
                                              json_object{{"maxActiveLeases", limit}});
    (void)fx.peer();

    std::atomic<std::size_t> max_active{0};
    std::atomic<int> refusals{0};
    std::atomic<bool> done{false};
    std::vector<std::vector<std::string>> acquired(threads);
    std::thread watcher([&] {
        auto& s = fx.store();
        while (!done.load())
            detail::atomic_max(max_active, s.list_leases(env.id, {.status = lease_status::active}).size());
    });
    auto const failures = detail::run_concurrently(threads, [&](std::size_t t) {
        auto& s = fx.handle(t);
        for (int i = 0; i < rounds; ++i) {
            auto const id = "race-" + std::to_string(t) + "-" + std::to_string(i);
            auto const ev = detail::event_for("acquired-" + id, id, "company-a", actions::lease_acquired, now);
            try {
                s.acquire_lease(detail::lease_on(env, id), now, ev);
            } catch (store_error const& e) {
                if (e.code() != store_errc::capacity_exceeded) throw;
                ++refusals;
                continue;
            }
            acquired[t].push_back(id);
            detail::atomic_max(max_active, s.list_leases(env.id, {.status = lease_status::active}).size());
            std::this_thread::yield();
            auto const rel = detail::event_for("released-" + id, id, "company-a", actions::lease_released, now);
            s.transition_lease(lease_transition{.id = id, .expected_epoch = 1, .to = lease_status::released}, now,
                               rel);
        }
    });
    done = true;
    watcher.join();
    detail::check_no_thread_failures(failures);

    std::vector<std::string> successes;
    for (auto const& v : acquired) successes.insert(successes.end(), v.begin(), v.end());
    CHECK(max_active.load() <= limit);
    CHECK_FALSE(successes.empty());
    CHECK(static_cast<int>(successes.size()) + refusals.load() == static_cast<int>(threads) * rounds);

    // Every row: the lists page at 500 by default, and up to 8 x rounds leases are written.
    auto const leases = fx.store().list_leases(env.id, {.limit = no_limit});
    CHECK(detail::sorted(detail::ids_of(leases)) == detail::sorted(successes));
    for (auto const& l : leases) {
        INFO(l.id);
        CHECK(l.status == lease_status::released);
        CHECK(l.epoch == 2);
    }
    std::set<std::string> const won(successes.begin(), successes.end());
    auto const events = fx.store().list_activity({.company_id = "company-a", .limit = no_limit});
    CHECK(events.size() == 2 * successes.size());
    for (auto const& e : events) {
        INFO(e.id);
        CHECK(won.contains(e.entity_id));
    }
}

/// 8 threads moving one lease from the same epoch: exactly one wins, every other gets stale_epoch,
/// and only the winner's event is stored.
template <class S>
void race_transitions_have_one_winner(store_view<S> fx) {
    constexpr std::size_t threads = 8;
    constexpr int rounds = 20;
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(fx.store(), now, "company-a", "pool");
    (void)fx.peer();
    lease_status const targets[] = {lease_status::released, lease_status::expired, lease_status::failed,
                                    lease_status::retained, lease_status::pending_cleanup};
    for (int r = 0; r < rounds; ++r) {
        auto const id = "contended-" + std::to_string(r);
        fx.store().acquire_lease(detail::lease_on(env, id), now, std::nullopt);
        std::vector<int> outcome(threads, -1);  // 1 won, 0 stale_epoch
        auto const failures = detail::run_concurrently(threads, [&](std::size_t t) {
            auto const ev = detail::event_for(id + "-by-" + std::to_string(t), id, "company-a",
                                              actions::lease_released, now);
            try {
                fx.handle(t).transition_lease(
                    lease_transition{.id = id, .expected_epoch = 1, .to = targets[t % std::size(targets)]}, now, ev);
                outcome[t] = 1;
            } catch (store_error const& e) {
                if (e.code() != store_errc::stale_epoch) throw;
                outcome[t] = 0;
            }
        });
        INFO(id);
        detail::check_no_thread_failures(failures);
        REQUIRE(std::count(outcome.begin(), outcome.end(), 1) == 1);
        CHECK(std::count(outcome.begin(), outcome.end(), 0) == static_cast<long>(threads) - 1);
        auto const winner = static_cast<std::size_t>(std::find(outcome.begin(), outcome.end(), 1) - outcome.begin());
        auto const lease = fx.store().get_lease(id);
        REQUIRE(lease);
        CHECK(lease->epoch == 2);
        CHECK(lease->status == targets[winner % std::size(targets)]);
        CHECK(detail::ids_of(fx.store().list_activity({.entity_id = id})) ==
              std::vector<std::string>{id + "-by-" + std::to_string(winner)});
    }
}

/// release_leases_for_run racing transitions of the same leases: every lease is moved exactly
/// once, by whichever came first, and the loser is refused (stale_epoch) or skips it.
template <class S>
void race_release_for_run_against_transitions(store_view<S> fx) {
    constexpr std::size_t leases_per_run = 6;
    constexpr int rounds = 10;
    auto const now = fx.clock.now();
    auto const env = detail::make_environment(fx.store(), now, "company-a", "pool");
    (void)fx.peer();
    for (int r = 0; r < rounds; ++r) {
        auto const run = "run-" + std::to_string(r);
        std::vector<std::string> ids;
        for (std::size_t i = 0; i < leases_per_run; ++i) {
            ids.push_back(run + "-lease-" + std::to_string(i));
            fx.store().acquire_lease(detail::lease_on(env, ids.back(), run), now, std::nullopt);
        }
        std::vector<std::string> by_release;
        std::vector<int> by_transition(leases_per_run, 0);
        auto const failures = detail::run_concurrently(leases_per_run + 1, [&](std::size_t t) {
            if (t == leases_per_run) {
                by_release = detail::ids_of(fx.handle(t).release_leases_for_run(run, lease_status::released, now));
                return;
            }
            try {
                fx.handle(t).transition_lease(
                    lease_transition{.id = ids[t], .expected_epoch = 1, .to = lease_status::failed}, now, std::nullopt);
                by_transition[t] = 1;
            } catch (store_error const& e) {
                if (e.code() != store_errc::stale_epoch) throw;
            }
        });
        INFO(run);
        detail::check_no_thread_failures(failures);
        std::set<std::string> const released(by_release.begin(), by_release.end());
        CHECK(released.size() == by_release.size());
        for (std::size_t i = 0; i < leases_per_run; ++i) {
            INFO(ids[i]);
            CHECK(released.contains(ids[i]) != (by_transition[i] == 1));  // exactly one mover
            auto const lease = fx.store().get_lease(ids[i]);
            REQUIRE(lease);
            CHECK(lease->epoch == 2);
            CHECK(lease->status == (by_transition[i] == 1 ? lease_status::failed : lease_status::released));
        }
    }
}

// ---- runtime services ----------------------------------------------------------------------------

inline workspace_runtime_service make_service_row(std::string id, std::string company, timestamp now) {
    return workspace_runtime_service{.id = std::move(id),
                                     .company_id = std::move(company),
                                     .project_id = "project-1",
                                     .project_workspace_id = "pw-1",
                                     .execution_workspace_id = "ew-1",
                                     .issue_id = "issue-1",
                                     .scope_type = runtime_service_scope_type::project_workspace,
                                     .scope_id = "pw-1",
                                     .service_name = "web",
                                     .status = runtime_service_status::running,
                                     .lifecycle = runtime_service_lifecycle::shared,
                                     .reuse_key = "key-1",
                                     .command = "pnpm dev",
                                     .cwd = "/srv/app",
                                     .port = 4100,
                                     .url = "http://127.0.0.1:4100",
                                     .provider = runtime_service_provider::local_process,
                                     .provider_ref = "1234",
                                     .owner_agent_id = "agent-1",
                                     .started_by_run_id = "run-1",
                                     .last_used_at = now,
                                     .started_at = now,
                                     .stopped_at = std::nullopt,
                                     .stop_policy = json_object{{"type", "idle_timeout"}, {"idleSeconds", 60}},
                                     .health_status = runtime_service_health::healthy,
                                     .created_at = {},
                                     .updated_at = {}};
}
inline boost::json::value services_state(auto& s) { return to_json(s.list_runtime_services({})); }

/// upsert_runtime_service inserts every column, then replaces all but company_id and created_at.
template <class S>
void runtime_service_upsert_and_get(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto const t0 = fx.clock.now();
    auto row = make_service_row("svc-1", "company-a", t0);
    auto const inserted = fx.store().upsert_runtime_service(row, t0);
    auto expected = row;
    expected.created_at = t0;
    expected.updated_at = t0;
    CHECK(to_json(inserted) == to_json(expected));
    auto const got = fx.peer().get_runtime_service("svc-1");
    REQUIRE(got);
    CHECK(to_json(*got) == to_json(expected));
    CHECK_FALSE(fx.peer().get_runtime_service("svc-unknown"));

    fx.clock.advance(5s);
    auto const t1 = fx.clock.now();
    auto changed = row;
    changed.status = runtime_service_status::stopped;
    changed.health_status = runtime_service_health::unknown;
    changed.stopped_at = t1;
    changed.port = std::nullopt;
    changed.stop_policy = std::nullopt;
    changed.provider_ref = "99";
    changed.created_at = t1 + 1h;  // ignored: created_at is kept
    auto const updated = fx.peer().upsert_runtime_service(changed, t1);
    auto expected2 = changed;
    expected2.created_at = t0;
    expected2.updated_at = t1;
    CHECK(to_json(updated) == to_json(expected2));
    CHECK(to_json(*fx.store().get_runtime_service("svc-1")) == to_json(expected2));

    auto const before = services_state(fx.store());
    auto bad = row;
    bad.id = "";
    CHECK_THAT(detail::refused(store_errc::invalid_argument, [&] { fx.store().upsert_runtime_service(bad, t1); }),
               Catch::Contains("id"));
    bad = row;
    bad.id = "svc-2";
    bad.company_id = "";
    CHECK_THAT(detail::refused(store_errc::invalid_argument, [&] { fx.store().upsert_runtime_service(bad, t1); }),
               Catch::Contains("company id"));
    bad = row;
    bad.id = "svc-2";
    bad.service_name = "";
    CHECK_THAT(detail::refused(store_errc::invalid_argument, [&] { fx.store().upsert_runtime_service(bad, t1); }),
               Catch::Contains("service name"));
    bad = row;
    bad.company_id = "company-b";
    CHECK_THAT(detail::refused(store_errc::conflict, [&] { fx.store().upsert_runtime_service(bad, t1); }),
               Catch::Contains("company-a") && Catch::Contains("company-b"));
    CHECK(services_state(fx.store()) == before);
}

/// list_runtime_services filters on every member and orders newest updated_at first.
template <class S>
void runtime_service_list_filters_and_orders(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto const t0 = fx.clock.now();
    auto a = make_service_row("svc-a", "company-a", t0);
    auto b = make_service_row("svc-b", "company-a", t0);
    b.execution_workspace_id = "ew-2";
    b.status = runtime_service_status::stopped;
    b.provider = runtime_service_provider::adapter_managed;
    auto c = make_service_row("svc-c", "company-a", t0);
    c.project_workspace_id = "pw-2";
    c.scope_type = runtime_service_scope_type::run;
    auto d = make_service_row("svc-d", "company-b", t0);
    fx.store().upsert_runtime_service(a, t0);
    fx.store().upsert_runtime_service(b, t0 + 1s);
    fx.store().upsert_runtime_service(c, t0 + 2s);
    fx.store().upsert_runtime_service(d, t0 + 2s);  // same updated_at as c: inserted later, listed first
    auto ids = [&](runtime_service_filter const& f) { return detail::ids_of(fx.peer().list_runtime_services(f)); };
    using v = std::vector<std::string>;
    CHECK(ids({}) == v{"svc-d", "svc-c", "svc-b", "svc-a"});
    CHECK(ids({.company_id = "company-a"}) == v{"svc-c", "svc-b", "svc-a"});
    CHECK(ids({.provider = runtime_service_provider::adapter_managed}) == v{"svc-b"});
    CHECK(ids({.statuses = {runtime_service_status::stopped, runtime_service_status::failed}}) == v{"svc-b"});
    CHECK(ids({.execution_workspace_id = "ew-2"}) == v{"svc-b"});
    CHECK(ids({.project_workspace_id = "pw-2"}) == v{"svc-c"});
    CHECK(ids({.scope_type = runtime_service_scope_type::run}) == v{"svc-c"});
    CHECK(ids({.ids = {"svc-a", "svc-d", "svc-none"}}) == v{"svc-d", "svc-a"});
    CHECK(ids({.company_id = "company-a", .statuses = {runtime_service_status::running},
               .project_workspace_id = "pw-1"}) == v{"svc-a"});
    CHECK(ids({.company_id = "company-z"}).empty());
}

/// stop_runtime_services moves only matching rows with a live status, all at once.
template <class S>
void runtime_service_stop_moves_live_rows(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto const t0 = fx.clock.now();
    std::vector<runtime_service_status> const statuses = {
        runtime_service_status::provisioning, runtime_service_status::starting, runtime_service_status::running,
        runtime_service_status::stopped, runtime_service_status::failed};
    for (std::size_t i = 0; i < statuses.size(); ++i) {
        auto r = make_service_row("svc-" + std::to_string(i), "company-a", t0);
        r.status = statuses[i];
        fx.store().upsert_runtime_service(r, t0);
        auto other = make_service_row("other-" + std::to_string(i), "company-a", t0);
        other.status = statuses[i];
        other.execution_workspace_id = "ew-other";
        fx.store().upsert_runtime_service(other, t0);
    }
    fx.clock.advance(1min);
    auto const t1 = fx.clock.now();
    auto const moved = detail::sorted(fx.peer().stop_runtime_services({.execution_workspace_id = "ew-1"}, t1));
    CHECK(moved == std::vector<std::string>{"svc-0", "svc-1", "svc-2"});
    for (std::size_t i = 0; i < statuses.size(); ++i) {
        auto const r = fx.store().get_runtime_service("svc-" + std::to_string(i));
        REQUIRE(r);
        INFO(r->id);
        if (i < 3) {
            CHECK(r->status == runtime_service_status::stopped);
            CHECK(r->health_status == runtime_service_health::unknown);
            CHECK(r->stopped_at == t1);
            CHECK(r->last_used_at == t1);
            CHECK(r->updated_at == t1);
        } else {
            CHECK(r->status == statuses[i]);
            CHECK(r->updated_at == t0);
        }
        auto const o = fx.store().get_runtime_service("other-" + std::to_string(i));
        REQUIRE(o);
        CHECK(o->status == statuses[i]);
    }
    CHECK(fx.store().stop_runtime_services({.execution_workspace_id = "ew-1"}, t1).empty());
    CHECK(detail::sorted(fx.store().stop_runtime_services({.ids = {"other-1", "other-4"}}, t1)) ==
          std::vector<std::string>{"other-1"});
}

}  // namespace checks

// ---- execution workspaces and workspace operations ------------------------------------------------

namespace detail {

inline new_execution_workspace workspace_input(std::string company, std::string name,
                                               std::optional<std::string> branch = std::nullopt) {
    return new_execution_workspace{.company_id = std::move(company),
                                   .project_id = "project-1",
                                   .name = std::move(name),
                                   .branch_name = std::move(branch)};
}

/// Everything a check can see of the workspace tables for these companies.
inline boost::json::value workspace_state_of(auto& s, std::initializer_list<std::string_view> companies) {
    boost::json::object out;
    for (auto company : companies) {
        out["workspaces of " + std::string(company)] = to_json(s.list_execution_workspaces(company, {}));
        out["operations of " + std::string(company)] =
            to_json(s.list_operations({.company_id = std::string(company)}));
    }
    return out;
}

}  // namespace detail

namespace checks {

/// create_execution_workspace keeps every field, sets the timestamps, refuses empty required
/// fields naming them and changes nothing then; get reads it back through the other handle.
template <class S>
void execution_workspace_create_and_get(store_view<S> fx) {
    auto& s = fx.store();
    auto const now = fx.clock.now();
    auto const w = s.create_execution_workspace(
        new_execution_workspace{.company_id = "company-a",
                                .project_id = "project-1",
                                .project_workspace_id = "pw-1",
                                .source_issue_id = "issue-1",
                                .mode = execution_workspace_mode::isolated_workspace,
                                .strategy_type = workspace_strategy_type::git_worktree,
                                .name = "ENG-1-fix",
                                .status = execution_workspace_status::in_review,
                                .cwd = "/srv/repo/.berth/worktrees/ENG-1-fix",
                                .repo_url = "https://example.invalid/r.git",
                                .base_ref = "origin/main",
                                .branch_name = "ENG-1-fix",
                                .provider_type = workspace_provider_type::git_worktree,
                                .provider_ref = "/srv/repo/.berth/worktrees/ENG-1-fix",
                                .derived_from_execution_workspace_id = "ew-0",
                                .metadata = json_object{{"createdByRuntime", true}}},
        now);
    CHECK_FALSE(w.id.empty());
    CHECK(w.mode == execution_workspace_mode::isolated_workspace);
    CHECK(w.strategy_type == workspace_strategy_type::git_worktree);
    CHECK(w.status == execution_workspace_status::in_review);
    CHECK(w.provider_type == workspace_provider_type::git_worktree);
    CHECK(w.derived_from_execution_workspace_id == std::optional<std::string>("ew-0"));
    CHECK(w.opened_at == now);
    CHECK(w.last_used_at == std::optional<timestamp>(now));
    CHECK(w.created_at == now);
    CHECK(w.updated_at == now);
    CHECK_FALSE(w.closed_at);
    CHECK_FALSE(w.cleanup_eligible_at);
    CHECK_FALSE(w.cleanup_reason);
    auto const read = fx.peer().get_execution_workspace(w.id);
    REQUIRE(read);
    CHECK(to_json(*read) == to_json(w));

    auto const plain = s.create_execution_workspace(detail::workspace_input("company-a", "plain"), now);
    CHECK(plain.id != w.id);
    CHECK(plain.mode == execution_workspace_mode::shared_workspace);
    CHECK(plain.strategy_type == workspace_strategy_type::project_primary);
    CHECK(plain.status == execution_workspace_status::active);
    CHECK(plain.provider_type == workspace_provider_type::local_fs);
    CHECK_FALSE(plain.metadata);
    CHECK_FALSE(s.get_execution_workspace("no-such-workspace"));

    auto const before = detail::workspace_state_of(s, {"company-a", ""});
    auto in = detail::workspace_input("", "nameless company");
    CHECK_THAT(detail::refused(store_errc::invalid_argument, [&] { s.create_execution_workspace(in, now); }),
               Catch::Contains("company id"));
    in = detail::workspace_input("company-a", "");
    CHECK_THAT(detail::refused(store_errc::invalid_argument, [&] { s.create_execution_workspace(in, now); }),
               Catch::Contains("name"));
    in = detail::workspace_input("company-a", "no project");
    in.project_id.clear();
    CHECK_THAT(detail::refused(store_errc::invalid_argument, [&] { s.create_execution_workspace(in, now); }),
               Catch::Contains("project id"));
    CHECK(detail::workspace_state_of(s, {"company-a", ""}) == before);
}

/// list_execution_workspaces: one company's rows, every filter, newest last_used_at first (null
/// last), then newest created_at, then newest inserted.
template <class S>
void execution_workspace_list_filters_and_orders(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto& c = fx.clock;
    auto const w1 = s.create_execution_workspace(detail::workspace_input("company-a", "w1", "b1"), c.now());
    c.advance(1s);
    auto in2 = detail::workspace_input("company-a", "w2", "b2");
    in2.source_issue_id = "issue-2";
    in2.project_id = "project-2";
    auto const w2 = s.create_execution_workspace(in2, c.now());
    c.advance(1s);
    auto const w3 = s.create_execution_workspace(detail::workspace_input("company-a", "w3", "b1"), c.now());
    auto const other = s.create_execution_workspace(detail::workspace_input("company-b", "other", "b1"), c.now());
    c.advance(1s);
    REQUIRE(s.update_execution_workspace(w1.id, {.last_used_at = std::optional<timestamp>(c.now())}, c.now()));
    REQUIRE(s.update_execution_workspace(w2.id, {.status = execution_workspace_status::archived}, c.now()));

    using ids = std::vector<std::string>;
    auto list = [&](execution_workspace_filter f) {
        return detail::ids_of(fx.peer().list_execution_workspaces("company-a", f));
    };
    CHECK(list({}) == ids{w1.id, w3.id, w2.id});
    CHECK(list({.project_id = "project-1"}) == ids{w1.id, w3.id});
    CHECK(list({.status = execution_workspace_status::archived}) == ids{w2.id});
    CHECK(list({.source_issue_id = "issue-2"}) == ids{w2.id});
    CHECK(list({.branch_name = "b1"}) == ids{w1.id, w3.id});
    CHECK(list({.project_id = "project-1", .status = execution_workspace_status::archived}).empty());
    CHECK(detail::ids_of(s.list_execution_workspaces("company-b", {})) == ids{other.id});

    // A null last_used_at sorts last; equal instants: newest inserted first.
    REQUIRE(s.update_execution_workspace(w1.id, {.last_used_at = std::optional<timestamp>()}, c.now()));
    CHECK(list({}) == ids{w3.id, w2.id, w1.id});
    auto const f1 = s.create_execution_workspace(detail::workspace_input("company-c", "f1"), c.now());
    auto const f2 = s.create_execution_workspace(detail::workspace_input("company-c", "f2"), c.now());
    CHECK(detail::ids_of(s.list_execution_workspaces("company-c", {})) == ids{f2.id, f1.id});
}

/// update_execution_workspace replaces what the patch engages (null for an engaged nullopt) and
/// nothing else; updated_at = now; an unknown id is nullopt; an empty name is refused unchanged.
template <class S>
void execution_workspace_update_patches(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto& c = fx.clock;
    auto in = detail::workspace_input("company-a", "w", "b");
    in.cwd = "/w";
    in.provider_ref = "/w";
    in.metadata = json_object{{"k", 1}};
    auto const w = s.create_execution_workspace(in, c.now());
    c.advance(1s);
    auto const closed = c.now();
    auto const u = s.update_execution_workspace(
        w.id,
        execution_workspace_patch{.name = "renamed",
                                  .status = execution_workspace_status::cleanup_failed,
                                  .cwd = std::optional<std::string>(),
                                  .provider_type = workspace_provider_type::git_worktree,
                                  .closed_at = std::optional<timestamp>(closed),
                                  .cleanup_eligible_at = std::optional<timestamp>(closed),
                                  .cleanup_reason = std::optional<std::string>("done"),
                                  .metadata = std::optional<json_object>(json_object{{"k", 2}})},
        c.now());
    REQUIRE(u);
    CHECK(u->name == "renamed");
    CHECK(u->status == execution_workspace_status::cleanup_failed);
    CHECK_FALSE(u->cwd);
    CHECK(u->provider_ref == std::optional<std::string>("/w"));  // not engaged: kept
    CHECK(u->branch_name == std::optional<std::string>("b"));
    CHECK(u->provider_type == workspace_provider_type::git_worktree);
    CHECK(u->closed_at == std::optional<timestamp>(closed));
    CHECK(u->cleanup_eligible_at == std::optional<timestamp>(closed));
    CHECK(u->cleanup_reason == std::optional<std::string>("done"));
    CHECK(u->metadata == std::optional<json_object>(json_object{{"k", 2}}));
    CHECK(u->created_at == w.created_at);
    CHECK(u->opened_at == w.opened_at);
    CHECK(u->updated_at == c.now());
    auto const read = fx.peer().get_execution_workspace(w.id);
    REQUIRE(read);
    CHECK(to_json(*read) == to_json(*u));

    CHECK_FALSE(s.update_execution_workspace("no-such-workspace", {.name = "x"}, c.now()));
    auto const before = detail::workspace_state_of(s, {"company-a"});
    CHECK_THAT(detail::refused(store_errc::invalid_argument,
                               [&] { s.update_execution_workspace(w.id, {.name = std::string()}, c.now()); }),
               Catch::Contains("name"));
    CHECK(detail::workspace_state_of(s, {"company-a"}) == before);
}

/// begin_operation stores a running operation; update_operation patches it; list_operations
/// filters and orders oldest started_at first, then oldest inserted.
template <class S>
void operation_begin_update_and_list(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto& c = fx.clock;
    auto const t0 = c.now();
    auto const op = s.begin_operation(new_workspace_operation{.company_id = "company-a",
                                                              .execution_workspace_id = std::nullopt,
                                                              .heartbeat_run_id = "run-1",
                                                              .issue_id = "issue-1",
                                                              .phase = workspace_operation_phase::worktree_prepare,
                                                              .command = "git worktree add -b b /w HEAD",
                                                              .cwd = "/repo",
                                                              .metadata = json_object{{"created", true}}},
                                      t0);
    CHECK_FALSE(op.id.empty());
    CHECK(op.status == workspace_operation_status::running);
    CHECK(op.started_at == t0);
    CHECK(op.created_at == t0);
    CHECK_FALSE(op.finished_at);
    CHECK_FALSE(op.exit_code);
    CHECK_FALSE(op.log_compressed);
    auto read = fx.peer().get_operation(op.id);
    REQUIRE(read);
    CHECK(to_json(*read) == to_json(op));

    c.advance(1s);
    auto const t1 = c.now();
    auto const done = s.update_operation(op.id,
                                         workspace_operation_patch{.status = workspace_operation_status::failed,
                                                                   .exit_code = std::optional<int>(128),
                                                                   .execution_workspace_id = std::optional<std::string>("ew-1"),
                                                                   .stdout_excerpt = std::optional<std::string>("out"),
                                                                   .stderr_excerpt = std::optional<std::string>("fatal"),
                                                                   .finished_at = std::optional<timestamp>(t1)},
                                         t1);
    REQUIRE(done);
    CHECK(done->status == workspace_operation_status::failed);
    CHECK(done->exit_code == std::optional<int>(128));
    CHECK(done->execution_workspace_id == std::optional<std::string>("ew-1"));
    CHECK(done->stdout_excerpt == std::optional<std::string>("out"));
    CHECK(done->stderr_excerpt == std::optional<std::string>("fatal"));
    CHECK(done->finished_at == std::optional<timestamp>(t1));
    CHECK(done->metadata == std::optional<json_object>(json_object{{"created", true}}));  // not engaged: kept
    CHECK(done->started_at == t0);
    CHECK(done->updated_at == t1);
    read = fx.peer().get_operation(op.id);
    REQUIRE(read);
    CHECK(to_json(*read) == to_json(*done));
    CHECK_FALSE(s.update_operation("no-such-operation", {.status = workspace_operation_status::skipped}, t1));
    CHECK_FALSE(s.get_operation("no-such-operation"));

    // Order and filters.
    auto const later = s.begin_operation({.company_id = "company-a", .heartbeat_run_id = "run-2",
                                          .phase = workspace_operation_phase::workspace_provision}, t1);
    auto const same1 = s.begin_operation({.company_id = "company-a", .execution_workspace_id = "ew-1",
                                          .heartbeat_run_id = "run-2", .issue_id = "issue-2",
                                          .phase = workspace_operation_phase::worktree_cleanup}, t1);
    auto const earlier = s.begin_operation({.company_id = "company-a", .heartbeat_run_id = "run-1",
                                            .phase = workspace_operation_phase::workspace_teardown}, t0 - 1s);
    auto const other = s.begin_operation({.company_id = "company-b", .heartbeat_run_id = "run-1"}, t0);
    using ids = std::vector<std::string>;
    auto list = [&](workspace_operation_filter f) { return detail::ids_of(fx.peer().list_operations(f)); };
    CHECK(list({.company_id = "company-a"}) == ids{earlier.id, op.id, later.id, same1.id});
    CHECK(list({.company_id = "company-a", .heartbeat_run_id = "run-1"}) == ids{earlier.id, op.id});
    CHECK(list({.heartbeat_run_id = "run-1"}) == ids{earlier.id, op.id, other.id});
    CHECK(list({.execution_workspace_id = "ew-1"}) == ids{op.id, same1.id});
    CHECK(list({.execution_workspace_id = "ew-1", .issue_id = "issue-2"}) == ids{same1.id});
    CHECK(list({.company_id = "company-b"}) == ids{other.id});

    auto const before = detail::workspace_state_of(s, {"company-a", "company-b", ""});
    CHECK_THAT(detail::refused(store_errc::invalid_argument, [&] { s.begin_operation({.company_id = ""}, t1); }),
               Catch::Contains("company id"));
    CHECK(detail::workspace_state_of(s, {"company-a", "company-b", ""}) == before);
}

/// 8 threads recording and finishing operations at once: every one stored once, with its outcome.
template <class S>
void race_operations_are_all_recorded(store_view<S> fx) {
    constexpr std::size_t threads = 8;
    constexpr int per_thread = 10;
    auto const now = fx.clock.now();
    (void)fx.peer();
    std::vector<std::vector<std::string>> ids(threads);
    auto const failures = detail::run_concurrently(threads, [&](std::size_t t) {
        for (int i = 0; i < per_thread; ++i) {
            auto const op = fx.handle(t).begin_operation(
                {.company_id = "company-a", .heartbeat_run_id = "run-" + std::to_string(t)}, now);
            fx.handle(t).update_operation(op.id, {.status = workspace_operation_status::succeeded,
                                                   .exit_code = std::optional<int>(static_cast<int>(t))},
                                          now);
            ids[t].push_back(op.id);
        }
    });
    detail::check_no_thread_failures(failures);
    auto const all = fx.store().list_operations({.company_id = "company-a"});
    CHECK(all.size() == threads * per_thread);
    std::set<std::string> seen;
    for (auto const& op : all) {
        INFO(op.id);
        CHECK(seen.insert(op.id).second);
        CHECK(op.status == workspace_operation_status::succeeded);
    }
    for (std::size_t t = 0; t < threads; ++t) {
        auto const mine = fx.store().list_operations({.heartbeat_run_id = "run-" + std::to_string(t)});
        CHECK(detail::sorted(detail::ids_of(mine)) == detail::sorted(ids[t]));
        for (auto const& op : mine) CHECK(op.exit_code == std::optional<int>(static_cast<int>(t)));
    }
}

/// The lists whose cursor is a row id (model/paging.hpp, "row cursors": environments, runtime
/// services, execution workspaces, operations, and list_expired_leases' paged form where the
/// store has it): walking any of them page by page, at any page size, gives the whole list in its
/// order, ties of the sort columns included; a limit of 0 and an unknown cursor give empty pages;
/// a cursor row that left the list since (a reaped lease) still marks its place.
template <class S>
void row_lists_page_with_a_limit_and_a_cursor(store_view<S> fx) {
    using namespace std::chrono_literals;
    auto& s = fx.store();
    auto& p = fx.peer();
    auto& c = fx.clock;
    using ids = std::vector<std::string>;
    auto walk = [](auto list, auto first, std::size_t page_size) {
        ids out;
        auto f = first;
        f.limit = page_size;
        for (int guard = 0; guard < 100; ++guard) {
            auto const page = list(f);
            CHECK(page.size() <= page_size);
            for (auto const& r : page) out.push_back(r.id);
            if (page.size() < page_size) break;
            f.after = page.back().id;
        }
        return out;
    };

    // Seven rows of each kind, two or three per instant (ties broken by insertion order).
    std::vector<std::string> workspaces;
    for (int i = 0; i < 7; ++i) {
        if (i % 3 == 0) c.advance(1s);
        (void)detail::make_environment(s, c.now(), "company-page", "env-" + std::to_string(i));
        s.upsert_runtime_service(make_service_row("svc-page-" + std::to_string(i), "company-page", c.now()),
                                 c.now());
        workspaces.push_back(
            s.create_execution_workspace(detail::workspace_input("company-page", "w" + std::to_string(i)), c.now()).id);
        (void)s.begin_operation({.company_id = "company-page", .heartbeat_run_id = "run-page"}, c.now());
    }
    // Some workspaces used, two with a null last_used_at (listed last).
    REQUIRE(s.update_execution_workspace(workspaces[1], {.last_used_at = std::optional<timestamp>(c.now())}, c.now()));
    REQUIRE(s.update_execution_workspace(workspaces[4], {.last_used_at = std::optional<timestamp>()}, c.now()));
    REQUIRE(s.update_execution_workspace(workspaces[6], {.last_used_at = std::optional<timestamp>()}, c.now()));

    auto environments = [&](environment_filter f) { return p.list_environments("company-page", f); };
    auto services = [&](runtime_service_filter f) { return p.list_runtime_services(f); };
    auto ews = [&](execution_workspace_filter f) { return p.list_execution_workspaces("company-page", f); };
    auto operations = [&](workspace_operation_filter f) { return p.list_operations(f); };
    environment_filter const all_envs{.limit = no_limit};
    runtime_service_filter const all_services{.company_id = "company-page", .limit = no_limit};
    execution_workspace_filter const all_ews{.limit = no_limit};
    workspace_operation_filter const all_ops{.company_id = "company-page", .limit = no_limit};
    auto const whole_envs = detail::ids_of(environments(all_envs));
    auto const whole_services = detail::ids_of(services(all_services));
    auto const whole_ews = detail::ids_of(ews(all_ews));
    auto const whole_ops = detail::ids_of(operations(all_ops));
    CHECK(whole_envs.size() == 7);
    CHECK(whole_services.size() == 7);
    CHECK(whole_ews.size() == 7);
    CHECK(whole_ops.size() == 7);
    CHECK(whole_ews.back() == workspaces[4]);  // the null last_used_at ones, newest inserted first
    for (std::size_t page_size : {1u, 2u, 3u, 7u}) {
        INFO("page size " << page_size);
        CHECK(walk(environments, all_envs, page_size) == whole_envs);
        CHECK(walk(services, all_services, page_size) == whole_services);
        CHECK(walk(ews, all_ews, page_size) == whole_ews);
        CHECK(walk(operations, all_ops, page_size) == whole_ops);
    }
    CHECK(environments({.limit = 0}).empty());
    CHECK(services({.company_id = "company-page", .limit = 0}).empty());
    CHECK(ews({.limit = 0}).empty());
    CHECK(operations({.limit = 0}).empty());
    CHECK(environments({.after = "no-such-environment"}).empty());
    CHECK(services({.after = "no-such-service"}).empty());
    CHECK(ews({.after = "no-such-workspace"}).empty());
    CHECK(operations({.after = "no-such-operation"}).empty());
    CHECK(environment_filter{}.limit == default_list_limit);
    CHECK(workspace_operation_filter{}.limit == default_list_limit);
    // stop_runtime_services moves every matching row, whatever the limit.
    CHECK(s.stop_runtime_services({.company_id = "company-page", .limit = 1}, c.now()).size() == 7);

    if constexpr (requires(S& st, timestamp now, list_page const& page) {
                      { st.list_expired_leases(now, page) } -> std::same_as<std::vector<environment_lease>>;
                  }) {
        auto const env = detail::make_environment(s, c.now(), "company-page", "expiring");
        auto const t0 = c.now();
        for (int i = 0; i < 7; ++i) {
            auto input = detail::lease_on(env, "lease-page-" + std::to_string(i));
            input.expires_at = t0 + std::chrono::minutes(1 + i / 3);  // ties
            s.acquire_lease(input, t0, std::nullopt);
        }
        auto const due = t0 + 1h;
        auto const whole = detail::ids_of(p.list_expired_leases(due));
        CHECK(whole.size() == 7);
        for (std::size_t page_size : {1u, 2u, 3u}) {
            ids out;
            std::optional<std::string> after;
            for (int guard = 0; guard < 20; ++guard) {
                auto const page = p.list_expired_leases(due, list_page{.limit = page_size, .after = after});
                for (auto const& l : page) out.push_back(l.id);
                if (page.size() < page_size) break;
                after = page.back().id;
            }
            CHECK(out == whole);
        }
        CHECK(p.list_expired_leases(due, list_page{.limit = 0}).empty());
        CHECK(p.list_expired_leases(due, list_page{.after = "no-such-lease"}).empty());
        // A sweep reaps each page before it asks for the next: the cursor lease is no longer due.
        ids reaped;
        std::optional<std::string> after;
        for (int guard = 0; guard < 20; ++guard) {
            auto const page = p.list_expired_leases(due, list_page{.limit = 3, .after = after});
            for (auto const& l : page) {
                s.transition_lease(lease_transition{.id = l.id, .expected_epoch = l.epoch, .to = lease_status::expired},
                                   c.now(), std::nullopt);
                reaped.push_back(l.id);
            }
            if (page.size() < 3) break;
            after = page.back().id;
        }
        CHECK(reaped == whole);
        CHECK(p.list_expired_leases(due).empty());
    }
}

}  // namespace checks

}  // namespace berth::testing::store_conformance

// ---- the Catch2 registration ---------------------------------------------------------------------

/// The kit's checks: X(factory, tags, check, description, extra_tags) for each.
#define BERTH_STORE_CONFORMANCE_DETAIL_FOR_EACH(X, factory, tags)                                                      \
    X(factory, tags, environment_create_and_get, "create_environment keeps every field, get reads it back", "")        \
    X(factory, tags, environment_create_validates, "create_environment refuses empty fields and a second local", "")   \
    X(factory, tags, environment_list_filters_and_orders, "list_environments filters and orders newest first", "")     \
    X(factory, tags, environment_update_patches, "update_environment patches only what it engages", "")                \
    X(factory, tags, environment_ensure_local_is_idempotent, "ensure_local_environment creates once", "")              \
    X(factory, tags, environment_ensure_local_concurrently, "8 threads ensuring the local environment get one row",    \
      "")                                                                                                              \
    X(factory, tags, lease_acquire_sets_every_field, "acquire_lease stores every field at epoch 1 with its event", "") \
    X(factory, tags, lease_acquire_validates, "acquire_lease refuses bad input and writes nothing", "")                \
    X(factory, tags, lease_capacity, "maxActiveLeases bounds active leases per environment", "")                       \
    X(factory, tags, lease_transition_sets_fields, "transition_lease sets status, epoch and timestamps", "")           \
    X(factory, tags, lease_transition_refuses_stale_epoch, "transition_lease refuses a stale epoch", "")               \
    X(factory, tags, lease_transition_follows_the_table, "transition_lease follows the lease status table", "")        \
    X(factory, tags, lease_metadata_update, "update_lease_metadata replaces metadata and bumps last_used_at", "")      \
    X(factory, tags, lease_renewal, "renew_lease is a compare-and-set on active leases", "")                           \
    X(factory, tags, lease_expiry_listing, "list_expired_leases lists due active leases, oldest first", "")            \
    X(factory, tags, lease_recovery_listing, "list_recoverable_leases lists what recover() must judge", "")         \
    X(factory, tags, lease_lists_filter_and_order, "list_leases and list_run_leases filter and order", "")             \
    X(factory, tags, lists_page_with_a_limit_and_a_cursor, "lease and activity lists page by limit and cursor", "")  \
    X(factory, tags, history_prunes_ended_leases, "prune_history removes old ended leases and their events", "")    \
    X(factory, tags, row_lists_page_with_a_limit_and_a_cursor, "the other lists page by limit and row cursor", "")   \
    X(factory, tags, lease_release_for_run, "release_leases_for_run moves only that run's active leases", "")          \
    X(factory, tags, lease_reuse_scope, "one active lease per reuse scope", "[reuse_scope]")                           \
    X(factory, tags, activity_filters_and_orders, "list_activity filters and orders oldest first", "")                 \
    X(factory, tags, activity_is_atomic_with_lease_writes, "events commit with their lease write, or not at all", "")  \
    X(factory, tags, handles_share_storage, "a second handle sees and fences the first's writes", "")                  \
    X(factory, tags, race_acquire_respects_capacity, "racing acquisitions never exceed maxActiveLeases", "")           \
    X(factory, tags, race_transitions_have_one_winner, "racing transitions from one epoch have one winner", "")        \
    X(factory, tags, race_release_for_run_against_transitions, "release_leases_for_run racing transitions", "")     \
    X(factory, tags, runtime_service_upsert_and_get, "upsert_runtime_service inserts, then replaces but keeps origin", \
      "")                                                                                                              \
    X(factory, tags, runtime_service_list_filters_and_orders, "list_runtime_services filters and orders", "")          \
    X(factory, tags, runtime_service_stop_moves_live_rows, "stop_runtime_services moves only live matching rows", "")       \
    X(factory, tags, execution_workspace_create_and_get, "create_execution_workspace keeps every field", "")          \
    X(factory, tags, execution_workspace_list_filters_and_orders, "list_execution_workspaces filters and orders", "") \
    X(factory, tags, execution_workspace_update_patches, "update_execution_workspace patches what it engages", "")    \
    X(factory, tags, operation_begin_update_and_list, "workspace operations: begin, update, list", "")                \
    X(factory, tags, race_operations_are_all_recorded, "racing operation writes are all recorded", "")

#define BERTH_STORE_CONFORMANCE_DETAIL_TEST_CASE(factory, tags, check, description, extra_tags)                        \
    TEST_CASE(#factory ": " description, tags "[store_conformance]" extra_tags) {                                      \
        ::berth::testing::store_conformance::check<factory>();                                                         \
    }

#define BERTH_STORE_CONFORMANCE_DETAIL_SECTION(factory, tags, check, description, extra_tags)                          \
    SECTION(description) { ::berth::testing::store_conformance::check<factory>(); }

/// Registers one Catch2 TEST_CASE per rule of the store contract for `factory` (a single
/// identifier naming a store_factory), tagged `tags` (a string literal) and `[store_conformance]`.
/// Use at namespace scope, once per factory.
#define BERTH_STORE_CONFORMANCE_TESTS(factory, tags)                                                                   \
    BERTH_STORE_CONFORMANCE_DETAIL_FOR_EACH(BERTH_STORE_CONFORMANCE_DETAIL_TEST_CASE, factory, tags)

#define BERTH_STORE_CONFORMANCE_DETAIL_ENTRY_POINT(factory, tags, check, description, extra_tags)                      \
    template <store_factory F>                                                                                         \
    void check() {                                                                                                     \
        store_fixture<F> fx;                                                                                           \
        checks::check(fx.view());                                                                                      \
    }

namespace berth::testing::store_conformance {

// One entry point per check, on a factory: `store_conformance::lease_capacity<my_factory>()`.
BERTH_STORE_CONFORMANCE_DETAIL_FOR_EACH(BERTH_STORE_CONFORMANCE_DETAIL_ENTRY_POINT, unused, unused)

/// Every check of the kit, each in its own SECTION (so each runs on a fresh store), for use inside
/// a test case of your own, e.g. a TEMPLATE_TEST_CASE over several factories.
template <store_factory F>
void run_all() {
    BERTH_STORE_CONFORMANCE_DETAIL_FOR_EACH(BERTH_STORE_CONFORMANCE_DETAIL_SECTION, F, "")
}

}  // namespace berth::testing::store_conformance
