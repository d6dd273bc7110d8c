#pragma once
//! @file
//! berth::testing::driver_conformance — the environment driver contract (concepts/environment_driver.hpp,
//! model/command.hpp, docs/drivers/writing-a-driver.md) as Catch2 tests any driver can be run
//! through. berth runs them on local_driver, ssh_driver (against a real sshd), sandbox_driver (over
//! bubblewrap and over the fake provider), the fake driver, examples/custom_driver and the
//! walk-through's bubblewrap driver; run them on yours.
//!
//! ## A harness
//!
//! The kit gets the driver and an environment for it from a *harness*: a default-constructible
//! type, one object per check (so its constructor and destructor can start and stop what the
//! driver needs: a server, a temporary directory).
//! @code
//! struct my_harness {
//!     my_server server;                                         // yours: started and stopped by RAII
//!     my_driver driver() const { return my_driver{server.options()}; }   // by value or by reference
//!     berth::environment environment() const;                   // an environment the driver serves
//!
//!     // Optional:
//!     berth::environment unusable_environment() const;          // acquire must throw, probe must say not ok
//!     std::vector<std::string> leftovers() const;               // what the provider holds now (sandboxes,
//!                                                                // directories, processes): compared before
//!                                                                // acquire and after release
//!     std::string workspace_path() const;                       // realize_request::local_path
//!     static constexpr bool scripted_commands = true;            // execute runs nothing real (a fake): only
//!                                                                // the result's shape is checked
//! };
//! @endcode
//!
//! ## Running the kit
//!
//! @code
//! #include <berth/testing/driver_conformance.hpp>
//! BERTH_DRIVER_CONFORMANCE_TESTS(my_harness, "[my_driver]")
//! @endcode
//! expands, at namespace scope, to one `TEST_CASE("my_harness: <rule>", "[my_driver][driver_conformance]")`
//! per rule. `harness` must be a single identifier; `tags` a string literal. Or every rule as a
//! SECTION of one test case: `berth::testing::driver_conformance::run_all<my_harness>();`, or one
//! rule: `berth::testing::driver_conformance::execute_timeout<my_harness>();`.
//! Link the `berth::testing` CMake target (it brings Catch2 2.x).
//!
//! ## What it checks
//!
//! Every rule acquires as the orchestrator does: the lease is built from the grant, and when the
//! driver realizes, the realization (`workspaceRealization`, with the harness's workspace_path as
//! local path) is kept on the lease's metadata before anything runs.
//!
//! Identity (`verified_driver`: every requirement, no near miss; a non-empty name; the harness's
//! environment is of the driver's family). acquire/release round trip (a grant; release of the
//! lease built from it as the orchestrator does, into released, failed and expired, does not throw
//! and reports no failed cleanup). release is idempotent and safe on an orphan (twice on one lease;
//! on a lease another harness's driver made). Nothing left behind (the harness's `leftovers()` after
//! acquire/release and destroy equal those before). acquire of an unusable environment throws, and
//! leaves nothing behind. resume returns the lease's provider lease id; destroy does not throw.
//! realize_workspace returns a cwd, in which (with execute) `pwd -P` is the realized directory.
//! execute: exit codes (0, 3), stdout and stderr apart, argv not re-split (spaces, quotes, `;`,
//! `$`), env values, stdin, the timeout (`timed_out`, the process gone long before it would have
//! ended), streaming (`on_output` chunks add up to the captured text, per stream), output bounded
//! by `max_output_bytes` (truncated flag). probe is noexcept, ok on the environment, not ok (with a
//! summary) on an unusable one. execution_target names the environment and the lease. 4 threads
//! acquire, execute and release at once through one driver. A rule whose capability the driver
//! does not model passes with a note saying so (Catch2 2 has no "skipped").

#include <berth/concepts/diagnostics.hpp>    // verified_driver, conforming_driver
#include <berth/concepts/environment_driver.hpp>
#include <berth/model/command.hpp>           // command, command_result, output_stream
#include <berth/model/driver_io.hpp>         // acquire_request, lease_grant, ...
#include <berth/model/enum_string.hpp>       // to_string (families, statuses in messages)
#include <berth/model/ids.hpp>               // new_id
#include <berth/model/environment.hpp>
#include <berth/model/lease.hpp>

#include <catch2/catch.hpp>  // TEST_CASE, SECTION, CHECK, REQUIRE, INFO

