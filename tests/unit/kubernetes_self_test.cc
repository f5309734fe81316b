// `zeppelin render --target kubernetes --self`: the zeppelin server in a
// cluster. A golden file pins the output; the checks below say why it is so.
//   ZEPPELIN_UPDATE_GOLDEN=1 build/tests/unit_tests --gtest_filter='KubernetesSelf.*'
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "kubernetes/render.h"
#include "kubernetes/self.h"

namespace zeppelin::kubernetes {
namespace {

using json = nlohmann::ordered_json;

std::vector<json> render_ok(const SelfOptions& options) {
  auto objects = render_self(options);
  EXPECT_TRUE(objects) << (objects ? "" : objects.error().message);
  return objects ? *objects : std::vector<json>{};
}

const json* find(const std::vector<json>& objects, const std::string& kind) {
  for (const auto& o : objects) {
    if (o["kind"] == kind) return &o;
  }
  return nullptr;
}

TEST(KubernetesSelf, MatchesTheGoldenFile) {
  const auto objects = render_ok({"zeppelin-system", "zeppelin:0.1.0", "1Gi"});
  const std::string yaml = to_yaml(objects);
  const std::filesystem::path golden = ZEPPELIN_GOLDEN_DIR "/kubernetes/self/self.expected.yaml";
  if (std::getenv("ZEPPELIN_UPDATE_GOLDEN")) {
    std::ofstream(golden, std::ios::binary) << yaml;
    GTEST_SKIP() << "wrote " << golden;
  }
  std::ifstream in(golden, std::ios::binary);
  std::ostringstream expected;
  expected << in.rdbuf();
  EXPECT_EQ(yaml, expected.str());
  EXPECT_EQ(to_yaml(render_ok({"zeppelin-system", "zeppelin:0.1.0", "1Gi"})), yaml) << "not deterministic";
}

TEST(KubernetesSelf, EveryObjectIsInTheNamespaceAndLabelled) {
  const auto objects = render_ok({"apps", "registry.local/zeppelin:1.2", "5Gi"});
  std::set<std::string> kinds;
  for (const auto& o : objects) {
    kinds.insert(o["kind"].get<std::string>());
    EXPECT_EQ(o["metadata"]["namespace"], "apps") << o["kind"];
    EXPECT_EQ(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "zeppelin") << o["kind"];
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "Service",
                                          "StatefulSet"}));
}

TEST(KubernetesSelf, PermissionsStayInsideTheNamespace) {
  const auto objects = render_ok({"apps", "zeppelin:0.1.0", "1Gi"});
  for (const auto& o : objects) {
    EXPECT_NE(o["kind"], "ClusterRole");
    EXPECT_NE(o["kind"], "ClusterRoleBinding");
  }
  const json* binding = find(objects, "RoleBinding");
  ASSERT_NE(binding, nullptr);
  EXPECT_EQ((*binding)["roleRef"]["kind"], "Role");
  EXPECT_EQ((*binding)["subjects"][0]["namespace"], "apps");
  const json* role = find(objects, "Role");
  ASSERT_NE(role, nullptr);
  std::set<std::string> resources;
  for (const auto& rule : (*role)["rules"]) {
    for (const auto& r : rule["resources"]) {
      resources.insert(r.get<std::string>());
      EXPECT_NE(r, "*") << "no wildcard resources";
    }
    for (const auto& v : rule["verbs"]) EXPECT_NE(v, "*") << "no wildcard verbs";
  }
  // What deploy applies and watches, and pod logs.
  for (const char* needed : {"deployments", "statefulsets", "services", "configmaps", "secrets",
                             "persistentvolumeclaims", "pods", "pods/log"}) {
    EXPECT_TRUE(resources.count(needed)) << needed;
  }
}

