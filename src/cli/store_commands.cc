#include "cli/store_commands.h"

#include <iostream>

#include "store/embedded_store.h"

namespace zeppelin::cli {

namespace {

std::string store_dir(const std::string& home) { return home + "/store"; }

int report(const Error& e) {
  std::cerr << "zeppelin: " << e.message;
  if (e.code == Errc::kUnavailable) {
    std::cerr << " (stop the server first; while it runs, use `etcdctl snapshot save` against its --etcd-listen)";
  }
  std::cerr << "\n";
  return 1;
}

}  // namespace

int cmd_store_snapshot_save(const std::string& home, const std::string& file) {
  auto store = store::EmbeddedStore::open(store_dir(home));
  if (!store) return report(store.error());
  if (auto s = (*store)->snapshot(file); !s) return report(s.error());
  std::cout << "snapshot of " << store_dir(home) << " at revision " << (*store)->status().revision << " saved to "
            << file << "\n";
  return 0;
}

int cmd_store_snapshot_restore(const std::string& home, const std::string& file) {
  if (auto s = store::restore_snapshot(file, store_dir(home)); !s) return report(s.error());
  auto store = store::EmbeddedStore::open(store_dir(home));
  if (!store) return report(store.error());
  std::cout << "restored " << store_dir(home) << " from " << file << " (revision " << (*store)->status().revision
            << ")\n";
  return 0;
}

}  // namespace zeppelin::cli
