#pragma once
// berth — the core, in one include: the model, the concepts, the lease policies, the run
// orchestrator, the local driver, the memory store and execution workspaces (berth/workspace.hpp).
// Optional parts have their own headers and CMake targets (berth/stores/sqlite.hpp → berth::sqlite).
// Include <berth/src.hpp> in exactly one TU of your program (Boost.JSON's implementation).

#include <berth/concepts.hpp>
#include <berth/error.hpp>
#include <berth/model/activity.hpp>
#include <berth/model/driver_io.hpp>
#include <berth/model/enums.hpp>
#include <berth/model/environment.hpp>
#include <berth/model/format.hpp>
#include <berth/model/ids.hpp>
#include <berth/model/json.hpp>
#include <berth/model/lease.hpp>
#include <berth/model/lease_transitions.hpp>
#include <berth/model/workspace.hpp>
#include <berth/orchestrator/error.hpp>
#include <berth/orchestrator/observer.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/orchestrator/run_scope.hpp>
#include <berth/orchestrator/stack.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/policies/retain_on_failure.hpp>
#include <berth/workspace.hpp>
