#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "spec/parser.h"

namespace zeppelin::spec {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFullSpec = R"(name: shop
services:
  db:
    command: ["python3", "db.py", "--port", "${PORT}"]
    workdir: ./srv
    env: {LOG_LEVEL: info, RETRIES: 3}
    ports:
      - {name: http, port: 8080}
      - {name: peer, port: 8081}
    replicas: 3
    mode: stateful
    start: parallel
    resources: {cpu: 0.5, memory: 256Mi}
    volumes:
      - {name: data, path: /data}
    health:
      http: {port: http, path: /healthz}
      interval: 2s
      timeout: 500ms
      retries: 5
      start_period: 5s
    restart: on-failure
    stop_grace: 3s
  web:
    command: python3 web.py
    depends_on: [db]
    replicas: 2
)";

TEST(SpecParser, ParsesEveryField) {
  auto parsed = parse_spec(kFullSpec, "zeppelin.yaml", "/base");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const System& s = *parsed;
  EXPECT_EQ(s.name, "shop");
  ASSERT_EQ(s.services.size(), 2u);
  const Service& db = s.services[0];
  EXPECT_EQ(db.command, (std::vector<std::string>{"python3", "db.py", "--port", "${PORT}"}));
  EXPECT_FALSE(db.shell);
  EXPECT_EQ(db.workdir, "/base/srv");
  ASSERT_EQ(db.env.size(), 2u);
  EXPECT_EQ(db.env[1], (std::pair<std::string, std::string>{"RETRIES", "3"}));
  ASSERT_EQ(db.ports.size(), 2u);
  EXPECT_EQ(db.ports[1].name, "peer");
  EXPECT_EQ(db.ports[1].port, 8081);
  EXPECT_EQ(db.replicas, 3);
  EXPECT_EQ(db.mode, Mode::kStateful);
  EXPECT_EQ(db.start, StartOrder::kParallel);
  EXPECT_FALSE(db.ordered());
  EXPECT_EQ(*db.resources.cpu_millis, 500);
  EXPECT_EQ(*db.resources.memory_bytes, 256LL * 1024 * 1024);
  ASSERT_EQ(db.volumes.size(), 1u);
  EXPECT_EQ(db.volumes[0].path, "/data");
  ASSERT_TRUE(db.health.has_value());
  EXPECT_EQ(db.health->kind, HealthCheck::Kind::kHttp);
  EXPECT_EQ(db.health->port, 8080);
  EXPECT_EQ(db.health->path, "/healthz");
  EXPECT_EQ(db.health->interval.count(), 2000);
  EXPECT_EQ(db.health->timeout.count(), 500);
  EXPECT_EQ(db.health->retries, 5);
  EXPECT_EQ(db.health->start_period.count(), 5000);
  EXPECT_EQ(db.restart, RestartPolicy::kOnFailure);
  EXPECT_EQ(db.stop_grace.count(), 3000);

  const Service& web = s.services[1];
  EXPECT_TRUE(web.shell);
  EXPECT_EQ(web.command, (std::vector<std::string>{"/bin/sh", "-c", "python3 web.py"}));
  EXPECT_EQ(web.workdir, "/base");
  EXPECT_EQ(web.depends_on, std::vector<std::string>{"db"});
  EXPECT_EQ(web.restart, RestartPolicy::kAlways);
  EXPECT_EQ(web.mode, Mode::kReplicated);

  auto order = s.dependency_order();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0]->name, "db");
}