#include <algorithm>    // std::sort
#include <atomic>       // std::atomic
#include <chrono>       // std::chrono::steady_clock, milliseconds
#include <concepts>     // std::default_initializable
#include <cstddef>      // std::size_t
#include <exception>    // std::exception
#include <mutex>        // std::mutex, std::lock_guard
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view
#include <thread>       // std::thread
#include <type_traits>  // std::remove_cvref_t
#include <utility>      // std::declval
#include <vector>       // std::vector

namespace berth::testing::driver_conformance {

// ---- harnesses -----------------------------------------------------------------------------------

/// The driver type a harness hands out.
template <class H>
using driver_t = std::remove_cvref_t<decltype(std::declval<H&>().driver())>;

/// A type the kit can run checks with (see the file comment).
template <class H>
concept driver_harness = std::default_initializable<H> && requires(H& h) {
    h.driver();
    { h.environment() } -> std::convertible_to<environment>;
} && conforming_driver<driver_t<H>>;

namespace detail {

template <class H>
concept has_unusable_environment = requires(H& h) {
    { h.unusable_environment() } -> std::convertible_to<environment>;
};
template <class H>
concept has_leftovers = requires(H& h) { h.leftovers() == h.leftovers(); };
template <class H>
concept has_workspace_path = requires(H& h) {
    { h.workspace_path() } -> std::convertible_to<std::string>;
};
template <class H>
constexpr bool scripted_commands() {
    if constexpr (requires { H::scripted_commands; }) return static_cast<bool>(H::scripted_commands);
    else return false;
}
/// Whether the execute rules that need a POSIX shell and real processes apply.
template <class H>
constexpr bool runs_commands() {
    return driver_with_execute<driver_t<H>> && !scripted_commands<H>();
}

/// A lease as the orchestrator writes it from a grant (model/lease_rules.hpp's make_lease, less
/// the store's bookkeeping): what the driver gets back in release, execute, destroy.
inline environment_lease lease_from(environment const& env, lease_grant const& grant, std::string id) {
    environment_lease l{};
    l.id = std::move(id);
    l.company_id = env.company_id;
    l.environment_id = env.id;
    l.heartbeat_run_id = "kit-run";
    l.status = lease_status::active;
    l.provider = grant.provider;
    l.provider_lease_id = grant.provider_lease_id;
    l.expires_at = grant.expires_at;
    l.metadata = grant.metadata;
    return l;
}

inline acquire_request request_for(environment const& env) {
    return acquire_request{.env = env, .company_id = env.company_id, .agent_id = std::string("kit-agent"),
                           .issue_id = {}, .heartbeat_run_id = std::string("kit-run")};
}

inline std::string next_lease_id() {
    // Unique across processes, as real lease ids are: a driver may act on every process or
    // resource of a lease id on a shared host (the SSH driver's release ends the id's processes),
    // so two test processes using the same ids at once would end each other's commands.
    return "kit-lease-" + new_id();
}

/// The driver, an environment, and one acquired lease on it (released by the check).
template <class H>
struct acquired {
    environment env;
    environment_lease lease;
};

template <class H>
realize_request realize_request_for(H& h, environment const& env, environment_lease const& lease) {
    realize_request req{.env = env, .lease = lease, .local_path = {}, .remote_path = {}, .mode = {}, .metadata = {}};
    if constexpr (has_workspace_path<H>) req.local_path = std::string(h.workspace_path());
    return req;
}

/// Realizes the lease's workspace and keeps the realization on its metadata (as the orchestrator
/// persists it). No Catch2 assertion: also called from the kit's threads.
template <class H, class D>
void realize_onto(H& h, D const& d, environment const& env, environment_lease& lease) {
    auto const w = d.realize_workspace(realize_request_for(h, env, lease));
    if (auto const* r = w.metadata.if_contains("workspaceRealization"); r && r->is_object()) {
        auto md = lease.metadata.value_or(json_object{});
        md["workspaceRealization"] = r->get_object();
        lease.metadata = std::move(md);
    }
}

/// acquire, then (when the driver realizes) realize and keep the realization on the lease's
/// metadata, as the orchestrator does before any execute.
template <class H>
acquired<H> acquire_one(H& h) {
    auto const& d = h.driver();
    environment env = h.environment();
    lease_grant grant;
    REQUIRE_NOTHROW(grant = d.acquire(request_for(env)));
    if (grant.provider_lease_id) CHECK_FALSE(grant.provider_lease_id->empty());
    auto lease = lease_from(env, grant, next_lease_id());
    if constexpr (driver_with_realize_workspace<driver_t<H>>) REQUIRE_NOTHROW(realize_onto(h, d, env, lease));
    return {env, std::move(lease)};
}

template <class H>
void release_expecting_success(H& h, acquired<H> const& a, lease_status to = lease_status::released) {
    INFO("release into " << to_string(to));
    release_outcome out;
    REQUIRE_NOTHROW(out = h.driver().release(a.env, a.lease, to));
    // failure_reason may be set on purpose (a sandbox ending `failed` says why the run failed); a
    // failed cleanup may not.
    INFO("failure_reason: " << out.failure_reason.value_or("(none)"));
    if (out.cleanup_status) CHECK(*out.cleanup_status == cleanup_status::success);
}

template <class H>
command_result run(H& h, acquired<H> const& a, command c) {
    INFO("command: " << c.program);
    command_result r;
    REQUIRE_NOTHROW(r = h.driver().execute(a.env, a.lease, c));
    return r;
}

inline command sh(std::string script, std::vector<std::string> args = {}) {
    command c;
    c.program = "sh";
    c.args = {"-c", std::move(script), "sh"};
    for (auto& a : args) c.args.push_back(std::move(a));
    c.timeout = std::chrono::seconds(60);
    return c;
}

inline std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

template <class H>
auto leftovers_of(H& h) {
    if constexpr (has_leftovers<H>) return h.leftovers();
    else return 0;
}

}  // namespace detail

// ---- the rules -----------------------------------------------------------------------------------

/// The driver passes every requirement check, names itself, and serves the harness's environment.
template <driver_harness H>
void identity() {
    using D = driver_t<H>;
    static_assert(verified_driver<D>);
    H h;
    CHECK_FALSE(std::string_view(D::name).empty());
    CHECK(h.environment().driver == D::family);
}

/// acquire, then release the lease built from the grant into each end status: no throw, no failed
/// cleanup.
template <driver_harness H>
void acquire_release_round_trip() {
    H h;
    for (auto to : {lease_status::released, lease_status::failed, lease_status::expired}) {
        auto const a = detail::acquire_one(h);
        detail::release_expecting_success(h, a, to);
    }
}

/// release twice on one lease, and release a lease this driver object never made (a row written by
/// another process, whose driver was another harness's): no throw.
template <driver_harness H>
void release_is_idempotent_and_safe_on_orphans() {
    H h;
    auto const a = detail::acquire_one(h);
    detail::release_expecting_success(h, a);
    CHECK_NOTHROW((void)h.driver().release(a.env, a.lease, lease_status::released));

    H other;
    auto const foreign = detail::acquire_one(other);
    auto orphan = foreign.lease;
    orphan.id = detail::next_lease_id();
    CHECK_NOTHROW((void)h.driver().release(foreign.env, orphan, lease_status::failed));
    detail::release_expecting_success(other, foreign);
}

/// What acquire created is gone after release (and after destroy, when the driver has it).
template <driver_harness H>
void cleans_up_what_it_acquired() {
    H h;
    if constexpr (!detail::has_leftovers<H>) {
        SUCCEED("the harness has no leftovers(): nothing to compare");
    } else {
        auto const before = h.leftovers();
        for (int i = 0; i < 3; ++i) detail::release_expecting_success(h, detail::acquire_one(h));
        CHECK(h.leftovers() == before);
        if constexpr (driver_with_destroy<driver_t<H>>) {
            auto const a = detail::acquire_one(h);
            CHECK_NOTHROW((void)h.driver().destroy(a.env, a.lease));
            CHECK(h.leftovers() == before);
        }
    }
}

/// acquire of an environment the driver cannot use throws (the orchestrator turns it into
/// lease_acquire_failed) and leaves nothing behind; probe says not ok, with a summary.
template <driver_harness H>
void refuses_an_unusable_environment() {
    H h;
    if constexpr (!detail::has_unusable_environment<H>) {
        SUCCEED("the harness has no unusable_environment()");
    } else {
        auto const before = detail::leftovers_of(h);
        environment const bad = h.unusable_environment();
        CHECK_THROWS((void)h.driver().acquire(detail::request_for(bad)));
        CHECK(detail::leftovers_of(h) == before);
        if constexpr (driver_with_probe<driver_t<H>>) {
            auto const r = h.driver().probe(bad);
            CHECK_FALSE(r.ok);
            CHECK_FALSE(r.summary.empty());
        }
    }
}

/// resume of a live lease hands back its provider lease id; destroy does not throw.
template <driver_harness H>
void resume_and_destroy() {
    using D = driver_t<H>;
    H h;
    if constexpr (!driver_with_resume<D> && !driver_with_destroy<D>) {
        SUCCEED("the driver models neither resume nor destroy");
    } else {
        auto const a = detail::acquire_one(h);
        if constexpr (driver_with_resume<D>) {
            lease_grant g;
            REQUIRE_NOTHROW(g = h.driver().resume(a.env, a.lease));
            CHECK(g.provider_lease_id == a.lease.provider_lease_id);
        }
        if constexpr (driver_with_destroy<D>) {
            release_outcome out;
            REQUIRE_NOTHROW(out = h.driver().destroy(a.env, a.lease));
            if (out.cleanup_status) CHECK(*out.cleanup_status == cleanup_status::success);
        } else {
            detail::release_expecting_success(h, a);
        }
    }
}

/// realize_workspace returns a cwd; with execute, commands run with that cwd are in it.
template <driver_harness H>
void realize_workspace() {
    using D = driver_t<H>;
    H h;
    if constexpr (!driver_with_realize_workspace<D>) {
        SUCCEED("the driver does not model realize_workspace");
    } else {
        auto const a = detail::acquire_one(h);
        workspace_realization w;
        REQUIRE_NOTHROW(w = h.driver().realize_workspace(detail::realize_request_for(h, a.env, a.lease)));
        CHECK_FALSE(w.cwd.empty());
        if constexpr (detail::runs_commands<H>()) {
            // Both answers come from the environment, so the check holds on a remote host too.
            auto in = detail::sh("pwd -P");
            in.cwd = w.cwd;
            auto const there = detail::run(h, a, in);
            auto const expected = detail::run(h, a, detail::sh("cd \"$1\" && pwd -P", {w.cwd}));
            CHECK(there.exit_code == 0);
            CHECK(expected.exit_code == 0);
            CHECK(detail::trimmed(there.stdout_text) == detail::trimmed(expected.stdout_text));
        }
        detail::release_expecting_success(h, a);
    }
}

/// Exit codes are results, stdout and stderr are kept apart, argv is not re-split, env and stdin
/// arrive.
template <driver_harness H>
void execute_results() {
    using D = driver_t<H>;
    H h;
    if constexpr (!driver_with_execute<D>) {
        SUCCEED("the driver does not model execute");
    } else if constexpr (!detail::runs_commands<H>()) {
        auto const a = detail::acquire_one(h);
        auto const r = detail::run(h, a, detail::sh("true"));
        CHECK_FALSE(r.timed_out);
        CHECK_FALSE(r.cancelled);
        detail::release_expecting_success(h, a);
    } else {
        auto const a = detail::acquire_one(h);
        auto const ok = detail::run(h, a, {.program = "true"});
        CHECK(ok.exit_code == 0);
        CHECK_FALSE(ok.signal.has_value());
        CHECK_FALSE(ok.timed_out);
        auto const three = detail::run(h, a, detail::sh("exit 3"));
        CHECK(three.exit_code == 3);
        auto const both = detail::run(h, a, detail::sh("printf out; printf err >&2"));
        CHECK(both.stdout_text == "out");
        CHECK(both.stderr_text == "err");
        // Each argument arrives as it was given: no shell on the way re-splits or expands it.
        auto const argv = detail::run(
            h, a, {.program = "printf", .args = {"%s|", "a b", "it's", "x;y", "$HOME", "\"q\"", "l1\nl2"}});
        CHECK(argv.stdout_text == "a b|it's|x;y|$HOME|\"q\"|l1\nl2|");
        auto with_env = detail::sh("printf %s \"$BERTH_KIT_VALUE\"");
        with_env.env = {{"BERTH_KIT_VALUE", "v 1; $x 'q'"}};
        CHECK(detail::run(h, a, with_env).stdout_text == "v 1; $x 'q'");
        command cat{.program = "cat"};
        cat.stdin_data = std::string("line one\nline two\n");
        CHECK(detail::run(h, a, cat).stdout_text == "line one\nline two\n");
        detail::release_expecting_success(h, a);
    }
}

/// A command past its timeout is killed and says `timed_out`, long before it would have ended.
template <driver_harness H>
void execute_timeout() {
    H h;
    if constexpr (!detail::runs_commands<H>()) {
        SUCCEED("the driver does not run real commands");
    } else {
        auto const a = detail::acquire_one(h);
        command c{.program = "sleep", .args = {"60"}};
        c.timeout = std::chrono::milliseconds(300);
        auto const start = std::chrono::steady_clock::now();
        auto const r = detail::run(h, a, c);
        auto const took = std::chrono::steady_clock::now() - start;
        CHECK(r.timed_out);
        CHECK(r.exit_code != 0);
        // Generous: the bound is the 60 s sleep, not the machine's load.
        CHECK(took < std::chrono::seconds(45));
        detail::release_expecting_success(h, a);
    }
}

/// `on_output` sees every chunk, per stream; the chunks add up to the captured text.
template <driver_harness H>
void execute_streams_output() {
    H h;
    if constexpr (!detail::runs_commands<H>()) {
        SUCCEED("the driver does not run real commands");
    } else {
        auto const a = detail::acquire_one(h);
        std::mutex mu;
        std::string out, err;
        auto c = detail::sh("echo one; echo two >&2; echo three; echo four >&2");
        c.on_output = [&](output_stream s, std::string_view chunk) {
            std::lock_guard lk(mu);
            (s == output_stream::stdout_stream ? out : err).append(chunk);
        };
        auto const r = detail::run(h, a, c);
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text == "one\nthree\n");
        CHECK(r.stderr_text == "two\nfour\n");
        std::lock_guard lk(mu);
        CHECK(out == r.stdout_text);
        CHECK(err == r.stderr_text);
        detail::release_expecting_success(h, a);
    }
}

