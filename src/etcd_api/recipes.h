// The queue both Lock and Election are built on, as etcd's own recipes do:
// each contender owns the key PREFIX<lease id in hex>, and contenders are
// served in the order their keys were created.
#pragma once

#include <functional>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace zeppelin::etcd_api {

struct Claim {
  store::KeyValue kv;    // the contender's own key, as it is now
  bool created = false;  // false: the key already existed (same lease, an earlier call)
  int64_t revision = 0;  // the store's revision after the claim
};

// Creates PREFIX<lease hex> holding `value`, attached to `lease`, unless it exists.
Result<Claim> claim(store::Store& store, const std::string& prefix, int64_t lease, const std::string& value);

// Blocks until no key under `prefix` was created before `create_revision`.
// `cancelled` is asked between waits; it ends the wait with Errc::kUnavailable.
Status wait_for_turn(store::Store& store, const std::string& prefix, int64_t create_revision,
                     const std::function<bool()>& cancelled);

// The key under `prefix` created first (the owner), if any, and the store's revision.
Result<std::pair<std::optional<store::KeyValue>, int64_t>> first_created(store::Store& store,
                                                                         const std::string& prefix);

// Blocks until something under `prefix` changes after `revision`, or `cancelled`.
Status wait_for_change(store::Store& store, const std::string& prefix, int64_t revision,
                       const std::function<bool()>& cancelled);

}  // namespace zeppelin::etcd_api
