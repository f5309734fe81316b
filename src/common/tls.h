// TLS for the server's TCP ports (the API's and the etcd port): a server
// certificate and key (given as files, or a private CA and a server
// certificate generated under $ZEPPELIN_HOME/tls/), and the OpenSSL context
// built from them, rebuilt when the files change so that they can be rotated
// without a restart.
#pragma once

#include <sys/types.h>

#include <boost/asio/ssl/context.hpp>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"

namespace zeppelin {

struct TlsFiles {
  std::string cert;  // PEM: the server's certificate, optionally followed by its chain
  std::string key;   // PEM: its private key
};

// The generated CA and a server certificate in `dir` ($ZEPPELIN_HOME/tls):
// ca.pem (what clients trust), ca-key.pem, NAME.pem, NAME-key.pem (keys
// 0600, the directory 0700); `name` tells apart the certificates of ports
// whose names differ ("server": the API's, "etcd-server": the etcd port's).
// The CA is made on first use (EC P-256, 10 years) and made anew when it
// expires within 30 days; the server certificate (1 year) is issued again
// when it is missing, expires within 30 days, or names other hosts than
// `sans` ("DNS:NAME" or "IP:ADDRESS" entries, as from default_sans()).
Result<TlsFiles> ensure_generated_certificate(const std::string& dir, const std::vector<std::string>& sans,
                                              const std::string& name = "server");

// The subject alternative names of the generated certificate for a listen
// host: that host (for 0.0.0.0 or ::, the machine's host name and its
// addresses), localhost, 127.0.0.1, ::1 and each of `extra` (--tls-san: a
// name or an IP address).
std::vector<std::string> default_sans(const std::string& listen_host, const std::vector<std::string>& extra);

// Application protocols a server context offers (ALPN), in its order of
// preference, e.g. {"h2", "http/1.1"}; empty: no ALPN.
using AlpnProtocols = std::vector<std::string>;

// A server context (TLS 1.2 and later) made from `files`. current() checks the
// files' modification times and sizes and rebuilds the context when they
// changed; a pair that does not load (e.g. caught half-written) is logged and
// the previous context is kept. Thread-safe.
class TlsContextSource {
 public:
  static Result<std::unique_ptr<TlsContextSource>> load(TlsFiles files, AlpnProtocols alpn = {});
  std::shared_ptr<boost::asio::ssl::context> current();

 private:
  struct Stamp {
    time_t mtime_sec = 0;
    long mtime_nsec = 0;
    off_t size = 0;
    ino_t inode = 0;
    bool operator==(const Stamp&) const = default;
  };
  TlsContextSource(TlsFiles files, AlpnProtocols alpn) : files_(std::move(files)), alpn_(std::move(alpn)) {}
  std::vector<Stamp> stamp() const;
  const TlsFiles files_;
  const AlpnProtocols alpn_;
  std::mutex mu_;
  std::vector<Stamp> stamp_;                            // guarded by mu_
  std::shared_ptr<boost::asio::ssl::context> context_;  // guarded by mu_
};

// A server context from `files`, or why it cannot be made. With `alpn`, a
// client's ALPN offer must include one of them (the first of ours it offers
// is chosen); a client that offers none is served without.
Result<std::shared_ptr<boost::asio::ssl::context>> make_server_context(const TlsFiles& files,
                                                                       const AlpnProtocols& alpn = {});

}  // namespace zeppelin
