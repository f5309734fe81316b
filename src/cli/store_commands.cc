#include "cli/store_commands.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/autostart.h"
#include "cli/coord_commands.h"
#include "client/client.h"
#include "common/fs_util.h"
#include "common/home_layout.h"
#include "common/pending_file.h"
#include "store/embedded_store.h"

namespace zeppelin::cli {

namespace {

std::string store_dir(const std::string& home) { return HomeLayout(home).store_dir(); }

int report(const Error& e) {
  std::cerr << "zeppelin: " << e.message;
  if (e.code == Errc::kUnavailable) std::cerr << " (stop the server first: `zeppelin shutdown`)";
  std::cerr << "\n";
  return 1;
}

// The running server holds the store open: it takes the snapshot and sends it.
int save_online(const client::Client& server, PendingFile& out, const std::string& file) {
  auto r = server.download("POST", "/v1/store/snapshot", out.fd());
  if (!r) {
    std::cerr << "zeppelin: " << r.error().message << "\n";
    return 1;
  }
  if (!r->ok()) {
    std::cerr << "zeppelin: " << r->error_message() << "\n";
    return 1;
  }
  if (auto s = out.commit(); !s) return report(s.error());
  const auto revision = r->headers.find("x-zeppelin-revision");
  std::cout << "snapshot of the running server's store at revision "
            << (revision == r->headers.end() ? std::string("?") : revision->second) << " saved to " << file << "\n";
  return 0;
}

}  // namespace

int cmd_store_snapshot_save(const std::string& home, const std::string& file) {
  // Created first: a path the caller cannot write is refused before any work.
  auto out = PendingFile::create(file);
  if (!out) return report(out.error());
  if (client::Client server(socket_path(home)); server.reachable()) return save_online(server, *out, file);
  auto store = store::EmbeddedStore::open(store_dir(home));
  if (!store) return report(store.error());
  // The store writes the copy (0600) over the temp file, which then takes FILE's place.
  if (auto s = (*store)->snapshot(out->temp_path()); !s) return report(s.error());
  if (auto s = out->commit(); !s) return report(s.error());
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
  // Snapshots carry the users with their password hashes, never root's password itself.
  const std::string auth_state = store_dir(home) + "/" + store::kAuthStateFile;
  if (::access(auth_state.c_str(), F_OK) == 0 && ::access(HomeLayout(home).store_root_credentials().c_str(), F_OK) != 0) {
    std::cout << "its users and roles came back with it; root's password is the one of the store the snapshot was "
                 "taken from: copy that server's credentials/store-root here, or start the server once with "
                 "--store-password-env VAR\n";
  }
  return 0;
}

void add_store_command(CLI::App& app, Commands& commands) {
  auto file = std::make_shared<std::string>();
  auto* store = app.add_subcommand("store", "The coordination store in $ZEPPELIN_HOME/store");
  store->require_subcommand(1);
  auto* snapshot = store->add_subcommand("snapshot", "Back up the whole store (online or not), or restore it (server stopped)");
  snapshot->require_subcommand(1);
  auto* save = snapshot->add_subcommand("save", "Write a consistent copy of the store to FILE");
  save->add_option("file", *file, "snapshot file")->required();
  add_examples(save, {"zeppelin store snapshot save backup.db   # online, from the running server",
                      "zeppelin store snapshot save /backup/store-$(date +%F).db"});
  add_examples(snapshot, {"zeppelin store snapshot save backup.db",
                          "zeppelin shutdown && zeppelin store snapshot restore backup.db"});
  add_examples(store, {"zeppelin store snapshot save backup.db",
                       "eval \"$(zeppelin store env)\"; etcdctl get --prefix /zeppelin/"});
  commands.on(save, [file] { return cmd_store_snapshot_save(zeppelin_home(), *file); });
  auto* restore = snapshot->add_subcommand("restore", "Replace the store with a snapshot FILE");
  restore->add_option("file", *file, "snapshot file")->required();
  add_examples(restore, {"zeppelin shutdown && zeppelin store snapshot restore backup.db",
                         "zeppelin store snapshot restore backup.db && zeppelin server -d"});
  commands.on(restore, [file] { return cmd_store_snapshot_restore(zeppelin_home(), *file); });
  auto* env = store->add_subcommand(
      "env", "Print export lines that point etcdctl and zeppelin's clients at the local store, as root");
  add_examples(env, {"eval \"$(zeppelin store env)\"; etcdctl get --prefix /zeppelin/services/",
                     "zeppelin store env > store.env        # for a shell script to source"});
  commands.on(env, [] { return cmd_store_env(zeppelin_home()); });
}

}  // namespace zeppelin::cli
