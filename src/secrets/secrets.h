// Secrets of one data directory: the value of secret NAME, key KEY is the file
// $ZEPPELIN_HOME/secrets/NAME/KEY, 0600 in 0700 directories. Specs refer to it
// as {secret: NAME, key: KEY}; replicas read it when they start.
//
// Every name and key is checked against its grammar (spec::is_dns_label,
// spec::is_secret_key) before a path is built from it, here at the point of
// use, whatever the caller checked before.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace zeppelin::secrets {

struct SecretInfo {
  std::string name;
  std::vector<std::string> keys;  // sorted
};

class SecretFiles {
 public:
  explicit SecretFiles(std::string home);

  // $HOME/secrets/NAME/KEY; kInvalidArgument when NAME or KEY breaks its grammar.
  Result<std::string> path(const std::string& name, const std::string& key) const;

  // Writes the value atomically (a reader sees the old value or the new one).
  Status set(const std::string& name, const std::string& key, const std::string& value);
  // kNotFound (naming the file) when the secret or the key does not exist.
  Result<std::string> get(const std::string& name, const std::string& key) const;
  // Every secret and its keys, sorted by name; never values. Entries whose
  // names break the grammar are not secrets and are left out.
  Result<std::vector<SecretInfo>> list() const;
  // Removes one key, or with no key the whole secret; kNotFound if absent.
  // A secret whose last key goes is removed too.
  Status remove(const std::string& name, const std::optional<std::string>& key);

 private:
  std::string dir_;  // $HOME/secrets
};

}  // namespace zeppelin::secrets
