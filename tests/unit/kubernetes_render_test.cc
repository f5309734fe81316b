// zeppelin render --target kubernetes: golden files, structural checks of
// every object, and the errors of specs that cannot run in a cluster.
//
// Golden files: tests/golden/kubernetes/CASE.yaml is a spec (a first line
// "# namespace: NAME" renders it with -n NAME); CASE.expected.yaml is its
// rendering, compared byte for byte. After an intended change, regenerate
// them with
//   ZEPPELIN_UPDATE_GOLDEN=1 build/tests/unit_tests --gtest_filter='*KubernetesGolden*'
// and review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "kubernetes/render.h"
#include "spec/parser.h"

namespace zeppelin::kubernetes {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<fs::path> golden_inputs() {
  std::vector<fs::path> inputs;
  for (const auto& entry : fs::directory_iterator(ZEPPELIN_GOLDEN_DIR "/kubernetes")) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.ends_with(".yaml") && !name.ends_with(".expected.yaml")) {
      inputs.push_back(entry.path());
    }
  }
  std::sort(inputs.begin(), inputs.end());
  return inputs;
}

std::string namespace_of(const std::string& text) {
  static const std::regex re("^# namespace: ([a-z0-9-]+)\n");
  std::smatch m;
  return std::regex_search(text, m, re) ? m[1].str() : "";
}

Result<Manifest> render_text(const std::string& text, const std::string& ns = "") {
  auto system = spec::parse_spec(text, "zeppelin.yaml", "/");
  if (!system) return system.error();
  return render(*system, {ns});
}

bool is_dns_subdomain(const std::string& s) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  return s.size() <= 253 && std::regex_match(s, re);
}

bool contains_labels(const json& labels, const json& wanted) {
  for (auto it = wanted.begin(); it != wanted.end(); ++it) {
    if (!labels.contains(it.key()) || labels[it.key()] != it.value()) return false;
  }
  return true;
}

const json* pod_template(const json& object) {
  const std::string kind = object["kind"];
  if (kind == "Deployment" || kind == "StatefulSet" || kind == "Job") return &object["spec"]["template"];
  return nullptr;
}

