// A process that holds a bubblewrap sandbox for the tests: it creates a sandbox under the state
// root it is given, prints the sandbox's id, and runs `sh -c 'sleep "$0"; true' <marker>` in it
// (the marker is a sleep duration, unique per test, so that the test finds the sandbox's
// processes by their command line). The test kills this process with SIGKILL and checks that the
// sandbox dies with it (--die-with-parent).
//
// usage: berth_test_sandbox_helper STATE_ROOT MARKER
#include <berth/src.hpp>

#include <berth/drivers/sandbox/bubblewrap.hpp>

#include <chrono>
#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s STATE_ROOT MARKER\n", argv[0]);
        return 2;
    }
    try {
        berth::bubblewrap const bw{{.state_root = argv[1]}};
        auto const lease = bw.acquire({.company_id = "company-1", .environment_id = "env-1", .run_id = "run-helper"});
        std::printf("%s\n", lease.provider_lease_id->c_str());
        std::fflush(stdout);
        berth::sandbox_lease_params const params{.provider_lease_id = lease.provider_lease_id};
        auto const r = bw.execute(params, {.program = "sh",
                                           .args = {"-c", "sleep \"$0\"; true", argv[2]},
                                           .timeout = std::chrono::seconds(120)});
        return r.exit_code.value_or(1);
    } catch (std::exception const& e) {
        std::fprintf(stderr, "sandbox helper: %s\n", e.what());
        return 1;
    }
}
