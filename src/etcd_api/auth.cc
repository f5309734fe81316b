#include "etcd_api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/fs_util.h"

namespace zeppelin::etcd_api {

namespace {

// etcd 3.4's auth errors (api/v3rpc/rpctypes), without their "etcdserver: ":
// the edge (to_status) adds it and the gRPC code etcd uses for each code.
Error user_empty() { return make_error(Errc::kInvalidArgument, "user name is empty"); }
Error role_empty() { return make_error(Errc::kInvalidArgument, "role name is empty"); }
Error user_exists() { return make_error(Errc::kAlreadyExists, "user name already exists"); }
Error user_not_found() { return make_error(Errc::kNotFound, "user name not found"); }
Error role_exists() { return make_error(Errc::kAlreadyExists, "role name already exists"); }
Error role_not_found() { return make_error(Errc::kNotFound, "role name not found"); }
Error root_user_missing() { return make_error(Errc::kFailedPrecondition, "root user does not exist"); }
Error root_role_missing() { return make_error(Errc::kFailedPrecondition, "root user does not have root role"); }
Error auth_failed() { return make_error(Errc::kInvalidArgument, "authentication failed, invalid user ID or password"); }
Error not_enabled() { return make_error(Errc::kFailedPrecondition, "authentication is not enabled"); }
Error invalid_token() { return make_error(Errc::kUnauthenticated, "invalid auth token"); }
Error denied() { return make_error(Errc::kPermissionDenied, "permission denied"); }
Error role_not_granted() { return make_error(Errc::kFailedPrecondition, "role is not granted to the user"); }
Error permission_not_granted() {
  return make_error(Errc::kFailedPrecondition, "permission is not granted to the role");
}
Error invalid_mgmt() { return make_error(Errc::kInvalidArgument, "invalid auth management"); }

constexpr const char* kRoot = "root";

// ---- ranges: [lo, hi) with hi empty meaning "no upper bound"

struct Interval {
  std::string lo;
  std::string hi;
  bool unbounded = false;
};

// A permission's or a request's (key, range_end) as an interval; a single key k is [k, k + "\0").
Interval interval(std::string_view key, std::string_view range_end) {
  Interval i{std::string(key), {}, false};
  if (range_end.empty()) {
    i.hi = std::string(key) + '\0';
  } else if (range_end == std::string_view("\0", 1)) {
    i.unbounded = true;
  } else {
    i.hi = std::string(range_end);
  }
  return i;
}

// ---- passwords: PBKDF2-HMAC-SHA256 with a random 16-byte salt

std::string hex(const unsigned char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string unhex(std::string_view s) {
  std::string out;
  auto val = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) out += static_cast<char>(val(s[i]) * 16 + val(s[i + 1]));
  return out;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) std::abort();
  return out;
}

std::string pbkdf2(const std::string& password, const std::string& salt, int rounds) {
  unsigned char out[32];
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), rounds,
                    EVP_sha256(), sizeof(out), out);
  return std::string(reinterpret_cast<char*>(out), sizeof(out));
}

std::string hash_password(const std::string& password, int rounds) {
  const std::string salt = random_bytes(16);
  const std::string h = pbkdf2(password, salt, rounds);
  return "pbkdf2-sha256$" + std::to_string(rounds) + "$" +
         hex(reinterpret_cast<const unsigned char*>(salt.data()), salt.size()) + "$" +
         hex(reinterpret_cast<const unsigned char*>(h.data()), h.size());
}

bool password_matches(const std::string& stored, const std::string& password) {
  // pbkdf2-sha256$ROUNDS$SALT$HASH
  const auto a = stored.find('$');
  const auto b = stored.find('$', a + 1);
  const auto c = stored.find('$', b + 1);
  if (a == std::string::npos || b == std::string::npos || c == std::string::npos) return false;
  const int rounds = std::stoi(stored.substr(a + 1, b - a - 1));
  const std::string salt = unhex(std::string_view(stored).substr(b + 1, c - b - 1));
  const std::string want = unhex(std::string_view(stored).substr(c + 1));
  const std::string got = pbkdf2(password, salt, rounds);
  return want.size() == got.size() && CRYPTO_memcmp(want.data(), got.data(), got.size()) == 0;
}