// Checks that hold for every object of every rendering.
void check_structure(const std::vector<json>& objects, const spec::System& system, const std::string& ns) {
  std::set<std::string> names;
  std::map<std::string, const json*> config_maps;
  std::map<std::string, const json*> services;
  std::vector<const json*> templates;
  std::vector<const json*> workloads;
  for (const auto& o : objects) {
    ASSERT_TRUE(o.contains("apiVersion") && o.contains("kind") && o.contains("metadata")) << o.dump();
    const std::string kind = o["kind"];
    const std::string name = o["metadata"].value("name", "");
    SCOPED_TRACE(kind + "/" + name);
    EXPECT_NE(kind, "Secret") << "secrets are the user's, never rendered";
    EXPECT_TRUE(names.insert(kind + "/" + name).second) << "duplicate object";
    if (kind == "ConfigMap" || kind == "PersistentVolumeClaim") {
      EXPECT_TRUE(is_dns_subdomain(name));
    } else {
      EXPECT_TRUE(spec::is_dns_label(name) && std::isalpha(static_cast<unsigned char>(name[0])));
    }
    if (ns.empty())
      EXPECT_FALSE(o["metadata"].contains("namespace"));
    else
      EXPECT_EQ(o["metadata"].value("namespace", ""), ns);
    const json& labels = o["metadata"]["labels"];
    for (const char* key : {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                            "app.kubernetes.io/part-of"}) {
      EXPECT_TRUE(labels.contains(key)) << key;
    }
    EXPECT_EQ(labels.value("app.kubernetes.io/managed-by", ""), "zeppelin");
    EXPECT_EQ(labels.value("app.kubernetes.io/instance", ""), system.name);
    if (kind == "ConfigMap") config_maps[name] = &o;
    if (kind == "Service") services[name] = &o;
    if (const json* t = pod_template(o)) {
      templates.push_back(t);
      workloads.push_back(&o);
      EXPECT_TRUE(contains_labels((*t)["metadata"]["labels"], labels)) << "pod template carries the object's labels";
      if (kind != "Job") {
        EXPECT_TRUE(contains_labels((*t)["metadata"]["labels"], o["spec"]["selector"]["matchLabels"]));
      }
    }
    if (kind == "StatefulSet") {
      const std::string governing = o["spec"]["serviceName"];
      ASSERT_TRUE(services.count(governing)) << "the headless Service comes before its StatefulSet";
      EXPECT_EQ((*services[governing])["spec"].value("clusterIP", ""), "None");
      EXPECT_LE(name.size(), 52u);
      for (const auto& claim : o["spec"].value("volumeClaimTemplates", json::array())) {
        EXPECT_TRUE(contains_labels(claim["metadata"]["labels"], labels));
        EXPECT_TRUE(claim["spec"]["resources"]["requests"].contains("storage"));
      }
    }
  }
  // Every Service selects the pods of exactly one workload.
  for (const auto& [name, service] : services) {
    SCOPED_TRACE("Service/" + name);
    const json& selector = (*service)["spec"]["selector"];
    ASSERT_FALSE(selector.empty());
    int matching = 0;
    for (const json* t : templates) matching += contains_labels((*t)["metadata"]["labels"], selector) ? 1 : 0;
    EXPECT_EQ(matching, 1);
  }
  for (const json* workload : workloads) {
    const json& pod = (*pod_template(*workload))["spec"];
    std::set<std::string> claim_or_volume;
    for (const auto& v : pod.value("volumes", json::array())) claim_or_volume.insert(v["name"]);
    for (const auto& c : (*workload)["spec"].value("volumeClaimTemplates", json::array())) {
      EXPECT_TRUE(claim_or_volume.insert(c["metadata"]["name"]).second) << "a claim and a volume share a name";
    }
    std::vector<json> containers;
    for (const auto& c : pod["containers"]) containers.push_back(c);
    for (const auto& c : pod.value("initContainers", json::array())) containers.push_back(c);
    for (const auto& c : containers) {
      SCOPED_TRACE("container " + c["name"].get<std::string>());
      EXPECT_TRUE(spec::is_dns_label(c["name"]));
      std::set<std::string> port_names;
      std::set<int> port_numbers;
      for (const auto& p : c.value("ports", json::array())) {
        port_names.insert(p["name"]);
        port_numbers.insert(p["containerPort"].get<int>());
      }
      for (const char* kind : {"readinessProbe", "livenessProbe", "startupProbe"}) {
        if (!c.contains(kind)) continue;
        const json& probe = c[kind];
        const json* port = probe.contains("httpGet")     ? &probe["httpGet"]["port"]
                           : probe.contains("tcpSocket") ? &probe["tcpSocket"]["port"]
                                                         : nullptr;
        if (!port) continue;
        if (port->is_string())
          EXPECT_TRUE(port_names.count(*port)) << kind << " port " << *port;
        else
          EXPECT_TRUE(port_numbers.count(port->get<int>())) << kind << " port " << *port;
      }
      std::set<std::string> env_names;
      for (const auto& e : c.value("env", json::array())) {
        EXPECT_TRUE(env_names.insert(e["name"]).second) << "duplicate env " << e["name"];
        if (e.contains("valueFrom") && e["valueFrom"].contains("configMapKeyRef")) {
          const json& ref = e["valueFrom"]["configMapKeyRef"];
          ASSERT_TRUE(config_maps.count(ref["name"])) << ref.dump();
          EXPECT_TRUE((*config_maps[ref["name"]])["data"].contains(ref["key"].get<std::string>())) << ref.dump();
        }
      }
      for (const auto& m : c.value("volumeMounts", json::array())) {
        EXPECT_TRUE(claim_or_volume.count(m["name"])) << "mount of no volume or claim: " << m.dump();
      }
    }
  }
}

