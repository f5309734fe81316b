#include "api/routes.h"

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <ctime>
#include <regex>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/build_info.h"
#include "common/fs_util.h"
#include "common/json_depth.h"
#include "common/log.h"
#include "common/units.h"
#include "supervisor/log_hub.h"
#include "supervisor/replica_env.h"

namespace zeppelin::api {

using nlohmann::json;
using supervisor::Supervisor;

namespace {

const char* code_name(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kNotFound: return "not_found";
    case Errc::kAlreadyExists: return "already_exists";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kTimeout: return "timeout";
    case Errc::kInternal: return "internal";
    case Errc::kTooLarge: return "too_large";
    case Errc::kFailedPrecondition: return "failed_precondition";
    case Errc::kUnauthenticated: return "unauthenticated";
    case Errc::kPermissionDenied: return "forbidden";
    case Errc::kCompacted: return "compacted";
    case Errc::kFutureRevision: return "future_revision";
    case Errc::kLeaseNotFound: return "lease_not_found";
    case Errc::kLeaseExists: return "lease_exists";
    case Errc::kLeaseTtlTooLarge: return "lease_ttl_too_large";
    case Errc::kNoSpace: return "no_space";
    case Errc::kDuplicateKey: return "duplicate_key";
    case Errc::kKeyNotFound: return "key_not_found";
    case Errc::kResponseTooLarge: return "response_too_large";
  }
  return "internal";
}

int http_status(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument: return 400;
    case Errc::kNotFound: return 404;
    case Errc::kAlreadyExists: return 409;
    case Errc::kUnavailable: return 503;
    case Errc::kTimeout: return 504;
    case Errc::kInternal: return 500;
    case Errc::kTooLarge: return 413;
    case Errc::kFailedPrecondition: return 409;
    case Errc::kUnauthenticated: return 401;
    case Errc::kPermissionDenied: return 403;
    // The store's conditions, should one reach a handler:
    case Errc::kCompacted: return 410;  // that history is gone for good
    case Errc::kFutureRevision: return 400;
    case Errc::kLeaseNotFound: return 404;
    case Errc::kLeaseExists: return 409;
    case Errc::kLeaseTtlTooLarge: return 400;
    case Errc::kNoSpace: return 507;  // the store is over its quota
    case Errc::kDuplicateKey: return 400;
    case Errc::kKeyNotFound: return 404;
    case Errc::kResponseTooLarge: return 413;
  }
  return 500;
}

void reply_error(const std::shared_ptr<Exchange>& ex, const Error& e) {
  ex->reply(http_status(e.code), {{"error", {{"code", code_name(e.code)}, {"message", e.message}}}});
}

void reply_error(const std::shared_ptr<Exchange>& ex, Errc code, const std::string& message) {
  reply_error(ex, Error{code, message});
}

// The least role of each route over TCP. "*" stands for one path segment (a
// system or token name). Keep docs/api.md#roles in step.
struct RouteRole {
  const char* method;
  const char* path;
  Role role;
};
constexpr RouteRole kRouteRoles[] = {
    {"GET", "/v1/version", Role::kViewer},
    {"GET", "/v1/etcd", Role::kViewer},
    {"GET", "/v1/systems", Role::kViewer},
    {"GET", "/v1/replicas", Role::kViewer},
    {"GET", "/v1/systems/*", Role::kViewer},
    {"GET", "/v1/systems/*/logs", Role::kViewer},
    {"GET", "/v1/systems/*/wait", Role::kViewer},
    {"POST", "/v1/systems/*/start", Role::kOperator},
    {"POST", "/v1/systems/*/stop", Role::kOperator},
    {"POST", "/v1/systems/*/scale", Role::kOperator},
    {"POST", "/v1/systems/*/restart", Role::kOperator},
    {"POST", "/v1/systems", Role::kAdmin},  // any spec: any command, as the server's user
    {"DELETE", "/v1/systems/*", Role::kAdmin},
    {"POST", "/v1/store/snapshot", Role::kAdmin},  // the whole store: specs, environments, token hashes
    {"POST", "/v1/shutdown", Role::kAdmin},
    {"GET", "/v1/tokens", Role::kAdmin},
    {"POST", "/v1/tokens", Role::kAdmin},
    {"DELETE", "/v1/tokens/*", Role::kAdmin},
};

