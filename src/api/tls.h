// TLS for the API's TCP port: the server's certificate and key (given with
// --tls-cert/--tls-key, or a private CA and a server certificate generated
// under $ZEPPELIN_HOME/tls/), and the OpenSSL context built from them, rebuilt
// when the files change so that they can be rotated without a restart.
#pragma once

#include <sys/types.h>

#include <boost/asio/ssl/context.hpp>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace zeppelin::api {

struct TlsFiles {
  std::string cert;  // PEM: the server's certificate, optionally followed by its chain
  std::string key;   // PEM: its private key
};

// The generated CA and server certificate in `dir` ($ZEPPELIN_HOME/tls):
// ca.pem (what clients trust), ca-key.pem, server.pem, server-key.pem (keys
// 0600, the directory 0700). The CA is made on first use (EC P-256, 10 years)
// and made anew when it expires within 30 days; the server certificate (1
// year) is issued again when it is missing, expires within 30 days, or names
// other hosts than `sans` ("DNS:NAME" or "IP:ADDRESS" entries, as from
// default_sans()).
Result<TlsFiles> ensure_generated_certificate(const std::string& dir, const std::vector<std::string>& sans);

// The subject alternative names of the generated certificate for a listen
// host: that host (for 0.0.0.0 or ::, the machine's host name and its
// addresses), localhost, 127.0.0.1, ::1 and each of `extra` (--tls-san: a
// name or an IP address).
std::vector<std::string> default_sans(const std::string& listen_host, const std::vector<std::string>& extra);

// A server context (TLS 1.2 and later) made from `files`. current() checks the
// files' modification times and sizes and rebuilds the context when they
// changed; a pair that does not load (e.g. caught half-written) is logged and
// the previous context is kept.
class TlsContextSource {
 public:
  static Result<std::unique_ptr<TlsContextSource>> load(TlsFiles files);
  std::shared_ptr<boost::asio::ssl::context> current();

 private:
  struct Stamp {
    time_t mtime_sec = 0;
    long mtime_nsec = 0;
    off_t size = 0;
    ino_t inode = 0;
    bool operator==(const Stamp&) const = default;
  };
  explicit TlsContextSource(TlsFiles files) : files_(std::move(files)) {}
  std::vector<Stamp> stamp() const;
  TlsFiles files_;
  std::vector<Stamp> stamp_;
  std::shared_ptr<boost::asio::ssl::context> context_;
};

// A server context from `files`, or why it cannot be made.
Result<std::shared_ptr<boost::asio::ssl::context>> make_server_context(const TlsFiles& files);

}  // namespace zeppelin::api
