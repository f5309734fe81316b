#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "runtime/container/container_driver.h"
#include "runtime/container/engine.h"
#include "runtime/container/images.h"

namespace zeppelin::runtime::container {
namespace {

namespace fs = std::filesystem;

std::string frame(int stream, const std::string& payload) {
  std::string h(8, '\0');
  h[0] = static_cast<char>(stream);
  const auto n = static_cast<std::uint32_t>(payload.size());
  h[4] = static_cast<char>(n >> 24);
  h[5] = static_cast<char>(n >> 16);
  h[6] = static_cast<char>(n >> 8);
  h[7] = static_cast<char>(n);
  return h + payload;
}

TEST(StreamDemuxer, SplitsStdoutAndStderrWhateverTheCuts) {
  const std::string stream = frame(1, "hello ") + frame(2, "oops\n") + frame(1, std::string(70000, 'x')) + frame(1, "");
  for (std::size_t cut : {1UL, 3UL, 8UL, 9UL, 4096UL, stream.size()}) {
    std::string out, err;
    StreamDemuxer demux([&](std::string_view d, bool is_stderr) { (is_stderr ? err : out).append(d); });
    for (std::size_t i = 0; i < stream.size(); i += cut) demux.feed(std::string_view(stream).substr(i, cut));
    EXPECT_EQ(out, "hello " + std::string(70000, 'x')) << "cut " << cut;
    EXPECT_EQ(err, "oops\n") << "cut " << cut;
  }
}

TEST(ImageReference, SplitsRepositoryAndTag) {
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(split_image_reference("busybox"), (P{"busybox", "latest"}));
  EXPECT_EQ(split_image_reference("busybox:1.35"), (P{"busybox", "1.35"}));
  EXPECT_EQ(split_image_reference("localhost:5000/team/app"), (P{"localhost:5000/team/app", "latest"}));
  EXPECT_EQ(split_image_reference("localhost:5000/team/app:v2"), (P{"localhost:5000/team/app", "v2"}));
  EXPECT_EQ(split_image_reference("app@sha256:abc"), (P{"app@sha256:abc", ""}));
}

TEST(CandidateSockets, DockerHostWinsElseDockerThenPodman) {
  EXPECT_EQ(candidate_sockets({{"DOCKER_HOST", "unix:///x.sock"}}), std::vector<std::string>{"unix:///x.sock"});
  auto defaults = candidate_sockets({{"XDG_RUNTIME_DIR", "/run/user/7"}});
  EXPECT_EQ(defaults, (std::vector<std::string>{"unix:///var/run/docker.sock", "unix:///run/podman/podman.sock",
                                                "unix:///run/user/7/podman/podman.sock"}));
}

TEST(EngineConnect, ErrorNamesEverySocketTriedAndWhy) {
  boost::asio::io_context io;
  auto engine = Engine::connect(io, {{"DOCKER_HOST", "unix:///nonexistent/engine.sock"}});
  ASSERT_FALSE(engine);
  EXPECT_NE(engine.error().message.find("unix:///nonexistent/engine.sock"), std::string::npos) << engine.error().message;
  EXPECT_NE(engine.error().message.find("No such file"), std::string::npos) << engine.error().message;
  auto tcp = Engine::connect(io, {{"DOCKER_HOST", "tcp://127.0.0.1:2375"}});
  ASSERT_FALSE(tcp);
  EXPECT_NE(tcp.error().message.find("only unix://"), std::string::npos) << tcp.error().message;
}

LaunchSpec sample_launch() {
  LaunchSpec launch;
  launch.id = "shop/web/2";
  launch.argv = {"httpd", "-f"};
  launch.env = {"PORT=8080", "ZEPPELIN_REPLICA=2"};
  launch.workdir = "/srv";
  launch.resources.memory_bytes = 64 << 20;
  launch.resources.cpu_millis = 500;
  launch.container = ContainerLaunch{"busybox:1", std::vector<std::string>{"/bin/env"},
                                     {{"/home/v/data", "/data", false}, {"/etc/conf", "/conf", true}}, "shop", "web", 2};
  return launch;
}

TEST(ContainerDriver, CreateRequestCarriesTheReplicaContract) {
  boost::asio::io_context io;
  ContainerDriver driver(io, std::make_shared<Engine>(io, "/unused.sock", "1.41", "test"), "/home/z");
  const auto body = driver.create_request(sample_launch());
  EXPECT_EQ(body["Image"], "busybox:1");
  EXPECT_EQ(body["Cmd"], (nlohmann::json{"httpd", "-f"}));
  EXPECT_EQ(body["Entrypoint"], (nlohmann::json{"/bin/env"}));
  EXPECT_EQ(body["Env"], (nlohmann::json{"PORT=8080", "ZEPPELIN_REPLICA=2"}));
  EXPECT_EQ(body["WorkingDir"], "/srv");
  EXPECT_EQ(body["Labels"][kLabelHome], "/home/z");
  EXPECT_EQ(body["Labels"][kLabelId], "shop/web/2");
  EXPECT_EQ(body["Labels"][kLabelReplica], "2");
  const auto& host = body["HostConfig"];
  EXPECT_EQ(host["NetworkMode"], "host");
  EXPECT_EQ(host["Memory"], 64 << 20);
  EXPECT_EQ(host["NanoCpus"], 500000000);
  ASSERT_EQ(host["Mounts"].size(), 2u);
  EXPECT_EQ(host["Mounts"][1]["Source"], "/etc/conf");
  EXPECT_EQ(host["Mounts"][1]["Target"], "/conf");
  EXPECT_EQ(host["Mounts"][1]["ReadOnly"], true);
}

TEST(ContainerDriver, ConfigHashChangesWithTheConfigurationOnly) {
  boost::asio::io_context io;
  ContainerDriver driver(io, std::make_shared<Engine>(io, "/unused.sock", "1.41", "test"), "/home/z");
  auto launch = sample_launch();
  const std::string a = driver.create_request(launch)["Labels"][kLabelConfig];
  EXPECT_EQ(a, driver.create_request(launch)["Labels"][kLabelConfig].get<std::string>());
  launch.env.push_back("NEW=1");
  EXPECT_NE(a, driver.create_request(launch)["Labels"][kLabelConfig].get<std::string>());
}

TEST(BuildContext, TarHoldsEveryFileWithItsContent) {
  const fs::path dir = fs::temp_directory_path() / "zeppelin-tar-test";
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "Dockerfile") << "FROM scratch\n";
  std::ofstream(dir / "sub" / "data.txt") << "payload";
  fs::create_symlink("data.txt", dir / "sub" / "link");
  auto tar = tar_directory(dir.string());
  ASSERT_TRUE(tar) << tar.error().message;

  std::map<std::string, std::string> files;
  std::unique_ptr<archive, decltype(&archive_read_free)> ar(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(ar.get());
  ASSERT_EQ(archive_read_open_memory(ar.get(), tar->data(), tar->size()), ARCHIVE_OK);
  archive_entry* entry = nullptr;
  while (archive_read_next_header(ar.get(), &entry) == ARCHIVE_OK) {
    std::string content(static_cast<std::size_t>(archive_entry_size(entry)), '\0');
    if (!content.empty()) archive_read_data(ar.get(), content.data(), content.size());
    if (archive_entry_symlink(entry)) content = std::string("-> ") + archive_entry_symlink(entry);
    files[archive_entry_pathname(entry)] = content;
  }
  EXPECT_EQ(files["Dockerfile"], "FROM scratch\n");
  EXPECT_EQ(files["sub/data.txt"], "payload");
  EXPECT_EQ(files["sub/link"], "-> data.txt");
  EXPECT_TRUE(files.count("sub/"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zeppelin::runtime::container
