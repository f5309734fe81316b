// EtcdStore against a real etcd with authentication on: the password gets a
// token, a wrong password is refused with a clear error, and an expired
// token is replaced without the caller noticing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "etcd_client/etcd_store.h"
#include "etcd_process.h"

namespace zeppelin::etcd_client {
namespace {

namespace fs = std::filesystem;

int etcdctl(const std::string& endpoint, const std::string& args) {
  const std::string cmd = "ETCDCTL_API=3 etcdctl --endpoints=" + endpoint + " " + args + " >/dev/null 2>&1";
  return std::system(cmd.c_str());
}

TEST(EtcdAuth, PasswordGetsATokenThatIsRenewedWhenItExpires) {
  // Tokens expire after one idle second.
  testing::EtcdCluster cluster(fs::temp_directory_path() / ("zeppelin-auth-" + std::to_string(::getpid())), 1,
                               {"--auth-token-ttl", "1"});
  auto ready = cluster.open("");
  ASSERT_TRUE(ready.ok()) << ready.error().message;
  const std::string url = cluster.members()[0].client_url();
  ASSERT_EQ(etcdctl(url, "user add root:secret"), 0);
  ASSERT_EQ(etcdctl(url, "auth enable"), 0);

  EtcdStoreOptions options;
  options.connection.endpoints = {url};
  options.prefix = "/app/";
  options.connection.user = "root";
  options.connection.password = "wrong";
  auto refused = EtcdStore::open(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("authentication"), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find("root"), std::string::npos) << refused.error().message;

  options.connection.password = "secret";
  auto opened = EtcdStore::open(options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto& store = **opened;
  auto put = store.put({"k", "v"});
  ASSERT_TRUE(put.ok()) << put.error().message;

  // Without a token, etcd refuses (the store above really authenticated).
  EtcdStoreOptions anonymous;
  anonymous.connection.endpoints = {url};
  auto anon = EtcdStore::open(anonymous);
  if (anon.ok()) {
    EXPECT_FALSE((*anon)->range({"/app/k"}).ok());
  }

  // Let the token expire (etcd's TTL is wall-clock; there is no clock to advance).
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto got = store.range({"k"});
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "v");
  EXPECT_EQ(got->kvs[0].key, "k");
}

}  // namespace
}  // namespace zeppelin::etcd_client
