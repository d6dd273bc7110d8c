// Compile cost of berth's separate compilation (docs/reference.md, "Compile time"): times the
// compiler (its CPU time, user + system, so that the 2-core machine's other load counts less) on
// three TUs with the build's compiler and -O2 -std=c++20:
//   deps        tests/bench/compile_cost/deps.cpp: the dependencies' headers only (the baseline);
//   use         tests/separate/use.cpp: the four steps of a run through an orchestrator whose stack
//               is extern-instantiated (BERTH_EXTERN_ORCHESTRATOR), under BERTH_SEPARATE_COMPILATION;
//   instantiate tests/separate/instantiate.cpp: the one TU that instantiates that orchestrator;
//   header_only tests/bench/compile_cost/header_only.cpp: use.cpp's steps without either (the
//               "before", compiled once and printed as info: it costs as much as the others together).
// The first three are compiled 3 times (repetitions, interleaved); the ratios are of the medians.
#include "bench_support.hpp"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

/// The children's CPU time so far (user + system), in seconds.
double children_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_CHILDREN, &u);
    auto const s = [](timeval t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
    return s(u.ru_utime) + s(u.ru_stime);
}

void compile(benchmark::State& state, std::string const& source, bool separate) {
    std::string const cmd = std::string(BERTH_BENCH_CXX) + " -O2 -std=c++20 -DFMT_SHARED" +
                            (separate ? " -DBERTH_SEPARATE_COMPILATION" : "") + " -I'" BERTH_BENCH_INCLUDE "'" +
                            " -c -o /dev/null '" + source + "'";
    for (auto _ : state) {
        double const before = children_cpu_seconds();
        int const rc = std::system(cmd.c_str());
        double const cpu = children_cpu_seconds() - before;
        if (rc != 0) {
            state.SkipWithError(("compile failed: " + cmd).c_str());
            return;
        }
        state.SetIterationTime(cpu);
    }
}

void compile_deps(benchmark::State& s) { compile(s, BERTH_BENCH_COMPILE_COST_DIR "/deps.cpp", false); }
void compile_extern_use(benchmark::State& s) { compile(s, BERTH_BENCH_SEPARATE_DIR "/use.cpp", true); }
void compile_instantiate(benchmark::State& s) { compile(s, BERTH_BENCH_SEPARATE_DIR "/instantiate.cpp", true); }
void compile_header_only(benchmark::State& s) { compile(s, BERTH_BENCH_COMPILE_COST_DIR "/header_only.cpp", false); }

// One compile per repetition; three repetitions, whatever --benchmark_min_time says (ctest's short run).
BENCHMARK(compile_deps)->UseManualTime()->Iterations(1)->Repetitions(3)->Unit(benchmark::kMillisecond);
BENCHMARK(compile_extern_use)->UseManualTime()->Iterations(1)->Repetitions(3)->Unit(benchmark::kMillisecond);
BENCHMARK(compile_instantiate)->UseManualTime()->Iterations(1)->Repetitions(3)->Unit(benchmark::kMillisecond);
BENCHMARK(compile_header_only)->UseManualTime()->Iterations(1)->Repetitions(1)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
    return berth::bench::run_and_report(
        argc, argv,
        {
            {"compile_deps_seconds", "compile_deps/iterations:1/repeats:3/manual_time", "", -1, 1e9},
            {"compile_extern_use_seconds", "compile_extern_use/iterations:1/repeats:3/manual_time", "", -1, 1e9},
            {"compile_instantiate_seconds", "compile_instantiate/iterations:1/repeats:3/manual_time", "", -1, 1e9},
            {"compile_header_only_seconds", "compile_header_only/iterations:1/repeats:1/manual_time", "", -1, 1e9},
            {"compile_header_only", "compile_header_only/iterations:1/repeats:1/manual_time",
             "compile_deps/iterations:1/repeats:3/manual_time", -1},
            {"compile_extern_use", "compile_extern_use/iterations:1/repeats:3/manual_time",
             "compile_deps/iterations:1/repeats:3/manual_time", 2.0},
            {"compile_instantiate", "compile_instantiate/iterations:1/repeats:3/manual_time",
             "compile_deps/iterations:1/repeats:3/manual_time", 4.0},
        });
}
