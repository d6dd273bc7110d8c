#pragma once
// Every concept berth defines, each with its archetype.
#include <berth/concepts/activity_sink.hpp>
#include <berth/concepts/clock.hpp>
#include <berth/concepts/diagnostics.hpp>
#include <berth/concepts/environment_driver.hpp>
#include <berth/concepts/environment_store.hpp>
#include <berth/concepts/execution_workspace_store.hpp>
#include <berth/concepts/lease_policy.hpp>
#include <berth/concepts/lease_store.hpp>
#include <berth/concepts/operation_store.hpp>
#include <berth/concepts/orchestrator_store.hpp>
#include <berth/concepts/persistence_backend.hpp>
#include <berth/concepts/runtime_service_store.hpp>
