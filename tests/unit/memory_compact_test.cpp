// berth::memory_store's compact records (stores/memory/compact.hpp, rows.hpp): every id and text
// comes back exactly as it was given — packed UUIDs, upper-case UUIDs kept as text, short and long
// texts — the packed form orders and hashes as the text does, and a lease or event read back
// from the store equals the one written, JSON members included.

#include <berth/model/ids.hpp>
#include <berth/model/json.hpp>
#include <berth/stores/memory.hpp>
#include <berth/stores/memory/compact.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

using berth::detail::memory::compact_text;
using berth::detail::memory::compact_view;

namespace {

std::vector<std::string> sample_texts() {
    return {berth::new_id(),
            berth::new_id(),
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "0189ABCD-0000-7000-8000-000000000000",  // upper case: kept as text
            "0189abcd-0000-7000-8000-00000000000",   // 35 characters: text
            "0189abcd_0000-7000-8000-000000000000",  // not a dash: text
            "",
            "a",
            "run-12",
            "exactly-16-bytes",
            "seventeen-bytes!!",
            std::string(300, 'x'),
            "0189abcd-0000-7000-8000-000000000000z"};
}

}  // namespace

TEST_CASE("compact_text gives back the exact text, orders and hashes as it", "[memory_store][memory_compact]") {
    auto const texts = sample_texts();
    for (auto const& s : texts) {
        compact_text const t{std::string_view(s)};
        CHECK(t.engaged());
        CHECK(t.str() == s);
        CHECK(t.equals(std::string_view(s)));
        compact_text const copy = t;
        CHECK(copy.str() == s);
        compact_text moved = compact_text(copy);
        CHECK(moved.str() == s);
        CHECK(t.view().hash() == compact_view::of(s).hash());
    }
    CHECK(compact_view::of(texts[0]).uuid);
    CHECK_FALSE(compact_view::of(texts[4]).uuid);
    for (auto const& a : texts)
        for (auto const& b : texts) {
            compact_text const ta{std::string_view(a)}, tb{std::string_view(b)};  // the views point into them
            auto const x = ta.view(), y = tb.view();
            CHECK(((x <=> y) == 0) == (a == b));
            CHECK(((x <=> y) < 0) == (a < b));
            CHECK((x == y) == (a == b));
        }
    CHECK_FALSE(compact_text().engaged());
    CHECK_FALSE(compact_text(std::optional<std::string>()).engaged());
    CHECK(compact_text().equals(std::optional<std::string>()));
    CHECK_FALSE(compact_text(std::string_view("")).equals(std::optional<std::string>()));
}

TEST_CASE("memory_store returns leases and events exactly as written, whatever their ids",
          "[memory_store][memory_compact]") {
    using namespace std::chrono_literals;
    berth::memory_store store;
    auto const t0 = berth::timestamp::from_micros(1767225600000000);
    auto const env = store.ensure_local_environment("company-compact", t0);
    berth::json_object const metadata{{"i", -3},
                                      {"u", std::uint64_t(18446744073709551615ull)},
                                      {"d", 0.1},
                                      {"s", "t\u00e9xt"},
                                      {"nested", berth::json_object{{"a", boost::json::array{1, "two", nullptr}}}}};
    int n = 0;
    for (auto const& id : sample_texts()) {
        if (id.empty()) continue;  // an empty lease id is refused
        auto const at = t0 + std::chrono::seconds(++n);
        auto const& lease_id = id;
        berth::activity_event const event{.id = "ev-" + std::to_string(n) + "-" + id,
                                          .company_id = env.company_id,
                                          .actor_type = "agent",
                                          .actor_id = id,
                                          .action = berth::actions::lease_acquired,
                                          .entity_type = "environment_lease",
                                          .entity_id = lease_id,
                                          .agent_id = std::nullopt,
                                          .run_id = "run-" + id,
                                          .details = metadata,
                                          .created_at = at};
        auto const written = store.acquire_lease(berth::new_lease{.id = lease_id,
                                                                  .company_id = env.company_id,
                                                                  .environment_id = env.id,
                                                                  .execution_workspace_id = id,
                                                                  .heartbeat_run_id = "run-" + id,
                                                                  .provider_lease_id = id + id,
                                                                  .expires_at = at + 1h,
                                                                  .metadata = metadata,
                                                                  .reuse_scope = "scope-" + id,
                                                                  .holder_host = "host",
                                                                  .holder_pid = 42},
                                                 at, event);
        auto const read = store.get_lease(lease_id);
        REQUIRE(read);
        CHECK(berth::to_json(*read) == berth::to_json(written));
        CHECK(read->metadata == std::optional<berth::json_object>(metadata));
        auto const events = store.list_activity({.entity_id = lease_id});
        REQUIRE(events.size() == 1);
        CHECK(berth::to_json(events[0]) == berth::to_json(event));
        auto const by_run = store.list_run_leases("run-" + id, {});
        REQUIRE(by_run.size() == 1);
        CHECK(by_run[0].id == lease_id);
        auto const moved = store.transition_lease(
            {.id = lease_id, .expected_epoch = 1, .to = berth::lease_status::failed, .failure_reason = "why " + id},
            at, std::nullopt);
        auto const after = store.get_lease(lease_id);
        REQUIRE(after);
        CHECK(berth::to_json(*after) == berth::to_json(moved));
        CHECK(after->failure_reason == std::optional<std::string>("why " + id));
    }
    // The list order is the text order of the ids, whatever form each is kept in.
    auto const all = store.list_leases(env.id, {.limit = berth::no_limit});
    CHECK(all.size() == static_cast<std::size_t>(n));
    auto const page = store.list_leases(env.id, {.limit = 3});
    REQUIRE(page.size() == 3);
    auto const rest = store.list_leases(env.id, {.limit = berth::no_limit, .after = berth::lease_cursor_of(page.back())});
    CHECK(rest.size() == all.size() - 3);
}
