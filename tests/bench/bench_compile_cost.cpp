// Compile cost of berth's separate compilation (docs/reference.md, "Compile time"): times the
// compiler (its CPU time, user + system, so that the 2-core machine's other load counts less) on
// three TUs with the build's compiler and -O2 -std=c++20:
//   deps        tests/bench/compile_cost/deps.cpp: the dependencies' headers only (the baseline);
//   use         tests/separate/use.cpp: the four steps of a run through an orchestrator whose stack
//               is extern-instantiated (BERTH_EXTERN_ORCHESTRATOR), under BERTH_SEPARATE_COMPILATION;
//   instantiate tests/separate/instantiate.cpp: the one TU that instantiates that orchestrator;
//   header_only tests/bench/compile_cost/header_only.cpp: use.cpp's steps without either (the
//               "before", compiled once and printed as info: it costs as much as the others together).
//
// The statistic: 5 rounds, each compiling deps, use and instantiate once (interleaved, so that a
// slow minute of the machine hits all three), and the ratios of the MINIMUMS. A compile has an
// intrinsic cost and cannot run faster than it; whatever else the shared VM does (other builds,
// a stolen CPU, a cold page cache) only adds, and it adds one-sidedly: single compiles of the
// instantiating TU were measured from 8.3 s to 12.4 s in one session, which moved a median of 3
// by half a unit of the ratio. The minimum of 5 estimates the intrinsic cost; the medians are
// printed as info, to see how noisy the run was.
//
// Run: build-dir/tests/bench/bench_compile_cost [--no-header-only]
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

/// The children's CPU time so far (user + system), in seconds.
double children_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_CHILDREN, &u);
    auto const s = [](timeval t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
    return s(u.ru_utime) + s(u.ru_stime);
}

/// The compiler's CPU seconds on `source`, or a negative value when it failed.
double compile(std::string const& source, bool separate) {
    std::string const cmd = std::string(BERTH_BENCH_CXX) + " -O2 -std=c++20 -DFMT_SHARED" +
                            (separate ? " -DBERTH_SEPARATE_COMPILATION" : "") + " -I'" BERTH_BENCH_INCLUDE "'" +
                            " -c -o /dev/null '" + source + "'";
    double const before = children_cpu_seconds();
    int const rc = std::system(cmd.c_str());
    double const cpu = children_cpu_seconds() - before;
    if (rc != 0) {
        std::fprintf(stderr, "compile failed: %s\n", cmd.c_str());
        return -1;
    }
    return cpu;
}

struct tu {
    char const* name;
    std::string source;
    bool separate;
    std::vector<double> seconds{};
    [[nodiscard]] double min() const { return *std::min_element(seconds.begin(), seconds.end()); }
    [[nodiscard]] double median() const {
        auto v = seconds;
        std::sort(v.begin(), v.end());
        return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    }
};

constexpr int rounds = 5;

}  // namespace

int main(int argc, char** argv) {
    bool header_only = true;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--no-header-only") == 0) header_only = false;

    tu deps{"deps", BERTH_BENCH_COMPILE_COST_DIR "/deps.cpp", false};
    tu use{"extern_use", BERTH_BENCH_SEPARATE_DIR "/use.cpp", true};
    tu inst{"instantiate", BERTH_BENCH_SEPARATE_DIR "/instantiate.cpp", true};
    for (int r = 0; r < rounds; ++r)
        for (tu* t : {&deps, &use, &inst}) {
            double const s = compile(t->source, t->separate);
            if (s < 0) return 1;
            t->seconds.push_back(s);
            std::printf("round %d %-12s %.3f s\n", r + 1, t->name, s);
            std::fflush(stdout);
        }
    double header_only_seconds = -1;
    if (header_only) {
        header_only_seconds = compile(BERTH_BENCH_COMPILE_COST_DIR "/header_only.cpp", false);
        if (header_only_seconds < 0) return 1;
    }

    std::printf("(ratios below: minimums of %d interleaved compiles each; medians as info)\n", rounds);
    for (tu const* t : {&deps, &use, &inst}) {
        std::printf("info compile_%s_seconds = %.3f\n", t->name, t->min());
        std::printf("info compile_%s_median_seconds = %.3f\n", t->name, t->median());
    }
    std::printf("info compile_extern_use_median_ratio = %.3f\n", use.median() / deps.median());
    std::printf("info compile_instantiate_median_ratio = %.3f\n", inst.median() / deps.median());
    if (header_only) {
        std::printf("info compile_header_only_seconds = %.3f\n", header_only_seconds);
        std::printf("info compile_header_only = %.3f\n", header_only_seconds / deps.min());
    }
    std::printf("ratio compile_extern_use = %.3f (target <= 2)\n", use.min() / deps.min());
    std::printf("ratio compile_instantiate = %.3f (target <= 4)\n", inst.min() / deps.min());
    return 0;
}
