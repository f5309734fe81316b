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

namespace zeppelin::etcd_client {
namespace {

// A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl tool.
bool make_certificates(const fs::path& dir) {
  const std::string d = dir.string();
  const std::string script =
      "set -e; cd '" + d + "'; "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca; "
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1; "
      "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > server.ext; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 "
      "-extfile server.ext; "
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client; "
      "printf 'extendedKeyUsage=clientAuth\\n' > client.ext; "
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1 "
      "-extfile client.ext";
  return std::system(("(" + script + ") >/dev/null 2>&1").c_str()) == 0;
}

TEST(EtcdTls, ClientCertificateAndCaAreUsed) {
  const fs::path dir = fs::temp_directory_path() / ("zeppelin-tls-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_TRUE(make_certificates(dir));
  const std::string d = dir.string() + "/";
  testing::EtcdCluster cluster(dir / "etcd", 1,
                               {"--cert-file", d + "server.pem", "--key-file", d + "server.key",
                                "--trusted-ca-file", d + "ca.pem", "--client-cert-auth"},
                               "https");
  EtcdStoreOptions options;
  options.connection.endpoints = {cluster.members()[0].client_url()};
  options.connection.ca_file = d + "ca.pem";
  options.connection.cert_file = d + "client.pem";
  options.connection.key_file = d + "client.key";
  options.prefix = "/tls/";
  Result<std::unique_ptr<EtcdStore>> opened = make_error(Errc::kUnavailable, "not tried");
  for (int i = 0; i < 300 && !(opened = EtcdStore::open(options)).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  ASSERT_TRUE((*opened)->put({"k", "secure"}).ok());
  EXPECT_EQ((*opened)->range({"k"})->kvs.at(0).value, "secure");

  // Without the client certificate the member refuses the connection.
  EtcdStoreOptions no_cert = options;
  no_cert.connection.cert_file.clear();
  no_cert.connection.key_file.clear();
  no_cert.connection.request_timeout = std::chrono::milliseconds(2000);
  EXPECT_FALSE(EtcdStore::open(no_cert).ok());

  auto missing = options;
  missing.connection.ca_file = d + "nope.pem";
  auto bad = EtcdStore::open(missing);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("nope.pem"), std::string::npos) << bad.error().message;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zeppelin::etcd_client
