#include "supervisor/replica_env.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "spec/parser.h"

namespace zeppelin::supervisor {
namespace {

std::optional<std::string> from(const std::map<std::string, std::string>& m, const std::string& k) {
  auto it = m.find(k);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

TEST(ExpandVars, SubstitutesDefaultsAndEscapes) {
  std::map<std::string, std::string> vars = {{"A", "1"}, {"EMPTY", ""}};
  auto lookup = [&](const std::string& k) { return from(vars, k); };
  EXPECT_EQ(*expand_vars("x${A}y", lookup), "x1y");
  EXPECT_EQ(*expand_vars("${MISSING:-dflt}", lookup), "dflt");
  EXPECT_EQ(*expand_vars("${EMPTY:-dflt}", lookup), "dflt");
  EXPECT_EQ(*expand_vars("$${A} costs $5", lookup), "${A} costs $5");
  EXPECT_EQ(*expand_vars("$A stays", lookup), "$A stays");
}

TEST(ExpandVars, UnknownAndMalformedReferencesAreErrors) {
  auto lookup = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  auto unknown = expand_vars("--port=${PROT}", lookup);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("unknown variable ${PROT}"), std::string::npos);
  EXPECT_FALSE(expand_vars("${UNCLOSED", lookup).ok());
  EXPECT_FALSE(expand_vars("${bad-name}", lookup).ok());
}

TEST(EnvName, UppercasesAndReplacesDashes) { EXPECT_EQ(env_name("db-main"), "DB_MAIN"); }

class LaunchEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto parsed = spec::parse_spec(R"(name: shop
services:
  db-main:
    command: ["srv", "--listen", "${ZEPPELIN_HOST}:${PORT}", "--peers=${ZEPPELIN_PEERS}"]
    env: {URL: "http://${ZEPPELIN_HOST}:${PORT_HTTP}", USER_GREETING: "${GREETING:-hi}"}
    ports: [{name: http, port: 8080}, {name: admin-ui, port: 9090}]
    volumes: [{name: data, path: /data}]
  web:
    command: 'echo ${UNKNOWN_TO_ZEPPELIN}'
    depends_on: [db-main]
)",
                                   "f.yaml", "/");
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    system_ = *parsed;
  }

  std::map<std::string, std::string> as_map(const std::vector<std::string>& env) {
    std::map<std::string, std::string> m;
    for (const auto& kv : env) m[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
    return m;
  }

  spec::System system_;
};

TEST_F(LaunchEnvTest, CarriesTheWholeReplicaContract) {
  ReplicaIdentity id;
  id.system = &system_;
  id.service = &system_.services[0];
  id.ordinal = 1;
  id.replicas = 3;
  id.host = "127.5.0.2";
  id.peers = address_list(system_.services[0], 3, [](int i) { return "127.5.0." + std::to_string(i + 1); });
  id.volumes = {{"data", "/home/v/data"}};
  id.home = "/home";
  auto launch = build_launch_env(id, {{"PATH", "/usr/bin"}, {"GREETING", "hello"}});
  ASSERT_TRUE(launch.ok()) << launch.error().message;
  auto env = as_map(launch->env);
  EXPECT_EQ(env["ZEPPELIN_SYSTEM"], "shop");
  EXPECT_EQ(env["ZEPPELIN_SERVICE"], "db-main");
  EXPECT_EQ(env["ZEPPELIN_REPLICA"], "1");
  EXPECT_EQ(env["ZEPPELIN_REPLICAS"], "3");
  EXPECT_EQ(env["ZEPPELIN_HOST"], "127.5.0.2");
  EXPECT_EQ(env["PORT"], "8080");
  EXPECT_EQ(env["PORT_HTTP"], "8080");
  EXPECT_EQ(env["PORT_ADMIN_UI"], "9090");
  EXPECT_EQ(env["ZEPPELIN_PEERS"], "127.5.0.1:8080,127.5.0.2:8080,127.5.0.3:8080");
  EXPECT_EQ(env["ZEPPELIN_VOLUME_DATA"], "/home/v/data");
  EXPECT_EQ(env["PATH"], "/usr/bin");
  EXPECT_EQ(env["URL"], "http://127.5.0.2:8080");
  EXPECT_EQ(env["USER_GREETING"], "hello");
  EXPECT_EQ(launch->argv, (std::vector<std::string>{"srv", "--listen", "127.5.0.2:8080",
                                                    "--peers=127.5.0.1:8080,127.5.0.2:8080,127.5.0.3:8080"}));
}

