#pragma once
// Boost.JSON's implementation. Include this header in exactly one translation unit of a program
// that uses berth (the Beast/JSON convention): berth's own headers never include it, so a program
// with many TUs links one copy.
#include <boost/json/src.hpp>
