// No include guard on purpose: each inclusion adds the definitions of the driver headers included
// since the last one (the impl headers have their own #pragma once).
//! @file
//! The definitions of member templates that berth's driver headers only declare under
//! BERTH_SEPARATE_COMPILATION (berth/detail/config.hpp): those that need heavy headers (the
//! local driver's realize_execution_workspace needs the workspace manager), which a TU that only
//! uses a driver should not parse. A TU that instantiates them — the one with
//! BERTH_INSTANTIATE_ORCHESTRATOR, through <berth/orchestrator/instantiate.hpp>, which includes
//! this header — must see them: this header includes the definitions for each driver header
//! included before it (each defines a BERTH_DRIVERS_<NAME>_INCLUDED macro).
//!
//! Include order: the driver headers (the stack's header), then this one. A driver header
//! included after it leaves its member templates undefined in that TU. For the local driver that
//! is a compile error at BERTH_INSTANTIATE_ORCHESTRATOR: "no matching function for call to
//! berth::local_driver::realize_execution_workspace" (its context argument's type is then only
//! declared); a member template whose arguments are all complete would instead be an undefined
//! reference naming it at link time. In header-only mode the driver headers define everything
//! themselves and this header adds nothing.

#if defined(BERTH_DRIVERS_LOCAL_INCLUDED) && defined(BERTH_SEPARATE_COMPILATION)
#include <berth/drivers/impl/local_workspaces.hpp>
#endif