bool path_matches(std::string_view pattern, std::string_view path) {
  while (!pattern.empty() && !path.empty()) {
    const auto p_end = pattern.find('/', 1);
    const auto s_end = path.find('/', 1);
    const std::string_view p = pattern.substr(0, p_end);
    const std::string_view s = path.substr(0, s_end);
    if (p != "/*" ? p != s : s.size() < 2) return false;
    pattern.remove_prefix(p.size());
    path.remove_prefix(s.size());
  }
  return pattern.empty() && path.empty();
}

std::string iso_time(std::int64_t unix_seconds) {
  if (unix_seconds == 0) return "";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json to_json(const TokenInfo& t) {
  return {{"name", t.name}, {"role", to_string(t.role)}, {"created", iso_time(t.created)},
          {"expires", t.expires ? json(iso_time(t.expires)) : json(nullptr)}};
}

// What authenticates requests over TCP; shared by every copy of the handler.
struct Access {
  Tokens* tokens = nullptr;
  FailureLimiter failures;
};

void refuse(const std::shared_ptr<Exchange>& ex, int status, const char* code, const std::string& message) {
  ex->reply(status, {{"error", {{"code", code}, {"message", message}}}});
}

// The token of an "Authorization: Bearer TOKEN" header, or "".
std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "bearer ";
  if (header.size() <= scheme.size()) return {};
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return {};
  }
  header.remove_prefix(scheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  return header;
}

// Over TCP, a request needs a valid bearer token whose role reaches the
// route's; false (after replying 401, 403 or 429) when it has none.
bool admit(Access& access, const Request& req, const std::shared_ptr<Exchange>& ex) {
  if (!req.tcp) return true;  // the unix socket: its owner, admin
  const Role needed = required_role(req.method, req.path);
  const auto now = std::chrono::steady_clock::now();
  if (access.failures.blocked(req.peer, now)) {
    refuse(ex, 429, "too_many_requests",
           "too many failed authentications from " + req.peer + ": try again in a minute");
    return false;
  }
  const std::string_view token = bearer_token(req.authorization);
  std::string why;
  std::optional<TokenInfo> who;
  if (token.empty()) {
    why = req.authorization.empty() ? "no Authorization header" : "not a bearer token";
  } else if (access.tokens == nullptr) {
    why = "this server has no tokens";
  } else {
    who = access.tokens->authenticate(token, why);
  }
  if (!who) {
    log::warn("API: refused {} {} from {}: {}", req.method, req.path, req.peer, why);
    if (access.failures.fail(req.peer, now)) {
      log::warn("API: {} failed authentications within a minute from {}: refusing it for a minute",
                FailureLimiter::kMaxFailures, req.peer);
    }
    refuse(ex, 401, "unauthenticated",
           std::string("a valid token is required (Authorization: Bearer TOKEN); this route needs the ") +
               to_string(needed) + " role" +
               (token.empty() ? "" : ": the token given is unknown, expired or revoked"));
    return false;
  }
  if (who->role < needed) {
    log::info("API: token \"{}\" ({}) may not {} {} from {}", who->name, to_string(who->role), req.method, req.path,
              req.peer);
    refuse(ex, 403, "forbidden",
           std::string("this route needs the ") + to_string(needed) + " role; the token \"" + who->name +
               "\" has the " + to_string(who->role) + " role");
    return false;
  }
  return true;
}

json to_json(const supervisor::ReplicaStatus& s) {
  return {{"system", s.system},
          {"service", s.service},
          {"replica", s.replica},
          {"state", supervisor::to_string(s.state)},
          {"health", supervisor::to_string(s.health)},
          {"pid", s.pid},
          {"restarts", s.restarts},
          {"address", s.address},
          {"uptime_seconds", s.uptime_seconds},
          {"last_exit", s.last_exit},
          {"detail", s.detail}};
}

