#include "cli/token_command.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/autostart.h"
#include "cli/commands.h"
#include "cli/exit.h"
#include "cli/output.h"
#include "client/client.h"

namespace zeppelin::cli {

using nlohmann::json;

namespace {

// An API answer that is an error, as the other commands report it: refusals
// and missing things are failures, other 4xx the caller's mistakes.
int fail_response(const client::Response& r) {
  const bool usage =
      r.status >= 400 && r.status < 500 && r.status != 401 && r.status != 403 && r.status != 404 && r.status != 429;
  return fail(r.error_message(), usage ? kUsage : kFailure);
}

std::string text_or_dash(const json& value) {
  return value.is_string() && !value.get<std::string>().empty() ? value.get<std::string>() : "-";
}

}  // namespace

CLI::App* add_token_command(CLI::App& app, TokenArgs& args) {
  auto* token = app.add_subcommand("token", "Bearer tokens for the API over TCP (--listen): create, ls, revoke");
  token->require_subcommand(1);
  auto* create = token->add_subcommand("create", "Make a token and print it (once: only its hash is kept)");
  create->add_option("name", args.name, "token name (lowercase letters, digits, '-')")->required();
  create->add_option("--role", args.role, "viewer, operator or admin")
      ->required()
      ->check(CLI::IsMember({"viewer", "operator", "admin"}));
  create->add_option("--ttl", args.ttl, "expire after this long (e.g. 12h, 720h for 30 days); default: never");
  auto* ls = token->add_subcommand("ls", "List tokens: names, roles, created, expires (never the secrets)");
  add_output_flag(ls, args.format);
  auto* revoke = token->add_subcommand("revoke", "Revoke a token (effective at its next request)");
  revoke->add_option("name", args.name, "token name")->required();
  add_examples(token, {"zeppelin token create ci --role operator --ttl 720h", "zeppelin token ls"});
  add_examples(create, {"zeppelin token create ci --role operator --ttl 720h", "zeppelin token create dashboard --role viewer"});
  add_examples(ls, {"zeppelin token ls", "zeppelin token ls -o json"});
  add_examples(revoke, {"zeppelin token revoke ci", "zeppelin token ls && zeppelin token revoke dashboard"});
  return token;
}

int cmd_token(const CLI::App& token, const TokenArgs& args, const std::string& home) {
  auto client = connect_or_start(home);
  if (!client) return fail(client.error());
  if (token.got_subcommand("create")) {
    json body = {{"name", args.name}, {"role", args.role}};
    if (!args.ttl.empty()) body["ttl"] = args.ttl;
    auto r = client->call("POST", "/v1/tokens", body);
    if (!r) return fail(r.error());
    if (!r->ok()) return fail_response(*r);
    std::cout << r->body.value("token", "") << "\n";
    return kOk;
  }
  if (token.got_subcommand("revoke")) {
    auto r = client->call("DELETE", "/v1/tokens/" + client::url_encode(args.name));
    if (!r) return fail(r.error());
    if (!r->ok()) return fail_response(*r);
    std::cout << "revoked " << args.name << "\n";
    return kOk;
  }
  auto r = client->call("GET", "/v1/tokens");
  if (!r) return fail(r.error());
  if (!r->ok()) return fail_response(*r);
  if (print_structured(r->body, args.format)) return kOk;
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : r->body) {
    rows.push_back({t.value("name", ""), t.value("role", ""), text_or_dash(t.value("created", json())),
                    text_or_dash(t.value("expires", json()))});
  }
  print_table({"NAME", "ROLE", "CREATED", "EXPIRES"}, rows);
  return kOk;
}

}  // namespace zeppelin::cli