/// Output beyond `max_output_bytes` is dropped and flagged; the command still ends normally.
template <driver_harness H>
void execute_bounds_output() {
    H h;
    if constexpr (!detail::runs_commands<H>()) {
        SUCCEED("the driver does not run real commands");
    } else {
        auto const a = detail::acquire_one(h);
        auto c = detail::sh("i=0; while [ $i -lt 200 ]; do printf 0123456789; i=$((i+1)); done");
        c.max_output_bytes = 100;
        auto const r = detail::run(h, a, c);
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text.size() <= 100);
        CHECK(r.stdout_truncated);
        CHECK_FALSE(r.stderr_truncated);
        detail::release_expecting_success(h, a);
    }
}

/// probe is noexcept and answers ok on the harness's environment.
template <driver_harness H>
void probe_never_throws() {
    using D = driver_t<H>;
    H h;
    if constexpr (!driver_with_probe<D>) {
        SUCCEED("the driver does not model probe");
    } else {
        static_assert(noexcept(std::declval<D const&>().probe(std::declval<environment const&>())));
        auto const r = h.driver().probe(h.environment());
        INFO(r.summary);
        CHECK(r.ok);
        CHECK_FALSE(r.summary.empty());
    }
}

/// execution_target names the environment and the lease it was asked for.
template <driver_harness H>
void execution_target() {
    using D = driver_t<H>;
    H h;
    if constexpr (!driver_with_execution_target<D>) {
        SUCCEED("the driver does not model execution_target");
    } else {
        auto const a = detail::acquire_one(h);
        berth::execution_target t;
        REQUIRE_NOTHROW(t = h.driver().execution_target(a.env, a.lease));
        CHECK_FALSE(t.kind.empty());
        CHECK(t.environment_id == a.env.id);
        CHECK(t.lease_id == a.lease.id);
        detail::release_expecting_success(h, a);
    }
}

