#include "cli/ns_command.h"


#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/autostart.h"
#include "cli/coord_commands.h"
#include "cli/commands.h"
#include "cli/exit.h"
#include "cli/output.h"
#include "common/fs_util.h"
#include "etcd_client/connection.h"
#include "rpc.grpc.pb.h"
#include "spec/parser.h"
#include "spec/replica_contract.h"
#include "store/store.h"

namespace zeppelin::cli {

namespace {

namespace pb = etcdserverpb;
using json = nlohmann::json;

constexpr const char* kRegistryPrefix = "/zeppelin/namespaces/";
constexpr const char* kDefaultPasswordEnv = spec::replica_env::kEtcdPassword;
constexpr auto kCallTimeout = std::chrono::seconds(10);

std::string ns_prefix(const std::string& name) { return "/ns/" + name + "/"; }
std::string registry_key(const std::string& name) { return kRegistryPrefix + name; }

// One etcd connection to the first of the store's endpoints (find_store),
// authenticated as --user when given, else as find_store() says.
class Etcd {
 public:
  static Result<Etcd> connect(const NsArgs& args) {
    auto target = find_store(args.endpoints, zeppelin_home());
    if (!target) return target.error();
    Etcd e;
    e.endpoint_ = target->endpoints.front();
    for (const char* scheme : {"http://", "https://"}) {
      if (e.endpoint_.starts_with(scheme)) e.endpoint_ = e.endpoint_.substr(std::string(scheme).size());
    }
    // The channel as every store client makes it (TLS for https://, with the target's CA).
    etcd_client::ConnectionOptions options;
    options.endpoints = {target->endpoints.front()};
    options.ca_file = target->ca_file;
    auto connection = etcd_client::Connection::open(options);
    if (!connection) return connection.error();
    auto channel = (*connection)->member(0).channel;
    e.kv_ = pb::KV::NewStub(channel);
    e.auth_ = pb::Auth::NewStub(channel);
    std::string user = target->user;
    std::string password = target->password;
    if (!args.user.empty()) {
      const std::string var = args.user_password_env.empty() ? kDefaultPasswordEnv : args.user_password_env;
      const char* given = std::getenv(var.c_str());
      if (!given) {
        return make_error(Errc::kInvalidArgument, "--user " + args.user + ": set its password in $" + var);
      }
      user = args.user;
      password = given;
    }
    if (!user.empty()) {
      pb::AuthenticateRequest req;
      req.set_name(user);
      req.set_password(password);
      pb::AuthenticateResponse resp;
      auto ctx = e.context();
      auto s = e.auth_->Authenticate(ctx.get(), req, &resp);
      if (!s.ok()) return e.error(s);
      e.token_ = resp.token();
    } else {
      e.token_ = target->token;  // a replica's, from the server
    }
    return e;
  }

  std::unique_ptr<grpc::ClientContext> context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    if (!token_.empty()) ctx->AddMetadata("token", token_);
    return ctx;
  }

  Error error(const grpc::Status& s) const {
    std::string message = "etcd at " + endpoint_ + ": " + s.error_message();
    if (etcd_client::code_of(s) == Errc::kUnauthenticated) {
      message += std::string(" (auth is enabled: pass --user NAME, its password in $") + kDefaultPasswordEnv + ")";
    }
    return make_error(s.error_code() == grpc::StatusCode::UNAVAILABLE ? Errc::kUnavailable : Errc::kInternal, message);
  }

  pb::KV::Stub& kv() { return *kv_; }
  pb::Auth::Stub& auth() { return *auth_; }

