#include "common/http_guard.h"

#include <algorithm>
#include <cctype>
#include <optional>

namespace zeppelin {

namespace {

struct Authority {
  std::string host;  // lowercase, without brackets or a trailing dot
  int port = -1;     // -1: none given
};

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::optional<int> parse_port(std::string_view digits) {
  if (digits.empty()) return -1;  // "host:" is allowed by RFC 3986, and means no port
  if (digits.size() > 5) return std::nullopt;
  int port = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return std::nullopt;
  return port;
}

// HOST[:PORT], [IPv6][:PORT], and (for listen addresses only) IPv6:PORT.
std::optional<Authority> parse_authority(std::string_view s, bool bare_ipv6) {
  Authority out;
  std::string_view host;
  std::string_view port;
  if (s.starts_with('[')) {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = s.substr(1, close - 1);
    const std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::nullopt;
      port = rest.substr(1);
    }
  } else {
    const auto colons = std::count(s.begin(), s.end(), ':');
    if (colons > 1 && !bare_ipv6) return std::nullopt;  // an IPv6 address must be bracketed
    const auto colon = s.rfind(':');
    host = s.substr(0, colon);
    if (colon != std::string_view::npos) port = s.substr(colon + 1);
  }
  if (host.empty()) return std::nullopt;
  for (char c : host) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_' && c != ':') {
      return std::nullopt;
    }
  }
  const auto p = parse_port(port);
  if (!p) return std::nullopt;
  out.port = *p;
  out.host = lowercase(host);
  if (out.host.size() > 1 && out.host.back() == '.') out.host.pop_back();  // "localhost." is localhost
  return out;
}

std::string show(const std::string& host, int port) {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port >= 0) out += ":" + std::to_string(port);
  return out;
}

}  // namespace

HostGuard::HostGuard(std::string_view listen, const std::vector<std::string>& allowed_hosts) {
  names_ = {{"localhost", -1}, {"127.0.0.1", -1}, {"::1", -1}};
  // A wildcard address is not a destination: clients use one of the
  // machine's names, which --allowed-host lists.
  if (auto a = parse_authority(listen, /*bare_ipv6=*/true); a && a->host != "0.0.0.0" && a->host != "::" &&
                                                              a->host != "127.0.0.1" && a->host != "::1") {
    names_.push_back({a->host, -1});
  }
  for (const auto& name : allowed_hosts) {
    if (auto a = parse_authority(name, /*bare_ipv6=*/false)) names_.push_back({a->host, a->port});
  }
}

Status HostGuard::check_host(std::string_view host) const {
  if (host.empty()) {
    return make_error(Errc::kInvalidArgument,
                      "a request without a Host header is refused on a TCP port (accepted names: " + describe() + ")");
  }
  const auto a = parse_authority(host, /*bare_ipv6=*/false);
  if (a) {
    for (const auto& n : names_) {
      if (n.host == a->host && (n.port < 0 || n.port == a->port)) return ok_status();
    }
  }
  return make_error(Errc::kInvalidArgument, "Host \"" + std::string(host) +
                                                "\" is not a name this server answers to (accepted: " + describe() +
                                                "; add names with `zeppelin server --allowed-host NAME`)");
}

Status HostGuard::check_origin(std::string_view origin, std::string_view host) {
  auto refused = [&] {
    return make_error(Errc::kInvalidArgument, "cross-origin request refused: Origin \"" + std::string(origin) +
                                                  "\" is not this server (http://" + std::string(host) + ")");
  };
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos) return refused();  // "null" included
  const std::string scheme = lowercase(origin.substr(0, sep));
  if (scheme != "http" && scheme != "https") return refused();
  const std::string_view rest = origin.substr(sep + 3);
  if (rest.find_first_of("/?#@") != std::string_view::npos) return refused();
  const auto from = parse_authority(rest, /*bare_ipv6=*/false);
  const auto to = parse_authority(host, /*bare_ipv6=*/false);
  if (!from || !to || from->host != to->host) return refused();
  const int default_port = scheme == "https" ? 443 : 80;
  const int from_port = from->port < 0 ? default_port : from->port;
  const int to_port = to->port < 0 ? default_port : to->port;
  if (from_port != to_port) return refused();
  return ok_status();
}

Status HostGuard::check_name(std::string_view name) {
  if (parse_authority(name, /*bare_ipv6=*/false)) return ok_status();
  return make_error(Errc::kInvalidArgument,
                    "\"" + std::string(name) + "\" is not a host name (NAME, NAME:PORT or [IPv6]:PORT)");
}

std::string HostGuard::describe() const {
  std::string out;
  for (const auto& n : names_) {
    if (!out.empty()) out += ", ";
    out += show(n.host, n.port);
  }
  return out;
}

std::string media_type(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  return lowercase(type);
}

bool changes_state(std::string_view method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

}  // namespace zeppelin