/// 4 threads acquire, execute (when the driver runs commands) and release at once through one
/// driver: every call succeeds, and nothing is left behind.
template <driver_harness H>
void concurrent_calls() {
    H h;
    auto const before = detail::leftovers_of(h);
    constexpr int threads = 4, rounds = 3;
    std::mutex mu;
    std::vector<std::string> failures;
    auto const& d = h.driver();
    environment const env = h.environment();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            // No Catch2 assertion in a thread (Catch2 2 is not thread-safe): collect, check after.
            auto fail = [&](std::string what) {
                std::lock_guard lk(mu);
                failures.push_back("thread " + std::to_string(t) + ": " + std::move(what));
            };
            for (int i = 0; i < rounds; ++i) {
                try {
                    auto lease = detail::lease_from(env, d.acquire(detail::request_for(env)), detail::next_lease_id());
                    if constexpr (driver_with_realize_workspace<driver_t<H>>) detail::realize_onto(h, d, env, lease);
                    if constexpr (detail::runs_commands<H>()) {
                        auto const r = d.execute(env, lease, {.program = "printf", .args = {"%s", std::to_string(t)}});
                        if (r.exit_code != 0 || r.stdout_text != std::to_string(t))
                            fail("execute printed '" + r.stdout_text + "'");
                    }
                    auto const out = d.release(env, lease, lease_status::released);
                    if (out.failure_reason) fail("release: " + *out.failure_reason);
                } catch (std::exception const& e) {
                    fail(e.what());
                }
            }
        });
    }
    for (auto& w : workers) w.join();
    CHECK(failures == std::vector<std::string>{});
    CHECK(detail::leftovers_of(h) == before);
}

}  // namespace berth::testing::driver_conformance

