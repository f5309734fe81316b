// Result<T>: the single error model of Zeppelin. Expected failures travel as
// values carrying an Error; broken invariants use ZEP_ASSERT (common/assert.h).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace zeppelin {

enum class Errc {
  kInvalidArgument,  // bad user input: spec, flags, request bodies
  kNotFound,
  kAlreadyExists,
  kUnavailable,      // a server or resource could not be reached
  kTimeout,
  kInternal,         // an OS call failed
  kTooLarge,         // input over a size limit (a spec's bytes); the API answers 413
  kFailedPrecondition,  // the state forbids the request as asked (auth not enabled, a role not granted)
  kUnauthenticated,     // no valid credentials where they are needed (an unknown or expired token)
  kPermissionDenied,    // the caller is known, but its roles do not allow the request
  // The coordination store's conditions, which etcd clients tell apart (etcd's rpctypes):
  kCompacted,         // a revision older than the last compaction: readers start again from now
  kFutureRevision,    // a revision the store has not reached yet
  kLeaseNotFound,     // the lease expired or was revoked: its holder grants a new one
  kLeaseExists,       // a grant asked for an ID already in use
  kLeaseTtlTooLarge,  // a grant asked for more than etcd's MaxLeaseTTL
  kNoSpace,           // the store passed its quota: writes that add data are refused until it is freed
  kDuplicateKey,      // a transaction writes one key twice
  kKeyNotFound,       // a put that keeps the value or lease of a key that does not exist
  kResponseTooLarge,  // a read's answer would pass its max_response_bytes
};

struct Error {
  Errc code = Errc::kInternal;
  std::string message;
};

inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void> spelled as Status.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { assert(!ok()); return *error_; }

 private:
  std::optional<Error> error_;
};

inline Status ok_status() { return Status(); }

}  // namespace zeppelin
