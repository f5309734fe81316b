// kube::load_config: kubeconfig files merged as kubectl merges them, context
// selection, credentials as data or as files (relative to their kubeconfig),
// the in-cluster service account, and the errors users meet.
#include "kube_client/kubeconfig.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace zeppelin::kube {
namespace {

namespace fs = std::filesystem;

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zeppelin-kubeconfig-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }

  LoadOptions options(const std::string& kubeconfig, const std::string& context = "") {
    LoadOptions o;
    o.kubeconfig_env = kubeconfig;
    o.home = (dir_ / "home").string();
    o.context = context;
    o.service_account_dir = (dir_ / "sa").string();
    return o;
  }

  fs::path dir_;
};

TEST_F(KubeconfigTest, FirstFileToDefineANameOrCurrentContextWins) {
  const auto a = write("a", R"(
current-context: dev
clusters:
- name: shared
  cluster: {server: "https://a.example:6443", insecure-skip-tls-verify: true}
users:
- name: me
  user: {token: token-from-a}
contexts:
- name: dev
  context: {cluster: shared, user: me, namespace: team}
)");
  const auto b = write("b", R"(
current-context: prod
clusters:
- name: shared
  cluster: {server: "https://b.example:6443"}
- name: prod
  cluster: {server: "https://prod.example"}
users:
- name: me
  user: {token: token-from-b}
- name: admin
  user: {token: admin-token}
contexts:
- name: prod
  context: {cluster: prod, user: admin}
)");
  auto config = load_config(options(a + ":" + (dir_ / "missing").string() + ":" + b));
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->context, "dev");
  EXPECT_EQ(config->server, "https://a.example:6443");
  EXPECT_TRUE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->token, "token-from-a");
  EXPECT_EQ(config->ns, "team");

  // A context only the second file defines; its namespace defaults.
  auto prod = load_config(options(a + ":" + b, "prod"));
  ASSERT_TRUE(prod) << prod.error().message;
  EXPECT_EQ(prod->server, "https://prod.example");
  EXPECT_EQ(prod->user, "admin");
  EXPECT_EQ(prod->token, "admin-token");
  EXPECT_EQ(prod->ns, "default");

  // Order matters: b first makes b's current-context and entries win.
  auto reversed = load_config(options(b + ":" + a));
  ASSERT_TRUE(reversed) << reversed.error().message;
  EXPECT_EQ(reversed->context, "prod");
  auto dev = load_config(options(b + ":" + a, "dev"));
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->server, "https://b.example:6443");
  EXPECT_EQ(dev->token, "token-from-b");
}

TEST_F(KubeconfigTest, CredentialsAsDataAndAsFilesRelativeToTheirKubeconfig) {
  write("conf/pki/ca.crt", "CA PEM");
  write("conf/pki/me.crt", "CERT PEM");
  write("conf/pki/me.key", "KEY PEM");
  write("conf/token", "  file-token\n");
  const auto files = write("conf/config", R"(
current-context: files
clusters:
- {name: c, cluster: {server: "https://k.example", certificate-authority: pki/ca.crt}}
- {name: d, cluster: {server: "https://k.example", certificate-authority-data: Q0EgREFUQQ==}}
users:
- {name: certs, user: {client-certificate: pki/me.crt, client-key: pki/me.key}}
- {name: data, user: {client-certificate-data: Q0VSVCBEQVRB, client-key-data: S0VZIERBVEE=}}
- {name: tokenfile, user: {tokenFile: token}}
contexts:
- {name: files, context: {cluster: c, user: certs}}
- {name: data, context: {cluster: d, user: data}}
- {name: tf, context: {cluster: c, user: tokenfile}}
)");
  auto f = load_config(options(files));
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->ca_pem, "CA PEM");
  EXPECT_EQ(f->client_cert_pem, "CERT PEM");
  EXPECT_EQ(f->client_key_pem, "KEY PEM");
  EXPECT_TRUE(f->token.empty());

  auto d = load_config(options(files, "data"));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->ca_pem, "CA DATA");
  EXPECT_EQ(d->client_cert_pem, "CERT DATA");
  EXPECT_EQ(d->client_key_pem, "KEY DATA");

  auto t = load_config(options(files, "tf"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->token, "file-token");
}

TEST_F(KubeconfigTest, DefaultsToHomeKubeConfig) {
  write("home/.kube/config", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://home.example"}}]
contexts: [{name: x, context: {cluster: c}}]
)");
  auto config = load_config(options(""));
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->server, "https://home.example");
  EXPECT_TRUE(config->user.empty());
}

TEST_F(KubeconfigTest, InClusterServiceAccountWhenNoKubeconfigExists) {
  write("sa/token", "sa-token\n");
  write("sa/ca.crt", "SA CA");
  write("sa/namespace", "apps\n");
  auto o = options((dir_ / "none").string());
  o.service_host = "10.96.0.1";
  o.service_port = "443";
  auto config = load_config(o);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->server, "https://10.96.0.1:443");
  EXPECT_EQ(config->token, "sa-token");
  EXPECT_EQ(config->ca_pem, "SA CA");
  EXPECT_EQ(config->ns, "apps");

  o.service_host = "fd00::1";
  auto v6 = load_config(o);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->server, "https://[fd00::1]:443");
}

TEST_F(KubeconfigTest, ErrorsNameWhatIsMissingAndWhere) {
  const auto none = (dir_ / "none").string();
  auto missing = load_config(options(none + ":" + none + "2"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  EXPECT_NE(missing.error().message.find("tried " + none + ", " + none + "2"), std::string::npos)
      << missing.error().message;

  const auto file = write("config", R"(
current-context: a
clusters: [{name: c, cluster: {server: "https://k.example", certificate-authority: nowhere.crt}}]
users: [{name: u, user: {client-certificate-data: "!!notbase64", client-key-data: S0VZ}}]
contexts:
- {name: a, context: {cluster: c, user: u}}
- {name: b, context: {cluster: gone, user: u}}
)");
  auto unknown = load_config(options(file, "zzz"));
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("context \"zzz\" not found in kubeconfig " + file + " (contexts: a, b)"),
            std::string::npos)
      << unknown.error().message;
  auto no_cluster = load_config(options(file, "b"));
  ASSERT_FALSE(no_cluster);
  EXPECT_NE(no_cluster.error().message.find("refers to cluster \"gone\""), std::string::npos);
  auto no_ca = load_config(options(file));
  ASSERT_FALSE(no_ca);
  EXPECT_NE(no_ca.error().message.find("nowhere.crt"), std::string::npos) << no_ca.error().message;

  const auto broken = write("broken", "clusters: [oops\n");
  auto parse = load_config(options(broken));
  ASSERT_FALSE(parse);
  EXPECT_NE(parse.error().message.find("kubeconfig " + broken), std::string::npos);
}

TEST(Base64Test, DecodesWithAndWithoutPadding) {
  EXPECT_EQ(*base64_decode("YQ=="), "a");
  EXPECT_EQ(*base64_decode("YWI="), "ab");
  EXPECT_EQ(*base64_decode("YWJj"), "abc");
  EXPECT_EQ(*base64_decode("YWJj\nZGVm\n"), "abcdef");
  EXPECT_FALSE(base64_decode("YWJ"));
  EXPECT_FALSE(base64_decode("!!!!"));
}

}  // namespace
}  // namespace zeppelin::kube
