// Fuzz target: the records the server reads back from the coordination store,
// which anyone with access to the store may have written. The input's first
// byte picks the kind (even: a system's desired state under
// /zeppelin/systems/NAME; odd: an API token under /zeppelin/tokens/NAME), the
// rest is the value. Decoding must never crash, and what decodes must survive
// being written and read again unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/tokens.h"
#include "state/store_state_store.h"

namespace {

using namespace zeppelin;

void check(bool condition) {
  if (!condition) std::abort();
}

void system_record(const std::string& value) {
  const std::string key = "/zeppelin/systems/shop";
  auto record = state::system_from_json("shop", value, key);
  if (!record) {
    check(record.error().message.rfind(key + ":", 0) == 0);  // every error names the key
    return;
  }
  check(record->name == "shop" && !record->spec_file.empty() && record->spec_file[0] == '/');
  for (const auto& [service, replicas] : record->scale) check(replicas >= 0 && replicas <= 10000);
  auto again = state::system_from_json("shop", state::system_to_json(*record), key);
  check(again.ok());
  check(again->spec_file == record->spec_file && again->spec_text == record->spec_text &&
        again->caller_env == record->caller_env && again->images == record->images &&
        again->running == record->running && again->scale == record->scale);
}

void token_record(const std::string& value) {
  const std::string key = std::string(api::kTokensPrefix) + "ci";
  auto record = api::parse_token_record(key, value);
  if (!record) return;
  check(record->info.name == "ci" && record->sha256.size() == 64);
  check(api::parse_role(api::to_string(record->info.role)) == record->info.role);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string value(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    token_record(value);
  } else {
    system_record(value);
  }
  return 0;
}