TEST(SpecParser, BytesThatAreNotUtf8AreALocatedErrorNotACrash) {
  // After "é" (two bytes, one column): a lone continuation byte, then a truncated sequence.
  for (const auto& [text, where] : std::vector<std::pair<std::string, std::string>>{
           {"name: shop\nservices:\n  a:\n    command: [\"\xc3\xa9\x80\"]\n", "f.yaml:4:17:"},
           {"name: shop\xe2\x82", "f.yaml:1:11:"},
           {"name: \xed\xa0\x80", "f.yaml:1:7:"},  // a surrogate
           {"name: \xc0\xaf", "f.yaml:1:7:"},       // an overlong '/'
       }) {
    auto r = parse_spec(text, "f.yaml", "/");
    ASSERT_FALSE(r.ok()) << where;
    EXPECT_EQ(r.error().message.rfind(where + " invalid UTF-8", 0), 0u) << r.error().message;
  }
  EXPECT_TRUE(parse_spec("name: caf\xc3\xa9-x\nservices:\n  a:\n    command: [\"\xf0\x9f\x9a\x80\"]\n", "f.yaml", "/")
                  .error()
                  .message.find("UTF-8") == std::string::npos);
}

TEST(SpecParser, DefaultsMatchTheDocumentation) {
  auto parsed = parse_spec("name: a\nservices:\n  s:\n    command: [\"true\"]\n", "f.yaml", "/d");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const Service& s = parsed->services[0];
  EXPECT_EQ(s.replicas, 1);
  EXPECT_EQ(s.mode, Mode::kReplicated);
  EXPECT_EQ(s.restart, RestartPolicy::kAlways);
  EXPECT_EQ(s.stop_grace.count(), 10000);
  EXPECT_FALSE(s.health.has_value());
}

TEST(SpecParser, ReportsEveryProblemSortedByPosition) {
  const char* text = "name: Bad\nservices:\n  db:\n    command: [\"x\"]\n    replicas: many\n    bogus: 1\n";
  auto parsed = parse_spec(text, "f.yaml", "/d");
  ASSERT_FALSE(parsed.ok());
  const std::string& m = parsed.error().message;
  EXPECT_EQ(parsed.error().code, Errc::kInvalidArgument);
  const auto first = m.find("f.yaml:1:7: invalid system name");
  const auto second = m.find("f.yaml:5:15: replicas must be an integer");
  const auto third = m.find("f.yaml:6:5: unknown field \"bogus\"");
  EXPECT_NE(first, std::string::npos) << m;
  EXPECT_NE(second, std::string::npos) << m;
  EXPECT_NE(third, std::string::npos) << m;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
}

TEST(SpecParser, EnvAcceptsComposeListForm) {
  auto parsed = parse_spec("name: a\nservices:\n  s:\n    command: [\"true\"]\n    env: [\"A=1\", \"B=x=y\"]\n", "f", "/");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed->services[0].env.size(), 2u);
  EXPECT_EQ(parsed->services[0].env[1].second, "x=y");
}

TEST(SpecParser, HostVolumeSourceMustExist) {
  const fs::path dir = fs::temp_directory_path() / "zeppelin-spec-test";
  fs::create_directories(dir / "conf");
  const std::string ok = "name: a\nservices:\n  s:\n    command: [\"true\"]\n    volumes: [{name: conf, path: /etc/x, source: ./conf, read_only: true}]\n";
  auto parsed = parse_spec(ok, "f", dir.string());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(*parsed->services[0].volumes[0].source, (dir / "conf").string());
  EXPECT_TRUE(parsed->services[0].volumes[0].read_only);
  auto missing = parse_spec(ok, "f", (dir / "nowhere").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("is not a directory"), std::string::npos);
  fs::remove_all(dir);
}

TEST(SpecParser, ImageServicesTakeComposeStyleCommandAndEntrypoint) {
  auto parsed = parse_spec(
      "name: a\nservices:\n  s:\n    image: busybox:1.35\n    command: sh -c 'echo \"$X y\"'\n"
      "    entrypoint: [\"/bin/env\"]\n    workdir: /srv\n",
      "f", "/base");
  ASSERT_TRUE(parsed) << parsed.error().message;
  const Service& s = parsed->services[0];
  EXPECT_TRUE(s.is_container());
  EXPECT_EQ(s.image, "busybox:1.35");
  EXPECT_EQ(s.command, (std::vector<std::string>{"sh", "-c", "echo \"$X y\""}));
  EXPECT_FALSE(s.shell);
  ASSERT_TRUE(s.entrypoint);
  EXPECT_EQ(*s.entrypoint, std::vector<std::string>{"/bin/env"});
  EXPECT_EQ(s.workdir, "/srv");
}

