#include "cli/store_commands.h"

#include <filesystem>
#include <iostream>

#include "cli/autostart.h"
#include "client/client.h"
#include "store/embedded_store.h"

namespace zeppelin::cli {

namespace {

std::string store_dir(const std::string& home) { return home + "/store"; }

int report(const Error& e) {
  std::cerr << "zeppelin: " << e.message;
  if (e.code == Errc::kUnavailable) std::cerr << " (stop the server first: `zeppelin shutdown`)";
  std::cerr << "\n";
  return 1;
}

// The running server holds the store open: it takes the snapshot itself.
int save_online(const client::Client& server, const std::string& file) {
  std::error_code ec;
  const std::string path = std::filesystem::absolute(file, ec).string();
  auto r = server.call("POST", "/v1/store/snapshot", {{"path", path}});
  if (!r) return report(r.error());
  if (!r->ok()) {
    std::cerr << "zeppelin: " << r->error_message() << "\n";
    return 1;
  }
  std::cout << "snapshot of the running server's store at revision " << r->body.value("revision", int64_t{0})
            << " saved to " << file << "\n";
  return 0;
}

}  // namespace

int cmd_store_snapshot_save(const std::string& home, const std::string& file) {
  if (client::Client server(socket_path(home)); server.reachable()) return save_online(server, file);
  auto store = store::EmbeddedStore::open(store_dir(home));
  if (!store) return report(store.error());
  if (auto s = (*store)->snapshot(file); !s) return report(s.error());
  std::cout << "snapshot of " << store_dir(home) << " at revision " << (*store)->status().revision << " saved to "
            << file << "\n";
  return 0;
}

int cmd_store_snapshot_restore(const std::string& home, const std::string& file) {
  if (client::Client(socket_path(home)).reachable()) {
    std::cerr << "zeppelin: the zeppelin server of " << home
              << " is running and holds the store open; stop it first (`zeppelin shutdown`), then restore\n";
    return 1;
  }
  if (auto s = store::restore_snapshot(file, store_dir(home)); !s) return report(s.error());
  auto store = store::EmbeddedStore::open(store_dir(home));
  if (!store) return report(store.error());
  std::cout << "restored " << store_dir(home) << " from " << file << " (revision " << (*store)->status().revision
            << ")\n";
  return 0;
}

}  // namespace zeppelin::cli
