// The permission checker (ranges, prefixes, overlapping and adjoining grants)
// and the AuthStore's users, roles, tokens and durability.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "common/fs_util.h"
#include "etcd_api/auth.h"
#include "etcd_api/convert.h"
#include "etcd_api/etcd_server.h"
#include "rpc.grpc.pb.h"
#include "store/embedded_store.h"

namespace zeppelin::etcd_api {
namespace {

namespace fs = std::filesystem;

const std::string kFromKey(1, '\0');

// What an etcd client receives for `s`: AuthStore's errors leave by the edge.
grpc::Status wire(const Status& s) { return to_status(s); }

KeyPermission read(std::string key, std::string end = "") { return {true, false, std::move(key), std::move(end)}; }
KeyPermission write(std::string key, std::string end = "") { return {false, true, std::move(key), std::move(end)}; }
KeyPermission readwrite(std::string key, std::string end = "") { return {true, true, std::move(key), std::move(end)}; }

TEST(PermissionCheckerTest, SingleKeyGrantCoversOnlyThatKey) {
  const std::vector<KeyPermission> g = {read("a")};
  EXPECT_TRUE(covered(g, "a", "", Access::kRead));
  EXPECT_FALSE(covered(g, "a", "", Access::kWrite));
  EXPECT_FALSE(covered(g, "ab", "", Access::kRead));
  EXPECT_FALSE(covered(g, "a", "b", Access::kRead));                   // the range [a, b) holds more than "a"
  EXPECT_TRUE(covered(g, "a", std::string("a\0", 2), Access::kRead));  // [a, a\0) is just "a"
}

TEST(PermissionCheckerTest, PrefixGrantCoversKeysAndSubrangesUnderIt) {
  const std::vector<KeyPermission> g = {readwrite("/ns/a/", "/ns/a0")};  // --prefix /ns/a/
  EXPECT_TRUE(covered(g, "/ns/a/x", "", Access::kWrite));
  EXPECT_TRUE(covered(g, "/ns/a/", "/ns/a0", Access::kRead));
  EXPECT_TRUE(covered(g, "/ns/a/b", "/ns/a/c", Access::kRead));
  EXPECT_FALSE(covered(g, "/ns/a", "", Access::kRead));  // the prefix without its slash
  EXPECT_FALSE(covered(g, "/ns/b/x", "", Access::kRead));
  EXPECT_FALSE(covered(g, "/ns/", "/ns0", Access::kRead));      // wider than the grant
  EXPECT_FALSE(covered(g, "/ns/a/", kFromKey, Access::kRead));  // unbounded
}

TEST(PermissionCheckerTest, AdjoiningAndOverlappingGrantsAddUp) {
  const std::vector<KeyPermission> g = {read("c", "e"), read("a", "c"), read("b", "d"), write("x")};
  EXPECT_TRUE(covered(g, "a", "e", Access::kRead));  // a..c then c..e: no gap
  EXPECT_TRUE(covered(g, "b", "d", Access::kRead));
  EXPECT_FALSE(covered(g, "a", "f", Access::kRead));  // e..f is not granted
  EXPECT_FALSE(covered(g, "a", "e", Access::kWrite));
  const std::vector<KeyPermission> gap = {read("a", "b"), read("c", "d")};
  EXPECT_FALSE(covered(gap, "a", "d", Access::kRead));
  EXPECT_TRUE(covered(gap, "c", "", Access::kRead));
}

TEST(PermissionCheckerTest, FromKeyGrantsAndRequests) {
  const std::vector<KeyPermission> g = {write("m", kFromKey)};
  EXPECT_TRUE(covered(g, "m", kFromKey, Access::kWrite));
  EXPECT_TRUE(covered(g, "zzz", "", Access::kWrite));
  EXPECT_FALSE(covered(g, "l", "", Access::kWrite));
  const std::vector<KeyPermission> all = {read(kFromKey, kFromKey)};  // etcdctl's "" --from-key
  EXPECT_TRUE(covered(all, kFromKey, kFromKey, Access::kRead));
  EXPECT_TRUE(covered(all, "anything", "", Access::kRead));
  EXPECT_FALSE(covered({}, "a", "", Access::kRead));
}

TEST(PermissionCheckerTest, CallerErrorsAreEtcds) {
  Caller nobody(false, "", {});
  EXPECT_EQ(wire(nobody.may("a", "", Access::kRead)).error_message(), "etcdserver: user name is empty");
  Caller alice(false, "alice", {read("a")});
  EXPECT_TRUE(alice.may("a", "", Access::kRead).ok());
  const auto denied = alice.may("b", "", Access::kRead);
  EXPECT_EQ(wire(denied).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(wire(denied).error_message(), "etcdserver: permission denied");
  EXPECT_EQ(wire(alice.admin()).error_message(), "etcdserver: permission denied");
  EXPECT_TRUE(Caller::unrestricted().admin().ok());
}

class AuthStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zeppelin-auth-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    reopen();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void reopen() {
    AuthOptions options;
    options.path = (dir_ / "auth.json").string();
    options.hash_iterations = 1000;
    options.token_ttl = std::chrono::seconds(300);
    options.now = [this] { return now_; };
    auth_.reset();
    auto opened = AuthStore::open(options);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    auth_ = std::move(*opened);
  }

  void make_root() {
    ASSERT_TRUE(auth_->user_add("root", "rootpw", false).ok());
    ASSERT_TRUE(auth_->user_grant_role("root", "root").ok());
  }

  std::string login(const std::string& user, const std::string& password) {
    std::string token;
    auto s = auth_->authenticate(user, password, &token);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return token;
  }

  fs::path dir_;
  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  std::unique_ptr<AuthStore> auth_;
};

TEST_F(AuthStoreTest, EnableNeedsRootUserWithRootRole) {
  EXPECT_EQ(wire(auth_->enable()).error_message(), "etcdserver: root user does not exist");
  ASSERT_TRUE(auth_->user_add("root", "pw", false).ok());
  EXPECT_EQ(wire(auth_->enable()).error_message(), "etcdserver: root user does not have root role");
  ASSERT_TRUE(auth_->user_grant_role("root", "root").ok());
  EXPECT_TRUE(auth_->enable().ok());
  EXPECT_TRUE(auth_->enabled());
  EXPECT_EQ(wire(auth_->user_delete("root")).error_message(), "etcdserver: invalid auth management");
}

TEST_F(AuthStoreTest, UserAndRoleErrors) {
  ASSERT_TRUE(auth_->user_add("alice", "pw", false).ok());
  EXPECT_EQ(wire(auth_->user_add("alice", "pw", false)).error_message(), "etcdserver: user name already exists");
  EXPECT_EQ(wire(auth_->user_add("", "pw", false)).error_message(), "etcdserver: user name is empty");
  EXPECT_EQ(wire(auth_->user_grant_role("bob", "r")).error_message(), "etcdserver: user name not found");
  EXPECT_EQ(wire(auth_->user_grant_role("alice", "r")).error_message(), "etcdserver: role name not found");
  ASSERT_TRUE(auth_->role_add("r").ok());
  EXPECT_EQ(wire(auth_->role_add("r")).error_message(), "etcdserver: role name already exists");
  EXPECT_EQ(wire(auth_->user_revoke_role("alice", "r")).error_message(), "etcdserver: role is not granted to the user");
  EXPECT_EQ(wire(auth_->role_revoke_permission("r", "k", "")).error_message(),
            "etcdserver: permission is not granted to the role");
  EXPECT_EQ(wire(auth_->role_get("nope", nullptr)).error_message(), "etcdserver: role name not found");
}

// Callers (the server, `ns`) tell AuthStore's errors apart by code, and the
// edge gives each the gRPC code etcd uses.
TEST_F(AuthStoreTest, ErrorsCarryTypedCodes) {
  auto code = [](const Status& s) { return s ? std::optional<Errc>() : s.error().code; };
  EXPECT_EQ(code(auth_->enable()), Errc::kFailedPrecondition);
  EXPECT_EQ(wire(auth_->enable()).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(auth_->user_add("alice", "pw", false).ok());
  EXPECT_EQ(code(auth_->user_add("alice", "pw", false)), Errc::kAlreadyExists);
  EXPECT_EQ(wire(auth_->user_add("alice", "pw", false)).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(code(auth_->user_add("", "pw", false)), Errc::kInvalidArgument);
  EXPECT_EQ(wire(auth_->user_add("", "pw", false)).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(auth_->user_get("bob", nullptr)), Errc::kNotFound);
  EXPECT_EQ(wire(auth_->user_get("bob", nullptr)).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(code(auth_->role_get("nope", nullptr)), Errc::kNotFound);
  make_root();
  ASSERT_TRUE(auth_->enable().ok());
  std::string token;
  EXPECT_EQ(code(auth_->issue_token("bob", &token)), Errc::kNotFound);
  EXPECT_EQ(code(auth_->authenticate("alice", "wrong", &token)), Errc::kInvalidArgument);
  Caller c = Caller::unrestricted();
  EXPECT_EQ(code(auth_->caller("forged", &c)), Errc::kUnauthenticated);
  EXPECT_EQ(wire(auth_->caller("forged", &c)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code(Caller(false, "alice", {}).may("k", "", Access::kRead)), Errc::kPermissionDenied);
  EXPECT_EQ(code(Caller(false, "", {}).may("k", "", Access::kRead)), Errc::kInvalidArgument);
}

TEST_F(AuthStoreTest, TokensCarryTheUsersPermissions) {
  make_root();
  ASSERT_TRUE(auth_->user_add("alice", "alicepw", false).ok());
  ASSERT_TRUE(auth_->role_add("app").ok());
  ASSERT_TRUE(auth_->role_grant_permission("app", readwrite("/app/", "/app0")).ok());
  ASSERT_TRUE(auth_->user_grant_role("alice", "app").ok());
  std::string token;
  EXPECT_EQ(wire(auth_->authenticate("alice", "alicepw", &token)).error_message(),
            "etcdserver: authentication is not enabled");
  ASSERT_TRUE(auth_->enable().ok());
  EXPECT_EQ(wire(auth_->authenticate("alice", "wrong", &token)).error_message(),
            "etcdserver: authentication failed, invalid user ID or password");
  const std::string alice = login("alice", "alicepw");
  Caller c(false, "", {});
  ASSERT_TRUE(auth_->caller(alice, &c).ok());
  EXPECT_EQ(c.user(), "alice");
  EXPECT_TRUE(c.may("/app/x", "", Access::kWrite).ok());
  EXPECT_FALSE(c.may("/other", "", Access::kRead).ok());
  EXPECT_EQ(wire(auth_->caller("forged", &c)).error_message(), "etcdserver: invalid auth token");
  const std::string root = login("root", "rootpw");
  ASSERT_TRUE(auth_->caller(root, &c).ok());
  EXPECT_TRUE(c.admin().ok());
  EXPECT_TRUE(c.may("/anything", kFromKey, Access::kWrite).ok());
}

TEST_F(AuthStoreTest, TokensExpireWhenIdleAndDieWithPasswordChangeAndDisable) {
  make_root();
  ASSERT_TRUE(auth_->user_add("alice", "pw", false).ok());
  ASSERT_TRUE(auth_->enable().ok());
  Caller c(false, "", {});
  std::string t = login("alice", "pw");
  now_ += std::chrono::seconds(299);
  ASSERT_TRUE(auth_->caller(t, &c).ok());  // used: its idle time starts over
  now_ += std::chrono::seconds(299);
  ASSERT_TRUE(auth_->caller(t, &c).ok());
  now_ += std::chrono::seconds(301);
  EXPECT_EQ(wire(auth_->caller(t, &c)).error_message(), "etcdserver: invalid auth token");

  t = login("alice", "pw");
  ASSERT_TRUE(auth_->user_change_password("alice", "new").ok());
  EXPECT_FALSE(auth_->caller(t, &c).ok());
  t = login("alice", "new");
  ASSERT_TRUE(auth_->user_delete("alice").ok());
  EXPECT_FALSE(auth_->caller(t, &c).ok());
  t = login("root", "rootpw");
  ASSERT_TRUE(auth_->disable().ok());
  ASSERT_TRUE(auth_->enable().ok());
  EXPECT_FALSE(auth_->caller(t, &c).ok());
}

TEST_F(AuthStoreTest, IssuedTokensNeedNoPasswordNeverIdleOutAndEndWhenRevoked) {
  make_root();
  ASSERT_TRUE(auth_->user_add("app", "apppw", false).ok());
  ASSERT_TRUE(auth_->role_add("app").ok());
  ASSERT_TRUE(auth_->role_grant_permission("app", readwrite("/app/", "/app0")).ok());
  ASSERT_TRUE(auth_->user_grant_role("app", "app").ok());
  std::string t;
  EXPECT_EQ(wire(auth_->issue_token("app", &t)).error_message(), "etcdserver: authentication is not enabled");
  ASSERT_TRUE(auth_->enable().ok());
  EXPECT_EQ(wire(auth_->issue_token("nobody", &t)).error_message(), "etcdserver: user name not found");
  ASSERT_TRUE(auth_->issue_token("app", &t).ok());
  std::string other;
  ASSERT_TRUE(auth_->issue_token("app", &other).ok());
  EXPECT_NE(t, other);

  Caller c(false, "", {});
  ASSERT_TRUE(auth_->caller(t, &c).ok());
  EXPECT_EQ(c.user(), "app");
  EXPECT_TRUE(c.may("/app/x", "", Access::kWrite).ok());
  EXPECT_EQ(wire(c.may("/other", "", Access::kRead)).error_message(), "etcdserver: permission denied");
  now_ += std::chrono::hours(24);  // far past the idle TTL
  EXPECT_TRUE(auth_->caller(t, &c).ok());
  ASSERT_TRUE(auth_->user_change_password("app", "new").ok());
  EXPECT_TRUE(auth_->caller(t, &c).ok());
  ASSERT_TRUE(auth_->disable().ok());
  ASSERT_TRUE(auth_->enable().ok());
  EXPECT_TRUE(auth_->caller(t, &c).ok());

  auth_->revoke_token(t);
  EXPECT_EQ(wire(auth_->caller(t, &c)).error_message(), "etcdserver: invalid auth token");
  EXPECT_TRUE(auth_->caller(other, &c).ok());  // only the revoked one ends
  ASSERT_TRUE(auth_->user_delete("app").ok());
  EXPECT_EQ(wire(auth_->caller(other, &c)).error_message(), "etcdserver: invalid auth token");
}

TEST_F(AuthStoreTest, StateSurvivesReopenAndStoresNoClearPassword) {
  make_root();
  ASSERT_TRUE(auth_->role_add("app").ok());
  ASSERT_TRUE(auth_->role_grant_permission("app", read(std::string("k\0\xff", 3), kFromKey)).ok());
  ASSERT_TRUE(auth_->enable().ok());
  reopen();
  EXPECT_TRUE(auth_->enabled());
  std::vector<KeyPermission> perms;
  ASSERT_TRUE(auth_->role_get("app", &perms).ok());
  ASSERT_EQ(perms.size(), 1u);
  EXPECT_EQ(perms[0], read(std::string("k\0\xff", 3), kFromKey));
  login("root", "rootpw");
  auto text = read_file((dir_ / "auth.json").string());
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->find("rootpw"), std::string::npos);
  EXPECT_NE(text->find("pbkdf2-sha256$"), std::string::npos);
}

store::PutRequest put_request(std::string key, std::string value) {
  store::PutRequest put;
  put.key = std::move(key);
  put.value = std::move(value);
  return put;
}

// The auth state lives beside the store's database: a snapshot carries it, so
// a store restored elsewhere is locked down with the same root password.
TEST_F(AuthStoreTest, SnapshotRestoredIntoAFreshDirectoryKeepsAuth) {
  const fs::path store_dir = dir_;  // auth.json sits in the store's directory, as the server keeps it
  auto store = store::EmbeddedStore::open(store_dir.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_TRUE((*store)->put(put_request("k", "v")).ok());
  make_root();
  ASSERT_TRUE(auth_->user_add("replica", "", true).ok());
  std::string kept;
  ASSERT_TRUE(auth_->enable().ok());
  ASSERT_TRUE(auth_->issue_token("replica", &kept, "shop/web/0").ok());
  const fs::path snapshot = dir_.string() + ".snapshot";
  ASSERT_TRUE((*store)->snapshot(snapshot.string()).ok());
  store->reset();

  const fs::path fresh = dir_.string() + "-elsewhere";
  fs::remove_all(fresh);
  auto restored = store::restore_snapshot(snapshot.string(), fresh.string());
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(fs::status(fresh / store::kAuthStateFile).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  AuthOptions options;
  options.path = (fresh / store::kAuthStateFile).string();
  options.hash_iterations = 1000;
  auto auth = AuthStore::open(options);
  ASSERT_TRUE(auth.ok()) << auth.error().message;
  EXPECT_TRUE((*auth)->enabled());
  std::string token;
  EXPECT_TRUE((*auth)->authenticate("root", "rootpw", &token).ok());
  EXPECT_FALSE((*auth)->authenticate("root", "wrong", &token).ok());
  Caller anonymous = Caller::unrestricted();
  ASSERT_TRUE((*auth)->caller("", &anonymous).ok());
  EXPECT_EQ(wire(anonymous.may("k", "", Access::kRead)).error_message(), "etcdserver: user name is empty");
  std::string same;
  ASSERT_TRUE((*auth)->issue_token("replica", &same, "shop/web/0").ok());
  EXPECT_EQ(same, kept);  // an adopted container's token still works

  // The copy in the store's database is gone: only auth.json holds the state.
  auto reopened = store::EmbeddedStore::open(fresh.string());
  ASSERT_TRUE(reopened.ok());
  store::RangeRequest get;
  get.key = "k";
  EXPECT_EQ((*reopened)->range(get)->kvs.at(0).value, "v");
  reopened->reset();
  auto db = read_file(store::database_path(fresh.string()));
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->find("pbkdf2-sha256$"), std::string::npos);
  fs::remove(snapshot);
  fs::remove_all(fresh);
}

TEST_F(AuthStoreTest, SnapshotWithoutAuthStateLeavesTheTargetsOwn) {
  const fs::path source = dir_ / "source";
  auto store = store::EmbeddedStore::open(source.string());  // no auth.json: a store from before, or never locked
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->put(put_request("k", "v")).ok());
  const fs::path snapshot = dir_ / "old.snapshot";
  ASSERT_TRUE((*store)->snapshot(snapshot.string()).ok());
  store->reset();
  make_root();
  ASSERT_TRUE(auth_->enable().ok());  // the target's own auth.json, in dir_
  auto restored = store::restore_snapshot(snapshot.string(), dir_.string());
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  reopen();
  EXPECT_TRUE(auth_->enabled());
  login("root", "rootpw");
}

TEST_F(AuthStoreTest, CorruptStateIsAnErrorNamingTheFile) {
  ASSERT_TRUE(write_file_atomic((dir_ / "auth.json").string(), "{not json").ok());
  AuthOptions options;
  options.path = (dir_ / "auth.json").string();
  auto opened = AuthStore::open(options);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("auth.json"), std::string::npos);
}

}  // namespace
}  // namespace zeppelin::etcd_api

// Through a real gRPC channel: the token travels in metadata "token" (etcd
// clients) or "authorization" (the JSON gateway).
namespace zeppelin::etcd_api {
namespace {

TEST(EtcdAuthServiceTest, TokenInEitherMetadataKeyAndRootOnlyAdministration) {
  const fs::path dir = fs::temp_directory_path() / ("zeppelin-auth-grpc-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto store = store::EmbeddedStore::open(dir.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  EtcdServerOptions options;
  options.listen = "127.0.0.1:0";
  options.snapshot_dir = dir.string();
  options.auth_file = (dir / "auth.json").string();
  auto server = EtcdServer::start(**store, options);
  ASSERT_TRUE(server.ok()) << server.error().message;
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  auto auth = etcdserverpb::Auth::NewStub(channel);
  auto kv = etcdserverpb::KV::NewStub(channel);

  auto call = [](auto method, const auto& request, auto* response, const std::string& key = "",
                 const std::string& token = "") {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata(key, token);
    return method(&ctx, request, response);
  };
  etcdserverpb::AuthUserAddRequest add;
  add.set_name("root");
  add.set_password("pw");
  etcdserverpb::AuthUserAddResponse added;
  ASSERT_TRUE(call([&](auto* c, auto& r, auto* o) { return auth->UserAdd(c, r, o); }, add, &added).ok());
  add.set_name("bob");
  ASSERT_TRUE(call([&](auto* c, auto& r, auto* o) { return auth->UserAdd(c, r, o); }, add, &added).ok());
  etcdserverpb::AuthUserGrantRoleRequest grant;
  grant.set_user("root");
  grant.set_role("root");
  etcdserverpb::AuthUserGrantRoleResponse granted;
  ASSERT_TRUE(call([&](auto* c, auto& r, auto* o) { return auth->UserGrantRole(c, r, o); }, grant, &granted).ok());
  etcdserverpb::AuthEnableResponse enabled;
  ASSERT_TRUE(call([&](auto* c, auto& r, auto* o) { return auth->AuthEnable(c, r, o); },
                   etcdserverpb::AuthEnableRequest(), &enabled)
                  .ok());

  auto login = [&](const std::string& name) {
    etcdserverpb::AuthenticateRequest req;
    req.set_name(name);
    req.set_password("pw");
    etcdserverpb::AuthenticateResponse resp;
    EXPECT_TRUE(call([&](auto* c, auto& r, auto* o) { return auth->Authenticate(c, r, o); }, req, &resp).ok());
    return resp.token();
  };
  const std::string root = login("root"), bob = login("bob");
  etcdserverpb::PutRequest put;
  put.set_key("k");
  put.set_value("v");
  etcdserverpb::PutResponse put_resp;
  auto do_put = [&](auto* c, auto& r, auto* o) { return kv->Put(c, r, o); };
  EXPECT_EQ(call(do_put, put, &put_resp).error_message(), "etcdserver: user name is empty");
  EXPECT_TRUE(call(do_put, put, &put_resp, "token", root).ok());
  EXPECT_TRUE(call(do_put, put, &put_resp, "authorization", root).ok());
  EXPECT_EQ(call(do_put, put, &put_resp, "authorization", bob).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(call(do_put, put, &put_resp, "token", "forged").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  etcdserverpb::AuthUserListResponse users;
  auto list = [&](auto* c, auto& r, auto* o) { return auth->UserList(c, r, o); };
  EXPECT_EQ(call(list, etcdserverpb::AuthUserListRequest(), &users, "token", bob).error_message(),
            "etcdserver: permission denied");
  ASSERT_TRUE(call(list, etcdserverpb::AuthUserListRequest(), &users, "token", root).ok());
  EXPECT_EQ(users.users_size(), 2);
  // Auth state is not in the key space.
  etcdserverpb::RangeRequest all;
  all.set_key(std::string(1, '\0'));
  all.set_range_end(std::string(1, '\0'));
  etcdserverpb::RangeResponse everything;
  ASSERT_TRUE(
      call([&](auto* c, auto& r, auto* o) { return kv->Range(c, r, o); }, all, &everything, "token", root).ok());
  EXPECT_EQ(everything.kvs_size(), 1);
  (*server)->shutdown();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zeppelin::etcd_api