TEST(SpecParser, ImageServiceWithoutCommandOrWorkdirUsesTheImagesOwn) {
  auto parsed = parse_spec("name: a\nservices:\n  s:\n    image: registry.example:5000/Team/app\n", "f", "/base");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:4:12: invalid image"), std::string::npos) << parsed.error().message;
  parsed = parse_spec("name: a\nservices:\n  s:\n    image: registry.example:5000/team/app@sha256:ab\n", "f", "/base");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->services[0].command.empty());
  EXPECT_TRUE(parsed->services[0].workdir.empty());
}

TEST(SpecParser, BuildWithoutImageGetsAPredictableTag) {
  const fs::path dir = fs::temp_directory_path() / "zeppelin-build-ctx";
  fs::create_directories(dir / "ctx");
  auto parsed = parse_spec(
      "name: shop\nservices:\n  api:\n    build: {context: ctx, dockerfile: Containerfile, args: {V: 1}}\n"
      "  short:\n    build: ctx\n    image: mine:2\n",
      "f", dir.string());
  ASSERT_TRUE(parsed) << parsed.error().message;
  const Service& api = parsed->services[0];
  EXPECT_EQ(api.image, "shop-api:latest");
  ASSERT_TRUE(api.build);
  EXPECT_EQ(api.build->context, (dir / "ctx").string());
  EXPECT_EQ(api.build->dockerfile, "Containerfile");
  EXPECT_EQ(api.build->args, (std::vector<std::pair<std::string, std::string>>{{"V", "1"}}));
  EXPECT_EQ(parsed->services[1].image, "mine:2");
  fs::remove_all(dir);
}

TEST(SpecParser, ContainerOnlyFieldsAreRejectedOnProcessServices) {
  auto parsed = parse_spec("name: a\nservices:\n  s:\n    command: [\"true\"]\n    entrypoint: [x]\n", "f", "/");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:5:17: \"entrypoint\" applies only"), std::string::npos)
      << parsed.error().message;
  parsed = parse_spec("name: a\nservices:\n  s:\n    image: x\n    command: \"a 'b\"\n", "f", "/");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("command: unterminated ' quote"), std::string::npos) << parsed.error().message;
}

TEST(SpecParser, SecretEnvValuesAreReferencesKeptApartFromPlainValues) {
  auto parsed = parse_spec(
      "name: a\nservices:\n  s:\n    image: postgres:16\n    env:\n      USER: app\n"
      "      PASSWORD: {secret: db-auth, key: password.txt}\n      MODE: ${USER}\n",
      "f", "/");
  ASSERT_TRUE(parsed) << parsed.error().message;
  const Service& s = parsed->services[0];
  EXPECT_EQ(s.env, (std::vector<std::pair<std::string, std::string>>{{"USER", "app"}, {"MODE", "${USER}"}}));
  ASSERT_EQ(s.secret_env.size(), 1u);
  EXPECT_EQ(s.secret_env[0].variable, "PASSWORD");
  EXPECT_EQ(s.secret_env[0].secret.name, "db-auth");
  EXPECT_EQ(s.secret_env[0].secret.key, "password.txt");
  // Build args take no secrets: a mapping there is an error.
  parsed = parse_spec("name: a\nservices:\n  s:\n    build: {context: /, args: {A: {secret: x, key: y}}}\n", "f", "/");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:4:35: value of A in build args must be a scalar, found a mapping"),
            std::string::npos)
      << parsed.error().message;
}

TEST(SpecParser, VolumeSizeIsAQuantityInBytes) {
  auto parsed = parse_spec(
      "name: a\nservices:\n  s:\n    image: x\n    volumes:\n      - {name: data, path: /data, size: 10Gi}\n"
      "      - {name: tmp, path: /tmp}\n",
      "f", "/");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->services[0].volumes[0].size_bytes, 10LL * 1024 * 1024 * 1024);
  EXPECT_FALSE(parsed->services[0].volumes[1].size_bytes);
  parsed = parse_spec("name: a\nservices:\n  s:\n    image: x\n    volumes: [{name: d, path: /d, size: 0}]\n", "f", "/");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:5:41: volume size: "), std::string::npos) << parsed.error().message;
}

