// Who may use the API over TCP: bearer tokens with a role, and the guard that
// checks them on every request (docs/api.md#authentication).
//
// A token is 256 random bits, shown once when it is made; only its SHA-256 is
// kept, with its name, role and expiry, in the coordination store under
// /zeppelin/tokens/NAME (root-only there, like everything under /zeppelin/).
// Presented tokens are hashed and compared in constant time. Failed attempts
// are logged (never the token) and counted per client address: too many in a
// minute and that address is answered 429 for a minute.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/units.h"
#include "store/store.h"

namespace zeppelin::api {

// Ordered: each role may do what the ones before it may.
enum class Role { kViewer = 0, kOperator = 1, kAdmin = 2 };

const char* to_string(Role role);
std::optional<Role> parse_role(std::string_view text);

inline constexpr char kTokensPrefix[] = "/zeppelin/tokens/";

struct TokenInfo {
  std::string name;
  Role role = Role::kViewer;
  std::int64_t created = 0;  // Unix seconds
  std::int64_t expires = 0;  // Unix seconds; 0: never
};

// A token as kept in the store: the key kTokensPrefix + NAME, and a JSON value
// {"role", "created", "expires", "sha256"}.
struct TokenRecord {
  TokenInfo info;
  std::string sha256;  // of the secret, 64 hex digits
};
// Nothing when `value` is not a token record (a bad write by someone else:
// it is skipped, never fatal).
std::optional<TokenRecord> parse_token_record(std::string_view key, std::string_view value);

class Tokens {
 public:
  using Clock = std::function<std::int64_t()>;  // Unix seconds
  explicit Tokens(store::Store& store, Clock clock = nullptr);

  // Makes a token NAME (a DNS label) with `role`, valid for `ttl` if given;
  // returns the secret, which is not kept. kAlreadyExists if NAME exists.
  Result<std::string> create(const std::string& name, Role role, std::optional<Duration> ttl,
                             TokenInfo* info = nullptr);
  // Makes token NAME stand for `secret`, one the owner chose (at least 32
  // characters; in a cluster, from a Secret), with `role` and no expiry. An
  // existing NAME is replaced only if its secret or role differ, so a server
  // that restarts with the same secret leaves the record alone.
  Status install(const std::string& name, Role role, std::string_view secret);
  Result<std::vector<TokenInfo>> list();
  // kNotFound if there is no token NAME.
  Status revoke(const std::string& name);
  // The token `secret` stands for, if it is known and not expired; else
  // nothing, and `why` (for the log, never for the client) says which.
  std::optional<TokenInfo> authenticate(std::string_view secret, std::string& why);

  std::int64_t now() const;

 private:
  store::Store& store_;
  Clock clock_;
};

// Failed attempts per client address: after kMaxFailures within kWindow, the
// address is refused for kWindow. Used on the event loop only.
class FailureLimiter {
 public:
  static constexpr int kMaxFailures = 10;
  static constexpr std::chrono::seconds kWindow{60};
  using TimePoint = std::chrono::steady_clock::time_point;

  // True while `peer` is refused.
  bool blocked(const std::string& peer, TimePoint now);
  // Counts a failure; true when it starts a block.
  bool fail(const std::string& peer, TimePoint now);

 private:
  struct Entry {
    std::deque<TimePoint> failures;
    std::optional<TimePoint> blocked_until;
  };
  void forget_old(TimePoint now);
  std::map<std::string, Entry> peers_;
};

}  // namespace zeppelin::api