TEST_F(LaunchEnvTest, AnotherAccountGetsItsOwnHomeUnlessEnvSetsIt) {
  spec::Service svc = system_.services[1];
  svc.run_as = spec::RunAs{1500, 1500, "app", "/home/app"};
  ReplicaIdentity id;
  id.system = &system_;
  id.service = &svc;
  id.replicas = 1;
  auto launch = build_launch_env(id, {{"HOME", "/root"}, {"USER", "root"}, {"LANG", "C.UTF-8"}});
  ASSERT_TRUE(launch.ok()) << launch.error().message;
  auto env = as_map(launch->env);
  EXPECT_EQ(env["HOME"], "/home/app");
  EXPECT_EQ(env["USER"], "app");
  EXPECT_EQ(env["LOGNAME"], "app");
  EXPECT_EQ(env["LANG"], "C.UTF-8");  // the rest of the caller's environment as for any process
  svc.env = {{"HOME", "/srv/app"}};
  launch = build_launch_env(id, {{"HOME", "/root"}});
  ASSERT_TRUE(launch.ok()) << launch.error().message;
  EXPECT_EQ(as_map(launch->env)["HOME"], "/srv/app");
}

TEST_F(LaunchEnvTest, DependenciesAndShellCommands) {
  ReplicaIdentity id;
  id.system = &system_;
  id.service = &system_.services[1];
  id.replicas = 1;
  id.host = "127.5.0.9";
  id.peers = "127.5.0.9";
  id.dependencies = {{"db-main", "127.5.0.1:8080,127.5.0.2:8080"}};
  auto launch = build_launch_env(id, {});
  ASSERT_TRUE(launch.ok()) << launch.error().message;
  auto env = as_map(launch->env);
  EXPECT_EQ(env["ZEPPELIN_SERVICE_DB_MAIN"], "127.5.0.1:8080,127.5.0.2:8080");
  EXPECT_EQ(env.count("PORT"), 0u);
  // A shell string is left for the shell to expand.
  EXPECT_EQ(launch->argv.back(), "echo ${UNKNOWN_TO_ZEPPELIN}");
}

TEST_F(LaunchEnvTest, AddressListsTooLongForAnEnvironmentStringAreLeftOut) {
  ReplicaIdentity id;
  id.system = &system_;
  id.service = &system_.services[1];
  id.replicas = 10000;
  id.host = "127.5.0.9";
  // 10,000 replicas with a port: about 170 KB, beyond what exec takes in one variable.
  auto host = [](int i) { return "127.5." + std::to_string(i / 254) + "." + std::to_string(i % 254 + 1); };
  id.peers = address_list(system_.services[0], 10000, host);
  id.dependencies = {{"db-main", address_list(system_.services[0], 10, host)}};
  ASSERT_GT(id.peers.size(), kMaxAddressListBytes);
  auto launch = build_launch_env(id, {});
  ASSERT_TRUE(launch.ok()) << launch.error().message;
  auto env = as_map(launch->env);
  EXPECT_EQ(env.count("ZEPPELIN_PEERS"), 0u);
  EXPECT_EQ(env["ZEPPELIN_REPLICAS"], "10000");
  EXPECT_EQ(env["ZEPPELIN_SERVICE_DB_MAIN"].substr(0, 30), "127.5.0.1:8080,127.5.0.2:8080,");
  for (const auto& kv : launch->env) EXPECT_LE(kv.size(), kMaxAddressListBytes + 64) << kv.substr(0, 40);
}