json to_json(const supervisor::SystemSummary& s) {
  return {{"name", s.name}, {"spec_file", s.spec_file}, {"desired", s.running ? "running" : "stopped"},
          {"replicas", s.replicas}, {"ready", s.ready}};
}

json to_json(const supervisor::LogLine& l) {
  return {{"system", l.system}, {"service", l.service}, {"replica", l.replica}, {"stream", l.stream}, {"line", l.text}};
}

Result<json> parse_body(const Request& req) {
  if (req.body.empty()) return json::object();
  if (json_deeper_than(req.body)) {
    return make_error(Errc::kInvalidArgument,
                      "request body is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return make_error(Errc::kInvalidArgument, "request body must be a JSON object");
  }
  return body;
}

Result<std::string> string_field(const json& body, const char* name, bool required) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) return make_error(Errc::kInvalidArgument, std::string("missing field \"") + name + "\"");
    return std::string();
  }
  if (!it->is_string()) return make_error(Errc::kInvalidArgument, std::string("field \"") + name + "\" must be a string");
  return it->get<std::string>();
}

// Streams new lines until the client leaves or the system is removed.
void follow(Supervisor& sup, const supervisor::LogFilter& filter, const std::shared_ptr<Exchange>& ex) {
  const auto id = sup.logs().subscribe(
      filter, [ex](const supervisor::LogLine& line) { ex->stream(to_json(line)); }, [ex] { ex->end_stream(); });
  ex->on_disconnect([&sup, id] { sup.logs().unsubscribe(id); });
}

void handle_apply(Supervisor& sup, const Request& req, const std::shared_ptr<Exchange>& ex) {
  auto body = parse_body(req);
  if (!body) return reply_error(ex, body.error());
  auto file = string_field(*body, "spec_file", true);
  auto text = string_field(*body, "spec_text", true);
  if (!file) return reply_error(ex, file.error());
  if (!text) return reply_error(ex, text.error());
  if (file->empty() || (*file)[0] != '/') return reply_error(ex, Errc::kInvalidArgument, "spec_file must be an absolute path");
  state::SystemRecord record;
  record.spec_file = *file;
  record.spec_text = *text;
  if (auto env = body->find("env"); env != body->end()) {
    if (!env->is_object()) return reply_error(ex, Errc::kInvalidArgument, "field \"env\" must be an object of strings");
    for (const auto& [k, v] : env->items()) {
      if (!v.is_string()) return reply_error(ex, Errc::kInvalidArgument, "env value of " + k + " must be a string");
      // Credentials in the caller's environment are not kept, whatever the client sent.
      if (!supervisor::is_withheld_caller_variable(k)) record.caller_env[k] = v.get<std::string>();
    }
  }
  if (auto images = body->find("images"); images != body->end()) {
    if (!images->is_object()) return reply_error(ex, Errc::kInvalidArgument, "field \"images\" must be an object of strings");
    for (const auto& [service, id] : images->items()) {
      if (!id.is_string() || id.get<std::string>().empty() || id.get<std::string>().size() > 256) {
        return reply_error(ex, Errc::kInvalidArgument, "images." + service + " must be an image ID (a string)");
      }
      record.images[service] = id.get<std::string>();
    }
  }
  const bool follow_logs = req.query.count("follow") && req.query.at("follow") == "true";
  sup.apply(std::move(record), [&sup, ex, follow_logs](Result<std::string> applied) {
    if (!applied) return reply_error(ex, applied.error());
    if (follow_logs) {
      // Subscribing before the reconciler runs means no line of the start is missed.
      ex->begin_stream();
      ex->stream({{"applied", *applied}});
      supervisor::LogFilter filter;
      filter.system = *applied;
      return follow(sup, filter, ex);
    }
    ex->reply(200, {{"name", *applied}});
  });
}

