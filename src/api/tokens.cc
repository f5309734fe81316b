#include "api/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "spec/parser.h"

namespace zeppelin::api {

using nlohmann::json;

namespace {

constexpr std::size_t kSecretBytes = 32;  // 256 bits
constexpr char kSecretPrefix[] = "zpt_";  // recognisable in a leaked file, by scanners too

std::string hex(const unsigned char* data, std::size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  return hex(digest, size);
}

Result<std::string> new_secret() {
  unsigned char bytes[kSecretBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return make_error(Errc::kInternal, "cannot draw random bytes for a token");
  // base64url without padding: the token fits a header and a shell variable as it is.
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out = kSecretPrefix;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      out += alphabet[(acc >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += alphabet[(acc << (6 - bits)) & 63];
  return out;
}

}  // namespace

const char* to_string(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "admin";
}

std::optional<TokenRecord> parse_token_record(std::string_view key, std::string_view value) {
  const json doc = json::parse(value, nullptr, false);
  if (!doc.is_object() || !key.starts_with(kTokensPrefix)) return std::nullopt;
  // Times are whole seconds: a float (1e300 converted to an integer is
  // undefined) makes the record a bad one.
  for (const char* time : {"created", "expires"}) {
    if (doc.contains(time) && !doc[time].is_number_integer()) return std::nullopt;
  }
  TokenRecord record;
  try {
    auto role = parse_role(doc.value("role", ""));
    if (!role) return std::nullopt;
    record.info.role = *role;
    record.info.created = doc.value("created", std::int64_t{0});
    record.info.expires = doc.value("expires", std::int64_t{0});
    record.sha256 = doc.value("sha256", "");
  } catch (const json::type_error&) {
    // A field of another type: a bad record like any other, never an
    // exception out of the request being authenticated.
    return std::nullopt;
  }
  if (record.sha256.size() != 64) return std::nullopt;
  record.info.name = std::string(key.substr(sizeof kTokensPrefix - 1));
  return record;
}

std::optional<Role> parse_role(std::string_view text) {
  if (text == "viewer") return Role::kViewer;
  if (text == "operator") return Role::kOperator;
  if (text == "admin") return Role::kAdmin;
  return std::nullopt;
}

Tokens::Tokens(store::Store& store, Clock clock) : store_(store), clock_(std::move(clock)) {}

std::int64_t Tokens::now() const { return clock_ ? clock_() : static_cast<std::int64_t>(::time(nullptr)); }

Result<std::string> Tokens::create(const std::string& name, Role role, std::optional<Duration> ttl, TokenInfo* info) {
  if (!spec::is_dns_label(name)) {
    return make_error(Errc::kInvalidArgument,
                      "a token name must be lowercase letters, digits and '-' (at most 63), not \"" + name + "\"");
  }
  if (ttl && ttl->count() <= 0) return make_error(Errc::kInvalidArgument, "a token's ttl must be positive");
  auto secret = new_secret();
  if (!secret) return secret.error();
  TokenInfo made{name, role, now(), 0};
  if (ttl) {
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(*ttl).count();
    made.expires = made.created + std::max<std::int64_t>(seconds, 1);
  }
  const json doc = {
      {"role", to_string(role)}, {"created", made.created}, {"expires", made.expires}, {"sha256", sha256_hex(*secret)}};
  store::TxnRequest txn;
  store::Compare absent;
  absent.key = kTokensPrefix + name;
  absent.target = store::Compare::Target::kCreateRevision;
  absent.op = store::Compare::Op::kEqual;
  absent.number = 0;
  txn.compare.push_back(absent);
  store::PutRequest put;
  put.key = absent.key;
  put.value = doc.dump();
  txn.success.emplace_back(std::move(put));
  auto done = store_.txn(txn);
  if (!done) return done.error();
  if (!done->succeeded)
    return make_error(Errc::kAlreadyExists, "a token named \"" + name + "\" exists; revoke it first");
  if (info) *info = made;
  return *secret;
}

Status Tokens::install(const std::string& name, Role role, std::string_view secret) {
  if (!spec::is_dns_label(name)) {
    return make_error(Errc::kInvalidArgument,
                      "a token name must be lowercase letters, digits and '-' (at most 63), not \"" + name + "\"");
  }
  // A guessable token would open the API; 32 characters is 128 bits even as hex.
  constexpr std::size_t kMinSecretSize = 32;
  if (secret.size() < kMinSecretSize) {
    return make_error(Errc::kInvalidArgument, "token \"" + name + "\" is " + std::to_string(secret.size()) +
                                                  " characters long; give at least 32 random ones (for example "
                                                  "`openssl rand -hex 32`)");
  }
  const std::string hash = sha256_hex(secret);
  store::RangeRequest get;
  get.key = kTokensPrefix + name;
  auto current = store_.range(get);
  if (!current) return current.error();
  if (!current->kvs.empty()) {
    const auto& kv = current->kvs.front();
    auto s = parse_token_record(kv.key, kv.value);
    if (s && s->info.role == role && s->info.expires == 0 && s->sha256 == hash) return ok_status();
  }
  const json doc = {{"role", to_string(role)}, {"created", now()}, {"expires", 0}, {"sha256", hash}};
  store::PutRequest put;
  put.key = get.key;
  put.value = doc.dump();
  auto done = store_.put(put);
  if (!done) return done.error();
  return ok_status();
}

Result<std::vector<TokenInfo>> Tokens::list() {
  store::RangeRequest range;
  range.key = kTokensPrefix;
  range.range_end = store::prefix_end(kTokensPrefix);
  auto got = store_.range(range);
  if (!got) return got.error();
  std::vector<TokenInfo> out;
  for (const auto& kv : got->kvs) {
    if (auto record = parse_token_record(kv.key, kv.value)) out.push_back(record->info);
  }
  return out;
}

Status Tokens::revoke(const std::string& name) {
  if (!spec::is_dns_label(name)) return make_error(Errc::kNotFound, "no token named \"" + name + "\"");
  store::DeleteRangeRequest del;
  del.key = kTokensPrefix + name;
  auto done = store_.delete_range(del);
  if (!done) return done.error();
  if (done->deleted == 0) return make_error(Errc::kNotFound, "no token named \"" + name + "\"");
  return ok_status();
}

std::optional<TokenInfo> Tokens::authenticate(std::string_view secret, std::string& why) {
  if (secret.empty()) {
    why = "no token";
    return std::nullopt;
  }
  const std::string presented = sha256_hex(secret);
  store::RangeRequest range;
  range.key = kTokensPrefix;
  range.range_end = store::prefix_end(kTokensPrefix);
  auto got = store_.range(range);
  if (!got) {
    why = "cannot read the tokens: " + got.error().message;
    return std::nullopt;
  }
  std::optional<TokenInfo> match;
  // Every entry is compared, in constant time each, whichever matches.
  for (const auto& kv : got->kvs) {
    auto record = parse_token_record(kv.key, kv.value);
    if (record && CRYPTO_memcmp(record->sha256.data(), presented.data(), presented.size()) == 0) match = record->info;
  }
  if (!match) {
    why = "unknown or revoked token";
    return std::nullopt;
  }
  if (match->expires != 0 && now() >= match->expires) {
    why = "token \"" + match->name + "\" expired";
    return std::nullopt;
  }
  return match;
}

void FailureLimiter::forget_old(TimePoint now) {
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto& e = it->second;
    while (!e.failures.empty() && now - e.failures.front() >= kWindow) e.failures.pop_front();
    if (e.blocked_until && now >= *e.blocked_until) e.blocked_until.reset();
    it = e.failures.empty() && !e.blocked_until ? peers_.erase(it) : std::next(it);
  }
}

bool FailureLimiter::blocked(const std::string& peer, TimePoint now) {
  forget_old(now);
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.blocked_until.has_value();
}

bool FailureLimiter::fail(const std::string& peer, TimePoint now) {
  forget_old(now);
  auto& e = peers_[peer];
  e.failures.push_back(now);
  if (!e.blocked_until && static_cast<int>(e.failures.size()) >= kMaxFailures) {
    e.blocked_until = now + kWindow;
    e.failures.clear();
    return true;
  }
  return false;
}

}  // namespace zeppelin::api