TEST(LaunchEnvSecrets, SecretsAreReadWhenTheReplicaStartsAndNeverExpanded) {
  auto parsed = spec::parse_spec(
      "name: shop\nstore:\n  etcd: {endpoints: [\"http://e1:2379\", \"http://e2:2379\"], user: shop, "
      "password: {secret: etcd, key: pw}}\nservices:\n  s:\n    command: [\"true\"]\n"
      "    env: {PASSWORD: {secret: db, key: password}, COPY: \"${PASSWORD:-none}\"}\n",
      "f", "/");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ReplicaIdentity id;
  id.system = &*parsed;
  id.service = &parsed->services[0];
  id.replicas = 1;
  std::vector<std::string> asked;
  id.read_secret = [&](const spec::SecretRef& ref) -> Result<std::string> {
    asked.push_back(ref.name + "/" + ref.key);
    return std::string(ref.name == "db" ? "s3cr${et}" : "etcd-pw");
  };
  auto launch = build_launch_env(id, {});
  ASSERT_TRUE(launch.ok()) << launch.error().message;
  std::map<std::string, std::string> env;
  for (const auto& kv : launch->env) env[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  EXPECT_EQ(env["PASSWORD"], "s3cr${et}");  // taken as is
  EXPECT_EQ(env["COPY"], "none");           // plain values cannot embed a secret
  EXPECT_EQ(env["ZEPPELIN_ETCD_ENDPOINTS"], "http://e1:2379,http://e2:2379");
  EXPECT_EQ(env["ZEPPELIN_ETCD_PREFIX"], "/zeppelin/shop/");
  EXPECT_EQ(env["ZEPPELIN_ETCD_USER"], "shop");
  EXPECT_EQ(env["ZEPPELIN_ETCD_PASSWORD"], "etcd-pw");
  EXPECT_EQ(asked, (std::vector<std::string>{"etcd/pw", "db/password"}));

  id.read_secret = [](const spec::SecretRef&) -> Result<std::string> {
    return make_error(Errc::kNotFound, "cannot open /h/secrets/db/password");
  };
  auto missing = build_launch_env(id, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("ZEPPELIN_ETCD_PASSWORD: secret etcd/pw: cannot open"), std::string::npos)
      << missing.error().message;
  // Without a reader (checking a spec before it runs) secrets are empty, not errors.
  id.read_secret = nullptr;
  EXPECT_TRUE(build_launch_env(id, {}).ok());
}

TEST_F(LaunchEnvTest, TheServersStoreGivesTheTokenAndAStoreOfItsOwnItsCredentials) {
  auto parsed = spec::parse_spec("name: shop\nstore: {user: app}\nservices:\n  s: {command: [\"true\"]}\n", "f", "/");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ReplicaIdentity id;
  id.system = &*parsed;
  id.service = &parsed->services[0];
  id.replicas = 1;
  id.etcd_endpoints = {"http://127.0.0.1:4001"};
  auto env = as_map(build_launch_env(id, {})->env);  // auth disabled: no token
  EXPECT_EQ(env["ZEPPELIN_ETCD_ENDPOINTS"], "http://127.0.0.1:4001");
  EXPECT_EQ(env.count("ZEPPELIN_ETCD_TOKEN"), 0u);
  EXPECT_EQ(env.count("ZEPPELIN_ETCD_USER"), 0u);
  id.etcd_user = "app";
  id.etcd_token = "t0k3n";
  env = as_map(build_launch_env(id, {{"ZEPPELIN_ETCD_TOKEN", "callers"}})->env);
  EXPECT_EQ(env["ZEPPELIN_ETCD_USER"], "app");
  EXPECT_EQ(env["ZEPPELIN_ETCD_TOKEN"], "t0k3n");  // the replica's own, not the caller's

  auto own = spec::parse_spec(
      "name: shop\nstore: {etcd: {endpoints: [\"http://e1:2379\"]}}\nservices:\n  s: {command: [\"true\"]}\n", "f",
      "/");
  ASSERT_TRUE(own.ok()) << own.error().message;
  id.system = &*own;
  id.service = &own->services[0];
  env = as_map(build_launch_env(id, {})->env);
  EXPECT_EQ(env["ZEPPELIN_ETCD_ENDPOINTS"], "http://e1:2379");
  EXPECT_EQ(env.count("ZEPPELIN_ETCD_TOKEN"), 0u);
}

TEST_F(LaunchEnvTest, UnknownVariableInArgvNamesServiceAndVariable) {
  auto parsed = spec::parse_spec("name: a\nservices:\n  s:\n    command: [\"x\", \"${NOPE}\"]\n", "f", "/");
  ASSERT_TRUE(parsed.ok());
  ReplicaIdentity id;
  id.system = &*parsed;
  id.service = &parsed->services[0];
  auto launch = build_launch_env(id, {});
  ASSERT_FALSE(launch.ok());
  EXPECT_NE(launch.error().message.find("service \"s\""), std::string::npos);
  EXPECT_NE(launch.error().message.find("${NOPE}"), std::string::npos);
}

}  // namespace
}  // namespace zeppelin::supervisor
