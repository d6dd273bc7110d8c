// The README's example, verbatim: built and run as a test so the README cannot rot.
#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/stores/memory.hpp>
#include <berth/src.hpp>            // Boost.JSON's implementation: in exactly one TU

#include <cstdio>

using stack = berth::stack<berth::drivers<berth::local_driver>,
                           berth::policies<berth::ephemeral, berth::retain_on_failure>,
                           berth::memory_store>;

int main() {
    berth::memory_store store;
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}};

    berth::run_scope run{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"}};
    run.realize("/tmp");                                       // workspace cwd in the environment
    auto r = run.execute({.program = "uname", .args = {"-a"}});
    std::fputs(r.stdout_text.c_str(), stdout);                 // the command's output, as captured
    std::printf("exit %d, lease %s\n", r.exit_code.value_or(-1), berth::to_string(run.lease().status));
    run.finish(r.exit_code == 0 ? berth::run_outcome::succeeded : berth::run_outcome::failed);
    return r.exit_code.value_or(1);                            // the lease is released either way
}