class KubernetesGolden : public ::testing::TestWithParam<fs::path> {};

TEST_P(KubernetesGolden, RendersByteForByteAsExpected) {
  const fs::path input = GetParam();
  const std::string ns = namespace_of(slurp(input));
  auto system = spec::load_spec_file(input.string());
  ASSERT_TRUE(system) << system.error().message;
  auto manifest = render(*system, {ns});
  ASSERT_TRUE(manifest) << manifest.error().message;
  const std::string yaml = to_yaml(manifest->objects);
  fs::path expected_path = input;
  expected_path.replace_extension(".expected.yaml");
  if (std::getenv("ZEPPELIN_UPDATE_GOLDEN")) {
    std::ofstream(expected_path, std::ios::binary) << yaml;
    GTEST_SKIP() << "wrote " << expected_path;
  }
  ASSERT_TRUE(fs::exists(expected_path)) << expected_path << " is missing; see the top of this file to create it";
  EXPECT_EQ(yaml, slurp(expected_path)) << "rendering of " << input << " changed";

  // What the CLI prints (streamed) is the same, in both formats, with the same warnings.
  std::vector<std::string> warnings;
  auto streamed = render_to(*system, {ns}, Format::kYaml, &warnings);
  ASSERT_TRUE(streamed) << streamed.error().message;
  EXPECT_EQ(*streamed, yaml);
  EXPECT_EQ(warnings, manifest->warnings);
  auto streamed_json = render_to(*system, {ns}, Format::kJson);
  ASSERT_TRUE(streamed_json);
  EXPECT_EQ(*streamed_json, to_json(manifest->objects));
  EXPECT_EQ(json::parse(*streamed_json)["items"], json(manifest->objects));

  // Deterministic: a second rendering is identical, in both formats.
  auto again = render(*system, {ns});
  ASSERT_TRUE(again);
  EXPECT_EQ(to_yaml(again->objects), yaml);
  EXPECT_EQ(to_json(again->objects), to_json(manifest->objects));
  check_structure(manifest->objects, *system, ns);
}

