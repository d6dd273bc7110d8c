// The one TU that compiles Boost.JSON and, under BERTH_SEPARATE_COMPILATION, berth's non-template code.
#include <berth/src.hpp>