// ---- the Catch2 registration ---------------------------------------------------------------------

/// The kit's rules: X(harness, tags, rule, description) for each.
#define BERTH_DRIVER_CONFORMANCE_DETAIL_FOR_EACH(X, harness, tags)                                                     \
    X(harness, tags, identity, "the driver passes its requirement checks and serves the environment")                  \
    X(harness, tags, acquire_release_round_trip, "acquire then release into each end status")                          \
    X(harness, tags, release_is_idempotent_and_safe_on_orphans, "release twice, and release an orphan")                \
    X(harness, tags, cleans_up_what_it_acquired, "nothing acquire created outlives release or destroy")               \
    X(harness, tags, refuses_an_unusable_environment, "an unusable environment: acquire throws, probe is not ok")      \
    X(harness, tags, resume_and_destroy, "resume hands back the provider lease, destroy does not throw")               \
    X(harness, tags, realize_workspace, "realize_workspace returns the cwd commands run in")                           \
    X(harness, tags, execute_results, "execute: exit codes, stdout and stderr, argv, env, stdin")                      \
    X(harness, tags, execute_timeout, "execute: a command past its timeout is killed and says so")                     \
    X(harness, tags, execute_streams_output, "execute: on_output sees every chunk of each stream")                     \
    X(harness, tags, execute_bounds_output, "execute: output beyond max_output_bytes is dropped and flagged")          \
    X(harness, tags, probe_never_throws, "probe is noexcept and ok on a usable environment")                          \
    X(harness, tags, execution_target, "execution_target names the environment and the lease")                         \
    X(harness, tags, concurrent_calls, "4 threads acquire, execute and release through one driver")