// ---- the durable form; keys are bytes, so they are stored in hex

nlohmann::json to_json(const AuthStore::State& s) {
  nlohmann::json j;
  j["enabled"] = s.enabled;
  j["users"] = nlohmann::json::object();
  for (const auto& [name, u] : s.users) {
    j["users"][name] = {{"password", u.password_hash}, {"no_password", u.no_password}, {"roles", u.roles}};
  }
  j["roles"] = nlohmann::json::object();
  for (const auto& [name, perms] : s.roles) {
    auto& list = j["roles"][name] = nlohmann::json::array();
    for (const auto& p : perms) {
      list.push_back(
          {{"read", p.read},
           {"write", p.write},
           {"key", hex(reinterpret_cast<const unsigned char*>(p.key.data()), p.key.size())},
           {"range_end", hex(reinterpret_cast<const unsigned char*>(p.range_end.data()), p.range_end.size())}});
    }
  }
  j["kept_tokens"] = nlohmann::json::object();
  for (const auto& [key, kept] : s.kept_tokens) j["kept_tokens"][key] = {{"user", kept.user}, {"token", kept.token}};
  return j;
}

AuthStore::State from_json(const nlohmann::json& j) {
  AuthStore::State s;
  s.enabled = j.at("enabled").get<bool>();
  for (const auto& [name, u] : j.at("users").items()) {
    AuthStore::User user;
    user.password_hash = u.at("password").get<std::string>();
    user.no_password = u.at("no_password").get<bool>();
    for (const auto& r : u.at("roles")) user.roles.insert(r.get<std::string>());
    s.users[name] = std::move(user);
  }
  for (const auto& [name, perms] : j.at("roles").items()) {
    auto& list = s.roles[name];
    for (const auto& p : perms) {
      list.push_back({p.at("read").get<bool>(), p.at("write").get<bool>(), unhex(p.at("key").get<std::string>()),
                      unhex(p.at("range_end").get<std::string>())});
    }
  }
  if (auto kept_tokens = j.find("kept_tokens"); kept_tokens != j.end()) {
    for (const auto& [key, kept] : kept_tokens->items()) {
      s.kept_tokens[key] = {kept.at("user").get<std::string>(), kept.at("token").get<std::string>()};
    }
  }
  return s;
}

}  // namespace

bool covered(const std::vector<KeyPermission>& granted, std::string_view key, std::string_view range_end,
             Access access) {
  Interval want = interval(key, range_end);
  // A range ending at or before its start (etcd reads it as empty) asks for its first key only.
  if (!want.unbounded && want.hi <= want.lo) want.hi = want.lo + '\0';
  std::vector<Interval> have;
  for (const auto& p : granted) {
    if (access == Access::kRead ? p.read : p.write) have.push_back(interval(p.key, p.range_end));
  }
  std::sort(have.begin(), have.end(), [](const Interval& a, const Interval& b) { return a.lo < b.lo; });
  // Sweep from want.lo: each grant starting at or before the covered frontier pushes it on.
  std::string frontier = want.lo;
  for (const auto& h : have) {
    if (h.lo > frontier) break;  // a gap
    if (h.unbounded) return true;
    if (h.hi > frontier) frontier = h.hi;
    if (!want.unbounded && frontier >= want.hi) return true;
  }
  return false;
}

Status Caller::may(std::string_view key, std::string_view range_end, Access access) const {
  if (all_) return ok_status();
  if (user_.empty()) return user_empty();
  if (!covered(granted_, key, range_end, access)) return denied();
  return ok_status();
}

Status Caller::admin() const {
  if (all_) return ok_status();
  if (user_.empty()) return user_empty();
  return denied();
}

