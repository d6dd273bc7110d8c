// bench_compile_cost's baseline: the headers of berth's dependencies that its core uses (Boost.JSON,
// Hana, Describe, fmt), and nothing of berth. The other TUs' compile times are ratios to this one.
#include <boost/describe.hpp>
#include <boost/hana.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

int main() { return 0; }