void handle_logs(Supervisor& sup, const std::string& system, const Request& req, const std::shared_ptr<Exchange>& ex) {
  supervisor::LogFilter filter;
  filter.system = system;
  if (auto it = req.query.find("service"); it != req.query.end() && !it->second.empty()) filter.service = it->second;
  if (auto it = req.query.find("replica"); it != req.query.end() && !it->second.empty()) {
    try {
      filter.replica = std::stoi(it->second);
    } catch (const std::exception&) {
      return reply_error(ex, Errc::kInvalidArgument, "replica must be a number");
    }
  }
  long tail = -1;  // all
  if (auto it = req.query.find("tail"); it != req.query.end() && !it->second.empty()) {
    try {
      tail = std::stol(it->second);
    } catch (const std::exception&) {
      return reply_error(ex, Errc::kInvalidArgument, "tail must be a number");
    }
  }
  const bool keep_following = req.query.count("follow") && req.query.at("follow") != "false" && req.query.at("follow") != "0";
  auto files = sup.log_files(filter);
  if (!files) return reply_error(ex, files.error());
  ex->begin_stream();
  for (const auto& [proto, path] : *files) {
    if (tail == 0) break;
    const std::size_t n = tail < 0 ? static_cast<std::size_t>(-1) : static_cast<std::size_t>(tail);
    for (auto& line : supervisor::tail_lines(path, sup.log_keep_files(), n)) {
      supervisor::LogLine l = proto;
      l.text = std::move(line);
      ex->stream(to_json(l));
    }
  }
  if (!keep_following) return ex->end_stream();
  follow(sup, filter, ex);
}

// The snapshot is streamed back: the caller writes it where it wants, with
// its own rights (the server never writes to a path a caller names). It is
// staged in the server's private directory, created 0600 by the store, and
// removed as soon as it is open for sending.
void handle_snapshot(const StoreAccess& store, const Request& req, const std::shared_ptr<Exchange>& ex) {
  auto body = parse_body(req);
  if (!body) return reply_error(ex, body.error());
  if (body->contains("path")) {
    return reply_error(ex, Errc::kInvalidArgument,
                       "the snapshot is sent in the response: \"path\" is no longer accepted "
                       "(`zeppelin store snapshot save FILE` writes it)");
  }
  if (!store.snapshot || store.staging_dir.empty()) {
    return reply_error(ex, Errc::kUnavailable, "this server has no store to snapshot");
  }
  if (auto s = make_dirs(store.staging_dir, 0700); !s) return reply_error(ex, s.error());
  static std::uint64_t sequence = 0;  // the event loop's: one thread
  const std::string path = store.staging_dir + "/api-snapshot-" + std::to_string(::getpid()) + "-" +
                           std::to_string(sequence++) + ".db";
  struct Cleanup {
    std::string path;
    ~Cleanup() { ::unlink(path.c_str()); }
  } cleanup{path};
  auto revision = store.snapshot(path);
  if (!revision) return reply_error(ex, revision.error());
  ex->reply_file(200, path, {{"X-Zeppelin-Revision", std::to_string(*revision)}});
}

void handle_tokens(Tokens* tokens, const Request& req, const std::shared_ptr<Exchange>& ex) {
  if (tokens == nullptr) return reply_error(ex, Errc::kUnavailable, "this server keeps no tokens");
  const std::string& m = req.method;
  if (req.path == "/v1/tokens" && m == "GET") {
    auto list = tokens->list();
    if (!list) return reply_error(ex, list.error());
    json out = json::array();
    for (const auto& t : *list) out.push_back(to_json(t));
    return ex->reply(200, out);
  }
  if (req.path == "/v1/tokens" && m == "POST") {
    auto body = parse_body(req);
    if (!body) return reply_error(ex, body.error());
    auto name = string_field(*body, "name", true);
    if (!name) return reply_error(ex, name.error());
    auto role_text = string_field(*body, "role", true);
    if (!role_text) return reply_error(ex, role_text.error());
    auto role = parse_role(*role_text);
    if (!role) return reply_error(ex, Errc::kInvalidArgument, "role must be viewer, operator or admin, not \"" + *role_text + "\"");
    auto ttl_text = string_field(*body, "ttl", false);
    if (!ttl_text) return reply_error(ex, ttl_text.error());
    std::optional<Duration> ttl;
    if (!ttl_text->empty()) {
      auto d = parse_duration(*ttl_text);
      if (!d) return reply_error(ex, Errc::kInvalidArgument, "ttl: " + d.error().message);
      ttl = *d;
    }
    TokenInfo info;
    auto secret = tokens->create(*name, *role, ttl, &info);
    if (!secret) return reply_error(ex, secret.error());
    log::info("API: made token \"{}\" ({})", info.name, to_string(info.role));
    json out = to_json(info);
    out["token"] = *secret;  // the only time it is ever sent
    return ex->reply(201, out);
  }
  const std::string prefix = "/v1/tokens/";
  if (req.path.starts_with(prefix) && m == "DELETE") {
    const std::string name = req.path.substr(prefix.size());
    if (auto s = tokens->revoke(name); !s) return reply_error(ex, s.error());
    log::info("API: revoked token \"{}\"", name);
    return ex->reply(200, {{"revoked", name}});
  }
  return reply_error(ex, Errc::kNotFound, "no route for " + m + " " + req.path);
}

}  // namespace

