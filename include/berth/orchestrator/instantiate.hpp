#pragma once
//! @file
//! Separate compilation of an orchestrator: instantiate `run_orchestrator<Stack>` once, in one TU,
//! instead of in every TU that uses it (the orchestrator's members are most of a program's compile
//! time). In a header every user includes:
//!
//! @code
//! // app/stack.hpp
//! #include <berth/orchestrator/run_orchestrator.hpp>
//! #include <berth/drivers/local.hpp>
//! #include <berth/stores/memory.hpp>
//! using app_stack = berth::stack<berth::drivers<berth::local_driver>,
//!                                berth::policies<berth::ephemeral>, berth::memory_store>;
//! BERTH_EXTERN_ORCHESTRATOR(app_stack);       // no TU that includes this compiles the members
//! @endcode
//!
//! and in exactly one .cpp:
//!
//! @code
//! #include "app/stack.hpp"
//! #include <berth/orchestrator/instantiate.hpp>
//! BERTH_INSTANTIATE_ORCHESTRATOR(app_stack);  // compiles every member once (those whose
//!                                             // requires-clause the stack satisfies)
//! @endcode
//!
//! The member templates (driver<D>(), workspace_driver()) stay inline and are compiled where used;
//! run_scope and recover() call only the instantiated members. A TU that names the stack without
//! the extern declaration still compiles fine in header-only mode (it instantiates what it uses,
//! as before). Under BERTH_SEPARATE_COMPILATION run_orchestrator.hpp only declares the members,
//! so every stack a program uses is either extern-declared and instantiated once, or used in TUs
//! that include this header.

#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/orchestrator/impl/run_orchestrator.hpp>  // the members (also under BERTH_SEPARATE_COMPILATION)
// The member templates the orchestrator calls that the driver headers included so far only
// declare (under BERTH_SEPARATE_COMPILATION): include this header after the stack's header.
#include <berth/template_definitions.hpp>

// BERTH_EXTERN_ORCHESTRATOR(Stack) is defined by run_orchestrator.hpp (a header that only
// declares does not need this one).

/// Instantiates every member of `run_orchestrator<Stack>` in this TU; once per program per stack.
#define BERTH_INSTANTIATE_ORCHESTRATOR(Stack) template class ::berth::run_orchestrator<Stack>
