#pragma once
//! @file
//! berth's separate-compilation switch (Boost.Beast's convention). By default berth is header-only:
//! its non-template functions are `inline` and defined where they are declared. Define
//! `BERTH_SEPARATE_COMPILATION` for the whole program (e.g. `target_compile_definitions(app PRIVATE
//! BERTH_SEPARATE_COMPILATION)`) and those functions are only declared by the headers and defined
//! once, in the one TU that includes <berth/src.hpp>: the other TUs neither parse nor compile them.
//! Templates are not affected; see <berth/orchestrator/instantiate.hpp> for instantiating an
//! orchestrator once.

#ifdef BERTH_SEPARATE_COMPILATION
/// A non-template function declared in a header and defined once in <berth/src.hpp>.
#define BERTH_DECL
#else
/// A non-template function defined in its header (header-only mode).
#define BERTH_DECL inline
#endif
