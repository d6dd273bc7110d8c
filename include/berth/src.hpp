#pragma once
// The compiled-once parts of berth and its dependencies. Include this header in exactly one
// translation unit of a program that uses berth (the Beast/JSON convention):
//  - Boost.JSON's implementation, always: berth's own headers never include it, so a program with
//    many TUs links one copy;
//  - with BERTH_SEPARATE_COMPILATION defined (for the whole program: berth/detail/config.hpp),
//    the definitions of berth's non-template functions, which the headers then only declare.
#include <boost/json/src.hpp>

#ifdef BERTH_SEPARATE_COMPILATION
#include <berth/detail/config.hpp>
#include <berth/orchestrator/detail/run_support.hpp>
#include <berth/orchestrator/detail/impl/run_support.hpp>
#include <berth/process/spawn.hpp>
#include <berth/process/impl/spawn.hpp>
#include <berth/drivers/local.hpp>
#include <berth/drivers/impl/local.hpp>
#include <berth/stores/memory.hpp>
#include <berth/workspace/runtime.hpp>
#include <berth/workspace/impl/runtime.hpp>
#include <berth/stores/memory/impl/memory_store.hpp>
#include <berth/stores/memory/impl/runtime_services.hpp>
#include <berth/stores/memory/impl/project_workspaces.hpp>
#endif