Role required_role(const std::string& method, const std::string& path) {
  for (const auto& r : kRouteRoles) {
    if (method == r.method && path_matches(r.path, path)) return r.role;
  }
  return Role::kAdmin;
}

Handler make_routes(Supervisor& sup, std::function<void()> on_shutdown, StoreAccess store, Tokens* tokens) {
  auto access = std::make_shared<Access>();
  access->tokens = tokens;
  // Turns long replica lists into JSON off the event loop: 50,000 rows take
  // a few hundred milliseconds, which no other request should wait for.
  auto serializer = std::make_shared<boost::asio::thread_pool>(1);
  auto reply_replicas = [serializer](const std::shared_ptr<Exchange>& ex, std::vector<supervisor::ReplicaStatus> rows,
                                     std::optional<json> system) {
    boost::asio::post(*serializer, [ex, rows = std::move(rows), system = std::move(system)]() mutable {
      json replicas = json::array();
      for (const auto& r : rows) replicas.push_back(to_json(r));
      json out;
      if (system) {
        out = std::move(*system);
        out["replicas_detail"] = std::move(replicas);
      } else {
        out = std::move(replicas);
      }
      ex->reply_serialized(200, out.dump(-1, ' ', false, json::error_handler_t::replace));
    });
  };
  return [&sup, on_shutdown = std::move(on_shutdown), store = std::move(store), access, reply_replicas](
             const Request& req, const std::shared_ptr<Exchange>& ex) {
    static const std::regex system_route(R"(^/v1/systems/([a-z0-9-]{1,63})(/[a-z]+)?$)");
    if (!admit(*access, req, ex)) return;
    const std::string& m = req.method;
    if (req.path == "/v1/tokens" || req.path.starts_with("/v1/tokens/")) return handle_tokens(access->tokens, req, ex);
    if (req.path == "/v1/version" && m == "GET") {
      const BuildInfo& build = build_info();
      return ex->reply(200, {{"name", "zeppelin"}, {"api", kApiVersion}, {"version", build.version},
                             {"commit", build.commit}, {"build_type", build.build_type}});
    }
    if (req.path == "/v1/etcd" && m == "GET") {
      json body = {{"endpoints", store.endpoints},
                   {"backend", store.backend},
                   {"auth", store.auth_enabled && store.auth_enabled()}};
      if (!store.ca_file.empty()) body["cacert"] = store.ca_file;
      return ex->reply(200, body);
    }
    if (req.path == "/v1/store/snapshot" && m == "POST") return handle_snapshot(store, req, ex);
    if (req.path == "/v1/shutdown" && m == "POST") {
      ex->reply(202, {{"shutting_down", true}});
      return on_shutdown();
    }
    if (req.path == "/v1/systems") {
      if (m == "GET") {
        json out = json::array();
        for (const auto& s : sup.systems()) out.push_back(to_json(s));
        return ex->reply(200, out);
      }
      if (m == "POST") return handle_apply(sup, req, ex);
      return reply_error(ex, Errc::kInvalidArgument, "method " + m + " not allowed on " + req.path);
    }
    if (req.path == "/v1/replicas" && m == "GET") {
      std::optional<std::string> system;
      if (auto it = req.query.find("system"); it != req.query.end() && !it->second.empty()) system = it->second;
      return sup.replicas(system, [ex, reply_replicas](Result<std::vector<supervisor::ReplicaStatus>> rows) {
        if (!rows) return reply_error(ex, rows.error());
        reply_replicas(ex, std::move(*rows), std::nullopt);
      });
    }
    std::smatch match;
    if (!std::regex_match(req.path, match, system_route)) {
      return reply_error(ex, Errc::kNotFound, "no route for " + m + " " + req.path);
    }
    const std::string system = match[1].str();
    const std::string action = match[2].matched ? match[2].str().substr(1) : "";
    auto body = parse_body(req);
    if (!body) return reply_error(ex, body.error());

    if (action.empty() && m == "GET") {
      return sup.replicas(system, [&sup, ex, system, reply_replicas](Result<std::vector<supervisor::ReplicaStatus>> rows) {
        if (!rows) return reply_error(ex, rows.error());
        for (const auto& s : sup.systems()) {
          if (s.name == system) return reply_replicas(ex, std::move(*rows), to_json(s));
        }
        reply_error(ex, Errc::kNotFound, "no system named \"" + system + "\"");
      });
    }
    if (action.empty() && m == "DELETE") {
      const bool volumes = req.query.count("volumes") && req.query.at("volumes") == "true";
      auto s = sup.remove(system, volumes, [ex, system] { ex->reply(200, {{"removed", system}}); });
      if (!s) reply_error(ex, s.error());
      return;
    }
    if (action == "start" && m == "POST") {
      if (auto s = sup.start(system); !s) return reply_error(ex, s.error());
      return ex->reply(202, {{"starting", system}});
    }
    if (action == "stop" && m == "POST") {
      auto s = sup.stop(system, [ex, system] { ex->reply(200, {{"stopped", system}}); });
      if (!s) reply_error(ex, s.error());
      return;
    }
    if (action == "scale" && m == "POST") {
      auto service = string_field(*body, "service", true);
      if (!service) return reply_error(ex, service.error());
      auto it = body->find("replicas");
      if (it == body->end() || !it->is_number_integer() || it->get<std::int64_t>() < 0 ||
          it->get<std::int64_t>() > 10000) {
        return reply_error(ex, Errc::kInvalidArgument, "field \"replicas\" must be an integer from 0 to 10000");
      }
      const int replicas = static_cast<int>(it->get<std::int64_t>());
      if (auto s = sup.scale(system, *service, replicas); !s) return reply_error(ex, s.error());
      return ex->reply(200, {{"system", system}, {"service", *service}, {"replicas", replicas}});
    }
    if (action == "restart" && m == "POST") {
      auto service = string_field(*body, "service", false);
      if (!service) return reply_error(ex, service.error());
      std::optional<std::string> only;
      if (!service->empty()) only = *service;
      if (auto s = sup.restart(system, only); !s) return reply_error(ex, s.error());
      return ex->reply(202, {{"restarting", system}});
    }
    if (action == "wait" && m == "GET") {
      Duration timeout = std::chrono::seconds(60);
      if (auto it = req.query.find("timeout"); it != req.query.end()) {
        auto d = parse_duration(it->second);
        if (!d) return reply_error(ex, d.error());
        timeout = *d;
      }
      auto s = sup.wait_ready(system, timeout, [ex](const supervisor::ReadyReport& r) {
        ex->reply(200, {{"ok", r.ok}, {"message", r.message}, {"replica", r.replica}, {"last_lines", r.last_lines}});
      });
      if (!s) reply_error(ex, s.error());
      return;
    }
    if (action == "logs" && m == "GET") return handle_logs(sup, system, req, ex);
    return reply_error(ex, Errc::kNotFound, "no route for " + m + " " + req.path);
  };
}

}  // namespace zeppelin::api