 private:
  std::string endpoint_;
  std::string token_;
  std::unique_ptr<pb::KV::Stub> kv_;
  std::unique_ptr<pb::Auth::Stub> auth_;
};

std::string now_rfc3339() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Adds role ROLE with one prefix permission; a role left by an earlier attempt is reused.
grpc::Status add_prefix_role(Etcd& etcd, const std::string& role, const std::string& prefix,
                             authpb::Permission::Type type) {
  pb::AuthRoleAddRequest add;
  add.set_name(role);
  pb::AuthRoleAddResponse added;
  auto s = etcd.auth().RoleAdd(etcd.context().get(), add, &added);
  if (!s.ok() && etcd_client::code_of(s) != Errc::kAlreadyExists) return s;
  pb::AuthRoleGrantPermissionRequest grant;
  grant.set_name(role);
  grant.mutable_perm()->set_permtype(type);
  grant.mutable_perm()->set_key(prefix);
  grant.mutable_perm()->set_range_end(store::prefix_end(prefix));
  pb::AuthRoleGrantPermissionResponse granted;
  return etcd.auth().RoleGrantPermission(etcd.context().get(), grant, &granted);
}

int create(Etcd& etcd, const NsArgs& args) {
  std::string user_password;
  if (!args.password_env.empty()) {
    const char* p = std::getenv(args.password_env.c_str());
    if (!p || !*p) return fail("--password-env " + args.password_env + ": the variable is not set or empty", kUsage);
    user_password = p;
  }
  // The registry entry is claimed first, atomically: a second create fails here.
  const json entry = {{"name", args.name},
                      {"prefix", ns_prefix(args.name)},
                      {"created", now_rfc3339()},
                      {"user", user_password.empty() ? "" : args.name}};
  pb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(registry_key(args.name));
  cmp->set_target(pb::Compare::CREATE);
  cmp->set_result(pb::Compare::EQUAL);
  cmp->set_create_revision(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(registry_key(args.name));
  put->set_value(entry.dump());
  pb::TxnResponse claimed;
  if (auto s = etcd.kv().Txn(etcd.context().get(), txn, &claimed); !s.ok()) return fail(etcd.error(s).message);
  if (!claimed.succeeded()) return fail("namespace " + args.name + " already exists");

  const std::string prefix = ns_prefix(args.name);
  if (auto s = add_prefix_role(etcd, args.name + "-readwrite", prefix, authpb::Permission::READWRITE); !s.ok()) {
    return fail(etcd.error(s).message);
  }
  if (auto s = add_prefix_role(etcd, args.name + "-read", prefix, authpb::Permission::READ); !s.ok()) {
    return fail(etcd.error(s).message);
  }
  if (!user_password.empty()) {
    pb::AuthUserAddRequest add;
    add.set_name(args.name);
    add.set_password(user_password);
    pb::AuthUserAddResponse added;
    if (auto s = etcd.auth().UserAdd(etcd.context().get(), add, &added); !s.ok()) {
      return fail(etcd.error(s).message);
    }
    pb::AuthUserGrantRoleRequest grant;
    grant.set_user(args.name);
    grant.set_role(args.name + "-readwrite");
    pb::AuthUserGrantRoleResponse granted;
    if (auto s = etcd.auth().UserGrantRole(etcd.context().get(), grant, &granted); !s.ok()) {
      return fail(etcd.error(s).message);
    }
  }
  std::cout << "namespace " << args.name << " created: prefix " << prefix << ", roles " << args.name
            << "-readwrite and " << args.name << "-read" << (user_password.empty() ? "" : ", user " + args.name)
            << "\n";
  return kOk;
}

int list(Etcd& etcd, const NsArgs& args) {
  pb::RangeRequest req;
  req.set_key(kRegistryPrefix);
  req.set_range_end(store::prefix_end(kRegistryPrefix));
  pb::RangeResponse resp;
  if (auto s = etcd.kv().Range(etcd.context().get(), req, &resp); !s.ok()) return fail(etcd.error(s).message);
  json all = json::array();
  for (const auto& kv : resp.kvs()) {
    json entry = json::parse(kv.value(), nullptr, false);
    if (entry.is_discarded() || !entry.is_object()) {
      return fail("registry entry " + kv.key() + " is not a JSON object");
    }
    all.push_back(entry);
  }
  if (print_structured(all, args.format)) return kOk;
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : all) {
    rows.push_back({e.value("name", ""), e.value("prefix", ""), e.value("created", ""),
                    e.value("user", "").empty() ? "-" : e.value("user", "")});
  }
  print_table({"NAME", "PREFIX", "CREATED", "USER"}, rows);
  return kOk;
}

int remove(Etcd& etcd, const NsArgs& args) {
  pb::RangeRequest get;
  get.set_key(registry_key(args.name));
  pb::RangeResponse got;
  if (auto s = etcd.kv().Range(etcd.context().get(), get, &got); !s.ok()) return fail(etcd.error(s).message);
  if (got.kvs_size() == 0) return fail("namespace " + args.name + " not found");
  const std::string prefix = ns_prefix(args.name);
  if (!args.force) {
    pb::RangeRequest count;
    count.set_key(prefix);
    count.set_range_end(store::prefix_end(prefix));
    count.set_count_only(true);
    pb::RangeResponse counted;
    if (auto s = etcd.kv().Range(etcd.context().get(), count, &counted); !s.ok()) {
      return fail(etcd.error(s).message);
    }
    if (counted.count() > 0) {
      return fail("namespace " + args.name + " still holds " + std::to_string(counted.count()) + " key(s) under " +
                  prefix + "; pass --force to delete them too");
    }
  }
  pb::DeleteRangeRequest keys;
  keys.set_key(prefix);
  keys.set_range_end(store::prefix_end(prefix));
  pb::DeleteRangeResponse deleted;
  if (auto s = etcd.kv().DeleteRange(etcd.context().get(), keys, &deleted); !s.ok()) {
    return fail(etcd.error(s).message);
  }
  const json entry = json::parse(got.kvs(0).value(), nullptr, false);
  if (entry.is_object() && !entry.value("user", "").empty()) {
    pb::AuthUserDeleteRequest del;
    del.set_name(entry.value("user", ""));
    pb::AuthUserDeleteResponse resp;
    auto s = etcd.auth().UserDelete(etcd.context().get(), del, &resp);
    if (!s.ok() && etcd_client::code_of(s) != Errc::kNotFound) return fail(etcd.error(s).message);
  }
  for (const std::string& role : {args.name + "-readwrite", args.name + "-read"}) {
    pb::AuthRoleDeleteRequest del;
    del.set_role(role);
    pb::AuthRoleDeleteResponse resp;
    auto s = etcd.auth().RoleDelete(etcd.context().get(), del, &resp);
    if (!s.ok() && etcd_client::code_of(s) != Errc::kNotFound) return fail(etcd.error(s).message);
  }
  pb::DeleteRangeRequest reg;
  reg.set_key(registry_key(args.name));
  if (auto s = etcd.kv().DeleteRange(etcd.context().get(), reg, &deleted); !s.ok()) {
    return fail(etcd.error(s).message);
  }
  std::cout << "namespace " << args.name << " removed\n";
  return kOk;
}

void add_connection_flags(CLI::App* cmd, NsArgs& args) {
  cmd->add_option("--endpoints", args.endpoints,
                  std::string("etcd endpoints URL[,URL...] (default $") + spec::replica_env::kEtcdEndpoints +
                      ", else the local server's)");
  cmd->add_option("--user", args.user, "authenticate as this user (when auth is enabled)");
  cmd->add_option("--user-password-env", args.user_password_env,
                  std::string("variable holding --user's password (default ") + kDefaultPasswordEnv + ")");
}

}  // namespace

