#pragma once
// Definitions of berth::memory_store (declared and documented in berth/stores/memory.hpp, which
// includes this file at its end in header-only mode; <berth/src.hpp> includes it under
// BERTH_SEPARATE_COMPILATION; not meant to be included on its own): the work is done by
// memory_store::tables (impl/tables.hpp), to which the public members forward.
//
// How every write keeps the store unchanged on failure: it checks every rule first, then builds
// the new records, allocates the index nodes it will insert (node_for) and makes room in every
// table and vector it will add to (the steps that may throw), and only then changes the store,
// with steps that cannot throw — or, for the one insertion that may, undoes what came before it.
// A row whose sort key changes leaves its ordered set as a node and goes back as the same node.

#include <berth/error.hpp>                    // store_error, store_errc
#include <berth/model/enum_string.hpp>        // to_string (enums in messages)
#include <berth/model/ids.hpp>                // new_id
#include <berth/model/lease_rules.hpp>        // every lease rule and refusal
#include <berth/stores/memory/impl/tables.hpp>  // memory_store::tables

#include <algorithm>  // std::sort, std::partial_sort, std::make_heap, std::pop_heap, std::push_heap
#include <cstdint>    // std::int64_t, std::uint64_t
#include <limits>     // std::numeric_limits
#include <mutex>      // std::unique_lock
#include <ranges>     // std::ranges::subrange
#include <string>     // std::string, std::to_string
#include <utility>    // std::move

namespace berth::detail::memory {

[[nodiscard]] BERTH_DECL std::string dquoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

/// Makes room for one more element, so that the push_back that follows cannot throw.
template <class Vec>
void reserve_one(Vec& v) {
    if (v.size() == v.capacity()) v.reserve(v.size() < 4 ? 4 : v.size() * 2);
}

/// Newest `updated_at` first, then newest `created_at`, then most recently inserted.
template <class Row>
bool newest_environment_first(Row const* a, Row const* b) noexcept {
    if (a->value.updated_at != b->value.updated_at) return a->value.updated_at > b->value.updated_at;
    if (a->value.created_at != b->value.created_at) return a->value.created_at > b->value.created_at;
    return a->seq > b->seq;
}

/// Whether `l` comes after the cursor in the lease list order.
[[nodiscard]] BERTH_DECL bool after_cursor(lease_row const& l, std::optional<lease_cursor> const& c) noexcept {
    if (!c) return true;
    if (l.last_used_at != c->last_used_at) return l.last_used_at < c->last_used_at;
    return l.id.view() < compact_view::of(c->id);
}

/// Whether `e` comes after the cursor in the activity list order (oldest created_at, then id).
[[nodiscard]] BERTH_DECL bool after_cursor(event_row const& e, std::optional<activity_cursor> const& c) noexcept {
    if (!c) return true;
    if (e.created_at != c->created_at) return e.created_at > c->created_at;
    return e.id.view() > compact_view::of(c->id);
}

template <class Row>
[[nodiscard]] auto values_of(std::vector<Row const*> const& rows) {
    std::vector<decltype(Row::value)> out;
    out.reserve(rows.size());
    for (auto const* r : rows) out.push_back(r->value);
    return out;
}

[[nodiscard]] BERTH_DECL std::vector<environment_lease> leases_of(std::vector<lease_row const*> const& rows) {
    std::vector<environment_lease> out;
    out.reserve(rows.size());
    for (auto const* r : rows) out.push_back(public_lease(*r));
    return out;
}

/// The first `limit` of `rows` in the order `before`, as leases: a partial sort, so a page of a
/// long list costs its length, not a sort of the whole list.
template <class Before>
[[nodiscard]] std::vector<environment_lease> first_page(std::vector<lease_row const*>& rows, std::size_t limit,
                                                        Before before) {
    auto const n = std::min(limit, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(), before);
    rows.resize(n);
    return leases_of(rows);
}

/// The entry for `key` in a compact-keyed index, value-initialised when new. The reference lasts
/// until `table` next grows.
template <class Table>
typename Table::mapped_type& entry(Table& table, compact_view key) {
    if (auto const it = table.find(key); it != table.end()) return it->second;
    return table.try_emplace(compact_text(key)).first->second;
}

/// A page of `rows` in the order `before` (a strict weak order that ends with the insertion
/// order, so it is total): the first `limit` rows after `cursor`, when `has_cursor` (a null cursor
/// is an id the store does not hold: an empty page).
template <class Row, class Before>
[[nodiscard]] auto row_page(std::vector<Row const*>& rows, bool has_cursor, Row const* cursor, std::size_t limit,
                            Before before) {
    if (has_cursor) {
        if (!cursor) rows.clear();
        else std::erase_if(rows, [&](Row const* r) { return !before(cursor, r); });
    }
    auto const n = std::min(limit, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(), before);
    rows.resize(n);
    return values_of(rows);
}

/// The row with id `after` in `table` (nullptr when there is none), for row_page.
template <class Table>
[[nodiscard]] auto const* cursor_row(Table const& table, std::optional<std::string> const& after) {
    using row = typename Table::mapped_type;
    if (!after) return static_cast<row const*>(nullptr);
    auto const it = table.find(std::string_view(*after));
    return it == table.end() ? static_cast<row const*>(nullptr) : &it->second;
}

/// A set node holding `v`, allocated now, so that inserting it later cannot throw.
template <class Set>
[[nodiscard]] typename Set::node_type node_for(typename Set::value_type v) {
    Set one;
    one.insert(v);
    return one.extract(one.begin());
}

/// Visits the elements of several ranges, each already in the order `before`, merged into that
/// order, until `visit` returns false.
template <class It, class Before, class Visit>
void merge_ordered(std::vector<std::pair<It, It>> ranges, Before before, Visit visit) {
    auto later = [&](auto const& a, auto const& b) { return before(*b.first, *a.first); };
    std::erase_if(ranges, [](auto const& r) { return r.first == r.second; });
    std::make_heap(ranges.begin(), ranges.end(), later);
    while (!ranges.empty()) {
        std::pop_heap(ranges.begin(), ranges.end(), later);
        auto& r = ranges.back();
        if (!visit(*r.first)) return;
        if (++r.first == r.second) ranges.pop_back();
        else std::push_heap(ranges.begin(), ranges.end(), later);
    }
}

/// Takes `v` out of `vec` (any order: the index vectors are sorted when read).
template <class Vec, class T>
void unordered_erase(Vec& vec, T v) noexcept {
    for (auto& x : vec)
        if (x == v) {
            x = vec.back();
            vec.pop_back();
            return;
        }
}

}  // namespace berth::detail::memory

