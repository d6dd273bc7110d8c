// berth-run as a script uses it: --json prints one document on stdout that parses and says what
// the store says (the lease, the run's events and operations), and the command's own output
// stays out of it.
#include <berth/stores/sqlite.hpp>

#include <catch2/catch.hpp>

#include <berth/model/json.hpp>
#include <berth/process/spawn.hpp>

#include "git_fixture.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <string>
#include <vector>

#ifdef BERTH_RUN_EXE

using namespace std::chrono_literals;

namespace {

berth::command_result berth_run(std::vector<std::string> args) {
    return berth::process::run({.program = BERTH_RUN_EXE, .args = std::move(args), .timeout = 120s},
                               {.inherit_sanitized_environment = true});
}

boost::json::object parse_document(berth::command_result const& r) {
    INFO("stdout: " << r.stdout_text << "\nstderr: " << r.stderr_text);
    boost::system::error_code ec;
    auto doc = boost::json::parse(r.stdout_text, ec);  // the whole of stdout: one document, nothing else
    REQUIRE_FALSE(ec);
    REQUIRE(doc.is_object());
    return doc.as_object();
}

std::vector<std::string> step_names(boost::json::object const& doc) {
    std::vector<std::string> names;
    for (auto const& s : doc.at("steps").as_array()) names.emplace_back(s.at("step").as_string());
    return names;
}

}  // namespace

TEST_CASE("berth-run --json: one document on stdout that matches the store", "[berth_run]") {
    berth::test::temp_dir dir("berth-run-json");
    auto const db = (dir / "runs.db").string();

    auto const r = berth_run({"--json", "--db", db, "--company", "json-co", "--run", "run-json-1", "--", "sh", "-c",
                              "echo to-stdout; echo to-stderr >&2; exit 3"});
    CHECK(r.exit_code == 3);
    auto const doc = parse_document(r);
    CHECK(r.stderr_text.find("to-stdout") != std::string::npos);  // the command's stdout went to stderr
    CHECK(r.stderr_text.find("[berth] execute") != std::string::npos);

    auto store = berth::sqlite_store::open(db);
    auto const leases = store.list_run_leases("run-json-1", {});
    REQUIRE(leases.size() == 1);
    CHECK(doc.at("lease") == berth::to_json(leases.front()));
    CHECK(doc.at("lease").at("status") == "failed");

    boost::json::array events;
    for (auto const& e : store.list_activity({.company_id = "json-co", .run_id = "run-json-1"}))
        events.push_back(berth::to_json(e));
    REQUIRE(events.size() == 2);
    CHECK(doc.at("events") == events);
    CHECK(events[1].at("action") == "environment.lease_released");

    CHECK(doc.at("run_id") == "run-json-1");
    CHECK(doc.at("exit_code") == 3);
    CHECK(doc.at("outcome") == "failed");
    CHECK(doc.at("error").is_null());
    auto const& command = doc.at("command").as_object();
    CHECK(command.at("exit_code") == 3);
    CHECK(command.at("stdout") == "to-stdout\n");
    CHECK(command.at("stderr") == "to-stderr\n");
    CHECK(step_names(doc) == std::vector<std::string>{"resolve", "acquire", "realize", "execute", "release"});
    CHECK(doc.at("steps").as_array()[3].at("result") == "exit 3");
}

TEST_CASE("berth-run --json: a worktree run's operations match the store", "[berth_run]") {
    berth::test::temp_dir dir("berth-run-json-wt");
    auto const repo = dir / "repo";
    berth::test::make_repo(repo, 1);
    auto const db = (dir / "runs.db").string();

    auto const r = berth_run({"--json", "--db=" + db, "--run=run-json-wt", "--cwd", repo.string(), "--worktree",
                              "--issue", "JSON-1", "--provision", "echo provisioned > provisioned.txt", "--", "cat",
                              "provisioned.txt"});
    CHECK(r.exit_code == 0);
    auto const doc = parse_document(r);
    CHECK(doc.at("command").at("stdout") == "provisioned\n");

    auto store = berth::sqlite_store::open(db);
    boost::json::array ops;
    for (auto const& op : store.list_operations({.heartbeat_run_id = "run-json-wt"})) ops.push_back(berth::to_json(op));
    CHECK(doc.at("operations") == ops);
    std::vector<std::string> phases;
    for (auto const& op : ops) phases.emplace_back(op.at("phase").as_string());
    CHECK(phases == std::vector<std::string>{"worktree_prepare", "workspace_provision", "worktree_cleanup",
                                             "worktree_cleanup"});  // git worktree remove, git branch -d
    CHECK(step_names(doc) == std::vector<std::string>{"resolve", "acquire", "worktree", "execute", "cleanup",
                                                      "release", "op", "op", "op", "op"});  // one per operation; the worktree
    // is removed while the lease still names the run (crash safety: a crash between leaves a lease
    // that recover() ends, and it removes the rest)
    CHECK(std::string(doc.at("steps").as_array()[2].at("text").as_string()).starts_with("creating worktree of "));
}

