#include "spec/replica_contract.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "kubernetes/labels.h"
#include "kubernetes/render.h"
#include "common/yaml_emitter.h"
#include "spec/parser.h"
#include "supervisor/replica_env.h"

namespace zeppelin {
namespace {

namespace var = spec::replica_env;

TEST(ReplicaContract, NamesAndFormats) {
  EXPECT_EQ(var::env_name("db-main"), "DB_MAIN");
  EXPECT_EQ(var::port_variable("admin-ui"), "PORT_ADMIN_UI");
  EXPECT_EQ(var::dependency_variable("db-main"), "ZEPPELIN_SERVICE_DB_MAIN");
  EXPECT_EQ(var::volume_variable("data"), "ZEPPELIN_VOLUME_DATA");
  EXPECT_EQ(var::join_list({"a:1", "b:2"}), "a:1,b:2");
  EXPECT_EQ(var::join_list({}), "");
  EXPECT_EQ(var::default_etcd_prefix("shop"), "/zeppelin/shop/");
}

TEST(ReplicaContract, PortVariablesAndEndpoint) {
  spec::Service none;
  EXPECT_TRUE(var::port_variables(none).empty());
  EXPECT_EQ(var::endpoint(none, "10.0.0.1"), "10.0.0.1");
  spec::Service svc;
  svc.ports = {{"http", 8080}, {"admin-ui", 9090}};
  using Vars = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(var::port_variables(svc), (Vars{{"PORT", "8080"}, {"PORT_HTTP", "8080"}, {"PORT_ADMIN_UI", "9090"}}));
  EXPECT_EQ(var::endpoint(svc, "10.0.0.1"), "10.0.0.1:8080");
}

// The supervisor and the renderer build the environment apart; every
// variable a local replica gets, a pod gets too, but the data directory,
// which a cluster does not have, and the ordinal, which a Deployment's pods
// do not have.
TEST(ReplicaContract, LocalAndClusterReplicasGetTheSameNames) {
  auto system = spec::parse_spec(R"(name: shop
services:
  db-main:
    image: db:1
    mode: stateful
    ports: [{name: http, port: 8080}, {name: admin-ui, port: 9090}]
    volumes: [{name: data, path: /data}]
  web:
    image: web:1
    ports: [{name: http, port: 80}]
    depends_on: [db-main]
)",
                                 "f.yaml", "/");
  ASSERT_TRUE(system.ok()) << system.error().message;
  auto manifest = kubernetes::render(*system, {});
  ASSERT_TRUE(manifest.ok()) << manifest.error().message;
  for (const auto& svc : system->services) {
    std::set<std::string> cluster;
    bool deployment = false;
    for (const auto& object : manifest->objects) {
      if (!object.contains("spec") || !object["spec"].contains("template")) continue;
      if (object["metadata"]["name"] != "shop-" + svc.name) continue;
      deployment = object["kind"] == "Deployment";
      for (const auto& e : object["spec"]["template"]["spec"]["containers"][0]["env"])
        cluster.insert(e["name"].get<std::string>());
    }
    ASSERT_FALSE(cluster.empty()) << svc.name;
    supervisor::ReplicaIdentity id;
    id.system = &*system;
    id.service = &svc;
    id.replicas = svc.replicas;
    id.host = "127.0.0.2";
    id.home = "/home";
    id.etcd_endpoints = {"http://127.0.0.1:2379"};
    for (const auto& dep : svc.depends_on) id.dependencies[dep] = {"127.0.0.3:8080"};
    for (const auto& v : svc.volumes) id.volumes[v.name] = "/home/volumes/" + v.name;
    auto local = supervisor::build_launch_env(id, {});
    ASSERT_TRUE(local.ok()) << local.error().message;
    for (const auto& kv : local->env) {
      const std::string name = kv.substr(0, kv.find('='));
      if (name == var::kHome || (deployment && name == var::kReplica)) continue;
      EXPECT_TRUE(cluster.count(name)) << svc.name << ": " << name << " is set locally, not in a cluster";
    }
  }
}

TEST(KubernetesLabels, SystemSelector) {
  EXPECT_EQ(kubernetes::system_selector("shop"),
            "app.kubernetes.io/instance=shop,app.kubernetes.io/managed-by=zeppelin");
}

TEST(YamlEmitter, QuotesWhatAReaderCouldTakeForAnotherType) {
  std::string out;
  zeppelin::append_yaml_document(
      out,
      {{"a", "plain"}, {"b", "yes"}, {"c", "1"}, {"d", ""}, {"e", {1, true}}, {"f", nlohmann::ordered_json::object()}});
  EXPECT_EQ(out, "---\na: plain\nb: \"yes\"\nc: \"1\"\nd: \"\"\ne:\n  - 1\n  - true\nf: {}\n");
}

}  // namespace
}  // namespace zeppelin