TEST(KubernetesSelf, TheServerKeepsItsDataOnAVolumeAndServesBothApis) {
  const auto objects = render_ok({"apps", "zeppelin:0.1.0", "5Gi"});
  const json* sts = find(objects, "StatefulSet");
  ASSERT_NE(sts, nullptr);
  const json& spec = (*sts)["spec"];
  EXPECT_EQ(spec["replicas"], 1);
  EXPECT_EQ(spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "5Gi");
  const json& pod = spec["template"]["spec"];
  EXPECT_EQ(pod["serviceAccountName"], "zeppelin");
  EXPECT_EQ(pod["securityContext"]["runAsNonRoot"], true);
  const json& container = pod["containers"][0];
  EXPECT_EQ(container["image"], "zeppelin:0.1.0");
  EXPECT_EQ(container["volumeMounts"][0]["name"], "data");
  EXPECT_EQ(container["env"][0]["value"], container["volumeMounts"][0]["mountPath"]) << "ZEPPELIN_HOME on the volume";
  const json* service = find(objects, "Service");
  ASSERT_NE(service, nullptr);
  std::set<int> ports;
  for (const auto& p : (*service)["spec"]["ports"]) ports.insert(p["port"].get<int>());
  EXPECT_EQ(ports, (std::set<int>{kSelfApiPort, kSelfEtcdPort}));
  // The Service selects the server's pods.
  for (const auto& [k, v] : (*service)["spec"]["selector"].items()) {
    EXPECT_EQ(spec["template"]["metadata"]["labels"].value(k, json()), v) << k;
  }
}

// Secure by default in a cluster too: the API takes tokens, the store's root
// password is the owner's, and neither is written in the manifests.
TEST(KubernetesSelf, CredentialsComeFromASecretNeverFromTheManifests) {
  const auto objects = render_ok({"apps", "zeppelin:0.1.0", "1Gi"});
  const json* sts = find(objects, "StatefulSet");
  ASSERT_NE(sts, nullptr);
  const json& container = (*sts)["spec"]["template"]["spec"]["containers"][0];
  std::map<std::string, std::string> flag_value;  // "--flag" -> the argument after it
  const json& args = container["args"];
  for (size_t i = 0; i + 1 < args.size(); ++i) flag_value[args[i].get<std::string>()] = args[i + 1].get<std::string>();
  std::map<std::string, json> env;
  for (const auto& e : container["env"]) env[e["name"].get<std::string>()] = e;
  for (const char* flag : {"--store-password-env", "--bootstrap-token-env"}) {
    ASSERT_TRUE(flag_value.count(flag)) << flag;
    const json& var = env[flag_value[flag]];
    EXPECT_FALSE(var.contains("value")) << flag << ": no secret value in the manifests";
    EXPECT_EQ(var["valueFrom"]["secretKeyRef"]["name"], kSelfCredentialsSecret) << flag;
  }
  EXPECT_TRUE(flag_value.count("--listen"));
  for (const auto& o : objects) EXPECT_NE(o["kind"], "Secret") << "the owner makes the Secret; render never holds it";
}

TEST(KubernetesSelf, OnlyTheNamespaceReachesTheEtcdPort) {
  const auto objects = render_ok({"apps", "zeppelin:0.1.0", "1Gi"});
  const json* policy = find(objects, "NetworkPolicy");
  ASSERT_NE(policy, nullptr);
  const json* sts = find(objects, "StatefulSet");
  ASSERT_NE(sts, nullptr);
  // It selects the server's pods.
  for (const auto& [k, v] : (*policy)["spec"]["podSelector"]["matchLabels"].items()) {
    EXPECT_EQ((*sts)["spec"]["template"]["metadata"]["labels"].value(k, json()), v) << k;
  }
  bool etcd_rule = false;
  for (const auto& rule : (*policy)["spec"]["ingress"]) {
    for (const auto& port : rule["ports"]) {
      if (port["port"] != kSelfEtcdPort) continue;
      etcd_rule = true;
      // A peer that is only a podSelector (no namespaceSelector) means "pods of this namespace".
      ASSERT_TRUE(rule.contains("from")) << "the etcd port must not be open to every source";
      for (const auto& peer : rule["from"]) {
        EXPECT_TRUE(peer.contains("podSelector"));
        EXPECT_FALSE(peer.contains("namespaceSelector"));
        EXPECT_FALSE(peer.contains("ipBlock"));
      }
    }
  }
  EXPECT_TRUE(etcd_rule);
}

TEST(KubernetesSelf, BadOptionsAreErrors) {
  for (const SelfOptions& bad : {SelfOptions{"", "zeppelin:0.1.0", "1Gi"}, SelfOptions{"Apps", "zeppelin:0.1.0", "1Gi"},
                                 SelfOptions{"apps", "Zeppelin Image", "1Gi"}, SelfOptions{"apps", "zeppelin", "lots"},
                                 SelfOptions{"apps", "zeppelin", "0"}}) {
    auto r = render_self(bad);
    ASSERT_FALSE(r) << bad.ns << " " << bad.image << " " << bad.storage;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  }
}

}  // namespace
}  // namespace zeppelin::kubernetes