Result<std::unique_ptr<AuthStore>> AuthStore::open(AuthOptions options) {
  std::unique_ptr<AuthStore> store(new AuthStore(std::move(options)));
  if (store->options_.path.empty()) return store;
  auto text = read_file(store->options_.path);
  if (!text) return store;  // first start: no users, auth disabled
  try {
    store->state_ = from_json(nlohmann::json::parse(*text));
    store->enabled_ = store->state_.enabled;
    for (const auto& [key, kept] : store->state_.kept_tokens) {
      store->sessions_[kept.token] = Session{kept.user, {}, true};
    }
  } catch (const std::exception& e) {
    return make_error(Errc::kInvalidArgument, "auth state " + store->options_.path + " is unreadable: " + e.what());
  }
  return store;
}

bool AuthStore::enabled() const { return enabled_; }

std::string AuthStore::token_of(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  for (const char* name : {"token", "authorization"}) {
    auto it = md.find(name);
    if (it != md.end()) return std::string(it->second.data(), it->second.size());
  }
  return "";
}

Status AuthStore::caller(const grpc::ServerContextBase& context, Caller* out) { return caller(token_of(context), out); }

Status AuthStore::caller(const std::string& token, Caller* out) {
  if (!enabled_) {  // the common case: no lock on the request path
    *out = Caller::unrestricted();
    return ok_status();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!state_.enabled) {
    *out = Caller::unrestricted();
    return ok_status();
  }
  if (token.empty()) {
    *out = Caller(false, "", {});
    return ok_status();
  }
  auto it = sessions_.find(token);
  const auto now = options_.now();
  if (it == sessions_.end() || (!it->second.issued && it->second.expires <= now)) {
    if (it != sessions_.end()) sessions_.erase(it);
    return invalid_token();
  }
  it->second.expires = now + options_.token_ttl;  // simple tokens live while they are used
  const auto user = state_.users.find(it->second.user);
  if (user == state_.users.end()) return invalid_token();
  if (user->second.roles.count(kRoot)) {
    *out = Caller(true, user->first, {});
    return ok_status();
  }
  std::vector<KeyPermission> granted;
  for (const auto& role : user->second.roles) {
    auto r = state_.roles.find(role);
    if (r != state_.roles.end()) granted.insert(granted.end(), r->second.begin(), r->second.end());
  }
  *out = Caller(false, user->first, std::move(granted));
  return ok_status();
}

Status AuthStore::authorize(const grpc::ServerContextBase& context, std::string_view key, std::string_view range_end,
                            Access access) {
  Caller c = Caller::unrestricted();
  if (auto s = caller(context, &c); !s.ok()) return s;
  return c.may(key, range_end, access);
}

Status AuthStore::commit(State next) {
  if (!options_.path.empty()) {
    if (auto s = write_file_atomic(options_.path, to_json(next).dump(2) + "\n", 0600); !s) {
      return make_error(Errc::kInternal, "cannot save the auth state: " + s.error().message);
    }
  }
  state_ = std::move(next);
  enabled_ = state_.enabled;
  return ok_status();
}

void AuthStore::drop_tokens_of(const std::string& user, bool issued) {
  std::erase_if(sessions_, [&](const auto& s) { return s.second.user == user && (issued || !s.second.issued); });
}

std::string AuthStore::new_token() const {
  const std::string random = random_bytes(16);
  return hex(reinterpret_cast<const unsigned char*>(random.data()), random.size());
}

Status AuthStore::enable() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.enabled) return ok_status();
  auto root = state_.users.find(kRoot);
  if (root == state_.users.end()) return root_user_missing();
  if (!root->second.roles.count(kRoot)) return root_role_missing();
  State next = state_;
  next.enabled = true;
  return commit(std::move(next));
}

Status AuthStore::disable() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!state_.enabled) return ok_status();
  State next = state_;
  next.enabled = false;
  auto s = commit(std::move(next));
  // Tokens issued to running replicas stay, for when auth is enabled again.
  if (s.ok()) std::erase_if(sessions_, [](const auto& session) { return !session.second.issued; });
  return s;
}

