// etcd's authentication and access control (users, roles, key-range
// permissions, "simple" tokens), kept out of the client key space.
//
// Two parts: the permission checker (`covered`, a pure function over granted
// ranges, and `Caller`, what one request may do) and `AuthStore`, the durable
// users and roles behind the Auth service. The KV, Watch, Lease, Lock,
// Election and Maintenance handlers only call `authorize`/`caller`.
//
// Errors carry typed codes and etcd's wording without its "etcdserver: "; the
// services make etcd's gRPC statuses of them (to_status in convert.h), which
// etcd clients match on. All methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/server_context.h>

#include "common/result.h"

namespace zeppelin::etcd_api {

enum class Access { kRead, kWrite };

// One granted range, as etcd's authpb.Permission: `range_end` empty is the
// single key `key`; "\0" is every key from `key` on; else [key, range_end).
struct KeyPermission {
  bool read = false;
  bool write = false;
  std::string key;
  std::string range_end;
  bool operator==(const KeyPermission&) const = default;
};

// True when every key of the request range [key, range_end) (range_end as in
// a request: empty = the single key, "\0" = to the end) lies within the union
// of the granted ranges allowing `access`. Grants may overlap and adjoin.
bool covered(const std::vector<KeyPermission>& granted, std::string_view key, std::string_view range_end,
             Access access);

// What one request may do: a snapshot of its user's permissions taken when it
// arrived (a request in flight keeps them even if a grant changes meanwhile).
class Caller {
 public:
  static Caller unrestricted() { return Caller(true, "", {}); }
  Caller(bool all, std::string user, std::vector<KeyPermission> granted)
      : all_(all), user_(std::move(user)), granted_(std::move(granted)) {}
  // OK, or etcd's "permission denied" (or "user name is empty" without a token).
  Status may(std::string_view key, std::string_view range_end, Access access) const;
  // Maintenance and auth administration: the root role only.
  Status admin() const;
  const std::string& user() const { return user_; }

 private:
  bool all_ = false;  // auth disabled, or the root role
  std::string user_;  // empty: no token with auth enabled
  std::vector<KeyPermission> granted_;
};

struct AuthOptions {
  // The durable state (JSON, rewritten atomically); empty keeps it in memory only.
  std::string path;
  // etcd's simple tokens expire after this long unused.
  std::chrono::seconds token_ttl{300};
  // PBKDF2 rounds; tests lower it.
  int hash_iterations = 100000;
  std::function<std::chrono::steady_clock::time_point()> now = [] { return std::chrono::steady_clock::now(); };
};

class AuthStore {
 public:
  static Result<std::unique_ptr<AuthStore>> open(AuthOptions options);

  bool enabled() const;

  // The token a call carries: gRPC metadata "token" (etcd clients) or
  // "authorization" (the JSON gateway); empty without one.
  static std::string token_of(const grpc::ServerContextBase& context);
  // Resolves the call's token (invalid or expired: etcd's "invalid auth token").
  Status caller(const grpc::ServerContextBase& context, Caller* out);
  Status caller(const std::string& token, Caller* out);
  // caller() then Caller::may() for one range.
  Status authorize(const grpc::ServerContextBase& context, std::string_view key, std::string_view range_end,
                   Access access);

  // The Auth service's operations, with etcd 3.4's checks and errors. The
  // caller's right to administer is checked by the service, not here.
  Status enable();
  Status disable();
  Status authenticate(const std::string& name, const std::string& password, std::string* token);
  // True when `name` exists, has a password and it is `password`, whether
  // auth is enabled or not (the server checks the owner's root password
  // before it locks the store down). Slow on purpose, as authenticate().
  bool check_password(const std::string& name, const std::string& password) const;
  // A token for user `name` without its password, for a program the server
  // itself starts (a replica). It is used like one from authenticate() but
  // does not expire when idle, and outlives password changes and auth being
  // disabled and enabled again; it ends with revoke_token(), the user's
  // deletion, or the server's exit (tokens are not durable). It also serves
  // as the user's password in authenticate(), which then answers it as is.
  // Errors: auth not enabled, or no such user.
  //
  // With `keep_as` (a replica's stable name) the token is durable, so that a
  // replica that outlives the server (an adopted container) keeps a working
  // one: the next server answers the same `keep_as` and user with the same
  // token. Kept tokens are stored in clear in the state file (0600).
  Status issue_token(const std::string& name, std::string* token, const std::string& keep_as = "");
  // Ends a token (issued or authenticated); unknown tokens are ignored.
  void revoke_token(const std::string& token);
  // Ends the kept tokens whose `keep_as` is not wanted (replicas that are gone).
  void retain_kept_tokens(const std::function<bool(const std::string& keep_as)>& wanted);
  Status user_add(const std::string& name, const std::string& password, bool no_password);
  Status user_get(const std::string& name, std::vector<std::string>* roles) const;
  std::vector<std::string> user_list() const;
  Status user_delete(const std::string& name);
  Status user_change_password(const std::string& name, const std::string& password);
  Status user_grant_role(const std::string& name, const std::string& role);
  Status user_revoke_role(const std::string& name, const std::string& role);
  Status role_add(const std::string& name);
  Status role_get(const std::string& name, std::vector<KeyPermission>* perms) const;
  std::vector<std::string> role_list() const;
  Status role_delete(const std::string& name);
  Status role_grant_permission(const std::string& name, const KeyPermission& perm);
  Status role_revoke_permission(const std::string& name, const std::string& key, const std::string& range_end);

  struct User {
    std::string password_hash;  // "pbkdf2-sha256$ROUNDS$SALT_HEX$HASH_HEX"; empty with no_password
    bool no_password = false;
    std::set<std::string> roles;
  };
  struct KeptToken {
    std::string user;
    std::string token;
  };
  struct State {
    bool enabled = false;
    std::map<std::string, KeptToken> kept_tokens;  // keep_as -> token (issue_token)
    std::map<std::string, User> users;
    std::map<std::string, std::vector<KeyPermission>> roles;  // permissions sorted by (key, range_end)
  };

 private:
  explicit AuthStore(AuthOptions options) : options_(std::move(options)) {}
  // Writes `next` durably, then makes it the current state. REQUIRES: mu_ held.
  Status commit(State next);
  // Ends the user's tokens; issued ones too when `issued` is set. REQUIRES: mu_ held.
  void drop_tokens_of(const std::string& user, bool issued);
  std::string new_token() const;

  struct Session {
    std::string user;
    std::chrono::steady_clock::time_point expires;
    bool issued = false;  // by issue_token: never expires
  };

  AuthOptions options_;
  mutable std::mutex mu_;
  State state_;                              // GUARDED_BY(mu_)
  std::atomic<bool> enabled_{false};         // state_.enabled, read without mu_ on every request
  std::map<std::string, Session> sessions_;  // token -> session; GUARDED_BY(mu_)
};

}  // namespace zeppelin::etcd_api
