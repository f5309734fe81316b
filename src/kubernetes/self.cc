#include "kubernetes/self.h"

#include "common/fs_util.h"
#include "common/units.h"
#include "kubernetes/labels.h"
#include "spec/parser.h"

namespace zeppelin::kubernetes {
namespace {

using json = nlohmann::ordered_json;

constexpr const char* kName = "zeppelin";
constexpr const char* kHome = "/var/lib/zeppelin";
// The variables the server reads its store's root password and first API token from.
constexpr const char* kStorePasswordVariable = "ZEPPELIN_STORE_ROOT_PASSWORD";
constexpr const char* kBootstrapTokenVariable = "ZEPPELIN_BOOTSTRAP_TOKEN";
// The image's unprivileged user (see Dockerfile); the volume is made writable for it through fsGroup.
constexpr int kUser = 65532;

json labels() {
  return {{kNameLabel, kName},
          {kInstanceLabel, kName},
          {kComponentLabel, "server"},
          {kManagedByLabel, kManager}};
}

json selector() {
  return {{kNameLabel, kName}, {kInstanceLabel, kName}};
}

json metadata(const SelfOptions& options) {
  return {{"name", kName}, {"namespace", options.ns}, {"labels", labels()}};
}

// What `zeppelin deploy` does in the namespace: server-side apply and prune of
// the objects render emits, rollout watches, pod logs. Nothing cluster-wide.
json role_rules() {
  const json verbs = {"get", "list", "watch", "create", "update", "patch", "delete"};
  return json::array(
      {{{"apiGroups", {""}},
        {"resources", {"configmaps", "secrets", "services", "persistentvolumeclaims", "pods"}},
        {"verbs", verbs}},
       {{"apiGroups", {""}}, {"resources", {"pods/log"}}, {"verbs", {"get", "list", "watch"}}},
       {{"apiGroups", {""}}, {"resources", {"events"}}, {"verbs", {"get", "list", "watch"}}},
       {{"apiGroups", {"apps"}}, {"resources", {"deployments", "statefulsets"}}, {"verbs", verbs}},
       {{"apiGroups", {"batch"}}, {"resources", {"jobs"}}, {"verbs", verbs}}});
}

// An environment variable taken from a key of the credentials Secret.
json secret_env(const char* variable, const char* key) {
  return {{"name", variable},
          {"valueFrom", {{"secretKeyRef", {{"name", kSelfCredentialsSecret}, {"key", key}}}}}};
}

json server_container(const SelfOptions& options) {
  // The etcd port serves the namespace's pods over the cluster network
  // without TLS of its own (auth stays on; the NetworkPolicy keeps it to the
  // namespace). The store's root password and the API's first admin token
  // come from the credentials Secret, never from the manifests.
  json args = {"server",
               "--listen",
               "0.0.0.0:" + std::to_string(kSelfApiPort),
               "--etcd-listen",
               "0.0.0.0:" + std::to_string(kSelfEtcdPort),
               "--etcd-plaintext",
               "--store-password-env",
               kStorePasswordVariable,
               "--bootstrap-token-env",
               kBootstrapTokenVariable};
  // The server answers only to the Host names it knows (DNS rebinding): the
  // Service's, as clients in the cluster spell it.
  for (const std::string& name : {std::string(kName), std::string(kName) + "." + options.ns,
                                  std::string(kName) + "." + options.ns + ".svc",
                                  std::string(kName) + "." + options.ns + ".svc.cluster.local"}) {
    args.push_back("--allowed-host");
    args.push_back(name);
  }
  return {
      {"name", "server"},
      {"image", options.image},
      {"args", args},
      {"env",
       {{{"name", kHomeVariable}, {"value", kHome}},
        secret_env(kStorePasswordVariable, "store-root-password"),
        secret_env(kBootstrapTokenVariable, "api-token")}},
      {"ports",
       {{{"name", "api"}, {"containerPort", kSelfApiPort}, {"protocol", "TCP"}},
        {{"name", "etcd"}, {"containerPort", kSelfEtcdPort}, {"protocol", "TCP"}}}},
      {"readinessProbe", {{"tcpSocket", {{"port", "api"}}}, {"periodSeconds", 5}}},
      {"livenessProbe", {{"tcpSocket", {{"port", "api"}}}, {"periodSeconds", 10}, {"failureThreshold", 3}}},
      {"resources", {{"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}}, {"limits", {{"memory", "512Mi"}}}}},
      {"securityContext",
       {{"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"capabilities", {{"drop", {"ALL"}}}}}},
      {"volumeMounts", json::array({{{"name", "data"}, {"mountPath", kHome}}})}};
}

}  // namespace

Result<std::vector<nlohmann::ordered_json>> render_self(const SelfOptions& options) {
  if (options.ns.empty()) {
    return make_error(Errc::kInvalidArgument,
                      "--self needs -n NAMESPACE: the server's RoleBinding names its ServiceAccount's namespace");
  }
  if (!spec::is_dns_label(options.ns)) {
    return make_error(Errc::kInvalidArgument, "invalid namespace \"" + options.ns +
                                                  "\": must be a DNS-1123 label (lowercase letters, digits and "
                                                  "'-', at most 63)");
  }
  if (auto problem = spec::image_reference_problem(options.image)) {
    return make_error(Errc::kInvalidArgument, "invalid --image \"" + options.image + "\": " + *problem);
  }
  if (auto size = parse_memory(options.storage); !size || *size <= 0) {
    return make_error(Errc::kInvalidArgument,
                      "invalid --storage \"" + options.storage + "\": expected a size such as 1Gi or 500Mi");
  }

  std::vector<json> objects;
  objects.push_back({{"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", metadata(options)}});
  objects.push_back({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                     {"kind", "Role"},
                     {"metadata", metadata(options)},
                     {"rules", role_rules()}});
  objects.push_back({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                     {"kind", "RoleBinding"},
                     {"metadata", metadata(options)},
                     {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", kName}}},
                     {"subjects", json::array({{{"kind", "ServiceAccount"}, {"name", kName}, {"namespace", options.ns}}})}});
  objects.push_back(
      {{"apiVersion", "v1"},
       {"kind", "Service"},
       {"metadata", metadata(options)},
       {"spec",
        {{"type", "ClusterIP"},
         {"selector", selector()},
         {"ports",
          {{{"name", "api"}, {"port", kSelfApiPort}, {"targetPort", "api"}, {"protocol", "TCP"}},
           {{"name", "etcd"}, {"port", kSelfEtcdPort}, {"targetPort", "etcd"}, {"protocol", "TCP"}}}}}}});
  // Only the namespace's pods reach the etcd port (it has no TLS); the API
  // port takes bearer tokens over TLS and may be reached from anywhere the
  // cluster routes to it.
  objects.push_back(
      {{"apiVersion", "networking.k8s.io/v1"},
       {"kind", "NetworkPolicy"},
       {"metadata", metadata(options)},
       {"spec",
        {{"podSelector", {{"matchLabels", selector()}}},
         {"policyTypes", json::array({"Ingress"})},
         {"ingress",
          json::array({{{"ports", json::array({{{"protocol", "TCP"}, {"port", kSelfApiPort}}})}},
                       {{"from", json::array({{{"podSelector", json::object()}}})},
                        {"ports", json::array({{{"protocol", "TCP"}, {"port", kSelfEtcdPort}}})}}})}}}});
  json claim = {{"metadata", {{"name", "data"}, {"labels", labels()}}},
                {"spec",
                 {{"accessModes", json::array({"ReadWriteOnce"})},
                  {"resources", {{"requests", {{"storage", options.storage}}}}}}}};
  objects.push_back(
      {{"apiVersion", "apps/v1"},
       {"kind", "StatefulSet"},
       {"metadata", metadata(options)},
       {"spec",
        {// One server per data directory: the store and the supervisor's state live on its volume.
         {"replicas", 1},
         {"serviceName", kName},
         {"selector", {{"matchLabels", selector()}}},
         {"template",
          {{"metadata", {{"labels", labels()}}},
           {"spec",
            {{"serviceAccountName", kName},
             {"securityContext",
              {{"runAsNonRoot", true}, {"runAsUser", kUser}, {"runAsGroup", kUser}, {"fsGroup", kUser}}},
             {"containers", json::array({server_container(options)})},
             {"terminationGracePeriodSeconds", 60},
             {"enableServiceLinks", false}}}}},
         {"volumeClaimTemplates", json::array({claim})}}}});
  return objects;
}

}  // namespace zeppelin::kubernetes
