#pragma once
// What makes a struct a berth record: it is described with BOOST_DESCRIBE_STRUCT and names itself
// through record_name<T>. JSON (model/json.hpp), fmt (model/format.hpp) and the SQL row mapping
// of the stores are all derived from that description; no record has hand-written per-field code.

#include <boost/describe/class.hpp>    // BOOST_DESCRIBE_STRUCT
#include <boost/describe/members.hpp>  // describe_members, mod_public

#include <boost/json/object.hpp>  // boost::json::object (config and metadata documents)

#include <optional>  // std::optional
#include <string>    // std::string

namespace berth {

/// A JSON object: upstream's `Record<string, unknown>` (config, metadata, details).
using json_object = boost::json::object;

/// The record's name in error messages and, for persisted records, its table's row type.
template <class T>
inline constexpr char const* record_name = nullptr;

/// A described aggregate that names itself through record_name.
template <class T>
concept record = boost::describe::has_describe_members<T>::value && (record_name<T> != nullptr);

/// The public described members of a record, in declaration order.
template <class T>
using record_members = boost::describe::describe_members<T, boost::describe::mod_public>;

}  // namespace berth
