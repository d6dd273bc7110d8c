#pragma once
//! @file
//! berth's runtime services (CMake target `berth::services`, which links OpenSSL's libcrypto and
//! uses Boost.Beast; the core `berth::berth` includes none of this). See docs/services.md.
#include <berth/services/adapter_managed.hpp>
#include <berth/services/config.hpp>
#include <berth/services/context.hpp>
#include <berth/services/desired_state.hpp>
#include <berth/services/identity.hpp>
#include <berth/services/ports.hpp>
#include <berth/services/ready_comment.hpp>
#include <berth/services/registry.hpp>
#include <berth/services/run_environment.hpp>
#include <berth/services/supervisor.hpp>
#include <berth/services/template.hpp>
