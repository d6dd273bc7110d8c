#pragma once
// Definition of berth::local_driver::realize_execution_workspace (declared and documented in
// berth/drivers/local.hpp). A member template: it is compiled where the orchestrator that calls it
// is instantiated. In header-only mode local.hpp includes this file; under
// BERTH_SEPARATE_COMPILATION <berth/template_definitions.hpp> does (through
// <berth/orchestrator/instantiate.hpp>), for a TU that included local.hpp before it. It needs the
// workspace manager (workspace/manager.hpp: the runtime, git, locks), which is why the TUs that
// only use a local_driver do not see it.

#include <berth/drivers/local.hpp>       // the declaration (a no-op when included from there)
#include <berth/workspace/manager.hpp>   // workspace_manager, managed_workspace, workspace_record_context
#include <berth/workspace/runtime.hpp>   // workspace_runtime

namespace berth {

template <workspace_store Store, clock Clock>
managed_workspace local_driver::realize_execution_workspace(Store& store, Clock const& clock,
                                                            realize_workspace_request const& request,
                                                            workspace_record_context const& context) const {
    return workspace_manager<Store, Clock>(store, *workspaces_, clock).realize(request, context);
}

}  // namespace berth
