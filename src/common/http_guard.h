// What keeps web browsers out of Zeppelin's HTTP ports (the API with
// `--listen`, and the JSON gateway of the etcd port). Neither port is meant for
// browsers, but a page the user visits can still send requests to them:
//
//  - DNS rebinding: a name the attacker controls first resolves to their
//    server, then to 127.0.0.1; the page is then "same-origin" with our port
//    and can read the answers. The request still carries the attacker's name
//    in Host, so only requests naming this server are served (check_host).
//  - Cross-site request forgery: a page on another origin sends a "simple"
//    request (a POST with a text/plain, form or multipart body needs no CORS
//    preflight); it cannot read the answer but the request takes effect.
//    Browsers send Origin with every cross-origin POST, so a foreign Origin is
//    refused (check_origin), and so are the body types no JSON client sends.
//
// The policy is plain string checks, shared by both transports.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace zeppelin {

class HostGuard {
 public:
  // `listen` is the bound address ("IP:PORT", "[IPv6]:PORT" or "IPv6:PORT");
  // `allowed_hosts` the names of --allowed-host: "NAME" (any port) or "NAME:PORT".
  HostGuard(std::string_view listen, const std::vector<std::string>& allowed_hosts);

  // A Host header this server answers to: the listen address's IP, localhost,
  // 127.0.0.1, [::1] or an allowed name, with any port (rebinding controls the
  // name, not the port; a port forward may change the port). Empty: no Host
  // header, which only HTTP/1.0 clients may omit and is refused.
  // Errors are kInvalidArgument, with a message for the client.
  Status check_host(std::string_view host) const;

  // An Origin header (present) of a request whose Host passed check_host: it
  // must be this very server as the client reached it, http(s)://HOST, ports
  // compared with the scheme's default. "null" (sandboxed frames, file:// pages)
  // and every other origin are refused.
  static Status check_origin(std::string_view origin, std::string_view host);

  // An --allowed-host value as the constructor takes it: NAME, NAME:PORT, [IPv6][:PORT].
  static Status check_name(std::string_view name);

  // The names accepted, for messages and logs.
  std::string describe() const;

 private:
  struct Name {
    std::string host;  // lowercase, without brackets
    int port = -1;     // -1: any
  };
  std::vector<Name> names_;
};

// The media type of a Content-Type value: lowercase, parameters and blanks removed
// ("Application/JSON; charset=utf-8" -> "application/json").
std::string media_type(std::string_view content_type);

// True for the methods that may change state: anything but GET, HEAD and OPTIONS.
bool changes_state(std::string_view method);

}  // namespace zeppelin