CLI::App* add_ns_command(CLI::App& app, NsArgs& args) {
  auto* ns = app.add_subcommand("ns", "Namespaces: a key prefix /ns/NAME/ with its own roles (and user)");
  ns->require_subcommand(1);
  auto* create = ns->add_subcommand("create", "Create namespace NAME: its roles, and a user NAME with --password-env");
  create->add_option("name", args.name, "namespace name (a DNS label)")->required();
  create->add_option("--password-env", args.password_env,
                     "create user NAME (role NAME-readwrite) with the password in this variable");
  add_connection_flags(create, args);
  auto* ls = ns->add_subcommand("ls", "List namespaces");
  add_output_flag(ls, args.format);
  add_connection_flags(ls, args);
  auto* rm = ns->add_subcommand("rm", "Remove namespace NAME, its roles and user");
  rm->add_option("name", args.name, "namespace name")->required();
  rm->add_flag("--force", args.force, "also delete its keys (else refused while it holds any)");
  add_connection_flags(rm, args);
  add_examples(ns, {"APP_PASSWORD=... zeppelin ns create orders --password-env APP_PASSWORD", "zeppelin ns ls -o json"});
  add_examples(create, {"zeppelin ns create orders", "APP_PASSWORD=... zeppelin ns create orders --password-env APP_PASSWORD"});
  add_examples(ls, {"zeppelin ns ls", "zeppelin ns ls -o yaml"});
  add_examples(rm, {"zeppelin ns rm orders", "zeppelin ns rm orders --force      # and its keys"});
  return ns;
}

int cmd_ns(const CLI::App& ns, const NsArgs& args) {
  const auto* sub = ns.get_subcommands().empty() ? nullptr : ns.get_subcommands().front();
  if (!sub) return kUsage;
  const std::string action = sub->get_name();
  if (action != "ls" && !spec::is_dns_label(args.name)) {
    return fail("invalid namespace name \"" + args.name +
                    "\": use lowercase letters, digits and '-', starting and ending with a letter or digit "
                    "(at most 63 characters)",
                kUsage);
  }
  auto etcd = Etcd::connect(args);
  if (!etcd) return fail(etcd.error().message, etcd.error().code == Errc::kInvalidArgument ? kUsage : kFailure);
  if (action == "create") return create(*etcd, args);
  if (action == "ls") return list(*etcd, args);
  return remove(*etcd, args);
}

}  // namespace zeppelin::cli
