// `zeppelin store snapshot save|restore FILE`: backup and restore of the
// coordination store in $ZEPPELIN_HOME/store while no server has it open.
// (With a server running, `etcdctl snapshot save` against --etcd-listen takes
// the same snapshot online.)
#pragma once

#include <string>

namespace zeppelin::cli {

// Both return an exit code and print what they did or why they could not.
int cmd_store_snapshot_save(const std::string& home, const std::string& file);
int cmd_store_snapshot_restore(const std::string& home, const std::string& file);

}  // namespace zeppelin::cli
