// The data directory's files and directories: owner-only whatever the umask,
// tightened at start-up (but never inside a replica's volume), and secret
// names checked before any path is built from them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/fs_util.h"
#include "common/home_modes.h"
#include "secrets/secrets.h"
#include "supervisor/log_hub.h"

namespace zeppelin {
namespace {

namespace fs = std::filesystem;

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

void touch(const fs::path& p, mode_t mode) {
  std::ofstream(p) << "x";
  ::chmod(p.c_str(), mode);
}

class HomeFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_umask_ = ::umask(022);
    dir_ = fs::temp_directory_path() / ("zeppelin-home-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    home_ = dir_ / "home";
  }
  void TearDown() override {
    ::umask(old_umask_);
    fs::remove_all(dir_);
  }
  mode_t old_umask_ = 0;
  fs::path dir_;
  fs::path home_;
};

TEST_F(HomeFilesTest, MakeDirsGivesEveryNewDirectoryTheModeAndLeavesOldOnesAlone) {
  ::umask(0);
  ASSERT_TRUE(make_dirs((home_ / "volumes/sys/svc/0/data").string(), 0700).ok());
  for (const char* p : {"", "volumes", "volumes/sys", "volumes/sys/svc", "volumes/sys/svc/0", "volumes/sys/svc/0/data"}) {
    EXPECT_EQ(mode_of(home_ / p), 0700u) << p;
  }
  ::chmod((home_ / "volumes/sys/svc/0/data").c_str(), 0777);
  ASSERT_TRUE(make_dirs((home_ / "volumes/sys/svc/0/data").string(), 0700).ok());
  EXPECT_EQ(mode_of(home_ / "volumes/sys/svc/0/data"), 0777u);
  touch(home_ / "file", 0600);
  EXPECT_FALSE(make_dirs((home_ / "file/below").string(), 0700).ok());
}

TEST_F(HomeFilesTest, FilesAreOwnerOnlyWhateverTheUmaskOrALeftover) {
  ::umask(0);
  fs::create_directories(home_);
  touch(home_ / ".etcd.address.tmp", 0666);  // a crash left it behind
  ASSERT_TRUE(write_file_atomic((home_ / "etcd.address").string(), "127.0.0.1:1").ok());
  EXPECT_EQ(mode_of(home_ / "etcd.address"), 0600u);
  EXPECT_FALSE(fs::exists(home_ / ".etcd.address.tmp"));

  touch(home_ / "server.log", 0644);
  const int fd = open_owner_only((home_ / "server.log").string(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(mode_of(home_ / "server.log"), 0600u);

  supervisor::ReplicaLog log((home_ / "0.log").string(), 8, 2);
  log.append("0123456789\n", false, [](std::string_view) {});
  log.append("0123456789\n", false, [](std::string_view) {});
  EXPECT_EQ(mode_of(home_ / "0.log"), 0600u);
  EXPECT_EQ(mode_of(home_ / "0.log.1"), 0600u);
}

TEST_F(HomeFilesTest, TighteningSkipsReplicaVolumesAndLinksAndNamesWhatItChanged) {
  const fs::path volume = home_ / "volumes/sys/svc/0/data";
  fs::create_directories(volume / "deep");
  fs::create_directories(home_ / "store");
  fs::create_directories(dir_ / "elsewhere");
  touch(home_ / "store/store.db", 0644);
  touch(home_ / "secret", 0640);
  touch(volume / "inside", 0666);
  touch(home_ / "ok", 0600);
  for (const char* p : {"", "volumes", "volumes/sys", "volumes/sys/svc", "volumes/sys/svc/0", "volumes/sys/svc/0/data",
                        "volumes/sys/svc/0/data/deep", "store"}) {
    ::chmod((home_ / p).c_str(), 0755);
  }
  ::chmod((dir_ / "elsewhere").c_str(), 0755);
  fs::create_directory_symlink(dir_ / "elsewhere", home_ / "link");

  const auto fixed = tighten_home_modes(home_.string());
  for (const char* p : {"", "volumes", "volumes/sys", "volumes/sys/svc", "volumes/sys/svc/0", "store"}) {
    EXPECT_EQ(mode_of(home_ / p), 0700u) << p;
  }
  EXPECT_EQ(mode_of(home_ / "store/store.db"), 0600u);
  EXPECT_EQ(mode_of(home_ / "secret"), 0600u);
  EXPECT_EQ(mode_of(volume), 0755u);
  EXPECT_EQ(mode_of(volume / "deep"), 0755u);
  EXPECT_EQ(mode_of(volume / "inside"), 0666u);
  EXPECT_EQ(mode_of(dir_ / "elsewhere"), 0755u);
  EXPECT_EQ(fixed.size(), 8u);
  const std::string db_line = "tightened the mode of " + (home_ / "store/store.db").string() + " from 0644 to 0600";
  EXPECT_TRUE(std::any_of(fixed.begin(), fixed.end(), [&](const std::string& l) { return l.starts_with(db_line); }));
  EXPECT_TRUE(tighten_home_modes(home_.string()).empty());
}

TEST_F(HomeFilesTest, SecretFilesCheckNamesBeforeAnyPath) {
  secrets::SecretFiles files(home_.string());
  for (auto [name, key] : std::vector<std::pair<std::string, std::string>>{
           {"../x", "k"}, {"db", "../../x"}, {"db", ".env"}, {"", "k"}, {"db", ""}, {"a/b", "k"}, {"db", "a/b"}}) {
    auto path = files.path(name, key);
    ASSERT_FALSE(path.ok()) << name << " " << key;
    EXPECT_EQ(path.error().code, Errc::kInvalidArgument);
    EXPECT_FALSE(files.set(name, key, "v").ok());
    EXPECT_FALSE(files.get(name, key).ok());
  }
  EXPECT_FALSE(files.remove("..", std::nullopt).ok());
  EXPECT_FALSE(fs::exists(dir_ / "x"));
  EXPECT_FALSE(fs::exists(home_ / "secrets"));

  ASSERT_TRUE(files.set("db", "password", "pw").ok());
  ASSERT_TRUE(files.set("db", "user", "u").ok());
  EXPECT_EQ(mode_of(home_ / "secrets"), 0700u);
  EXPECT_EQ(mode_of(home_ / "secrets/db"), 0700u);
  EXPECT_EQ(mode_of(home_ / "secrets/db/password"), 0600u);
  EXPECT_EQ(*files.get("db", "password"), "pw");
  fs::create_directories(home_ / "secrets/.hidden");
  touch(home_ / "secrets/db/.password.tmp", 0600);
  auto listed = files.list();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].keys, (std::vector<std::string>{"password", "user"}));
  auto missing = files.get("db", "token");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  EXPECT_NE(missing.error().message.find((home_ / "secrets/db/token").string()), std::string::npos);
  EXPECT_EQ(files.remove("db", "token").error().code, Errc::kNotFound);
  EXPECT_TRUE(files.remove("db", "password").ok());
  EXPECT_TRUE(files.remove("db", std::nullopt).ok());
  EXPECT_EQ(files.remove("db", std::nullopt).error().code, Errc::kNotFound);
}

}  // namespace
}  // namespace zeppelin