namespace berth {

// ---- private helpers ---------------------------------------------------------------------------

BERTH_DECL memory_store::tables::environment_row const* memory_store::tables::find_local(std::string_view company_id,
                                                                    std::string_view except_id) const {
    auto const it = environments_by_company_.find(company_id);
    if (it == environments_by_company_.end()) return nullptr;
    for (auto const* row : it->second)
        if (row->value.driver == driver_kind::local && row->value.id != except_id) return row;
    return nullptr;
}

BERTH_DECL memory_store::tables::lease_set& memory_store::tables::status_set(lease_row const* row) noexcept {
    // Every stored lease is in its environment's entry (acquire_lease made it).
    return leases_by_environment_.find(detail::memory::text_of(row->environment_id))
        ->second.by_status[detail::index(row->status)];
}

BERTH_DECL void memory_store::tables::check_capacity(environment const& env) const {
    auto const limit = lease_rules::max_active_leases(env);
    if (!limit) return;
    std::int64_t active = 0;
    if (auto const it = leases_by_environment_.find(env.id); it != leases_by_environment_.end())
        active = static_cast<std::int64_t>(it->second.by_status[detail::index(lease_status::active)].size());
    lease_rules::check_capacity(env.name, env.id, limit, active);
}

BERTH_DECL void memory_store::tables::check_reuse_scope(std::string_view environment_id,
                                            std::optional<std::string> const& scope) const {
    // Only the environment's active leases can hold a scope; the store compares keys, nothing more.
    if (!scope) return;
    auto const it = leases_by_environment_.find(environment_id);
    if (it == leases_by_environment_.end()) return;
    for (auto const* row : it->second.by_status[detail::index(lease_status::active)])
        if (row->reuse_scope.equals(scope)) lease_rules::check_reuse_scope(environment_id, scope, row->id.str());
}

// Stores an event and indexes it. Strong guarantee: when it throws — conflict for an id already
// logged, or std::bad_alloc — the store has not changed (an index entry it made is empty, and an
// empty entry lists nothing; a pooled name no row uses is harmless).
BERTH_DECL void memory_store::tables::append_event(activity_event const& event) {
    using namespace detail::memory;
    auto const key = compact_view::of(event.id);
    if (events_.contains(key))
        throw store_error(store_errc::conflict, "Activity event " + detail::memory::dquoted(event.id) + " already exists.");
    auto row = std::make_unique<event_row>(compact_event(event, pool_));
    auto node = node_for<event_set>(row.get());
    auto& by_company = entry(events_by_company_, hashed(event.company_id));
    compact_index<event_row>::mapped_type* by_run = nullptr;
    if (row->run_id.engaged()) {
        by_run = &entry(events_by_run_, row->run_id.view());
        reserve_one(*by_run);
    }
    auto& by_entity = entry(events_by_entity_, row->entity_id.view());
    reserve_one(by_entity);
    events_.reserve(events_.size() + 1);
    compact_text id_key(row->id);
    // Nothing below throws.
    event_row* const r = row.get();
    events_.emplace(std::move(id_key), std::move(row));
    by_company.insert(std::move(node));
    if (by_run) by_run->push_back(r);
    by_entity.push_back(r);
}

BERTH_DECL void memory_store::tables::erase_event(event_row* row, bool from_entity_index) noexcept {
    using namespace detail::memory;
    if (auto const it = events_by_company_.find(text_of(row->company_id)); it != events_by_company_.end()) {
        it->second.erase(row);
        if (it->second.empty()) events_by_company_.erase(it);
    }
    if (row->run_id.engaged())
        if (auto const it = events_by_run_.find(row->run_id.view()); it != events_by_run_.end()) {
            unordered_erase(it->second, row);
            if (it->second.empty()) events_by_run_.erase(it);
        }
    if (from_entity_index)
        if (auto const it = events_by_entity_.find(row->entity_id.view()); it != events_by_entity_.end()) {
            unordered_erase(it->second, row);
            if (it->second.empty()) events_by_entity_.erase(it);
        }
    events_.erase(events_.find(row->id.view()));  // frees the row: last
}

BERTH_DECL void memory_store::tables::erase_lease(lease_row* row, prune_result& counts) noexcept {
    using namespace detail::memory;
    if (auto const it = events_by_entity_.find(row->id.view()); it != events_by_entity_.end()) {
        auto& about = it->second;
        for (std::size_t i = 0; i < about.size();) {
            if (text_of(about[i]->entity_type) != lease_entity_type) {
                ++i;
                continue;
            }
            event_row* const ev = about[i];
            about[i] = about.back();
            about.pop_back();
            erase_event(ev, false);
            ++counts.events;
        }
        if (about.empty()) events_by_entity_.erase(it);
    }
    status_set(row).erase(row);
    if (row->heartbeat_run_id.engaged())
        if (auto const it = leases_by_run_.find(row->heartbeat_run_id.view()); it != leases_by_run_.end()) {
            unordered_erase(it->second, row);
            if (it->second.empty()) leases_by_run_.erase(it);
        }
    leases_.erase(leases_.find(row->id.view()));  // frees the row: last
    ++counts.leases;
}

BERTH_DECL void memory_store::tables::insert_environment(environment env) {
    auto& by_company = detail::memory::entry(environments_by_company_, detail::memory::hashed(env.company_id));
    detail::memory::reserve_one(by_company);
    std::string id = env.id;
    auto const [it, inserted] = environments_.try_emplace(std::move(id), environment_row{std::move(env), next_seq_});
    if (!inserted)  // new_id() collided: a broken random source, never expected
        throw store_error(store_errc::conflict,
                          "Environment " + detail::memory::dquoted(it->first) + " already exists.");
    ++next_seq_;
    by_company.push_back(&it->second);
}

// ---- environments ------------------------------------------------------------------------------

BERTH_DECL std::vector<environment> memory_store::tables::list_environments(std::string_view company_id,
                                                                environment_filter const& filter) const {
    std::shared_lock lock(mutex_);
    std::vector<environment_row const*> rows;
    if (auto const it = environments_by_company_.find(company_id); it != environments_by_company_.end()) {
        for (auto const* row : it->second) {
            if (filter.status && row->value.status != *filter.status) continue;
            if (filter.driver && row->value.driver != *filter.driver) continue;
            rows.push_back(row);
        }
    }
    return detail::memory::row_page(rows, filter.after.has_value(), detail::memory::cursor_row(environments_, filter.after),
                                    filter.limit, detail::memory::newest_environment_first<environment_row>);
}

BERTH_DECL std::optional<environment> memory_store::tables::get_environment(std::string_view id) const {
    std::shared_lock lock(mutex_);
    auto const it = environments_.find(id);
    if (it == environments_.end()) return std::nullopt;
    return it->second.value;
}

BERTH_DECL environment memory_store::tables::create_environment(new_environment const& input, timestamp now) {
    using namespace detail::memory;
    if (input.company_id.empty())
        throw store_error(store_errc::invalid_argument, "An environment needs a company id (company_id is empty).");
    if (input.name.empty())
        throw store_error(store_errc::invalid_argument, "An environment needs a name (name is empty).");
    environment env{.id = new_id(),
                    .company_id = input.company_id,
                    .name = input.name,
                    .description = input.description,
                    .driver = input.driver,
                    .status = input.status,
                    .config = input.config,
                    .metadata = input.metadata,
                    .created_at = now,
                    .updated_at = now};
    environment result = env;
    std::unique_lock lock(mutex_);
    if (env.driver == driver_kind::local && find_local(env.company_id))
        throw store_error(store_errc::conflict,
                          "Company " + detail::memory::dquoted(env.company_id) + " already has a local environment.");
    insert_environment(std::move(env));
    return result;
}

BERTH_DECL std::optional<environment> memory_store::tables::update_environment(std::string_view id,
                                                                   environment_patch const& patch, timestamp now) {
    using namespace detail::memory;
    if (patch.name && patch.name->empty())
        throw store_error(store_errc::invalid_argument, "An environment needs a name (name is empty).");
    std::unique_lock lock(mutex_);
    auto const it = environments_.find(id);
    if (it == environments_.end()) return std::nullopt;
    environment next = it->second.value;
    if (patch.name) next.name = *patch.name;
    if (patch.description) next.description = *patch.description;
    if (patch.driver) next.driver = *patch.driver;
    if (patch.status) next.status = *patch.status;
    if (patch.config) next.config = *patch.config;
    if (patch.metadata) next.metadata = *patch.metadata;
    next.updated_at = now;
    if (next.driver == driver_kind::local && find_local(next.company_id, next.id))
        throw store_error(store_errc::conflict,
                          "Company " + detail::memory::dquoted(next.company_id) + " already has a local environment.");
    environment result = next;
    it->second.value = std::move(next);
    return result;
}

BERTH_DECL environment memory_store::tables::ensure_local_environment(std::string_view company_id, timestamp now) {
    if (company_id.empty())
        throw store_error(store_errc::invalid_argument, "An environment needs a company id (company_id is empty).");
    {
        std::shared_lock lock(mutex_);
        if (auto const* row = find_local(company_id)) return row->value;
    }
    environment fresh{.id = new_id(),
                      .company_id = std::string(company_id),
                      .name = default_local_environment_name,
                      .description = std::string(default_local_environment_description),
                      .driver = driver_kind::local,
                      .status = environment_status::active,
                      .config = {},
                      .metadata = json_object{{"managedByBerth", true}, {"defaultForCompany", true}},
                      .created_at = now,
                      .updated_at = now};
    environment result = fresh;
    std::unique_lock lock(mutex_);
    // Another thread may have created it between the two locks: the check is repeated under the
    // exclusive one, which is what makes concurrent callers agree on one row.
    if (auto const* row = find_local(company_id)) return row->value;
    insert_environment(std::move(fresh));
    return result;
}

// ---- leases ------------------------------------------------------------------------------------

BERTH_DECL std::optional<environment_lease> memory_store::tables::get_lease(std::string_view id) const {
    std::shared_lock lock(mutex_);
    auto const it = leases_.find(id);
    if (it == leases_.end()) return std::nullopt;
    return detail::memory::public_lease(*it->second);
}

BERTH_DECL std::vector<environment_lease> memory_store::tables::list_leases(std::string_view environment_id,
                                                                lease_filter const& filter) const {
    using namespace detail::memory;
    std::shared_lock lock(mutex_);
    std::vector<environment_lease> out;
    auto const it = leases_by_environment_.find(environment_id);
    if (it == leases_by_environment_.end() || filter.limit == 0) return out;
    // Each status's set is in list order: a page starts at the cursor's position (a seek) and
    // merges the statuses asked for.
    using iter = lease_set::const_iterator;
    std::vector<std::pair<iter, iter>> ranges;
    for (std::size_t st = 0; st < detail::lease_status_count; ++st) {
        if (filter.status && detail::index(*filter.status) != st) continue;
        auto const& set = it->second.by_status[st];
        auto const from =
            filter.after ? set.upper_bound(list_key{filter.after->last_used_at, compact_view::of(filter.after->id)})
                         : set.begin();
        ranges.emplace_back(from, set.end());
    }
    merge_ordered(std::move(ranges), newest_lease_first{}, [&](lease_row const* row) {
        out.push_back(public_lease(*row));
        return out.size() < filter.limit;
    });
    return out;
}

BERTH_DECL std::vector<environment_lease> memory_store::tables::list_run_leases(std::string_view heartbeat_run_id,
                                                                    lease_filter const& filter) const {
    std::shared_lock lock(mutex_);
    std::vector<lease_row const*> rows;
    if (auto const it = leases_by_run_.find(heartbeat_run_id); it != leases_by_run_.end())
        for (auto const* row : it->second)
            if ((!filter.status || row->status == *filter.status) && detail::memory::after_cursor(*row, filter.after))
                rows.push_back(row);
    return detail::memory::first_page(rows, filter.limit, newest_lease_first{});
}

BERTH_DECL environment_lease memory_store::tables::acquire_lease(new_lease const& input, timestamp now,
                                                     std::optional<activity_event> event) {
    using namespace detail::memory;
    lease_rules::validate(input);
    environment_lease result = lease_rules::make_lease(input, now);  // made before the lock, which it need not hold

    std::unique_lock lock(mutex_);
    auto const env = environments_.find(input.environment_id);
    if (env == environments_.end()) throw lease_rules::environment_not_found(input.environment_id);
    lease_rules::check_company(input, env->second.value.company_id);
    auto const lease_key = compact_view::of(input.id);
    if (leases_.contains(lease_key)) throw lease_rules::lease_exists(input.id);
    check_capacity(env->second.value);
    check_reuse_scope(input.environment_id, input.reuse_scope);

    auto row = std::make_unique<lease_row>(compact_lease(result, pool_));
    auto status_node = node_for<lease_set>(row.get());
    std::optional<expiry_set::node_type> expiry_node;
    if (result.expires_at) expiry_node = node_for<expiry_set>(row.get());
    // Make room everywhere first, so that the steps that change the store cannot throw. (An index
    // entry created here and left empty by a later failure is invisible: it lists nothing.)
    auto& by_environment = entry(leases_by_environment_, hashed(input.environment_id));
    compact_index<lease_row>::mapped_type* by_run = nullptr;
    if (row->heartbeat_run_id.engaged()) {
        by_run = &entry(leases_by_run_, row->heartbeat_run_id.view());
        reserve_one(*by_run);
    }
    leases_.reserve(leases_.size() + 1);
    compact_text id_key(row->id);
    row->seq = next_seq_;
    lease_row* const r = row.get();
    leases_.emplace(std::move(id_key), std::move(row));
    if (event) {
        try {
            append_event(*event);
        } catch (...) {
            leases_.erase(leases_.find(r->id.view()));
            throw;
        }
    }
    ++next_seq_;
    by_environment.by_status[detail::index(lease_status::active)].insert(std::move(status_node));
    if (expiry_node) expiring_.insert(std::move(*expiry_node));
    if (by_run) by_run->push_back(r);
    return result;
}

BERTH_DECL environment_lease memory_store::tables::transition_lease(lease_transition const& t, timestamp now,
                                                        std::optional<activity_event> event) {
    using namespace detail::memory;
    std::unique_lock lock(mutex_);
    auto const it = leases_.find(t.id);
    if (it == leases_.end()) throw lease_rules::lease_not_found(t.id);
    lease_row* const row = it->second.get();
    lease_rules::check_transition(t.id, row->status, row->epoch, t.expected_epoch, t.to);
    environment_lease result = public_lease(*row);
    if (lease_rules::reactivates(row->status, t.to)) {
        // Resuming a retained lease makes it count against capacity and hold its reuse scope again.
        if (auto const env = environments_.find(result.environment_id); env != environments_.end())
            check_capacity(env->second.value);
        check_reuse_scope(result.environment_id, result.reuse_scope);
    }

    // Everything that may throw comes before the first change (strong guarantee); the stored row
    // is then updated in place with non-throwing moves, and its index nodes moved, not reallocated.
    lease_rules::apply_transition(result, t, now);
    compact_text reason(t.failure_reason);
    std::optional<expiry_set::node_type> expiry_node;
    if (t.to == lease_status::active && row->expires_at.micros != optional_time::none)
        expiry_node = node_for<expiry_set>(row);
    if (event) append_event(*event);  // may throw (a duplicate event id too): nothing changed yet
    auto node = status_set(row).extract(row);
    if (row->status == lease_status::active && row->expires_at.micros != optional_time::none) expiring_.erase(row);
    row->status = result.status;
    row->epoch = result.epoch;
    row->last_used_at = now;
    row->updated_at = now;
    row->released_at = compact_time(result.released_at);
    if (reason.engaged()) row->failure_reason = std::move(reason);
    if (t.cleanup_status) row->cleanup_status = t.cleanup_status;
    status_set(row).insert(std::move(node));
    if (expiry_node) expiring_.insert(std::move(*expiry_node));
    return result;
}

BERTH_DECL std::optional<environment_lease> memory_store::tables::update_lease_metadata(std::string_view id,
                                                                            std::optional<json_object> metadata,
                                                                            timestamp now) {
    using namespace detail::memory;
    compact_text packed = compact_json(metadata);  // before the lock
    std::unique_lock lock(mutex_);
    auto const it = leases_.find(id);
    if (it == leases_.end()) return std::nullopt;
    lease_row* const row = it->second.get();
    environment_lease result = public_lease(*row);
    result.metadata = std::move(metadata);
    result.last_used_at = now;
    result.updated_at = now;
    // last_used_at is the list order's key: the row leaves its set while the key changes.
    auto node = status_set(row).extract(row);
    row->metadata = std::move(packed);
    row->last_used_at = now;
    row->updated_at = now;
    status_set(row).insert(std::move(node));
    return result;
}

BERTH_DECL environment_lease memory_store::tables::renew_lease(std::string_view id, std::uint64_t expected_epoch,
                                                   std::optional<timestamp> expires_at, timestamp now) {
    using namespace detail::memory;
    std::unique_lock lock(mutex_);
    auto const it = leases_.find(id);
    if (it == leases_.end()) throw lease_rules::lease_not_found(id);
    lease_row* const row = it->second.get();
    lease_rules::check_renewal(id, row->status, row->epoch, expected_epoch);
    environment_lease result = public_lease(*row);
    result.expires_at = expires_at;
    result.last_used_at = now;
    result.updated_at = now;
    bool const had_expiry = row->expires_at.micros != optional_time::none;
    std::optional<expiry_set::node_type> expiry_node;
    if (had_expiry) expiry_node = expiring_.extract(row);  // the key changes: out, then back
    else if (expires_at) expiry_node = node_for<expiry_set>(row);  // may throw: nothing changed yet
    auto node = status_set(row).extract(row);
    row->expires_at = compact_time(expires_at);
    row->last_used_at = now;
    row->updated_at = now;
    status_set(row).insert(std::move(node));
    if (expires_at && expiry_node) expiring_.insert(std::move(*expiry_node));
    return result;
}

BERTH_DECL std::vector<environment_lease> memory_store::tables::release_leases_for_run(std::string_view heartbeat_run_id,
                                                                           lease_status to, timestamp now) {
    using namespace detail::memory;
    lease_rules::check_release_target(to);
    std::unique_lock lock(mutex_);
    auto const it = leases_by_run_.find(heartbeat_run_id);
    if (it == leases_by_run_.end()) return {};
    std::vector<lease_row*> moved;
    for (auto* row : it->second)
        if (row->status == lease_status::active) moved.push_back(row);
    std::sort(moved.begin(), moved.end(), newest_lease_first{});
    // Every result is built before the first row changes: all of the run's leases move, or none.
    std::vector<environment_lease> result;
    result.reserve(moved.size());
    for (auto const* row : moved) {
        auto& n = result.emplace_back(public_lease(*row));
        n.status = to;
        n.epoch = row->epoch + 1;
        n.last_used_at = now;
        n.updated_at = now;
        n.released_at = lease_rules::released_at_for(to, now);
    }
    for (std::size_t i = 0; i < moved.size(); ++i) {
        lease_row* const row = moved[i];
        auto node = status_set(row).extract(row);
        if (row->expires_at.micros != optional_time::none) expiring_.erase(row);
        row->status = to;
        row->epoch = result[i].epoch;
        row->last_used_at = now;
        row->updated_at = now;
        row->released_at = compact_time(result[i].released_at);
        status_set(row).insert(std::move(node));
    }
    return result;
}

BERTH_DECL std::vector<environment_lease> memory_store::tables::list_expired_leases(timestamp now) const {
    return list_expired_leases(now, list_page{.limit = no_limit});
}

BERTH_DECL std::vector<environment_lease> memory_store::tables::list_expired_leases(timestamp now, list_page const& page) const {
    std::shared_lock lock(mutex_);
    std::vector<environment_lease> out;
    auto from = expiring_.begin();
    if (page.after) {
        // The cursor's place in the sweep's order, whether or not it is still due (the caller
        // has usually just reaped it).
        auto const it = leases_.find(std::string_view(*page.after));
        if (it == leases_.end() || it->second->expires_at.micros == detail::memory::optional_time::none) return out;
        from = expiring_.upper_bound(it->second.get());
    }
    if (page.limit == 0) return out;
    for (auto const* row : std::ranges::subrange(from, expiring_.end())) {
        if (row->expires_at.micros > now.micros()) break;
        out.push_back(detail::memory::public_lease(*row));
        if (out.size() == page.limit) break;
    }
    return out;
}

BERTH_DECL prune_result memory_store::tables::prune_history(history_retention const& r) {
    using namespace detail::memory;
    if (r.batch == 0) throw store_error(store_errc::invalid_argument, "prune_history: batch is 0; it must be positive.");
    prune_result total;
    if (!r.ended_before && !r.keep_per_environment) return total;
    std::vector<std::string> environment_ids;
    {
        std::shared_lock lock(mutex_);
        for (auto const& [key, leases] : leases_by_environment_) environment_ids.emplace_back(key.text);
    }
    std::vector<std::size_t> ended;
    for (std::size_t st = 0; st < detail::lease_status_count; ++st)
        if (is_terminal(static_cast<lease_status>(st))) ended.push_back(st);
    for (auto const& environment_id : environment_ids) {
        // One batch per hold of the lock: runs write between two batches.
        for (;;) {
            std::unique_lock lock(mutex_);
            auto const it = leases_by_environment_.find(environment_id);
            if (it == leases_by_environment_.end()) break;
            auto& sets = it->second.by_status;
            std::vector<lease_row*> doomed;
            if (r.ended_before)  // the oldest end of each ended set
                for (auto st : ended)
                    for (auto at = sets[st].rbegin();
                         at != sets[st].rend() && doomed.size() < r.batch && (*at)->last_used_at < *r.ended_before;
                         ++at)
                        doomed.push_back(*at);
            if (r.keep_per_environment && doomed.size() < r.batch) {
                // Past the newest `keep` ended leases, merged in list order; what the age bound
                // took above is all it could take, so it is skipped here.
                using iter = lease_set::iterator;
                std::vector<std::pair<iter, iter>> ranges;
                for (auto st : ended) ranges.emplace_back(sets[st].begin(), sets[st].end());
                std::size_t seen = 0;
                merge_ordered(std::move(ranges), newest_lease_first{}, [&](lease_row* row) {
                    if (seen++ < *r.keep_per_environment) return true;
                    if (r.ended_before && row->last_used_at < *r.ended_before) return true;
                    doomed.push_back(row);
                    return doomed.size() < r.batch;
                });
            }
            for (auto* row : doomed) erase_lease(row, total);
            if (doomed.size() < r.batch) break;
        }
    }
    return total;
}

BERTH_DECL std::vector<environment_lease> memory_store::tables::list_recoverable_leases(std::string_view holder_host,
                                                                           timestamp now) const {
    std::shared_lock lock(mutex_);
    // The per-environment status sets: only active and pending_cleanup rows are read, however long
    // the history.
    std::vector<lease_row const*> rows;
    for (auto const& [key, leases] : leases_by_environment_) {
        for (auto const* row : leases.by_status[static_cast<std::size_t>(lease_status::pending_cleanup)])
            rows.push_back(row);
        for (auto const* row : leases.by_status[static_cast<std::size_t>(lease_status::active)]) {
            bool const expired = row->expires_at.micros != detail::memory::optional_time::none &&
                                 row->expires_at.micros <= now.micros();
            if ((row->holder_host && *row->holder_host == holder_host) || expired) rows.push_back(row);
        }
    }
    std::sort(rows.begin(), rows.end(), [](lease_row const* a, lease_row const* b) { return a->seq < b->seq; });
    return detail::memory::leases_of(rows);
}

// ---- activity ----------------------------------------------------------------------------------

BERTH_DECL void memory_store::tables::record_activity(activity_event const& event) {
    std::unique_lock lock(mutex_);
    append_event(event);
}

BERTH_DECL std::vector<activity_event> memory_store::tables::list_activity(activity_filter const& filter) const {
    using namespace detail::memory;
    std::shared_lock lock(mutex_);
    auto matches = [&](event_row const& e) {
        if (filter.company_id && text_of(e.company_id) != *filter.company_id) return false;
        if (filter.run_id && !e.run_id.equals(filter.run_id)) return false;
        if (filter.entity_type && text_of(e.entity_type) != *filter.entity_type) return false;
        if (filter.entity_id && !e.entity_id.equals(std::string_view(*filter.entity_id))) return false;
        return after_cursor(e, filter.after);
    };
    std::vector<activity_event> out;
    if (filter.limit == 0) return out;
    if (filter.run_id || filter.entity_id) {
        // A run or an entity has a handful of events: read them all, sort that handful.
        auto const& index = filter.run_id ? events_by_run_ : events_by_entity_;
        auto const it = index.find(compact_view::of(filter.run_id ? *filter.run_id : *filter.entity_id));
        if (it == index.end()) return out;
        std::vector<event_row const*> rows;
        for (auto const* row : it->second)
            if (matches(*row)) rows.push_back(row);
        auto const n = std::min(filter.limit, rows.size());
        std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(),
                          oldest_event_first{});
        out.reserve(n);
        for (std::size_t i = 0; i < n; ++i) out.push_back(public_event(*rows[i]));
        return out;
    }
    // By company (or every company's, merged): each company's events are in list order, so a
    // page starts at the cursor's position. Only an entity type without an id filters as it walks.
    using iter = event_set::const_iterator;
    std::vector<std::pair<iter, iter>> ranges;
    auto add = [&](event_set const& set) {
        ranges.emplace_back(filter.after
                                ? set.upper_bound(list_key{filter.after->created_at, compact_view::of(filter.after->id)})
                                : set.begin(),
                            set.end());
    };
    if (filter.company_id) {
        if (auto const it = events_by_company_.find(*filter.company_id); it != events_by_company_.end()) add(it->second);
    } else {
        for (auto const& [company, set] : events_by_company_) add(set);
    }
    merge_ordered(std::move(ranges), oldest_event_first{}, [&](event_row const* row) {
        if (matches(*row)) out.push_back(public_event(*row));
        return out.size() < filter.limit;
    });
    return out;
}

