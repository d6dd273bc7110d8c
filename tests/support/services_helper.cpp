// berth_test_services_helper — a second berth process for the runtime-service tests.
//
//   berth_test_services_helper reserve-ports DIR COUNT
//       reserves COUNT automatic ports in registry DIR, prints one per line (not released), then
//       "done", then waits to be killed: a reservation lives as long as its process, so the
//       reservers must outlive each other's reservations for the race to be a race.
//   berth_test_services_helper own DB DIR CONFIG CWD
//       opens the SQLite store DB, supervises the services of the JSON file CONFIG in workspace
//       CWD (registry DIR, services left running when this process ends), prints
//       "service <id> <pid> <port>" per service, then "ready", then waits to be killed.
#include <berth/services.hpp>
#include <berth/src.hpp>
#include <berth/stores/sqlite.hpp>

#include <boost/json/parse.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include <unistd.h>

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    std::string const mode = argv[1];
    try {
        if (mode == "reserve-ports" && argc == 4) {
            berth::services::port_reserver ports(argv[2]);
            int const n = std::atoi(argv[3]);
            for (int i = 0; i < n; ++i) std::printf("%lld\n", static_cast<long long>(ports.reserve("helper")));
            std::printf("done\n");
            std::fflush(stdout);
            while (true) ::pause();
        }
        if (mode == "own" && argc == 6) {
            auto store = berth::sqlite_store::open(argv[2]);
            std::ifstream in(argv[4]);
            std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            auto const runtime = berth::services::parse_workspace_runtime(boost::json::parse(text).as_object());
            auto const& services = runtime.services;
            berth::services::supervisor sup{store, {.registry_dir = argv[3], .stop_on_destroy = false}};
            berth::services::service_context ctx;
            ctx.workspace.cwd = argv[5];
            ctx.workspace.project_workspace_id = "pw-helper";
            ctx.workspace.runtime_provision_command = runtime.runtime_provision_command;
            ctx.agent = {.id = "agent-helper", .name = "helper", .company_id = "company-helper"};
            auto const refs = sup.ensure_for_run("run-helper", ctx, services);
            for (auto const& r : refs)
                std::printf("service %s %s %lld\n", r.service.id.c_str(), r.service.provider_ref.value_or("-").c_str(),
                            static_cast<long long>(r.service.port.value_or(0)));
            std::printf("ready\n");
            std::fflush(stdout);
            while (true) ::pause();
        }
    } catch (std::exception const& e) {
        std::fprintf(stderr, "berth_test_services_helper: %s\n", e.what());
        return 1;
    }
    return 2;
}
