// What berth-run prints after the run, read back from the store: the lease and the history tables
// on stderr (default), or one JSON document on stdout (--json).
#pragma once

#include "options.hpp"  // options

#include <berth/model/activity.hpp>
#include <berth/model/json.hpp>  // berth::to_json
#include <berth/model/lease.hpp>
#include <berth/model/time.hpp>
#include <berth/model/workspace.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace berth_run {

inline std::string shown(std::optional<std::string> const& s) { return s ? *s : "-"; }
template <class T>
std::string shown(std::optional<T> const& v) {
    return v ? fmt::format("{}", *v) : "-";
}

inline void print_lease(berth::environment_lease const& l) {
    std::vector<std::pair<std::string, std::string>> rows{
        {"id", l.id},
        {"environment", l.environment_id},
        {"run", shown(l.heartbeat_run_id)},
        {"status", berth::to_string(l.status)},
        {"policy", berth::to_string(l.lease_policy)},
        {"provider", shown(l.provider)},
        {"epoch", std::to_string(l.epoch)},
        {"acquired at", berth::to_iso8601(l.acquired_at)},
        {"released at", shown(l.released_at)},
        {"failure reason", shown(l.failure_reason)},
        {"cleanup status", shown(l.cleanup_status)},
    };
    fmt::print(stderr, "\nlease\n");
    for (auto const& [k, v] : rows) fmt::print(stderr, "  {:<15} {}\n", k, v);
}

/// Every lease of the environment (newest first) and every event of the company, oldest first.
inline void print_history(std::vector<berth::environment_lease> const& leases,
                          std::vector<berth::activity_event> const& events, std::string const& db) {
    fmt::print(stderr, "\nleases of this run in {} ({})\n  {:<36}  {:<36}  {:<9}  {:<5}  {}\n", db,
               leases.size(), "lease", "run", "status", "epoch", "acquired at");
    for (auto const& l : leases)
        fmt::print(stderr, "  {:<36}  {:<36}  {:<9}  {:<5}  {}\n", l.id, shown(l.heartbeat_run_id),
                   berth::to_string(l.status), l.epoch, berth::to_iso8601(l.acquired_at));
    fmt::print(stderr, "\nactivity of this run ({} events)\n  {:<27}  {:<27}  {:<8}  {}\n", events.size(), "time",
               "action", "actor", "details");
    for (auto const& e : events)
        fmt::print(stderr, "  {:<27}  {:<27}  {:<8}  {}\n", berth::to_iso8601(e.created_at), e.action, e.actor_type,
                   boost::json::serialize(e.details));
}

/// The run as --json prints it. Records are in berth's own JSON form (berth::to_json, the form
/// the stores persist), so a script can compare them with what it reads from the store.
struct run_document {
    std::string run_id{};
    std::string company_id{};
    std::vector<std::string> argv{};
    int exit_code = 125;
    std::optional<std::string> outcome{};                  // run_outcome, when the command ran
    std::optional<berth::environment_lease> lease{};       // as stored after the release
    std::vector<berth::activity_event> events{};           // of this run, oldest first
    std::vector<berth::workspace_operation> operations{};  // of this run
    boost::json::value command = nullptr;                // how COMMAND ended
    boost::json::value services = boost::json::array{};  // the run's services (--services)
    boost::json::value error = nullptr;                  // {"code", "message"} when berth failed
    std::optional<boost::json::array> destroyed{};        // --destroy-reusable: the leases it ended

    [[nodiscard]] boost::json::object to_json(boost::json::array const& steps) const {
        boost::json::array ev, ops, args;
        for (auto const& e : events) ev.push_back(berth::to_json(e));
        for (auto const& op : operations) ops.push_back(berth::to_json(op));
        for (auto const& a : argv) args.push_back(boost::json::string(a));
        boost::json::object doc{
            {"run_id", run_id},
            {"company_id", company_id},
            {"argv", std::move(args)},
            {"exit_code", exit_code},
            {"outcome", outcome ? boost::json::value(*outcome) : boost::json::value(nullptr)},
            {"lease", lease ? berth::to_json(*lease) : boost::json::value(nullptr)},
            {"events", std::move(ev)},
            {"operations", std::move(ops)},
            {"command", command},
            {"services", services},
            {"steps", steps},
            {"error", error},
        };
        if (destroyed) doc["destroyed"] = *destroyed;
        return doc;
    }
};

}  // namespace berth_run
