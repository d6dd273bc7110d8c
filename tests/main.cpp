// The one TU that holds Catch2's main and Boost.JSON's implementation (both costly to compile).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <berth/src.hpp>
