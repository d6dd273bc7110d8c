// berth::testing::fake_driver — a product feature for users' own tests, so it is tested like one:
// the capabilities it models, scripted failures (each consumed once, per operation), the call log,
// live provider leases, execute results, shared state across copies, and thread safety.

#include <catch2/catch.hpp>

#include <berth/error.hpp>
#include <berth/testing/fake_driver.hpp>

#include <set>
#include <string>
#include <thread>
#include <vector>

using berth::testing::fake_driver;

namespace {
berth::acquire_request request() {
    return berth::acquire_request{.env = {}, .company_id = "acme", .agent_id = std::string("agent-1")};
}
}  // namespace

static_assert(fake_driver<berth::driver_kind::ssh>::family == berth::driver_kind::ssh &&
              fake_driver<berth::driver_kind::ssh>::name == "fake-ssh");

TEST_CASE("fake_driver: acquire grants distinct provider leases that release and destroy let go", "[fake_driver]") {
    fake_driver<> d;
    auto const a = d.acquire(request());
    auto const b = d.acquire(request());
    CHECK(a.provider == std::optional<std::string>("fake"));
    REQUIRE(a.provider_lease_id);
    CHECK(a.provider_lease_id != b.provider_lease_id);
    CHECK(a.metadata.at("driver") == "plugin");
    CHECK(a.metadata.at("agentId") == "agent-1");
    CHECK(d.shared_state()->live_provider_leases() == std::set<std::string>{*a.provider_lease_id, *b.provider_lease_id});

    berth::environment_lease la{.id = "L1", .provider_lease_id = a.provider_lease_id};
    berth::environment_lease lb{.id = "L2", .provider_lease_id = b.provider_lease_id};
    CHECK(d.release({}, la, berth::lease_status::released).cleanup_status == berth::cleanup_status::success);
    CHECK(d.destroy({}, lb).cleanup_status == berth::cleanup_status::success);
    CHECK(d.shared_state()->live_provider_leases().empty());
    CHECK(d.shared_state()->calls() ==
          std::vector<std::string>{"acquire", "acquire", "release:L1:released", "destroy:L2"});
    // resume makes a provider lease live again
    (void)d.resume({}, la);
    CHECK(d.shared_state()->live_provider_leases() == std::set<std::string>{*a.provider_lease_id});
}

TEST_CASE("fake_driver: a scripted failure hits the next call of that operation only, once", "[fake_driver]") {
    fake_driver<> d;
    auto state = d.shared_state();
    state->fail_next("acquire", "first");
    state->fail_next("acquire", "second");
    state->fail_next("execute", "boom");
    CHECK_THROWS_WITH(d.acquire(request()), "first");
    CHECK_THROWS_WITH(d.acquire(request()), "second");
    CHECK(d.acquire(request()).provider_lease_id);  // the script is used up
    CHECK(state->live_provider_leases().size() == 1);  // failed acquires grant nothing
    CHECK(d.release({}, berth::environment_lease{.id = "x"}, berth::lease_status::failed).cleanup_status);
    CHECK_THROWS_AS(d.execute({}, {}, berth::command{.program = "true"}), berth::error);
    CHECK(d.execute({}, {}, berth::command{.program = "true"}).exit_code == 0);
}

TEST_CASE("fake_driver: execute echoes its argv unless told otherwise, realize and target", "[fake_driver]") {
    fake_driver<berth::driver_kind::ssh> d;
    auto state = d.shared_state();
    auto const r = d.execute({}, {}, berth::command{.program = "echo", .args = {"a b", "c"}});
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_text == "echo a b c");
    state->set_execute_result(berth::command_result{.exit_code = 7, .stderr_text = "no"});
    CHECK(d.execute({}, {}, berth::command{.program = "x"}).exit_code == 7);
    REQUIRE(state->executed().size() == 2);
    CHECK(state->executed()[0].args == std::vector<std::string>{"a b", "c"});

    berth::realize_request rr{.lease = {.id = "L"}, .local_path = "/work"};
    CHECK(d.realize_workspace(rr).cwd == "/work");
    state->set_realized_cwd("/remote");
    CHECK(d.realize_workspace(rr).cwd == "/remote");
    CHECK(d.execution_target(berth::environment{.id = "E"}, berth::environment_lease{.id = "L"}).environment_id == "E");
    CHECK(d.probe(berth::environment{.name = "box"}).summary == "Fake environment box is available.");
}

TEST_CASE("fake_driver: copies share state, many threads acquire at once", "[fake_driver]") {
    fake_driver<> d;
    auto const copy = d;
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) (void)(t % 2 ? d : copy).acquire(request());
        });
    for (auto& t : ts) t.join();
    CHECK(d.shared_state()->live_provider_leases().size() == 400);
    CHECK(copy.shared_state()->calls().size() == 400);
}