TEST(SpecParser, StoreEtcdWithCredentialsAndADefaultPrefix) {
  auto parsed = parse_spec(
      "name: shop\nstore:\n  etcd:\n    endpoints: [\"https://etcd-0:2379\", \"http://10.0.0.2:2379\"]\n"
      "    user: shop\n    password: {secret: etcd-auth, key: password}\nservices:\n  s: {image: x}\n",
      "f", "/");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_TRUE(parsed->etcd);
  EXPECT_EQ(parsed->etcd->endpoints, (std::vector<std::string>{"https://etcd-0:2379", "http://10.0.0.2:2379"}));
  EXPECT_EQ(parsed->etcd->user, "shop");
  ASSERT_TRUE(parsed->etcd->password);
  EXPECT_EQ(parsed->etcd->password->name, "etcd-auth");
  EXPECT_EQ(parsed->etcd->prefix, "/zeppelin/shop/");
  parsed = parse_spec("name: shop\nstore: {etcd: {endpoints: [\"http://e:2379\"], prefix: /apps/}}\nservices:\n  s: {image: x}\n",
                      "f", "/");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->etcd->prefix, "/apps/");
  EXPECT_FALSE(parsed->etcd->password);
  parsed = parse_spec("name: shop\nservices:\n  s: {image: x}\n", "f", "/");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_FALSE(parsed->etcd);
}

TEST(SpecParser, StoreUserNamesTheEtcdUserOfTheServersOwnStore) {
  auto parsed = parse_spec("name: shop\nstore:\n  user: shop-app\nservices:\n  s: {command: x}\n", "f", "/");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->store_user, "shop-app");
  EXPECT_FALSE(parsed->etcd);
  parsed = parse_spec("name: shop\nservices:\n  s: {command: x}\n", "f", "/");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->store_user, "");
  // Either order of the two fields is the same error, at store.user.
  parsed = parse_spec(
      "name: shop\nstore:\n  user: a\n  etcd: {endpoints: [\"http://e:2379\"]}\nservices:\n  s: {image: x}\n", "f",
      "/");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:3:3: store.user is for the server's own store"), std::string::npos)
      << parsed.error().message;
}

// Accounts a test names: "app" (uid 1500, group "app" 1500), group "staff"
// (50), and a server that is root unless told otherwise.
class FakeAccounts final : public Accounts {
 public:
  explicit FakeAccounts(std::uint32_t euid = 0, std::uint32_t egid = 0) : euid_(euid), egid_(egid) {}
  std::optional<UserAccount> find_user(const std::string& name_or_id) const override {
    if (name_or_id == "app" || name_or_id == "1500") return UserAccount{1500, 1500, "app", "/home/app"};
    return std::nullopt;
  }
  std::optional<std::uint32_t> find_group(const std::string& name_or_id) const override {
    if (name_or_id == "app" || name_or_id == "1500") return 1500;
    if (name_or_id == "staff" || name_or_id == "50") return 50;
    return std::nullopt;
  }
  std::uint32_t effective_uid() const override { return euid_; }
  std::uint32_t effective_gid() const override { return egid_; }

 private:
  std::uint32_t euid_, egid_;
};

TEST(SpecParser, UserAndGroupResolveToTheHostsAccounts) {
  const FakeAccounts root;
  auto parsed = parse_spec("name: a\nservices:\n  s: {command: x, user: app}\n", "f", "/", {}, root);
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_TRUE(parsed->services[0].run_as);
  EXPECT_EQ(*parsed->services[0].run_as, (RunAs{1500, 1500, "app", "/home/app"}));
  parsed = parse_spec("name: a\nservices:\n  s: {command: x, user: 1500, group: staff}\n", "f", "/", {}, root);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed->services[0].run_as, (RunAs{1500, 50, "app", "/home/app"}));
  parsed = parse_spec("name: a\nservices:\n  s: {command: x}\n", "f", "/", {}, root);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_FALSE(parsed->services[0].run_as);
}

