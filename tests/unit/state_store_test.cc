#include "state/state_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace zeppelin::state {
namespace {

namespace fs = std::filesystem;

TEST(FileStateStore, RoundTripsEveryField) {
  const fs::path dir = fs::temp_directory_path() / ("zeppelin-state-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  FileStateStore store((dir / "state.json").string());
  auto empty = store.load();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  SystemRecord r;
  r.name = "shop";
  r.spec_file = "/x/zeppelin.yaml";
  r.spec_text = "name: shop\n";
  r.caller_env = {{"PATH", "/bin"}};
  r.running = false;
  r.scale = {{"web", 4}};
  r.replicas = {{"web/0", {"127.9.0.1", 3}}};
  ASSERT_TRUE(store.save({r}).ok());
  EXPECT_EQ(fs::status(dir / "state.json").permissions() & fs::perms::others_read, fs::perms::none);

  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 1u);
  const SystemRecord& l = (*loaded)[0];
  EXPECT_EQ(l.name, "shop");
  EXPECT_EQ(l.spec_text, "name: shop\n");
  EXPECT_EQ(l.caller_env.at("PATH"), "/bin");
  EXPECT_FALSE(l.running);
  EXPECT_EQ(l.scale.at("web"), 4);
  EXPECT_EQ(l.replicas.at("web/0").address, "127.9.0.1");
  EXPECT_EQ(l.replicas.at("web/0").restarts, 3);
  fs::remove_all(dir);
}

TEST(FileStateStore, CorruptFileIsAnErrorNotAnEmptyState) {
  const fs::path file = fs::temp_directory_path() / ("zeppelin-corrupt-" + std::to_string(::getpid()) + ".json");
  std::ofstream(file) << "{\"systems\": [ {\"name\": 1";
  FileStateStore store(file.string());
  auto loaded = store.load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("corrupt state file"), std::string::npos);
  fs::remove(file);
}

}  // namespace
}  // namespace zeppelin::state