bool AuthStore::check_password(const std::string& name, const std::string& password) const {
  std::string hash;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = state_.users.find(name);
    if (it == state_.users.end() || it->second.no_password) return false;
    hash = it->second.password_hash;
  }
  return password_matches(hash, password);
}

Status AuthStore::authenticate(const std::string& name, const std::string& password, std::string* token) {
  std::string hash;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!state_.enabled) return not_enabled();
    // A token issued to `name` is also its password, so that clients that log
    // in by user and password only (etcdctl, most etcd libraries) can use it.
    if (auto issued = sessions_.find(password);
        issued != sessions_.end() && issued->second.issued && issued->second.user == name) {
      *token = password;
      return ok_status();
    }
    auto it = state_.users.find(name);
    if (it == state_.users.end() || it->second.no_password) return auth_failed();
    hash = it->second.password_hash;
  }
  // Hashing is slow on purpose: done without the lock.
  if (!password_matches(hash, password)) return auth_failed();
  *token = new_token();
  std::lock_guard<std::mutex> lock(mu_);
  // The password may have changed (or the user gone) while it was checked.
  auto it = state_.users.find(name);
  if (!state_.enabled || it == state_.users.end() || it->second.password_hash != hash) return auth_failed();
  sessions_[*token] = Session{name, options_.now() + options_.token_ttl};
  return ok_status();
}

Status AuthStore::issue_token(const std::string& name, std::string* token, const std::string& keep_as) {
  if (name.empty()) return user_empty();
  std::lock_guard<std::mutex> lock(mu_);
  if (!state_.enabled) return not_enabled();
  if (!state_.users.count(name)) return user_not_found();
  if (keep_as.empty()) {
    *token = new_token();
    sessions_[*token] = Session{name, {}, true};
    return ok_status();
  }
  if (auto kept = state_.kept_tokens.find(keep_as); kept != state_.kept_tokens.end() && kept->second.user == name) {
    *token = kept->second.token;  // the previous server's, still held by the same replica
    sessions_[*token] = Session{name, {}, true};
    return ok_status();
  }
  State next = state_;
  const std::string fresh = new_token();
  if (auto old = next.kept_tokens.find(keep_as); old != next.kept_tokens.end()) sessions_.erase(old->second.token);
  next.kept_tokens[keep_as] = {name, fresh};
  if (auto s = commit(std::move(next)); !s.ok()) return s;
  *token = fresh;
  sessions_[*token] = Session{name, {}, true};
  return ok_status();
}

void AuthStore::revoke_token(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(token);
  auto kept = std::find_if(state_.kept_tokens.begin(), state_.kept_tokens.end(),
                           [&](const auto& k) { return k.second.token == token; });
  if (kept == state_.kept_tokens.end()) return;
  State next = state_;
  next.kept_tokens.erase(kept->first);
  (void)commit(std::move(next));  // at worst it outlives the replica until retain_kept_tokens()
}

void AuthStore::retain_kept_tokens(const std::function<bool(const std::string& key)>& wanted) {
  std::lock_guard<std::mutex> lock(mu_);
  State next = state_;
  const auto dropped = std::erase_if(next.kept_tokens, [&](const auto& k) {
    if (wanted(k.first)) return false;
    sessions_.erase(k.second.token);
    return true;
  });
  if (dropped > 0) (void)commit(std::move(next));
}

Status AuthStore::user_add(const std::string& name, const std::string& password, bool no_password) {
  if (name.empty()) return user_empty();
  const std::string hash = no_password ? "" : hash_password(password, options_.hash_iterations);
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.users.count(name)) return user_exists();
  State next = state_;
  next.users[name] = User{hash, no_password, {}};
  return commit(std::move(next));
}

Status AuthStore::user_get(const std::string& name, std::vector<std::string>* roles) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = state_.users.find(name);
  if (it == state_.users.end()) return user_not_found();
  roles->assign(it->second.roles.begin(), it->second.roles.end());
  return ok_status();
}

std::vector<std::string> AuthStore::user_list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, _] : state_.users) out.push_back(name);
  return out;
}