// ---- execution workspaces ----------------------------------------------------------------------

BERTH_DECL std::optional<execution_workspace> memory_store::tables::get_execution_workspace(std::string_view id) const {
    std::shared_lock lock(mutex_);
    auto it = workspaces_.find(id);
    if (it == workspaces_.end()) return std::nullopt;
    return it->second.value;
}

BERTH_DECL std::vector<execution_workspace> memory_store::tables::list_execution_workspaces(
    std::string_view company_id, execution_workspace_filter const& filter) const {
    std::shared_lock lock(mutex_);
    std::vector<execution_workspace> out;
    auto const company = workspaces_by_company_.find(company_id);
    if (company == workspaces_by_company_.end()) return out;
    workspace_row const* cursor = nullptr;
    if (filter.after) {
        auto const it = workspaces_.find(std::string_view(*filter.after));
        if (it == workspaces_.end()) return out;  // an id the store does not hold: an empty page
        cursor = &it->second;
    }
    // The company's workspaces (in one status, when asked) in list order: the page starts at the
    // cursor's place; the other filters are tested as it walks.
    auto const& set = filter.status ? company->second.by_status[static_cast<std::size_t>(*filter.status)]
                                    : company->second.all;
    for (auto i = cursor ? set.upper_bound(cursor) : set.begin(); i != set.end() && out.size() < filter.limit; ++i) {
        auto const& w = (*i)->value;
        if (filter.project_id && w.project_id != *filter.project_id) continue;
        if (filter.source_issue_id && w.source_issue_id != *filter.source_issue_id) continue;
        if (filter.branch_name && w.branch_name != *filter.branch_name) continue;
        out.push_back(w);
    }
    return out;
}

