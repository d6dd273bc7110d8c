// The model: described enums (strict strings), records (JSON round trip, fmt), timestamps, the
// lease status table, nullable.
#include <catch2/catch.hpp>

#include <berth/model/activity.hpp>
#include <berth/model/ids.hpp>
#include <berth/model/environment.hpp>
#include <berth/model/format.hpp>
#include <berth/model/json.hpp>
#include <berth/model/lease.hpp>
#include <berth/model/lease_transitions.hpp>
#include <berth/model/nullable.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>
#include <type_traits>

using namespace berth;

TEST_CASE("enums carry upstream's exact values", "[model]") {
    auto names = [](auto e) {
        std::vector<std::string> v;
        boost::mp11::mp_for_each<boost::describe::describe_enumerators<decltype(e)>>(
            [&](auto D) { v.emplace_back(D.name); });
        return v;
    };
    CHECK(names(driver_kind{}) == std::vector<std::string>{"local", "ssh", "sandbox", "plugin"});
    CHECK(names(environment_status{}) == std::vector<std::string>{"active", "archived"});
    CHECK(names(lease_status{}) ==
          std::vector<std::string>{"active", "released", "expired", "failed", "retained", "pending_cleanup"});
    CHECK(names(lease_policy_kind{}) == std::vector<std::string>{"ephemeral", "reuse_by_environment",
                                                                 "reuse_by_execution_workspace", "retain_on_failure"});
    CHECK(names(cleanup_status{}) == std::vector<std::string>{"pending", "success", "failed"});
    CHECK(names(environment_error_code{}) ==
          std::vector<std::string>{"environment_not_found", "environment_inactive", "unsupported_environment",
                                   "unsupported_adapter_environment", "probe_failed", "lease_acquire_failed",
                                   "workspace_realization_failed", "transport_resolution_failed",
                                   "lease_release_failed", "lease_cleanup_failed"});
}

TEST_CASE("string to enum is strict and names the field and the value", "[model]") {
    CHECK(parse_enum<lease_status>("pending_cleanup") == lease_status::pending_cleanup);
    CHECK(to_string(lease_status::pending_cleanup) == std::string("pending_cleanup"));
    CHECK_FALSE(try_parse_enum<lease_status>("Active").has_value());  // case matters
    CHECK_FALSE(try_parse_enum<lease_status>("").has_value());
    CHECK_THROWS_WITH(parse_enum<environment_status>("paused"), "Unexpected environment status value: paused");
    CHECK_THROWS_WITH(parse_enum<lease_status>("bogus"), "Unexpected environment lease status value: bogus");
    CHECK_THROWS_WITH(parse_enum<driver_kind>("docker"), "Unexpected environment driver value: docker");
    CHECK_THROWS_AS(parse_enum<cleanup_status>("done"), parse_error);
    try {
        (void)parse_enum<lease_policy_kind>("sticky");
        FAIL("no throw");
    } catch (parse_error const& e) {
        CHECK(e.field() == "environment lease policy");
        CHECK(e.value() == "sticky");
    }
}

