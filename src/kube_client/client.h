// A synchronous client of the Kubernetes API over HTTPS (Boost.Beast on
// OpenSSL). It sends requests and streams response bodies; what the paths
// and bodies mean is up to the caller (see kube_client/resources.h).
//
// Thread-safety: request() may be called from several threads (calls are
// serialised on one keep-alive connection); each stream() opens a connection
// of its own, so streams run in parallel on different threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "kube_client/kubeconfig.h"

namespace zeppelin::kube {

struct Response {
  int status = 0;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
};

class Client {
 public:
  // Validates the server URL and the TLS material; does not connect yet.
  static Result<std::unique_ptr<Client>> create(const ClusterConfig& config);
  virtual ~Client() = default;

  virtual const ClusterConfig& config() const = 0;

  // One request; `path` starts with "/" and includes the query. Fails
  // (kUnavailable) only when the server cannot be reached or answers
  // garbage; any HTTP status is a Response.
  virtual Result<Response> request(std::string_view method, const std::string& path, const std::string& body = {},
                                   std::string_view content_type = "application/json") = 0;

  // GET `path` and hand each piece of the body to `on_data` as it arrives,
  // until the server ends the body or `on_data` returns false. `idle_timeout`
  // bounds the wait for each piece (zero: no bound). For a non-2xx answer
  // on_data is not called and the Response holds the whole body.
  virtual Result<Response> stream(const std::string& path, const std::function<bool(std::string_view)>& on_data,
                                  std::chrono::milliseconds idle_timeout) = 0;
};

// The message for a failed call: which user did what to which resource, and
// the API's own words from its Status object (message, details.causes).
Error api_error(const Response& response, const ClusterConfig& config, std::string_view verb,
                std::string_view resource);

}  // namespace zeppelin::kube