BERTH_DECL void memory_store::tables::index_workspace(workspace_row const* row) {
    // What may throw comes first (the nodes, the company's entry); the insertions cannot.
    auto all = detail::memory::node_for<workspace_set>(row);
    auto by_status = detail::memory::node_for<workspace_set>(row);
    auto& sets = workspaces_by_company_[row->value.company_id];
    sets.all.insert(std::move(all));
    sets.by_status[static_cast<std::size_t>(row->value.status)].insert(std::move(by_status));
}

BERTH_DECL execution_workspace memory_store::tables::create_execution_workspace(new_execution_workspace const& input,
                                                                    timestamp now) {
    auto w = make_execution_workspace(input, new_id(), now);
    std::unique_lock lock(mutex_);
    auto const id = w.id;
    auto const row = workspaces_.emplace(id, workspace_row{w, next_seq_++}).first;
    try {
        index_workspace(&row->second);
    } catch (...) {
        workspaces_.erase(row);
        throw;
    }
    return w;
}

BERTH_DECL std::optional<execution_workspace> memory_store::tables::update_execution_workspace(
    std::string_view id, execution_workspace_patch const& patch, timestamp now) {
    std::unique_lock lock(mutex_);
    auto it = workspaces_.find(id);
    if (it == workspaces_.end()) return std::nullopt;
    auto updated = it->second.value;  // patched on a copy: the stored row changes only on success
    apply_patch(updated, patch, now);
    // last_used_at and status place the row in its company's sets: it leaves them as nodes and
    // goes back as the same nodes (nothing to allocate, nothing that throws).
    auto& sets = workspaces_by_company_.find(it->second.value.company_id)->second;
    workspace_row const* row = &it->second;
    auto all = sets.all.extract(row);
    auto by_status = sets.by_status[static_cast<std::size_t>(row->value.status)].extract(row);
    it->second.value = std::move(updated);
    sets.all.insert(std::move(all));
    sets.by_status[static_cast<std::size_t>(row->value.status)].insert(std::move(by_status));
    return it->second.value;
}

