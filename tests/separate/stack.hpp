#pragma once
// A program built with berth's separate compilation (docs/reference.md, "Compile time"): this
// header names the program's stack and declares its orchestrator extern; instantiate.cpp
// instantiates it once; src.cpp compiles berth's non-template code once; use.cpp only uses it.
// tests/bench/bench_compile_cost.cpp times the compiler on use.cpp and instantiate.cpp.
#include <berth/drivers/local.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/policies/retain_on_failure.hpp>
#include <berth/stores/memory.hpp>

namespace app {
using stack = berth::stack<berth::drivers<berth::local_driver>,
                           berth::policies<berth::ephemeral, berth::retain_on_failure>, berth::memory_store>;
}

BERTH_EXTERN_ORCHESTRATOR(app::stack);  // instantiate.cpp compiles it
