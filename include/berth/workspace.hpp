#pragma once
//! @file
//! Execution workspaces (docs/workspaces.md): realization (project_primary, git_worktree),
//! provisioning, operation records and guarded cleanup.
#include <berth/workspace/error.hpp>
#include <berth/workspace/git.hpp>
#include <berth/workspace/manager.hpp>
#include <berth/workspace/naming.hpp>
#include <berth/workspace/operation_recorder.hpp>
#include <berth/workspace/runtime.hpp>
#include <berth/workspace/types.hpp>