// ---- workspace operations ----------------------------------------------------------------------

BERTH_DECL void memory_store::tables::index_operation(operation_row const* row) {
    // What may throw comes first (the nodes, the index entries); the insertions cannot.
    auto const& op = row->value;
    auto by_company = detail::memory::node_for<operation_set>(row);
    std::optional<operation_set::node_type> by_run, by_workspace;
    if (op.heartbeat_run_id) by_run = detail::memory::node_for<operation_set>(row);
    if (op.execution_workspace_id) by_workspace = detail::memory::node_for<operation_set>(row);
    auto& company = operations_by_company_[op.company_id];
    auto* run = op.heartbeat_run_id ? &operations_by_run_[*op.heartbeat_run_id] : nullptr;
    auto* workspace = op.execution_workspace_id ? &operations_by_workspace_[*op.execution_workspace_id] : nullptr;
    company.insert(std::move(by_company));
    if (run) run->insert(std::move(*by_run));
    if (workspace) workspace->insert(std::move(*by_workspace));
}

BERTH_DECL workspace_operation memory_store::tables::begin_operation(new_workspace_operation const& input, timestamp now) {
    auto op = make_operation(input, new_id(), now);
    std::unique_lock lock(mutex_);
    auto const id = op.id;
    auto const row = operations_.emplace(id, operation_row{op, next_seq_++}).first;
    try {
        index_operation(&row->second);
    } catch (...) {
        operations_.erase(row);
        throw;
    }
    return op;
}

