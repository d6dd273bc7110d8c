// The one TU that holds Catch2's main and Boost.JSON's implementation (both costly to compile).
//
// It also holds a suite-wide guard: a test case that leaves an unreaped child of the test process
// (a zombie) is named on stderr and makes the run fail. ctest runs every test case in a process
// of its own, so CI names the very test that leaked; a whole-suite run names it too, since the
// count is compared before and after each case.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <berth/src.hpp>

#include "proc_stat.hpp"

#include <cstdio>

namespace {

int leaking_cases = 0;

struct no_zombies_left : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    int before = 0;
    void testCaseStarting(Catch::TestCaseInfo const&) override { before = berth::test::zombie_children(); }
    void testCaseEnded(Catch::TestCaseStats const& stats) override {
        if (int const after = berth::test::zombie_children(); after > before) {
            ++leaking_cases;
            std::fprintf(stderr, "berth tests: \"%s\" left %d unreaped child process(es)\n",
                         stats.testInfo.name.c_str(), after - before);
        }
    }
};

}  // namespace

CATCH_REGISTER_LISTENER(no_zombies_left)

int main(int argc, char* argv[]) {
    int const failed = Catch::Session().run(argc, argv);
    return failed != 0 ? failed : (leaking_cases != 0 ? 1 : 0);
}