#define BERTH_DRIVER_CONFORMANCE_DETAIL_TEST_CASE(harness, tags, rule, description)                                    \
    TEST_CASE(#harness ": " description, tags "[driver_conformance]") {                                                \
        ::berth::testing::driver_conformance::rule<harness>();                                                         \
    }

#define BERTH_DRIVER_CONFORMANCE_DETAIL_SECTION(harness, tags, rule, description)                                      \
    SECTION(description) { ::berth::testing::driver_conformance::rule<harness>(); }

/// Registers one Catch2 TEST_CASE per rule of the driver contract for `harness` (a single
/// identifier naming a driver_harness), tagged `tags` (a string literal) and `[driver_conformance]`.
/// Use at namespace scope, once per harness.
#define BERTH_DRIVER_CONFORMANCE_TESTS(harness, tags)                                                                  \
    BERTH_DRIVER_CONFORMANCE_DETAIL_FOR_EACH(BERTH_DRIVER_CONFORMANCE_DETAIL_TEST_CASE, harness, tags)

namespace berth::testing::driver_conformance {

/// Every rule of the kit, each in its own SECTION, for use inside a test case of your own.
template <driver_harness H>
void run_all() {
    BERTH_DRIVER_CONFORMANCE_DETAIL_FOR_EACH(BERTH_DRIVER_CONFORMANCE_DETAIL_SECTION, H, "")
}

}  // namespace berth::testing::driver_conformance