TEST(SpecParser, UnknownUserOrGroupIsALocatedError) {
  const FakeAccounts root;
  auto parsed = parse_spec("name: a\nservices:\n  s:\n    command: x\n    user: nobody-here\n", "f", "/", {}, root);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:5:11: unknown user \"nobody-here\": no such account on this host"),
            std::string::npos)
      << parsed.error().message;
  parsed = parse_spec("name: a\nservices:\n  s:\n    command: x\n    user: app\n    group: 4242\n", "f", "/", {}, root);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:6:12: unknown group \"4242\""), std::string::npos) << parsed.error().message;
  parsed = parse_spec("name: a\nservices:\n  s:\n    command: x\n    group: staff\n", "f", "/", {}, root);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:5:12: \"group\" needs \"user\""), std::string::npos) << parsed.error().message;
}

TEST(SpecParser, AnotherUserNeedsARootServer) {
  const FakeAccounts owner(1000, 1000);
  auto parsed = parse_spec("name: a\nservices:\n  s:\n    command: x\n    user: app\n", "f", "/", {}, owner);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:5:11: user \"app\" (uid 1500): running replicas as another user needs a "
                                        "server running as root; this one runs as uid 1000"),
            std::string::npos)
      << parsed.error().message;
  // Its own account is no change at all: allowed.
  const FakeAccounts as_app(1500, 1500);
  parsed = parse_spec("name: a\nservices:\n  s:\n    command: x\n    user: app\n", "f", "/", {}, as_app);
  ASSERT_TRUE(parsed) << parsed.error().message;
  parsed = parse_spec("name: a\nservices:\n  s:\n    command: x\n    user: app\n    group: staff\n", "f", "/", {}, as_app);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:6:12: group 50: running replicas with another group needs a server"),
            std::string::npos)
      << parsed.error().message;
}

TEST(SpecParser, UserOfAnImageServiceIsALocatedError) {
  const FakeAccounts root;
  auto parsed = parse_spec("name: a\nservices:\n  s:\n    image: busybox\n    user: app\n", "f", "/", {}, root);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("f:5:11: \"user\" applies only to process services"), std::string::npos)
      << parsed.error().message;
}

TEST(SpecParser, MissingFileIsNotFound) {
  auto parsed = load_spec_file("/nonexistent/zeppelin.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, Errc::kNotFound);
}

TEST(DnsLabel, FollowsRfc1123) {
  EXPECT_TRUE(is_dns_label("web-1"));
  EXPECT_TRUE(is_dns_label("a"));
  EXPECT_FALSE(is_dns_label("-web"));
  EXPECT_FALSE(is_dns_label("web-"));
  EXPECT_FALSE(is_dns_label("Web"));
  EXPECT_FALSE(is_dns_label("web_1"));
  EXPECT_FALSE(is_dns_label(std::string(64, 'a')));
  EXPECT_FALSE(is_dns_label(""));
}

// Names become file names under $ZEPPELIN_HOME: nothing that could leave their directory.
TEST(DnsLabel, RejectsEveryPathLikeName) {
  for (const char* name : {".", "..", "../x", "../../etc", "a/b", "/etc", ".hidden", "a\\b", "a.b", "a b", "a\nb"}) {
    EXPECT_FALSE(is_dns_label(name)) << name;
  }
}

TEST(SecretKey, AllowsFileNamesWithoutPathsOrHiddenFiles) {
  for (const char* key : {"password", "tls.crt", "API_TOKEN", "a-b_c.d", "x"}) EXPECT_TRUE(is_secret_key(key)) << key;
  EXPECT_TRUE(is_secret_key(std::string(253, 'k')));
  for (const char* key : {"", ".", "..", "../x", "a/b", "/etc/passwd", ".env", "..x", "a b", "a\\b", "a\tb", "caf\xc3\xa9"}) {
    EXPECT_FALSE(is_secret_key(key)) << key;
  }
  EXPECT_FALSE(is_secret_key(std::string(254, 'k')));
}

TEST(SecretRef, HiddenOrTraversingKeysAndNamesAreLocatedErrors) {
  auto parsed = parse_spec(
      "name: s\n"
      "services:\n"
      "  a:\n"
      "    command: [\"true\"]\n"
      "    env:\n"
      "      X: {secret: ../x, key: k}\n"
      "      Y: {secret: db, key: .env}\n",
      "s.yaml", "/");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, Errc::kInvalidArgument);
  EXPECT_NE(parsed.error().message.find("s.yaml:6:19: invalid secret name \"../x\""), std::string::npos)
      << parsed.error().message;
  EXPECT_NE(parsed.error().message.find("s.yaml:7:28: invalid secret key \".env\""), std::string::npos)
      << parsed.error().message;
}

