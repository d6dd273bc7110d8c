// berth-run --services FILE: starts the runtime services of a workspace runtime config for the
// run (berth::services::supervisor), prints the workspace-ready summary on stderr, and releases
// the run's leases when the run ends (stop policies apply; the rest stop with the supervisor).
#pragma once

#include <berth/services/config.hpp>
#include <berth/services/ready_comment.hpp>
#include <berth/services/supervisor.hpp>

#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>

template <class Store>
class run_services {
public:
    run_services(Store& store, std::string const& file, std::string run_id, std::string const& cwd,
                 std::string const& company, std::optional<std::string> const& agent)
        : run_id_(std::move(run_id)),
          supervisor_(store, {.on_log = [](berth::output_stream, std::string_view line) {
                          fmt::print(stderr, "{}\n", line);
                      }}) {
        std::ifstream in(file);
        if (!in) throw std::runtime_error("--services: cannot read " + file);
        std::string const text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        boost::system::error_code ec;
        auto const doc = boost::json::parse(text, ec);
        if (ec) throw std::runtime_error("--services: " + file + " is not JSON: " + ec.message());
        auto const services = berth::services::parse_runtime_services(doc);
        berth::services::service_context ctx;
        ctx.workspace.cwd = cwd;
        ctx.agent = {.id = agent, .name = agent.value_or("berth-run"), .company_id = company};
        auto const refs = supervisor_.ensure_for_run(run_id_, ctx, services);
        fmt::print(stderr, "[berth] {:<8} {} service(s)\n\n{}\n\n", "services", refs.size(),
                   berth::services::build_workspace_ready_comment(ctx.workspace, refs));
    }
    run_services(run_services const&) = delete;
    run_services& operator=(run_services const&) = delete;
    ~run_services() { supervisor_.release_for_run(run_id_); }

private:
    std::string run_id_;
    berth::services::supervisor<Store> supervisor_;
};
