// Parses and validates a system spec. Every problem found is reported with
// its place in the file, as "FILE:LINE:COL: message".
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "spec/accounts.h"
#include "spec/model.h"

namespace zeppelin::spec {

struct Diagnostic {
  Location location;
  std::string message;
};

// How large a system may be. A server has one set (`zeppelin server
// --max-spec-bytes`, `--max-services-per-system`, `--max-replicas-per-system`)
// and applies it to every spec it takes in, from the API or read back from the
// store; `zeppelin validate` applies the defaults. docs/spec.md#limits.
struct Limits {
  std::size_t max_spec_bytes = 4 << 20;
  int max_services = 1000;
  int max_replicas_per_system = 10000;
  // The settable ranges: a spec travels in an API request body of at most
  // 8 MiB, and a service has at most 10,000 replicas.
  static constexpr std::size_t kMaxSpecBytesCeiling = 8 << 20;
  static constexpr int kMaxServicesCeiling = 100000;
  static constexpr int kMaxReplicasPerSystemCeiling = 1000000;
  // What `zeppelin run` checks before sending a spec: only what no server
  // accepts, since the server's own limits may be higher than the defaults.
  static Limits ceilings() { return {kMaxSpecBytesCeiling, kMaxServicesCeiling, kMaxReplicasPerSystemCeiling}; }
};

// Formats diagnostics one per line as "file:line:col: message".
std::string format_diagnostics(const std::string& file, const std::vector<Diagnostic>& diagnostics);

// Parses `text` as the contents of `file` (used for messages and to resolve
// relative paths against base_dir). On failure the Error's message holds every
// diagnostic, one per line. A spec over `limits` is refused: kTooLarge for
// its size, kInvalidArgument (located) for its services or replicas.
// `user:` and `group:` are resolved against the host's accounts; the second
// form takes others (tests).
Result<System> parse_spec(const std::string& text, const std::string& file, const std::string& base_dir,
                          const Limits& limits = {});
Result<System> parse_spec(const std::string& text, const std::string& file, const std::string& base_dir,
                          const Limits& limits, const Accounts& accounts);

// Reads and parses a file; relative paths resolve against its directory.
Result<System> load_spec_file(const std::string& path, const Limits& limits = {});

// True for a DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
// System, service, volume and secret names are labels; each is also a file name
// under $ZEPPELIN_HOME, so none can be empty, start with a dot or hold a '/'.
bool is_dns_label(const std::string& name);

// True for a secret key: letters, digits, '-', '_' and '.', at most 253
// characters, not starting with '.' (so never "." or ".." or a hidden file).
bool is_secret_key(const std::string& key);
inline constexpr const char* kSecretKeyGrammar =
    "letters, digits, '-', '_' and '.', at most 253 characters, not starting with '.'";
inline constexpr const char* kDnsLabelGrammar =
    "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

// What is wrong with an image reference NAME[:TAG][@DIGEST], if anything.
std::optional<std::string> image_reference_problem(const std::string& ref);

}  // namespace zeppelin::spec