// Every file of the malformed corpus names, in its first line, the location
// and message it must produce: "# expect: LINE:COL: message".
TEST(SpecCorpus, EveryMalformedSpecGivesItsLocatedError) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(ZEPPELIN_CORPUS_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::string first;
    std::getline(in, first);
    const std::string marker = "# expect: ";
    ASSERT_EQ(first.rfind(marker, 0), 0u) << entry.path() << " lacks an expect line";
    const std::string expected = entry.path().string() + ":" + first.substr(marker.size());
    auto parsed = load_spec_file(entry.path().string());
    ASSERT_FALSE(parsed.ok()) << entry.path() << " parsed";
    EXPECT_NE(parsed.error().message.find(expected), std::string::npos)
        << "expected: " << expected << "\nactual:   " << parsed.error().message;
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(SpecParser, AFileOverTheSizeLimitIsRefusedWithoutReadingItAll) {
  const fs::path file = fs::temp_directory_path() / ("zeppelin-large-spec-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(file);
    out << "name: big\nservices:\n  web:\n    command: [\"true\"]\n# " << std::string(5 << 20, 'x') << "\n";
  }
  auto parsed = load_spec_file(file.string());
  fs::remove(file);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, Errc::kTooLarge);
  EXPECT_NE(parsed.error().message.find("over the limit of 4194304 (zeppelin server --max-spec-bytes)"),
            std::string::npos)
      << parsed.error().message;
  // Within a larger limit it is a spec like any other.
  Limits larger;
  larger.max_spec_bytes = 8 << 20;
  std::ofstream(file) << "name: big\nservices:\n  web:\n    command: [\"true\"]\n# " << std::string(5 << 20, 'x') << "\n";
  EXPECT_TRUE(load_spec_file(file.string(), larger).ok());
  fs::remove(file);
}

TEST(SpecParser, ServicesAndReplicasPerSystemAreLimitedWithTheirPlace) {
  Limits limits;
  limits.max_services = 2;
  limits.max_replicas_per_system = 5;
  const std::string three = "name: t\nservices:\n  a: {command: x}\n  b: {command: x}\n  c: {command: x}\n";
  auto wide = parse_spec(three, "t.yaml", "/", limits);
  ASSERT_FALSE(wide.ok());
  EXPECT_EQ(wide.error().message,
            "t.yaml:3:3: the system has 3 services, over the limit of 2 per system (zeppelin server "
            "--max-services-per-system)");
  const std::string many = "name: t\nservices:\n  a: {command: x, replicas: 3}\n  b: {command: x, replicas: 3}\n";
  auto heavy = parse_spec(many, "t.yaml", "/", limits);
  ASSERT_FALSE(heavy.ok());
  EXPECT_EQ(heavy.error().message,
            "t.yaml:4:29: the system wants 6 replicas in total, over the limit of 5 per system (zeppelin server "
            "--max-replicas-per-system)");
}

}  // namespace
}  // namespace zeppelin::spec