#ifdef BERTH_TEST_SERVICES
TEST_CASE("berth-run --json --services: the services step comes between realize and execute, and the "
          "command gets their URLs",
          "[berth_run]") {
    berth::test::temp_dir dir("berth-run-json-svc");
    berth::test::write_file(dir / "services.json", R"({"services": [{"name": "web-api", "lifecycle": "ephemeral",
        "command": "while true; do sleep 1; done", "port": {"type": "auto"},
        "expose": {"urlTemplate": "http://127.0.0.1:{{port}}/"}}]})");
    auto const r = berth::process::run(
        {.program = BERTH_RUN_EXE,
         .args = {"--json", "--db", (dir / "runs.db").string(), "--cwd", dir.str(), "--services",
                  (dir / "services.json").string(), "--", "sh", "-c", "echo $BERTH_SERVICE_WEB_API_URL"},
         .env = {{"BERTH_HOME", (dir / "home").string()}},
         .timeout = 120s},
        {.inherit_sanitized_environment = true});
    CHECK(r.exit_code == 0);
    auto const doc = parse_document(r);
    // "services" (what starts), "service" as the supervisor looks at it and when it is up, "services" (the summary).
    CHECK(step_names(doc) == std::vector<std::string>{"resolve", "acquire", "realize", "services", "service", "service",
                                                      "services", "execute", "release"});
    auto const& services = doc.at("services").as_array();
    REQUIRE(services.size() == 1);
    auto const url = std::string(services[0].at("url").as_string());
    CHECK(url.starts_with("http://127.0.0.1:"));
    CHECK(doc.at("command").at("stdout").as_string() == url + "\n");
}

TEST_CASE("berth-run --services: the readiness wait is said before it starts, with its URL and timeout",
          "[berth_run]") {
    berth::test::temp_dir dir("berth-run-ready");
    berth::test::write_file(dir / "services.json", R"({"services": [{"name": "web", "lifecycle": "ephemeral",
        "command": ")" + std::string(BERTH_TEST_HTTP_SERVER) + R"( --delay-ms 300", "port": {"type": "auto"},
        "readiness": {"type": "http", "urlTemplate": "http://127.0.0.1:{{port}}/health", "timeoutSec": 20}}]})");
    auto const r = berth::process::run(
        {.program = BERTH_RUN_EXE,
         .args = {"--json", "--db", (dir / "runs.db").string(), "--cwd", dir.str(), "--services",
                  (dir / "services.json").string(), "--", "true"},
         .env = {{"BERTH_HOME", (dir / "home").string()}},
         .timeout = 120s},
        {.inherit_sanitized_environment = true});
    INFO(r.stderr_text);
    CHECK(r.exit_code == 0);
    auto const doc = parse_document(r);
    auto const& services = doc.at("services").as_array();
    REQUIRE(services.size() == 1);
    auto const url = std::string(services[0].at("url").as_string());
    std::string const waiting = "waiting for service web: GET " + url + " (timeout 20 s)";
    // Printed on stderr when the wait begins (the line precedes its result line), and recorded.
    auto const at = r.stderr_text.find("[berth] ready    " + waiting + "\n");
    REQUIRE(at != std::string::npos);
    CHECK(r.stderr_text.find("[berth] ready    ready (", at) != std::string::npos);
    bool recorded = false;
    for (auto const& step : doc.at("steps").as_array())
        recorded = recorded || (step.at("step") == "ready" && step.at("text") == boost::json::value(waiting) && step.at("result") == "ready");
    CHECK(recorded);
}
#endif

TEST_CASE("berth-run: a failure of berth itself is still one document, with the error", "[berth_run]") {
    berth::test::temp_dir dir("berth-run-json-err");
    auto const r = berth_run({"--json", "--db", (dir / "runs.db").string(), "--environment", "no-such-env", "--",
                              "true"});
    CHECK(r.exit_code == 125);
    auto const doc = parse_document(r);
    CHECK(doc.at("exit_code") == 125);
    CHECK(doc.at("error").at("code") == "environment_not_found");
    CHECK(doc.at("lease").is_null());
}

TEST_CASE("berth-run: usage errors say what to do", "[berth_run]") {
    SECTION("a command without -- gets the hint") {
        auto const r = berth_run({"--db", ":memory:", "ls", "-la"});
        CHECK(r.exit_code == 2);
        CHECK(r.stderr_text.find("\"ls\" is not an option of berth-run. To run it as the command, put it after `--`:\n"
                                 "  berth-run [options] -- ls -la") != std::string::npos);
    }
    SECTION("an unknown option is named") {
        auto const r = berth_run({"--no-such-option", "--", "true"});
        CHECK(r.exit_code == 2);
        CHECK(r.stderr_text.find("--no-such-option") != std::string::npos);
    }
    SECTION("--provision without a workspace to provision") {
        auto const r = berth_run({"--provision", "make deps", "--", "true"});
        CHECK(r.exit_code == 2);
        CHECK(r.stderr_text.find("--provision make deps: needs --worktree or --ssh") != std::string::npos);
    }
    SECTION("--quiet prints only the command's output") {
        auto const r = berth_run({"--quiet", "--db=:memory:", "--", "sh", "-c", "echo only-this"});
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text == "only-this\n");
        CHECK(r.stderr_text.empty());
    }
}

#endif  // BERTH_RUN_EXE