BERTH_DECL std::optional<workspace_operation> memory_store::tables::update_operation(std::string_view id,
                                                                         workspace_operation_patch const& patch,
                                                                         timestamp now) {
    std::unique_lock lock(mutex_);
    auto it = operations_.find(id);
    if (it == operations_.end()) return std::nullopt;
    auto updated = it->second.value;
    apply_patch(updated, patch, now);
    operation_row const* row = &it->second;
    auto const& from = row->value.execution_workspace_id;
    auto const& to = updated.execution_workspace_id;
    if (from == to) {
        it->second.value = std::move(updated);
        return it->second.value;
    }
    // The operation moves to another execution workspace's set. What may throw first: the target
    // set's entry, and a node when the row had none.
    auto* target = to ? &operations_by_workspace_[*to] : nullptr;
    operation_set::node_type node;
    if (from) node = operations_by_workspace_.find(*from)->second.extract(row);
    else node = detail::memory::node_for<operation_set>(row);
    it->second.value = std::move(updated);
    if (target) target->insert(std::move(node));
    return it->second.value;
}

BERTH_DECL std::optional<workspace_operation> memory_store::tables::get_operation(std::string_view id) const {
    std::shared_lock lock(mutex_);
    auto it = operations_.find(id);
    if (it == operations_.end()) return std::nullopt;
    return it->second.value;
}

