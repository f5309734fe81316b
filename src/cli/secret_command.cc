#include "cli/secret_command.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/exit.h"
#include "cli/output.h"
#include "secrets/secrets.h"

namespace zeppelin::cli {

using nlohmann::json;

namespace {

// Values go into replica environments: a megabyte is far more than any needs.
constexpr std::size_t kMaxValue = 1 << 20;

// The value from stdin: everything piped in, or one line typed without echo.
Result<std::string> read_value(const SecretArgs& args) {
  std::string value;
  if (::isatty(STDIN_FILENO) == 1) {
    std::cerr << "value of secret " << args.name << "/" << args.key << " (not shown): " << std::flush;
    termios saved{};
    const bool quiet = ::tcgetattr(STDIN_FILENO, &saved) == 0;
    if (quiet) {
      termios silent = saved;
      silent.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent);
    }
    std::getline(std::cin, value);
    if (quiet) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::cerr << "\n";
  } else {
    value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) return make_error(Errc::kInternal, "cannot read the value from stdin");
    // `echo VALUE |` adds a newline nobody means as part of a password.
    if (!args.raw && value.ends_with('\n')) value.pop_back();
    if (!args.raw && value.ends_with('\r')) value.pop_back();
  }
  if (value.empty()) {
    return make_error(Errc::kInvalidArgument,
                      "no value on stdin for secret " + args.name + "/" + args.key +
                          ": pipe it in, e.g. printf %s \"$VALUE\" | zeppelin secret set " + args.name + " " + args.key);
  }
  if (value.size() > kMaxValue) {
    return make_error(Errc::kInvalidArgument, "the value of secret " + args.name + "/" + args.key +
                                                  " is larger than 1 MiB; secrets are for passwords, tokens and keys");
  }
  if (value.find('\0') != std::string::npos) {
    return make_error(Errc::kInvalidArgument, "the value of secret " + args.name + "/" + args.key +
                                                  " holds a NUL byte, which an environment variable cannot carry");
  }
  return value;
}

int set(secrets::SecretFiles& files, const SecretArgs& args) {
  // Names first: a bad one should not wait for a value to be typed.
  if (auto path = files.path(args.name, args.key); !path) return fail(path.error());
  auto value = read_value(args);
  if (!value) return fail(value.error());
  if (auto s = files.set(args.name, args.key, *value); !s) return fail(s.error());
  std::cout << "set secret " << args.name << "/" << args.key << "\n";
  return kOk;
}

int list(const secrets::SecretFiles& files, const SecretArgs& args) {
  auto all = files.list();
  if (!all) return fail(all.error());
  json out = json::array();
  for (const auto& s : *all) out.push_back({{"name", s.name}, {"keys", s.keys}});
  if (print_structured(out, args.format)) return kOk;
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : *all) {
    std::string keys;
    for (const auto& k : s.keys) keys += (keys.empty() ? "" : ",") + k;
    rows.push_back({s.name, keys.empty() ? "-" : keys});
  }
  print_table({"NAME", "KEYS"}, rows);
  return kOk;
}

int remove(secrets::SecretFiles& files, const SecretArgs& args) {
  const std::optional<std::string> key = args.key.empty() ? std::nullopt : std::optional<std::string>(args.key);
  if (auto s = files.remove(args.name, key); !s) return fail(s.error());
  std::cout << "removed secret " << args.name << (key ? "/" + *key : "") << "\n";
  return kOk;
}

}  // namespace

CLI::App* add_secret_command(CLI::App& app, SecretArgs& args) {
  auto* secret = app.add_subcommand("secret", "Secrets in $ZEPPELIN_HOME/secrets, used in specs as {secret: NAME, key: KEY}");
  secret->require_subcommand(1);
  auto* set = secret->add_subcommand("set", "Store the value read from stdin as secret NAME, key KEY");
  set->add_option("name", args.name, "secret name (a DNS label)")->required();
  set->add_option("key", args.key, "key (letters, digits, '-', '_', '.')")->required();
  set->add_flag("--raw", args.raw, "keep the value's bytes exactly (else one trailing newline is dropped)");
  auto* ls = secret->add_subcommand("ls", "List secrets and their keys (never their values)");
  add_output_flag(ls, args.format);
  auto* rm = secret->add_subcommand("rm", "Remove secret NAME, or only its key KEY");
  rm->add_option("name", args.name, "secret name")->required();
  rm->add_option("key", args.key, "only this key");
  add_examples(secret, {"printf %s \"$DB_PASSWORD\" | zeppelin secret set db password", "zeppelin secret ls"});
  add_examples(set, {"printf %s \"$DB_PASSWORD\" | zeppelin secret set db password",
                     "zeppelin secret set tls key.pem --raw < key.pem"});
  add_examples(ls, {"zeppelin secret ls", "zeppelin secret ls -o json"});
  add_examples(rm, {"zeppelin secret rm db password", "zeppelin secret rm db             # every key"});
  return secret;
}

int cmd_secret(const CLI::App& secret, const SecretArgs& args, const std::string& home) {
  const auto* sub = secret.get_subcommands().empty() ? nullptr : secret.get_subcommands().front();
  if (!sub) return kUsage;
  secrets::SecretFiles files(home);
  const std::string action = sub->get_name();
  if (action == "set") return set(files, args);
  if (action == "ls") return list(files, args);
  return remove(files, args);
}

}  // namespace zeppelin::cli