INSTANTIATE_TEST_SUITE_P(Cases, KubernetesGolden, ::testing::ValuesIn(golden_inputs()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           std::string name = info.param.stem().string();
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(KubernetesGoldenSet, CoversTheCasesTheMappingIsAbout) {
  std::set<std::string> stems;
  for (const auto& p : golden_inputs()) stems.insert(p.stem().string());
  for (const char* needed : {"stateful-volumes", "depends-on", "health", "secrets", "store-etcd", "restart-jobs",
                             "host-volumes", "images"}) {
    EXPECT_TRUE(stems.count(needed)) << needed;
  }
}

// The YAML output is the JSON output: a YAML parser reads back every document
// as the object that was rendered (strings stay strings: "3", "yes", "1Gi").
TEST(KubernetesRender, YamlAndJsonCarryTheSameObjects) {
  auto system = spec::load_spec_file(ZEPPELIN_GOLDEN_DIR "/kubernetes/images.yaml");
  ASSERT_TRUE(system) << system.error().message;
  auto manifest = render(*system, {"apps"});
  ASSERT_TRUE(manifest) << manifest.error().message;
  const json list = json::parse(to_json(manifest->objects));
  EXPECT_EQ(list["kind"], "List");
  EXPECT_EQ(list["items"].size(), manifest->objects.size());
  const std::string yaml = to_yaml(manifest->objects);
  EXPECT_EQ(yaml.rfind("---\napiVersion: ", 0), 0u);
  std::size_t documents = 0;
  for (std::size_t at = 0; (at = yaml.find("---\n", at)) != std::string::npos; at += 4) ++documents;
  EXPECT_EQ(documents, manifest->objects.size());
}

// Reads YAML back as JSON: quoted scalars are strings; plain ones are
// integers, booleans or strings as YAML 1.2's core schema resolves them.
json to_json_value(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (auto it = node.begin(); it != node.end(); ++it) out[it->first.Scalar()] = to_json_value(it->second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(to_json_value(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;
      static const std::regex integer("^[-+]?[0-9]+$");
      if (std::regex_match(s, integer)) return std::stoll(s);
      if (s == "true" || s == "false") return s == "true";
      static const std::regex other(
          "^(null|Null|NULL|~|[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?|"
          "[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)|0x[0-9a-fA-F]+|0o[0-7]+)$");
      EXPECT_FALSE(std::regex_match(s, other)) << "plain \"" << s << "\" would not read back as a string";
      return s;
    }
    default:
      return nullptr;
  }
}

void expect_yaml_reads_back_as(const std::vector<json>& objects) {
  const std::string yaml = to_yaml(objects);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    FAIL() << "unreadable YAML: " << e.what() << "\n" << yaml;
  }
  ASSERT_EQ(documents.size(), objects.size());
  for (std::size_t i = 0; i < objects.size(); ++i) {
    // Key order aside (ordered_json compares in order; both keep the file's order).
    EXPECT_EQ(to_json_value(documents[i]), objects[i]) << "document " << i;
  }
}

TEST(KubernetesRender, YamlReadsBackAsTheObjectsEvenForAwkwardStrings) {
  auto manifest = render_text(
      "name: a\nservices:\n  s:\n    image: x\n    env:\n"
      "      A: \"yes\"\n      B: \"3\"\n      C: \"1e3\"\n      D: \"0x1F\"\n      E: \"~\"\n      F: \"\"\n"
      "      G: \"a: b\"\n      H: \"#x\"\n      I: \"- x\"\n      J: \"say \\\"hi\\\" \\\\ back\"\n"
      "      K: \"tab\\tnew\\nline\\r\"\n      L: \"h\u00e9llo \u2713 \U0001F680\"\n      M: \"bell\\x01\\x1f\"\n"
      "      N: \"nb\\u00a0sp\\u0085\"\n      O: \"1:30\"\n      P: \".inf\"\n      Q: \"Off\"\n      R: \"null\"\n"
      "      S: \"{a}\"\n      T: \"[1]\"\n      U: \"*ref\"\n      V: \"&anchor\"\n      W: \"!tag\"\n"
      "      X: \"%percent\"\n      Y: \"@at\"\n      Z: \"trailing:\"\n      AA: \" lead\"\n      AB: \"-1\"\n"
      "      AC: \"+1\"\n      AD: \".5\"\n      AE: \"'single'\"\n      AF: \"a #comment\"\n      AG: \"|\"\n"
      "      AH: \">\"\n      AI: \"?\"\n      AJ: \"a,b\"\n      AK: \"\\ufeffbom\"\n");
  ASSERT_TRUE(manifest) << manifest.error().message;
  expect_yaml_reads_back_as(manifest->objects);
  const std::string yaml = to_yaml(manifest->objects);
  EXPECT_NE(yaml.find("L: \"h\u00e9llo \u2713 \U0001F680\""), std::string::npos) << "UTF-8 stays readable";
  EXPECT_NE(yaml.find("M: \"bell\\x01\\x1f\""), std::string::npos);
  EXPECT_NE(yaml.find("\"N\": \"nb\\xa0sp\\x85\""), std::string::npos) << "C1 and no-break space escaped";
}

TEST(KubernetesRender, EveryGoldenRenderingReadsBackAsItsObjects) {
  for (const auto& input : golden_inputs()) {
    SCOPED_TRACE(input.string());
    auto system = spec::load_spec_file(input.string());
    ASSERT_TRUE(system) << system.error().message;
    auto manifest = render(*system, {namespace_of(slurp(input))});
    ASSERT_TRUE(manifest) << manifest.error().message;
    expect_yaml_reads_back_as(manifest->objects);
  }
}

TEST(KubernetesRender, NoSecretValueEverReachesTheManifest) {
  // The local secret files exist with a recognisable value; the rendering
  // must hold only references to them.
  const fs::path home = fs::temp_directory_path() / "zeppelin-render-secrets";
  fs::create_directories(home / "secrets" / "db-credentials");
  fs::create_directories(home / "secrets" / "etcd-auth");
  fs::create_directories(home / "secrets" / "api");
  const std::string sentinel = "s3nt1nel-Pa55w0rd";
  std::ofstream(home / "secrets" / "db-credentials" / "password") << sentinel;
  std::ofstream(home / "secrets" / "etcd-auth" / "password") << sentinel;
  std::ofstream(home / "secrets" / "api" / "token.v2") << sentinel;
  ::setenv("ZEPPELIN_HOME", home.c_str(), 1);
  auto system = spec::load_spec_file(ZEPPELIN_GOLDEN_DIR "/kubernetes/secrets.yaml");
  ASSERT_TRUE(system) << system.error().message;
  auto manifest = render(*system, {"vault"});
  ::unsetenv("ZEPPELIN_HOME");
  ASSERT_TRUE(manifest) << manifest.error().message;
  const std::string yaml = to_yaml(manifest->objects);
  const std::string json_text = to_json(manifest->objects);
  EXPECT_EQ(yaml.find(sentinel), std::string::npos);
  EXPECT_EQ(json_text.find(sentinel), std::string::npos);
  std::map<std::string, std::string> refs;  // variable -> secret/key
  for (const auto& o : manifest->objects) {
    if (!pod_template(o)) continue;
    for (const auto& e : (*pod_template(o))["spec"]["containers"][0]["env"]) {
      if (e.contains("valueFrom") && e["valueFrom"].contains("secretKeyRef")) {
        const json& r = e["valueFrom"]["secretKeyRef"];
        refs[e["name"]] = r["name"].get<std::string>() + "/" + r["key"].get<std::string>();
        EXPECT_FALSE(e.contains("value"));
      }
    }
  }
  EXPECT_EQ(refs, (std::map<std::string, std::string>{{"API_TOKEN", "api/token.v2"},
                                                      {"DB_PASSWORD", "db-credentials/password"},
                                                      {"ZEPPELIN_ETCD_PASSWORD", "etcd-auth/password"}}));
  fs::remove_all(home);
}

TEST(KubernetesRender, JsonOfNoObjectsIsAnEmptyList) {
  EXPECT_EQ(json::parse(to_json({})), (json{{"apiVersion", "v1"}, {"kind", "List"}, {"items", json::array()}}));
  EXPECT_EQ(to_yaml({}), "");
}

TEST(KubernetesRender, ACommandOnlyServiceIsAnErrorWithItsPlace) {
  const std::string text =
      "name: shop\nservices:\n  db:\n    image: postgres:16\n  web:\n    command: [\"python3\", \"web.py\"]\n"
      "  job:\n    command: make report\n";
  auto system = spec::parse_spec(text, "zeppelin.yaml", "/");
  ASSERT_TRUE(system) << "valid locally";
  auto streamed = render_to(*system, {}, Format::kYaml);
  ASSERT_FALSE(streamed) << "no partial output";
  auto manifest = render_text(text);
  ASSERT_FALSE(manifest);
  EXPECT_EQ(manifest.error().code, Errc::kInvalidArgument);
  const std::string& m = manifest.error().message;
  EXPECT_NE(m.find("zeppelin.yaml:5:3: service \"web\" has no image"), std::string::npos) << m;
  EXPECT_NE(m.find("zeppelin.yaml:7:3: service \"job\" has no image"), std::string::npos) << m;
  EXPECT_EQ(m.find("\"db\""), std::string::npos) << m;
}

TEST(KubernetesRender, VariablesTheClusterLacksAreErrorsUnlessDefaulted) {
  auto manifest = render_text("name: a\nservices:\n  s:\n    image: x\n    env: {A: \"${HOME}\"}\n");
  ASSERT_FALSE(manifest);
  EXPECT_NE(
      manifest.error().message.find("zeppelin.yaml:3:3: service \"s\": env A: ${HOME} is not defined in the cluster"),
      std::string::npos)
      << manifest.error().message;
  manifest = render_text("name: a\nservices:\n  s:\n    image: x\n    command: [\"--id\", \"${ZEPPELIN_REPLICA}\"]\n");
  ASSERT_FALSE(manifest);
  EXPECT_NE(manifest.error().message.find("command: ${ZEPPELIN_REPLICA} has no value in a Deployment"),
            std::string::npos)
      << manifest.error().message;
  manifest = render_text(
      "name: a\nservices:\n  s:\n    image: x\n    env: {A: \"${HOME:-/root}\", B: \"${ZEPPELIN_REPLICA:-0}\"}\n");
  ASSERT_TRUE(manifest) << manifest.error().message;
  const json& cm = manifest->objects[2];  // etcd Service, etcd StatefulSet, then s's ConfigMap
  ASSERT_EQ(cm["kind"], "ConfigMap");
  EXPECT_EQ(cm["data"], (json{{"A", "/root"}, {"B", "0"}}));
}

TEST(KubernetesRender, NamesKubernetesRejectsAreErrors) {
  auto manifest = render_text("name: a\nservices:\n  s:\n    image: x\n    ports: [{name: \"8080\", port: 8080}]\n");
  ASSERT_FALSE(manifest);
  EXPECT_NE(manifest.error().message.find("port name \"8080\" is not a Kubernetes port name"), std::string::npos);
  const std::string long_name(51, 'b');  // a-bbb...: 53 characters
  manifest = render_text("name: a\nservices:\n  " + long_name + ":\n    image: x\n    mode: stateful\n");
  ASSERT_FALSE(manifest);
  EXPECT_NE(manifest.error().message.find("is longer than 52 characters"), std::string::npos)
      << manifest.error().message;
  manifest =
      render_text("name: 1shop\nstore: {etcd: {endpoints: [\"http://e:2379\"]}}\nservices:\n  s:\n    image: x\n");
  ASSERT_FALSE(manifest);
  EXPECT_NE(manifest.error().message.find("must start with a letter"), std::string::npos) << manifest.error().message;
  manifest = render_text(
      "name: a\nservices:\n  s:\n    image: x\n  s-headless:\n    image: x\n    mode: stateful\n"
      "  s-headless-headless:\n    image: y\n    mode: stateful\n");
  ASSERT_TRUE(manifest) << "distinct kinds and names";
  manifest = render_text(
      "name: a\nservices:\n  s:\n    image: x\n    mode: stateful\n  s-headless:\n    image: y\n"
      "    ports: [{name: http, port: 80}]\n");
  ASSERT_FALSE(manifest);
  EXPECT_NE(manifest.error().message.find("two objects would be named Service/a-s-headless"), std::string::npos)
      << manifest.error().message;
  EXPECT_FALSE(render_text("name: a\nservices:\n  s: {image: x}\n", "Prod"));
}

TEST(KubernetesRender, AReadOnlyHostDirectoryOverAMebibyteIsAnError) {
  const fs::path dir = fs::temp_directory_path() / "zeppelin-render-big";
  fs::create_directories(dir / "static");
  std::ofstream(dir / "static" / "a.bin") << std::string(700 * 1024, 'a');
  std::ofstream(dir / "static" / "b.bin") << std::string(400 * 1024, 'b');
  auto system = spec::parse_spec(
      "name: a\nservices:\n  s:\n    image: x\n    volumes: [{name: www, path: /w, source: static, read_only: true}]\n",
      "zeppelin.yaml", dir.string());
  ASSERT_TRUE(system) << system.error().message;
  auto manifest = render(*system, {});
  ASSERT_FALSE(manifest);
  EXPECT_NE(manifest.error().message.find("zeppelin.yaml:3:3: service \"s\": volume www: " + (dir / "static").string() +
                                          " holds more than a ConfigMap can (1 MiB)"),
            std::string::npos)
      << manifest.error().message;
  fs::remove_all(dir);
}

TEST(KubernetesRender, WarnsAboutWhatTheClusterCannotHonour) {
  auto manifest = render_text(
      "name: a\nservices:\n  db:\n    image: x\n    mode: stateful\n    restart: never\n"
      "  worker:\n    image: y\n  web:\n    image: z\n    depends_on: [worker]\n");
  ASSERT_TRUE(manifest) << manifest.error().message;
  std::string all;
  for (const auto& w : manifest->warnings) all += w + "\n";
  EXPECT_NE(all.find("service \"db\": restart: never cannot be honoured by a StatefulSet"), std::string::npos) << all;
  EXPECT_NE(all.find("service \"web\": cannot wait for \"worker\""), std::string::npos) << all;
  EXPECT_NE(all.find("ZEPPELIN_SERVICE_WORKER is not set"), std::string::npos) << all;
}

TEST(KubernetesRender, ReplicaIdentityComesFromThePod) {
  auto manifest = render_text(
      "name: a\nservices:\n  db:\n    image: x\n    mode: stateful\n    replicas: 2\n"
      "    ports: [{name: peer, port: 2380}]\n  web:\n    image: y\n    ports: [{name: http, port: 80}]\n");
  ASSERT_TRUE(manifest) << manifest.error().message;
  std::map<std::string, std::map<std::string, json>> env;  // kind -> variable -> entry
  for (const auto& o : manifest->objects) {
    if (!pod_template(o) || o["metadata"]["name"] == "a-zeppelin-etcd") continue;
    for (const auto& e : (*pod_template(o))["spec"]["containers"][0]["env"]) env[o["kind"]][e["name"]] = e;
  }
  const auto& sts = env["StatefulSet"];
  EXPECT_EQ(sts.at("ZEPPELIN_REPLICA")["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['apps.kubernetes.io/pod-index']");
  EXPECT_EQ(sts.at("ZEPPELIN_HOST")["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP");
  EXPECT_EQ(sts.at("ZEPPELIN_PEERS")["value"],
            "a-db-0.a-db-headless.$(ZEPPELIN_NAMESPACE).svc:2380,a-db-1.a-db-headless.$(ZEPPELIN_NAMESPACE).svc:2380");
  EXPECT_EQ(sts.at("PORT_PEER")["value"], "2380");
  EXPECT_EQ(sts.at("ZEPPELIN_ETCD_ENDPOINTS")["value"].get<std::string>().rfind(
                "http://a-zeppelin-etcd-0.a-zeppelin-etcd.$(ZEPPELIN_NAMESPACE).svc:2379,", 0),
            0u);
  const auto& deploy = env["Deployment"];
  EXPECT_EQ(deploy.count("ZEPPELIN_REPLICA"), 0u) << "Deployment pods have no ordinal";
  EXPECT_EQ(deploy.at("ZEPPELIN_PEERS")["value"], "a-web.$(ZEPPELIN_NAMESPACE).svc:80");
  EXPECT_EQ(deploy.at("ZEPPELIN_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");
}

TEST(KubernetesRender, QuantitiesInKubernetesNotation) {
  EXPECT_EQ(format_bytes(1LL << 30), "1Gi");
  EXPECT_EQ(format_bytes(1536LL << 20), "1536Mi");
  EXPECT_EQ(format_bytes(4000000000LL), "4G");
  EXPECT_EQ(format_bytes(1500), "1500");
  EXPECT_EQ(format_bytes(2000), "2k");
  EXPECT_EQ(format_millicores(250), "250m");
  EXPECT_EQ(format_millicores(2000), "2");
}

}  // namespace
}  // namespace zeppelin::kubernetes
