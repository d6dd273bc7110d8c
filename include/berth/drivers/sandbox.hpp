#pragma once
//! @file
//! The sandbox family (upstream §2.3): berth::sandbox_driver hosting sandbox providers, the
//! bubblewrap provider and plugin-backed providers (berth::plugin_sandbox_provider). CMake target
//! `berth::sandbox`. The fake provider for tests is berth/testing/fake_sandbox_provider.hpp; the
//! reuse policies are berth/policies/reuse_*.hpp. Guide: docs/drivers/sandbox.md.

#include <berth/drivers/sandbox/bubblewrap.hpp>  // berth::bubblewrap
#include <berth/drivers/sandbox/config.hpp>      // sandbox_config, parse_sandbox_config
#include <berth/drivers/sandbox/driver.hpp>      // berth::sandbox_driver
#include <berth/drivers/sandbox/plugin_provider.hpp>  // berth::plugin_sandbox_provider (plugin workers)
#include <berth/drivers/sandbox/provider.hpp>    // the sandbox_provider concept
#include <berth/drivers/sandbox/reap.hpp>        // reap_orphan_sandboxes
#include <berth/drivers/sandbox/reuse.hpp>       // the reuse gate, scope record, fingerprints
#include <berth/policies/reuse_by_environment.hpp>          // the reuse policies (their hooks)
#include <berth/policies/reuse_by_execution_workspace.hpp>