Status AuthStore::user_delete(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.enabled && name == kRoot) return invalid_mgmt();
  if (!state_.users.count(name)) return user_not_found();
  State next = state_;
  next.users.erase(name);
  std::erase_if(next.kept_tokens, [&](const auto& k) { return k.second.user == name; });
  auto s = commit(std::move(next));
  if (s.ok()) drop_tokens_of(name, true);
  return s;
}

Status AuthStore::user_change_password(const std::string& name, const std::string& password) {
  const std::string hash = hash_password(password, options_.hash_iterations);
  std::lock_guard<std::mutex> lock(mu_);
  if (!state_.users.count(name)) return user_not_found();
  State next = state_;
  next.users[name].password_hash = hash;
  next.users[name].no_password = false;
  auto s = commit(std::move(next));
  if (s.ok()) drop_tokens_of(name, false);  // issued tokens never depended on the password
  return s;
}

Status AuthStore::user_grant_role(const std::string& name, const std::string& role) {
  std::lock_guard<std::mutex> lock(mu_);
  auto user = state_.users.find(name);
  if (user == state_.users.end()) return user_not_found();
  // As etcd: the root role may be granted before it is created.
  if (role != kRoot && !state_.roles.count(role)) return role_not_found();
  if (user->second.roles.count(role)) return ok_status();
  State next = state_;
  next.users[name].roles.insert(role);
  return commit(std::move(next));
}

Status AuthStore::user_revoke_role(const std::string& name, const std::string& role) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.enabled && name == kRoot && role == kRoot) return invalid_mgmt();
  auto user = state_.users.find(name);
  if (user == state_.users.end()) return user_not_found();
  if (!user->second.roles.count(role)) return role_not_granted();
  State next = state_;
  next.users[name].roles.erase(role);
  return commit(std::move(next));
}

Status AuthStore::role_add(const std::string& name) {
  if (name.empty()) return role_empty();
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.roles.count(name)) return role_exists();
  State next = state_;
  next.roles[name] = {};
  return commit(std::move(next));
}

Status AuthStore::role_get(const std::string& name, std::vector<KeyPermission>* perms) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = state_.roles.find(name);
  if (it == state_.roles.end()) return role_not_found();
  *perms = it->second;
  return ok_status();
}

std::vector<std::string> AuthStore::role_list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, _] : state_.roles) out.push_back(name);
  return out;
}

Status AuthStore::role_delete(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.enabled && name == kRoot) return invalid_mgmt();
  if (!state_.roles.count(name)) return role_not_found();
  State next = state_;
  next.roles.erase(name);
  for (auto& [_, user] : next.users) user.roles.erase(name);
  return commit(std::move(next));
}

Status AuthStore::role_grant_permission(const std::string& name, const KeyPermission& perm) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!state_.roles.count(name)) return role_not_found();
  State next = state_;
  auto& perms = next.roles[name];
  auto same = std::find_if(perms.begin(), perms.end(),
                           [&](const KeyPermission& p) { return p.key == perm.key && p.range_end == perm.range_end; });
  if (same != perms.end()) {
    *same = perm;  // a grant on the same range replaces its type
  } else {
    perms.push_back(perm);
    std::sort(perms.begin(), perms.end(), [](const KeyPermission& a, const KeyPermission& b) {
      return std::tie(a.key, a.range_end) < std::tie(b.key, b.range_end);
    });
  }
  return commit(std::move(next));
}

Status AuthStore::role_revoke_permission(const std::string& name, const std::string& key,
                                         const std::string& range_end) {
  std::lock_guard<std::mutex> lock(mu_);
  auto role = state_.roles.find(name);
  if (role == state_.roles.end()) return role_not_found();
  State next = state_;
  auto& perms = next.roles[name];
  auto it = std::find_if(perms.begin(), perms.end(),
                         [&](const KeyPermission& p) { return p.key == key && p.range_end == range_end; });
  if (it == perms.end()) return permission_not_granted();
  perms.erase(it);
  return commit(std::move(next));
}

}  // namespace zeppelin::etcd_api
