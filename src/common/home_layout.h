// The layout of $ZEPPELIN_HOME, the data directory (docs/spec.md, "The data
// directory"): every path in it is built here, from its root and names that
// callers have checked (DNS labels, secret keys).
#pragma once

#include <string>

namespace zeppelin {

// Directory names that code walking the tree must recognise.
inline constexpr const char* kVolumesDir = "volumes";
// The one directory whose files others may read (the etcd CA's copy for
// replicas that run as another account); see home_modes.h.
inline constexpr const char* kPublicDir = "public";

class HomeLayout {
 public:
  explicit HomeLayout(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  std::string api_socket() const { return at("zeppelin.sock"); }
  // Held by the running server: one server per data directory.
  std::string server_lock() const { return at("server.lock"); }
  // The output of a server the CLI started.
  std::string server_log() const { return at("server.log"); }
  // The embedded store (SQLite), its snapshots and the etcd API's auth state.
  std::string store_dir() const { return at("store"); }
  // Where the store's etcd API last listened.
  std::string etcd_address_file() const { return at("etcd.address"); }
  // The desired state of versions before the store, imported once.
  std::string legacy_state_file() const { return at("state.json"); }
  // The generated CA and certificates of the TCP API and the etcd port.
  std::string tls_dir() const { return at("tls"); }
  std::string tls_ca_file() const { return at("tls/ca.pem"); }
  // The embedded store's root password, made by the server on first start:
  // zeppelin's own commands log in with it.
  std::string store_root_credentials() const { return at("credentials/store-root"); }
  std::string secrets_dir() const { return at("secrets"); }
  std::string public_dir() const { return at(kPublicDir); }

  std::string logs_dir(const std::string& system) const { return at("logs/" + system); }
  std::string logs_dir(const std::string& system, const std::string& service) const {
    return logs_dir(system) + "/" + service;
  }
  std::string volumes_dir() const { return at(kVolumesDir); }
  std::string volumes_dir(const std::string& system) const { return volumes_dir() + "/" + system; }
  std::string volume_dir(const std::string& system, const std::string& service, int ordinal,
                         const std::string& volume) const {
    return volumes_dir(system) + "/" + service + "/" + std::to_string(ordinal) + "/" + volume;
  }

 private:
  std::string at(const std::string& relative) const { return root_ + "/" + relative; }
  std::string root_;
};

}  // namespace zeppelin
