// The one TU that compiles app::stack's orchestrator.
#include "stack.hpp"

#include <berth/orchestrator/instantiate.hpp>

BERTH_INSTANTIATE_ORCHESTRATOR(app::stack);