BERTH_DECL std::vector<workspace_operation> memory_store::tables::list_operations(workspace_operation_filter const& filter) const {
    std::shared_lock lock(mutex_);
    std::vector<workspace_operation> out;
    operation_row const* cursor = nullptr;
    if (filter.after) {
        auto const it = operations_.find(std::string_view(*filter.after));
        if (it == operations_.end()) return out;  // an id the store does not hold: an empty page
        cursor = &it->second;
    }
    auto const matches = [&](workspace_operation const& op) {
        return (!filter.company_id || op.company_id == *filter.company_id) &&
               (!filter.execution_workspace_id || op.execution_workspace_id == *filter.execution_workspace_id) &&
               (!filter.heartbeat_run_id || op.heartbeat_run_id == *filter.heartbeat_run_id) &&
               (!filter.issue_id || op.issue_id == *filter.issue_id);
    };
    // The narrowest index the filter names (a run's operations, a workspace's, a company's), or
    // every company's merged: each is in list order, so a page starts at the cursor's place.
    using iter = operation_set::const_iterator;
    std::vector<std::pair<iter, iter>> ranges;
    auto add = [&](operation_set const& set) {
        ranges.emplace_back(cursor ? set.upper_bound(cursor) : set.begin(), set.end());
    };
    auto add_from = [&](id_map<operation_set> const& index, std::string const& key) {
        if (auto const it = index.find(key); it != index.end()) add(it->second);
    };
    if (filter.heartbeat_run_id) add_from(operations_by_run_, *filter.heartbeat_run_id);
    else if (filter.execution_workspace_id) add_from(operations_by_workspace_, *filter.execution_workspace_id);
    else if (filter.company_id) add_from(operations_by_company_, *filter.company_id);
    else
        for (auto const& [company, set] : operations_by_company_) add(set);
    detail::memory::merge_ordered(std::move(ranges), oldest_operation_first{}, [&](operation_row const* row) {
        if (out.size() >= filter.limit) return false;
        if (matches(row->value)) out.push_back(row->value);
        return out.size() < filter.limit;
    });
    return out;
}

// ---- the public members: the store's tables do the work -----------------------------------------

BERTH_DECL memory_store::memory_store() : tables_(std::make_unique<tables>()) {}
BERTH_DECL memory_store::~memory_store() = default;

BERTH_DECL std::vector<environment> memory_store::list_environments(std::string_view company_id,
                                                                    environment_filter const& filter) const {
    return tables_->list_environments(company_id, filter);
}

BERTH_DECL std::optional<environment> memory_store::get_environment(std::string_view id) const {
    return tables_->get_environment(id);
}

BERTH_DECL environment memory_store::create_environment(new_environment const& input, timestamp now) {
    return tables_->create_environment(input, now);
}

