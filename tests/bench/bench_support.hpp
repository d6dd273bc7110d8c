#pragma once
// Shared main for berth's benchmarks: runs the registered Google Benchmarks, keeps each one's
// mean real time per iteration (the median over repetitions when --benchmark_repetitions asks for
// several; --benchmark_enable_random_interleaving=true interleaves them), then prints one
// `ratio <metric> = <value> (target <= <t>)` line per metric, last. A ratio compares two
// benchmarks measured in the same run, so the machine's speed cancels out.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace berth::bench {

/// `numerator / denominator` of two benchmarks' times; with an empty denominator the numerator's
/// time in microseconds is printed instead (an absolute target, e.g. "<= 5 us"), or in units of
/// `unit_ns` when given (1e9: seconds; 25e6: a ratio to an absolute 25 ms).
struct ratio_spec {
    std::string metric;
    std::string numerator;
    std::string denominator;
    /// The target the value must not exceed; negative: informational, printed as `info <metric> = v`.
    double target;
    double unit_ns = 1e3;
    /// When set: print this counter of benchmark `numerator` instead of a ratio of times (for a
    /// ratio the benchmark measured itself, alternating both sides in one loop so that both see
    /// the same load); `denominator` is then ignored.
    std::string counter{};
};

/// The median of `v` (the mean of the two middle values for an even count).
inline double median(std::vector<double> v) {
    if (v.empty()) return -1.0;
    std::sort(v.begin(), v.end());
    auto const n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// Per-call times (ns) of two operations measured alternately.
struct paired_times {
    std::vector<double> a{}, b{};
};

/// Runs `a` and `b` once each per iteration of `state`, alternating which goes first, and times
/// every call: both sides see the same load (the VM's neighbours, the page cache, the store's
/// size), so the ratio of their medians is stable where two separately run benchmarks' is not.
template <class A, class B>
paired_times time_alternately(benchmark::State& state, A&& a, B&& b) {
    using clock = std::chrono::steady_clock;
    paired_times t;
    bool a_first = false;
    for (auto _ : state) {
        a_first = !a_first;
        for (int side = 0; side < 2; ++side) {
            bool const is_a = (side == 0) == a_first;
            auto const t0 = clock::now();
            if (is_a) a();
            else b();
            (is_a ? t.a : t.b).push_back(double(std::chrono::nanoseconds(clock::now() - t0).count()));
        }
    }
    return t;
}

class recording_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(std::vector<Run> const& runs) override {
        for (auto const& r : runs)
            if (r.run_type == Run::RT_Iteration && !r.error_occurred && r.iterations > 0) {
                // GetAdjustedRealTime is in the benchmark's time unit; normalise to ns.
                ns_[r.benchmark_name()].push_back(r.GetAdjustedRealTime() * to_ns(r.time_unit));
                for (auto const& [name, c] : r.counters) counters_[r.benchmark_name()][name].push_back(c.value);
            }
        ConsoleReporter::ReportRuns(runs);
    }
    [[nodiscard]] double counter(std::string const& bench, std::string const& name) const {
        auto it = counters_.find(bench);
        if (it == counters_.end()) return -1.0;
        auto jt = it->second.find(name);
        // With --benchmark_repetitions each benchmark reports once per repetition; the ratio uses
        // the median, so that one disturbed repetition (the VM's neighbours, writeback) does not move it.
        return jt == it->second.end() ? -1.0 : median(jt->second);
    }
    [[nodiscard]] double ns(std::string const& name) const {
        auto it = ns_.find(name);
        return it == ns_.end() ? -1.0 : median(it->second);
    }
    /// The most repetitions any benchmark ran (--benchmark_repetitions).
    [[nodiscard]] std::size_t repetitions() const {
        std::size_t n = 0;
        for (auto const& [name, v] : ns_) n = std::max(n, v.size());
        return n;
    }

private:
    static double to_ns(benchmark::TimeUnit u) {
        switch (u) {
            case benchmark::kNanosecond: return 1.0;
            case benchmark::kMicrosecond: return 1e3;
            case benchmark::kMillisecond: return 1e6;
            case benchmark::kSecond: return 1e9;
        }
        return 1.0;
    }
    std::map<std::string, std::vector<double>> ns_;
    std::map<std::string, std::map<std::string, std::vector<double>>> counters_;
};

/// Runs the benchmarks and prints the ratio lines. Returns 1 if a named benchmark did not run.
inline int run_and_report(int argc, char** argv, std::vector<ratio_spec> const& specs) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    recording_reporter rep;
    benchmark::RunSpecifiedBenchmarks(&rep);
    benchmark::Shutdown();
    int rc = 0;
    std::fflush(stdout);
    if (rep.repetitions() > 1)
        std::printf("(ratios below: medians of %zu repetitions)\n", rep.repetitions());
    for (auto const& s : specs) {
        if (!s.counter.empty()) {
            double const v = rep.counter(s.numerator, s.counter);
            if (v < 0) {
                std::printf("%s %s = n/a (benchmark %s or its counter %s did not run)\n",
                            s.target < 0 ? "info" : "ratio", s.metric.c_str(), s.numerator.c_str(), s.counter.c_str());
                rc = 1;
            } else if (s.target < 0) {
                std::printf("info %s = %.3f\n", s.metric.c_str(), v);
            } else {
                std::printf("ratio %s = %.3f (target <= %g)\n", s.metric.c_str(), v, s.target);
            }
            continue;
        }
        double const num = rep.ns(s.numerator);
        double const den = s.denominator.empty() ? s.unit_ns : rep.ns(s.denominator);
        if (num < 0 || den <= 0) {
            std::printf("%s %s = n/a (benchmark %s or %s did not run)\n", s.target < 0 ? "info" : "ratio",
                        s.metric.c_str(), s.numerator.c_str(), s.denominator.c_str());
            rc = 1;
            continue;
        }
        if (s.target < 0) std::printf("info %s = %.3f\n", s.metric.c_str(), num / den);
        else std::printf("ratio %s = %.3f (target <= %g)\n", s.metric.c_str(), num / den, s.target);
    }
    return rc;
}

}  // namespace berth::bench
