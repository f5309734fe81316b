// spawn_process with `run_as`: the child takes the account's ids before exec,
// and a failure before exec comes back as an error naming the step.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "runtime/process/process_driver.h"

namespace zeppelin::runtime {
namespace {

// Runs argv as `run_as` and returns its stdout and exit code.
std::pair<std::string, int> run_as(const std::vector<std::string>& argv, const spec::RunAs& account,
                                   const std::string& workdir = "/") {
  int out[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  auto pid = spawn_process(argv, {"PATH=/usr/bin:/bin"}, workdir, out[1], -1, account);
  ::close(out[1]);
  EXPECT_TRUE(pid.ok()) << pid.error().message;
  std::string text;
  char buffer[256];
  ssize_t n = 0;
  while ((n = ::read(out[0], buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  if (pid.ok()) ::waitpid(*pid, &status, 0);
  return {text, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST(SpawnProcess, RunsAsTheAccountWithItsGroups) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing the account needs root";
  const spec::RunAs nobody{65534, 65534, "nobody", "/nonexistent"};
  auto [ids, code] = run_as({"/bin/sh", "-c", "id -u; id -g; id -G"}, nobody);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(ids.substr(0, ids.find('\n', ids.find('\n') + 1) + 1), "65534\n65534\n");
  EXPECT_EQ(ids.find(" 0"), std::string::npos) << ids;  // root's groups are gone
}

TEST(SpawnProcess, OwnAccountNeedsNoRoot) {
  const spec::RunAs self{::geteuid(), ::getegid(), "", "/"};
  auto [ids, code] = run_as({"/bin/sh", "-c", "id -u"}, self);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(ids, std::to_string(::geteuid()) + "\n");
}

TEST(SpawnProcess, AWorkdirTheAccountCannotEnterIsAnError) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing the account needs root";
  char dir[] = "/tmp/zeppelin-spawn-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);  // 0700, root's
  const spec::RunAs nobody{65534, 65534, "nobody", "/nonexistent"};
  int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  auto pid = spawn_process({"/bin/true"}, {}, dir, devnull, devnull, nobody);
  ::close(devnull);
  ::rmdir(dir);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.error().message.find("chdir: Permission denied"), std::string::npos) << pid.error().message;
}

}  // namespace
}  // namespace zeppelin::runtime