BERTH_DECL std::optional<environment> memory_store::update_environment(std::string_view id,
                                                                       environment_patch const& patch, timestamp now) {
    return tables_->update_environment(id, patch, now);
}

BERTH_DECL environment memory_store::ensure_local_environment(std::string_view company_id, timestamp now) {
    return tables_->ensure_local_environment(company_id, now);
}

BERTH_DECL std::optional<environment_lease> memory_store::get_lease(std::string_view id) const {
    return tables_->get_lease(id);
}

BERTH_DECL std::vector<environment_lease> memory_store::list_leases(std::string_view environment_id,
                                                                    lease_filter const& filter) const {
    return tables_->list_leases(environment_id, filter);
}

BERTH_DECL std::vector<environment_lease> memory_store::list_run_leases(std::string_view heartbeat_run_id,
                                                                        lease_filter const& filter) const {
    return tables_->list_run_leases(heartbeat_run_id, filter);
}

BERTH_DECL environment_lease memory_store::acquire_lease(new_lease const& input, timestamp now,
                                                         std::optional<activity_event> event) {
    return tables_->acquire_lease(input, now, std::move(event));
}

BERTH_DECL environment_lease memory_store::transition_lease(lease_transition const& transition, timestamp now,
                                                            std::optional<activity_event> event) {
    return tables_->transition_lease(transition, now, std::move(event));
}

BERTH_DECL std::optional<environment_lease> memory_store::update_lease_metadata(std::string_view id,
                                                                                std::optional<json_object> metadata,
                                                                                timestamp now) {
    return tables_->update_lease_metadata(id, std::move(metadata), now);
}

BERTH_DECL environment_lease memory_store::renew_lease(std::string_view id, std::uint64_t expected_epoch,
                                                       std::optional<timestamp> expires_at, timestamp now) {
    return tables_->renew_lease(id, expected_epoch, expires_at, now);
}

BERTH_DECL std::vector<environment_lease> memory_store::release_leases_for_run(std::string_view heartbeat_run_id,
                                                                               lease_status to, timestamp now) {
    return tables_->release_leases_for_run(heartbeat_run_id, to, now);
}

BERTH_DECL std::vector<environment_lease> memory_store::list_expired_leases(timestamp now) const {
    return tables_->list_expired_leases(now);
}

BERTH_DECL std::vector<environment_lease> memory_store::list_expired_leases(timestamp now,
                                                                            list_page const& page) const {
    return tables_->list_expired_leases(now, page);
}

BERTH_DECL prune_result memory_store::prune_history(history_retention const& r) {
    return tables_->prune_history(r);
}

BERTH_DECL std::vector<environment_lease> memory_store::list_recoverable_leases(std::string_view holder_host,
                                                                                timestamp now) const {
    return tables_->list_recoverable_leases(holder_host, now);
}

BERTH_DECL void memory_store::record_activity(activity_event const& event) {
    return tables_->record_activity(event);
}

BERTH_DECL std::vector<activity_event> memory_store::list_activity(activity_filter const& filter) const {
    return tables_->list_activity(filter);
}

BERTH_DECL std::optional<workspace_runtime_service> memory_store::get_runtime_service(std::string_view id) const {
    return tables_->get_runtime_service(id);
}

BERTH_DECL workspace_runtime_service memory_store::upsert_runtime_service(workspace_runtime_service const& row,
                                                                          timestamp now) {
    return tables_->upsert_runtime_service(row, now);
}

BERTH_DECL std::vector<workspace_runtime_service> memory_store::list_runtime_services(
    runtime_service_filter const& filter) const {
    return tables_->list_runtime_services(filter);
}

BERTH_DECL std::vector<std::string> memory_store::stop_runtime_services(runtime_service_filter const& filter,
                                                                        timestamp now) {
    return tables_->stop_runtime_services(filter, now);
}

BERTH_DECL std::optional<execution_workspace> memory_store::get_execution_workspace(std::string_view id) const {
    return tables_->get_execution_workspace(id);
}

BERTH_DECL std::vector<execution_workspace> memory_store::list_execution_workspaces(
    std::string_view company_id, execution_workspace_filter const& filter) const {
    return tables_->list_execution_workspaces(company_id, filter);
}

BERTH_DECL execution_workspace memory_store::create_execution_workspace(new_execution_workspace const& input,
                                                                        timestamp now) {
    return tables_->create_execution_workspace(input, now);
}

BERTH_DECL std::optional<execution_workspace> memory_store::update_execution_workspace(
    std::string_view id, execution_workspace_patch const& patch, timestamp now) {
    return tables_->update_execution_workspace(id, patch, now);
}

BERTH_DECL std::optional<project_workspace> memory_store::get_project_workspace(std::string_view id) const {
    return tables_->get_project_workspace(id);
}

BERTH_DECL std::vector<project_workspace> memory_store::list_project_workspaces(
    std::string_view company_id, project_workspace_filter const& filter) const {
    return tables_->list_project_workspaces(company_id, filter);
}

BERTH_DECL project_workspace memory_store::create_project_workspace(new_project_workspace const& input, timestamp now) {
    return tables_->create_project_workspace(input, now);
}

BERTH_DECL std::optional<project_workspace> memory_store::update_project_workspace(std::string_view id,
                                                                                   project_workspace_patch const& patch,
                                                                                   timestamp now) {
    return tables_->update_project_workspace(id, patch, now);
}

BERTH_DECL workspace_operation memory_store::begin_operation(new_workspace_operation const& input, timestamp now) {
    return tables_->begin_operation(input, now);
}

BERTH_DECL std::optional<workspace_operation> memory_store::update_operation(std::string_view id,
                                                                             workspace_operation_patch const& patch,
                                                                             timestamp now) {
    return tables_->update_operation(id, patch, now);
}

BERTH_DECL std::optional<workspace_operation> memory_store::get_operation(std::string_view id) const {
    return tables_->get_operation(id);
}

BERTH_DECL std::vector<workspace_operation> memory_store::list_operations(
    workspace_operation_filter const& filter) const {
    return tables_->list_operations(filter);
}

}  // namespace berth
