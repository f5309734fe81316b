// The data directory's files and directories: owner-only whatever the umask,
// tightened at start-up (but never inside a replica's volume, nor a `user:`
// account's passage to it), and secret names checked before any path is built
// from them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/fs_util.h"
#include "common/home_modes.h"
#include "common/traverse_acl.h"
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

// A directory's access ACL as the kernel stores it (the xattr's own format,
// read without libacl): "TAG:ID:PERMS" per entry, ID only for named entries.
std::vector<std::string> acl_entries(const fs::path& p) {
  char buf[1024];
  const ssize_t n = ::getxattr(p.c_str(), "system.posix_acl_access", buf, sizeof buf);
  if (n < 0) return {};  // ENODATA: plain mode bits
  std::vector<std::string> out;
  for (ssize_t at = 4; at + 8 <= n; at += 8) {  // a 4-byte version, then {u16 tag, u16 perm, u32 id}
    std::uint16_t tag, perm;
    std::uint32_t id;
    std::memcpy(&tag, buf + at, 2);
    std::memcpy(&perm, buf + at + 2, 2);
    std::memcpy(&id, buf + at + 4, 4);
    const char* name = tag <= 0x02 ? "user" : tag <= 0x08 ? "group" : tag == 0x10 ? "mask" : "other";
    const bool named = tag == 0x02 || tag == 0x08;
    std::string perms = {perm & 4 ? 'r' : '-', perm & 2 ? 'w' : '-', perm & 1 ? 'x' : '-'};
    out.push_back(std::string(name) + ":" + (named ? std::to_string(id) : "") + ":" + perms);
  }
  return out;
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

TEST_F(HomeFilesTest, PublicCopiesAreReadableByAllInAnOwnerOnlyDirectory) {
  fs::create_directories(home_);
  ::chmod(home_.c_str(), 0700);
  touch(dir_ / "ca.pem", 0600);
  auto copy = publish_public_copy(home_.string(), (dir_ / "ca.pem").string(), "etcd-ca.pem");
  ASSERT_TRUE(copy) << copy.error().message;
  EXPECT_EQ(*copy, (home_ / "public/etcd-ca.pem").string());
  EXPECT_EQ(mode_of(home_ / "public"), 0700u);
  EXPECT_EQ(mode_of(*copy), 0644u);
  EXPECT_TRUE(tighten_home_modes(home_.string()).empty());  // 0644 there is by design
  // Published again unchanged, it is the same file (a bind mount of it stays current).
  struct stat before {};
  ASSERT_EQ(::stat(copy->c_str(), &before), 0);
  ASSERT_TRUE(publish_public_copy(home_.string(), (dir_ / "ca.pem").string(), "etcd-ca.pem"));
  struct stat after {};
  ASSERT_EQ(::stat(copy->c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);

  // Looser than that is still tightened: write bits, and the directory.
  ::chmod(copy->c_str(), 0666);
  ::chmod((home_ / "public").c_str(), 0755);
  EXPECT_EQ(tighten_home_modes(home_.string()).size(), 2u);
  EXPECT_EQ(mode_of(*copy), 0644u);
  EXPECT_EQ(mode_of(home_ / "public"), 0700u);
  // ...but only in public/: the same file elsewhere is owner-only.
  touch(home_ / "ca-copy.pem", 0644);
  tighten_home_modes(home_.string());
  EXPECT_EQ(mode_of(home_ / "ca-copy.pem"), 0600u);

  EXPECT_FALSE(publish_public_copy(home_.string(), (dir_ / "missing.pem").string(), "x.pem"));
}

TEST_F(HomeFilesTest, TraverseGrantsAreOneEntryPerUidAndRevokingLeavesTheOthers) {
  fs::create_directories(home_);
  ::chmod(home_.c_str(), 0700);
  ASSERT_TRUE(grant_traverse(home_.string(), 4242).ok());
  ASSERT_TRUE(grant_traverse(home_.string(), 4242).ok());
  ASSERT_TRUE(grant_traverse(home_.string(), 4343).ok());
  EXPECT_EQ(acl_entries(home_), (std::vector<std::string>{"user::rwx", "user:4242:--x", "user:4343:--x", "group::---",
                                                          "mask::--x", "other::---"}));
  // The mask is the group bits of the mode: x, and nothing for the owning group itself.
  EXPECT_EQ(mode_of(home_), 0710u);
  EXPECT_TRUE(is_traverse_only_acl(home_.string()));

  ASSERT_TRUE(revoke_traverse(home_.string(), 4242).ok());
  ASSERT_TRUE(revoke_traverse(home_.string(), 4242).ok());
  EXPECT_EQ(acl_entries(home_),
            (std::vector<std::string>{"user::rwx", "user:4343:--x", "group::---", "mask::--x", "other::---"}));
  ASSERT_TRUE(revoke_traverse(home_.string(), 4343).ok());
  EXPECT_EQ(acl_entries(home_), std::vector<std::string>{});  // plain mode bits again
  EXPECT_EQ(mode_of(home_), 0700u);
  EXPECT_FALSE(is_traverse_only_acl(home_.string()));
  EXPECT_TRUE(revoke_traverse((home_ / "gone").string(), 4343).ok());
  EXPECT_FALSE(grant_traverse((home_ / "gone").string(), 4343).ok());
}

TEST_F(HomeFilesTest, TighteningKeepsATraverseGrantButFixesLooserBitsAndOtherAcls) {
  fs::create_directories(home_ / "volumes");
  fs::create_directories(home_ / "store");
  ::chmod(home_.c_str(), 0700);
  ::chmod((home_ / "volumes").c_str(), 0705);
  ::chmod((home_ / "store").c_str(), 0700);
  ASSERT_TRUE(grant_traverse(home_.string(), 4242).ok());
  ASSERT_TRUE(grant_traverse((home_ / "volumes").string(), 4242).ok());
  // Not a passage: a named user who may list and read (user::rwx user:4242:r-x group::--- mask::r-x other::---).
  const std::uint16_t reader[] = {2, 0, 0x01, 7, 0xffff, 0xffff, 0x02, 5, 4242, 0, 0x04, 0, 0xffff, 0xffff,
                                  0x10, 5, 0xffff, 0xffff, 0x20, 0, 0xffff, 0xffff};
  ASSERT_EQ(::setxattr((home_ / "store").c_str(), "system.posix_acl_access", reader, sizeof reader, 0), 0);
  ASSERT_EQ(mode_of(home_ / "store"), 0750u);
  EXPECT_FALSE(is_traverse_only_acl((home_ / "store").string()));

  const auto fixed = tighten_home_modes(home_.string());
  EXPECT_EQ(mode_of(home_), 0710u);
  EXPECT_EQ(mode_of(home_ / "volumes"), 0710u);  // other's r-x gone, the passage kept
  EXPECT_EQ(acl_entries(home_ / "volumes"),
            (std::vector<std::string>{"user::rwx", "user:4242:--x", "group::---", "mask::--x", "other::---"}));
  EXPECT_EQ(mode_of(home_ / "store"), 0700u);  // the mask now grants the reader nothing
  EXPECT_EQ(fixed.size(), 2u);
  EXPECT_TRUE(tighten_home_modes(home_.string()).empty());
}

TEST_F(HomeFilesTest, AFilesystemWithoutAclsIsNamedWithTheWayOut) {
  // sysfs stores no ACLs; the grant fails before anything changes.
  if (::geteuid() != 0 || !fs::is_directory("/sys/fs")) GTEST_SKIP() << "needs root and sysfs";
  auto s = grant_traverse("/sys/fs", 4242);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message,
            "cannot give uid 4242 search permission on /sys/fs: its filesystem does not support "
            "POSIX ACLs; give the volume a `source:` directory the account can reach instead");
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