TEST_CASE("timestamps are ISO-8601 UTC with microseconds and parse strictly", "[model]") {
    auto const t = timestamp::from_micros(1'767'225'600'123'456);  // 2026-01-01T00:00:00.123456Z
    CHECK(to_iso8601(t) == "2026-01-01T00:00:00.123456Z");
    CHECK(parse_iso8601("2026-01-01T00:00:00.123456Z") == t);
    CHECK(parse_iso8601("2026-01-01 00:00:00.123456+00:00") == t);
    CHECK(parse_iso8601("2026-01-01T00:00:00Z") == timestamp::from_micros(1'767'225'600'000'000));
    CHECK(parse_iso8601("2026-01-01T00:00:00.1Z") == timestamp::from_micros(1'767'225'600'100'000));
    CHECK(to_iso8601(timestamp::from_micros(0)) == "1970-01-01T00:00:00.000000Z");
    for (auto bad : {"", "2026-01-01", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
                     "2026-01-01T00:00:00", "2026-01-01T00:00:00+02:00", "2026-01-01T00:00:00.Z", "yesterday"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_iso8601(bad), parse_error);
    }
    // Text order is time order, so stores can index the text form.
    auto const a = to_iso8601(timestamp::from_micros(999'999));
    auto const b = to_iso8601(timestamp::from_micros(1'000'000));
    CHECK(a < b);
}

namespace {
environment_lease sample_lease() {
    environment_lease l;
    l.id = "L1";
    l.company_id = "C1";
    l.environment_id = "E1";
    l.issue_id = "I-7";
    l.heartbeat_run_id = "R1";
    l.status = lease_status::retained;
    l.lease_policy = lease_policy_kind::retain_on_failure;
    l.provider = "local";
    l.acquired_at = timestamp::from_micros(1'767'225'600'000'001);
    l.last_used_at = l.acquired_at + std::chrono::seconds(5);
    l.expires_at = l.acquired_at + std::chrono::hours(1);
    l.failure_reason = "run_failed";
    l.cleanup_status = cleanup_status::success;
    l.metadata = json_object{{"agentId", "A1"}, {"nested", json_object{{"n", 3}}}};
    l.epoch = 4;
    l.created_at = l.acquired_at;
    l.updated_at = l.last_used_at;
    return l;
}
bool same(environment_lease const& a, environment_lease const& b) {
    return boost::json::serialize(to_json(a)) == boost::json::serialize(to_json(b));
}
}  // namespace

TEST_CASE("records round-trip through Boost.JSON, derived from the description", "[model]") {
    auto const l = sample_lease();
    auto const v = boost::json::value_from(l);
    auto const& o = v.as_object();
    // Every described member is a key; enums are strings; timestamps ISO text; nullopt is null.
    CHECK(o.size() == boost::mp11::mp_size<record_members<environment_lease>>::value);
    CHECK(o.at("status") == "retained");
    CHECK(o.at("lease_policy") == "retain_on_failure");
    CHECK(o.at("released_at").is_null());
    CHECK(o.at("expires_at") == "2026-01-01T01:00:00.000001Z");
    CHECK(o.at("epoch") == 4);
    auto const back = boost::json::value_to<environment_lease>(v);
    CHECK(same(back, l));
    CHECK(back.metadata->at("nested").as_object().at("n") == 3);

    environment e{.id = "E1", .company_id = "C1", .name = "Local", .driver = driver_kind::ssh};
    auto const e2 = boost::json::value_to<environment>(boost::json::value_from(e));
    CHECK(e2.driver == driver_kind::ssh);
    CHECK_FALSE(e2.description.has_value());
    CHECK_FALSE(e2.metadata.has_value());

    activity_event ev{.id = "V1", .action = "environment.lease_acquired", .details = {{"k", "v"}}};
    CHECK(boost::json::value_to<activity_event>(boost::json::value_from(ev)).details.at("k") == "v");
}

TEST_CASE("reading a record reports the field and the value that are wrong", "[model]") {
    auto v = boost::json::value_from(sample_lease());
    SECTION("unknown enum string") {
        v.as_object()["status"] = "bogus";
        CHECK_THROWS_WITH(boost::json::value_to<environment_lease>(v),
                          "Unexpected environment lease status value: bogus (field environment_lease.status)");
    }
    SECTION("wrong type") {
        v.as_object()["epoch"] = "four";
        CHECK_THROWS_WITH(boost::json::value_to<environment_lease>(v),
                          Catch::Contains("environment_lease.epoch") && Catch::Contains("\"four\""));
    }
    SECTION("bad timestamp") {
        v.as_object()["acquired_at"] = "last tuesday";
        CHECK_THROWS_WITH(boost::json::value_to<environment_lease>(v),
                          Catch::Contains("environment_lease.acquired_at") && Catch::Contains("last tuesday"));
    }
    SECTION("missing required field") {
        v.as_object().erase("company_id");
        CHECK_THROWS_WITH(boost::json::value_to<environment_lease>(v),
                          Catch::Contains("environment_lease.company_id"));
    }
    SECTION("absent optional fields read as null, unknown keys are ignored") {
        v.as_object().erase("expires_at");
        v.as_object()["added_by_a_newer_berth"] = true;
        auto const l = boost::json::value_to<environment_lease>(v);
        CHECK_FALSE(l.expires_at.has_value());
        CHECK(l.epoch == 4);
    }
    SECTION("negative epoch is out of range") {
        v.as_object()["epoch"] = -1;
        CHECK_THROWS_AS(boost::json::value_to<environment_lease>(v), parse_error);
    }
}

TEST_CASE("records and enums format with fmt", "[model]") {
    CHECK(fmt::format("{}", lease_status::pending_cleanup) == "pending_cleanup");
    CHECK(fmt::format("[{:>8}]", environment_status::active) == "[  active]");
    CHECK(fmt::format("{}", timestamp::from_micros(0)) == "1970-01-01T00:00:00.000000Z");
    auto const s = fmt::format("{}", sample_lease());
    CHECK_THAT(s, Catch::StartsWith("environment_lease{id: \"L1\", company_id: \"C1\""));
    CHECK_THAT(s, Catch::Contains("status: retained") && Catch::Contains("released_at: null") &&
                      Catch::Contains("metadata: {\"agentId\":\"A1\"") && Catch::Contains("epoch: 4"));
}

TEST_CASE("the lease status table", "[model]") {
    using enum lease_status;
    std::set<std::pair<lease_status, lease_status>> allowed{
        {active, released}, {active, expired},   {active, failed},          {active, retained},
        {active, pending_cleanup}, {retained, active}, {retained, released}, {retained, expired},
        {retained, pending_cleanup}, {pending_cleanup, expired}, {pending_cleanup, failed}};
    for (auto from : {active, released, expired, failed, retained, pending_cleanup})
        for (auto to : {active, released, expired, failed, retained, pending_cleanup}) {
            CAPTURE(to_string(from), to_string(to));
            CHECK(can_transition(from, to) == allowed.contains({from, to}));
        }
    CHECK(is_terminal(released));
    CHECK(is_terminal(expired));
    CHECK(is_terminal(failed));
    CHECK_FALSE(is_terminal(retained));
    for (auto s : {active, retained, pending_cleanup}) CHECK(reaches_terminal(s));
    STATIC_REQUIRE(can_transition(retained, active));
    STATIC_REQUIRE_FALSE(can_transition(failed, active));
}

TEST_CASE("nullable must be spelled out", "[model]") {
    STATIC_REQUIRE_FALSE(std::is_default_constructible_v<nullable<std::string>>);
    nullable<std::string> a = std::nullopt;
    nullable<std::string> b = "agent-1";
    CHECK_FALSE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(*b == "agent-1");
    std::optional<std::string> const& o = b;
    CHECK(o == "agent-1");
}

TEST_CASE("new_id: distinct v7 UUIDs across threads and across a fork", "[model][ids]") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        auto const id = berth::new_id();
        REQUIRE(id.size() == 36);
        CHECK(id[14] == '7');                                  // version 7
        CHECK(std::string_view("89ab").find(id[19]) != std::string_view::npos);  // variant 10xx
        for (std::size_t p : {8u, 13u, 18u, 23u}) CHECK(id[p] == '-');
        CHECK(id.find_first_not_of("0123456789abcdef-") == std::string::npos);
        CHECK(seen.insert(id).second);
    }
    std::vector<std::string> from_threads(4);
    {
        std::vector<std::thread> ts;
        for (std::size_t t = 0; t < from_threads.size(); ++t) ts.emplace_back([&, t] { from_threads[t] = berth::new_id(); });
        for (auto& t : ts) t.join();
    }
    for (auto const& id : from_threads) CHECK(seen.insert(id).second);

    // A forked child must not replay the parent's sequence (the engine is per thread and seeded once).
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t const child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto const id = berth::new_id();
        (void)!::write(fds[1], id.data(), id.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    auto const parent_id = berth::new_id();
    char buf[64] = {};
    auto const n = ::read(fds[0], buf, sizeof buf);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(n == 36);
    CHECK(std::string(buf, 36) != parent_id);
    CHECK_FALSE(seen.contains(std::string(buf, 36)));
}

TEST_CASE("new_id: ids carry their creation time and sort by it", "[model][ids]") {
    auto unix_ms = [](std::string const& id) {  // the first 48 bits: 8 + 4 hex digits
        return std::stoull(id.substr(0, 8) + id.substr(9, 4), nullptr, 16);
    };
    auto now_ms = [] {
        return static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                   std::chrono::system_clock::now().time_since_epoch())
                                                   .count());
    };
    auto const before = now_ms();
    auto const first = berth::new_id();
    auto const after = now_ms();
    CHECK(unix_ms(first) >= before);
    CHECK(unix_ms(first) <= after);
    // Ids made a millisecond apart compare in the order they were made, as text and as UUIDs.
    std::vector<std::string> ids{first};
    for (int i = 0; i < 5; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ids.push_back(berth::new_id());
    }
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
}
