// The etcd API through a real gRPC channel to an EtcdServer over an
// EmbeddedStore: the Lock and Election services (which etcdctl does not use,
// so the differential e2e test does not reach them), watch streams, errors,
// and the HTTP/2 front under many calls, odd calls and broken connections.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "etcd_api/etcd_server.h"
#include "rpc.grpc.pb.h"
#include "store/embedded_store.h"
#include "v3election.grpc.pb.h"
#include "v3lock.grpc.pb.h"

namespace zeppelin::etcd_api {
namespace {

namespace fs = std::filesystem;

class EtcdApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zeppelin-etcd-api-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto store = store::EmbeddedStore::open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    EtcdServerOptions options;
    options.listen = "127.0.0.1:0";
    options.snapshot_dir = dir_.string();
    options.cluster_id = 11;
    options.member_id = 22;
    auto server = EtcdServer::start(*store_, options);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    kv_ = etcdserverpb::KV::NewStub(channel_);
    lease_ = etcdserverpb::Lease::NewStub(channel_);
    watch_ = etcdserverpb::Watch::NewStub(channel_);
    lock_ = v3lockpb::Lock::NewStub(channel_);
    election_ = v3electionpb::Election::NewStub(channel_);
  }

  void TearDown() override {
    server_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  int64_t grant(int64_t ttl) {
    grpc::ClientContext ctx;
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(ttl);
    etcdserverpb::LeaseGrantResponse resp;
    EXPECT_TRUE(lease_->LeaseGrant(&ctx, req, &resp).ok());
    return resp.id();
  }

  grpc::Status put(const std::string& key, const std::string& value, etcdserverpb::PutResponse* resp = nullptr) {
    grpc::ClientContext ctx;
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    etcdserverpb::PutResponse local;
    return kv_->Put(&ctx, req, resp ? resp : &local);
  }

  std::string get(const std::string& key) {
    grpc::ClientContext ctx;
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(kv_->Range(&ctx, req, &resp).ok());
    return resp.kvs_size() ? resp.kvs(0).value() : "";
  }

  fs::path dir_;
  std::unique_ptr<store::EmbeddedStore> store_;
  std::unique_ptr<EtcdServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
  std::unique_ptr<v3lockpb::Lock::Stub> lock_;
  std::unique_ptr<v3electionpb::Election::Stub> election_;
};

TEST_F(EtcdApiTest, HeadersCarryRevisionAndIds) {
  etcdserverpb::PutResponse resp;
  ASSERT_TRUE(put("a", "1", &resp).ok());
  EXPECT_EQ(resp.header().revision(), 2);
  EXPECT_EQ(resp.header().cluster_id(), 11u);
  EXPECT_EQ(resp.header().member_id(), 22u);
  EXPECT_GT(resp.header().raft_term(), 0u);
}

// Regression: gRPC's default SO_REUSEPORT let a second server share the port
// and take part of the connections.
TEST_F(EtcdApiTest, ASecondServerCannotListenOnTheSamePort) {
  EtcdServerOptions options;
  options.listen = server_->address();
  options.snapshot_dir = dir_.string();
  auto second = EtcdServer::start(*store_, options);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find(server_->address()), std::string::npos) << second.error().message;
}

TEST_F(EtcdApiTest, ErrorsUseEtcdCodesAndMessages) {
  ASSERT_TRUE(put("a", "1").ok());
  ASSERT_TRUE(put("a", "2").ok());
  {
    grpc::ClientContext ctx;
    etcdserverpb::CompactionRequest req;
    req.set_revision(3);
    etcdserverpb::CompactionResponse resp;
    ASSERT_TRUE(kv_->Compact(&ctx, req, &resp).ok());
  }
  grpc::ClientContext ctx;
  etcdserverpb::RangeRequest req;
  req.set_key("a");
  req.set_revision(2);
  etcdserverpb::RangeResponse resp;
  auto s = kv_->Range(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(s.error_message(), "etcdserver: mvcc: required revision has been compacted");

  grpc::ClientContext revoke_ctx;
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(424242);
  etcdserverpb::LeaseRevokeResponse revoked;
  auto r = lease_->LeaseRevoke(&revoke_ctx, revoke, &revoked);
  EXPECT_EQ(r.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(r.error_message(), "etcdserver: requested lease not found");

  auto big = put("big", std::string(1536 * 1024 + 1, 'x'));
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(big.error_message(), "etcdserver: request is too large");
  auto huge = put("huge", std::string(3 * 1024 * 1024, 'x'));
  EXPECT_EQ(huge.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(EtcdApiTest, WatchStreamCreatesReplaysAndCancels) {
  ASSERT_TRUE(put("w/1", "a").ok());
  grpc::ClientContext ctx;
  auto stream = watch_->Watch(&ctx);
  etcdserverpb::WatchRequest create;
  create.mutable_create_request()->set_key("w/");
  create.mutable_create_request()->set_range_end("w0");
  create.mutable_create_request()->set_start_revision(1);
  ASSERT_TRUE(stream->Write(create));
  etcdserverpb::WatchResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_TRUE(resp.created());
  const int64_t id = resp.watch_id();
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).kv().key(), "w/1");
  ASSERT_TRUE(put("w/2", "b").ok());
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).kv().key(), "w/2");
  EXPECT_EQ(resp.header().revision(), 3);

  etcdserverpb::WatchRequest progress;
  progress.mutable_progress_request();
  ASSERT_TRUE(stream->Write(progress));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.watch_id(), -1);
  EXPECT_EQ(resp.header().revision(), 3);
  EXPECT_EQ(resp.events_size(), 0);

  etcdserverpb::WatchRequest cancel;
  cancel.mutable_cancel_request()->set_watch_id(id);
  ASSERT_TRUE(stream->Write(cancel));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_TRUE(resp.canceled());
  EXPECT_EQ(resp.watch_id(), id);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// The watchers of one stream share encodings of an update where they receive
// the same one; each must still get its own watch_id, and only its events.
TEST_F(EtcdApiTest, WatchersOfOneStreamGetTheirOwnIdsAndEvents) {
  grpc::ClientContext ctx;
  auto stream = watch_->Watch(&ctx);
  auto create = [&](bool prev_kv, bool no_put) {
    etcdserverpb::WatchRequest req;
    req.mutable_create_request()->set_key("s/k");
    req.mutable_create_request()->set_prev_kv(prev_kv);
    if (no_put) req.mutable_create_request()->add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
    EXPECT_TRUE(stream->Write(req));
    etcdserverpb::WatchResponse resp;
    EXPECT_TRUE(stream->Read(&resp));
    EXPECT_TRUE(resp.created());
    return resp.watch_id();
  };
  const int64_t plain = create(false, false);
  const int64_t with_prev = create(true, false);
  const int64_t plain_too = create(false, false);
  const int64_t deletes = create(false, true);
  ASSERT_TRUE(put("s/k", "v1").ok());
  ASSERT_TRUE(put("s/k", "v2").ok());
  {
    grpc::ClientContext dctx;
    etcdserverpb::DeleteRangeRequest req;
    req.set_key("s/k");
    etcdserverpb::DeleteRangeResponse resp;
    ASSERT_TRUE(kv_->DeleteRange(&dctx, req, &resp).ok());
  }
  std::map<int64_t, std::vector<etcdserverpb::WatchResponse>> got;
  for (int i = 0; i < 3 + 3 + 3 + 1; ++i) {
    etcdserverpb::WatchResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    ASSERT_EQ(resp.events_size(), 1);
    got[resp.watch_id()].push_back(resp);
  }
  ASSERT_EQ(got.size(), 4u);
  for (int64_t id : {plain, with_prev, plain_too}) {
    const auto& r = got[id];
    ASSERT_EQ(r.size(), 3u) << "watch " << id;
    EXPECT_EQ(r[0].events(0).kv().value(), "v1");
    EXPECT_EQ(r[1].events(0).kv().value(), "v2");
    EXPECT_EQ(r[2].events(0).type(), mvccpb::Event::DELETE);
    EXPECT_EQ(r[1].header().revision(), r[1].events(0).kv().mod_revision());
    EXPECT_EQ(r[1].events(0).has_prev_kv(), id == with_prev);
    EXPECT_EQ(r[2].events(0).has_prev_kv(), id == with_prev);
  }
  EXPECT_EQ(got[with_prev][1].events(0).prev_kv().value(), "v1");
  EXPECT_EQ(got[with_prev][2].events(0).prev_kv().value(), "v2");
  ASSERT_EQ(got[deletes].size(), 1u);
  EXPECT_EQ(got[deletes][0].events(0).type(), mvccpb::Event::DELETE);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// Contenders increment a counter with a read-modify-write that is only
// correct under mutual exclusion.
TEST_F(EtcdApiTest, LockGivesMutualExclusionUnderContention) {
  constexpr int kWorkers = 6;
  constexpr int kRounds = 10;
  ASSERT_TRUE(put("counter", "0").ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      const int64_t lease = grant(60);
      for (int i = 0; i < kRounds; ++i) {
        grpc::ClientContext ctx;
        v3lockpb::LockRequest req;
        req.set_name("counter-lock");
        req.set_lease(lease);
        v3lockpb::LockResponse locked;
        if (!lock_->Lock(&ctx, req, &locked).ok()) {
          ++failures;
          return;
        }
        const int value = std::stoi(get("counter"));
        std::this_thread::yield();
        if (!put("counter", std::to_string(value + 1)).ok()) ++failures;
        grpc::ClientContext unlock_ctx;
        v3lockpb::UnlockRequest unlock;
        unlock.set_key(locked.key());
        v3lockpb::UnlockResponse unlocked;
        if (!lock_->Unlock(&unlock_ctx, unlock, &unlocked).ok()) ++failures;
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(get("counter"), std::to_string(kWorkers * kRounds));
}

TEST_F(EtcdApiTest, RevokingTheHoldersLeaseReleasesTheLock) {
  const int64_t first = grant(60);
  const int64_t second = grant(60);
  grpc::ClientContext ctx;
  v3lockpb::LockRequest req;
  req.set_name("l");
  req.set_lease(first);
  v3lockpb::LockResponse held;
  ASSERT_TRUE(lock_->Lock(&ctx, req, &held).ok());

  std::atomic<bool> acquired{false};
  std::thread waiter([&] {
    grpc::ClientContext c;
    v3lockpb::LockRequest r;
    r.set_name("l");
    r.set_lease(second);
    v3lockpb::LockResponse resp;
    acquired = lock_->Lock(&c, r, &resp).ok();
  });
  grpc::ClientContext revoke_ctx;
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(first);
  etcdserverpb::LeaseRevokeResponse revoked;
  ASSERT_TRUE(lease_->LeaseRevoke(&revoke_ctx, revoke, &revoked).ok());
  waiter.join();
  EXPECT_TRUE(acquired.load());
}

TEST_F(EtcdApiTest, ElectionCampaignProclaimObserveResign) {
  const int64_t alice = grant(60);
  const int64_t bob = grant(60);
  v3electionpb::CampaignResponse alice_won;
  {
    grpc::ClientContext ctx;
    v3electionpb::CampaignRequest req;
    req.set_name("e");
    req.set_lease(alice);
    req.set_value("alice");
    ASSERT_TRUE(election_->Campaign(&ctx, req, &alice_won).ok());
  }
  EXPECT_EQ(alice_won.leader().name(), "e");
  EXPECT_EQ(alice_won.leader().lease(), alice);

  grpc::ClientContext observe_ctx;
  v3electionpb::LeaderRequest observe_req;
  observe_req.set_name("e");
  auto observer = election_->Observe(&observe_ctx, observe_req);
  v3electionpb::LeaderResponse observed;
  ASSERT_TRUE(observer->Read(&observed));
  EXPECT_EQ(observed.kv().value(), "alice");

  v3electionpb::CampaignResponse bob_won;
  std::thread bob_campaign([&] {
    grpc::ClientContext ctx;
    v3electionpb::CampaignRequest req;
    req.set_name("e");
    req.set_lease(bob);
    req.set_value("bob");
    EXPECT_TRUE(election_->Campaign(&ctx, req, &bob_won).ok());
  });

  {
    grpc::ClientContext ctx;
    v3electionpb::ProclaimRequest req;
    *req.mutable_leader() = alice_won.leader();
    req.set_value("alice, again");
    v3electionpb::ProclaimResponse resp;
    ASSERT_TRUE(election_->Proclaim(&ctx, req, &resp).ok());
  }
  ASSERT_TRUE(observer->Read(&observed));
  EXPECT_EQ(observed.kv().value(), "alice, again");
  {
    grpc::ClientContext ctx;
    v3electionpb::LeaderRequest req;
    req.set_name("e");
    v3electionpb::LeaderResponse resp;
    ASSERT_TRUE(election_->Leader(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.kv().value(), "alice, again");
  }
  {
    grpc::ClientContext ctx;
    v3electionpb::ResignRequest req;
    *req.mutable_leader() = alice_won.leader();
    v3electionpb::ResignResponse resp;
    ASSERT_TRUE(election_->Resign(&ctx, req, &resp).ok());
  }
  bob_campaign.join();
  EXPECT_EQ(bob_won.leader().lease(), bob);
  ASSERT_TRUE(observer->Read(&observed));
  EXPECT_EQ(observed.kv().value(), "bob");

  // Alice no longer leads: her proclamations are refused.
  grpc::ClientContext ctx;
  v3electionpb::ProclaimRequest req;
  *req.mutable_leader() = alice_won.leader();
  req.set_value("usurper");
  v3electionpb::ProclaimResponse resp;
  auto s = election_->Proclaim(&ctx, req, &resp);
  EXPECT_EQ(s.error_message(), "election: not leader");
  observe_ctx.TryCancel();
}

// ---- The HTTP/2 front: KV calls answered in place, the rest relayed.

TEST_F(EtcdApiTest, ConcurrentKvCallsOnOneConnectionEachGetTheirOwnAnswer) {
  // 200 puts in flight at once on one connection: each answer must reach its own call.
  grpc::CompletionQueue cq;
  constexpr int kCalls = 200;
  struct Call {
    grpc::ClientContext ctx;
    etcdserverpb::PutRequest req;
    etcdserverpb::PutResponse resp;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::PutResponse>> reader;
  };
  std::vector<Call> calls(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    calls[i].req.set_key("c/" + std::to_string(i));
    calls[i].req.set_value(std::to_string(i));
    calls[i].req.set_prev_kv(true);
    calls[i].reader = kv_->AsyncPut(&calls[i].ctx, calls[i].req, &cq);
    calls[i].reader->Finish(&calls[i].resp, &calls[i].status, &calls[i]);
  }
  std::set<int64_t> revisions;
  for (int i = 0; i < kCalls; ++i) {
    void* tag;
    bool ok;
    ASSERT_TRUE(cq.Next(&tag, &ok));
    auto* call = static_cast<Call*>(tag);
    ASSERT_TRUE(call->status.ok()) << call->status.error_message();
    revisions.insert(call->resp.header().revision());
  }
  EXPECT_EQ(revisions.size(), static_cast<size_t>(kCalls));  // one revision each
  EXPECT_EQ(*revisions.rbegin(), kCalls + 1);
  for (int i : {0, 99, 199}) EXPECT_EQ(get("c/" + std::to_string(i)), std::to_string(i));
}

TEST_F(EtcdApiTest, KvCallsTheFrontCannotReadAreLeftToGrpc) {
  // A compressed request is relayed, and the gRPC server decompresses it.
  {
    grpc::ClientContext ctx;
    ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    etcdserverpb::PutRequest req;
    req.set_key("gz");
    req.set_value(std::string(4096, 'z'));
    etcdserverpb::PutResponse resp;
    ASSERT_TRUE(kv_->Put(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(get("gz"), std::string(4096, 'z'));
  // Bytes that are not a PutRequest get the gRPC server's own answer, and the connection goes on.
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  grpc::CompletionQueue cq;
  const grpc::Slice garbage(std::string("\xff\xff\xff\xff\x0f", 5));
  grpc::ByteBuffer request(&garbage, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  auto call = generic.PrepareUnaryCall(&ctx, "/etcdserverpb.KV/Put", request, &cq);
  call->StartCall();
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  // gRPC 1.51's callback server answers a request it cannot decode this way.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(put("after", "1").ok());
}

TEST_F(EtcdApiTest, AnExpiredPutLeavesTheConnectionUsable) {
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::microseconds(50));
    etcdserverpb::PutRequest req;
    req.set_key("late");
    req.set_value(std::to_string(i));
    etcdserverpb::PutResponse resp;
    kv_->Put(&ctx, req, &resp);  // may or may not make it: either is fine
  }
  EXPECT_TRUE(put("late", "final").ok());
  EXPECT_EQ(get("late"), "final");
}

TEST_F(EtcdApiTest, AConnectionThatBreaksHttp2IsClosedAndOthersGoOn) {
  const std::string address = server_->address();
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  // The client preface, then a frame header announcing a 16 MiB HEADERS frame on stream 0.
  std::string bytes = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  bytes += std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);  // empty SETTINGS
  bytes += std::string("\xff\xff\xff\x01\x04\x00\x00\x00\x00", 9);
  bytes += std::string(64, '\x7f');
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  // The server answers with its SETTINGS and a GOAWAY, then closes: read to the end.
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char buf[4096];
  ssize_t n;
  bool goaway = false;
  std::string received;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) received.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0) << "the connection was not closed";
  for (size_t at = 0; at + 9 <= received.size();) {
    const size_t length = (size_t{static_cast<unsigned char>(received[at])} << 16) |
                          (size_t{static_cast<unsigned char>(received[at + 1])} << 8) |
                          static_cast<unsigned char>(received[at + 2]);
    if (received[at + 3] == 0x7) goaway = true;
    at += 9 + length;
  }
  EXPECT_TRUE(goaway);
  ::close(fd);
  EXPECT_TRUE(put("still", "serving").ok());
}

// ---- Limits: what one small request may cost the server.

namespace {

// A transaction of `outer` nested transactions, each of `inner` reads of `key`.
etcdserverpb::TxnRequest nested_reads(int outer, int inner, const std::string& key) {
  etcdserverpb::TxnRequest txn;
  for (int i = 0; i < outer; ++i) {
    auto* nested = txn.add_success()->mutable_request_txn();
    for (int j = 0; j < inner; ++j) nested->add_success()->mutable_request_range()->set_key(key);
  }
  return txn;
}

}  // namespace

TEST_F(EtcdApiTest, NestedTransactionsCountTowardsTheOperationCap) {
  ASSERT_TRUE(put("k", std::string(1024, 'v')).ok());
  // 128 transactions of 128 reads each: a 200 KB request that used to answer 16,384 copies of the value.
  for (auto [outer, inner] : {std::pair{128, 128}, std::pair{16, 16}, std::pair{1, 128}}) {
    grpc::ClientContext ctx;
    etcdserverpb::TxnResponse resp;
    auto s = kv_->Txn(&ctx, nested_reads(outer, inner, "k"), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << outer << "x" << inner;
    EXPECT_EQ(s.error_message(), "etcdserver: too many operations in txn request");
  }
  // Exactly 128 operations, however they nest, are served.
  for (auto [outer, inner] : {std::pair{1, 127}, std::pair{64, 1}, std::pair{2, 63}}) {
    grpc::ClientContext ctx;
    etcdserverpb::TxnResponse resp;
    auto s = kv_->Txn(&ctx, nested_reads(outer, inner, "k"), &resp);
    ASSERT_TRUE(s.ok()) << outer << "x" << inner << ": " << s.error_message();
    EXPECT_EQ(resp.responses_size(), outer);
  }
  {
    etcdserverpb::TxnRequest flat;
    for (int i = 0; i < 128; ++i) flat.add_success()->mutable_request_range()->set_key("k");
    for (int i = 0; i < 128; ++i) flat.add_failure()->mutable_request_range()->set_key("k");
    grpc::ClientContext ctx;
    etcdserverpb::TxnResponse resp;
    ASSERT_TRUE(kv_->Txn(&ctx, flat, &resp).ok());  // one branch runs: 128, as etcd counts
    EXPECT_EQ(resp.responses_size(), 128);
    flat.add_success()->mutable_request_range()->set_key("k");
    grpc::ClientContext again;
    EXPECT_EQ(kv_->Txn(&again, flat, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(EtcdApiTest, AnswersOverMaxResponseBytesAreRefused) {
  EtcdServerOptions options;
  options.listen = "127.0.0.1:0";
  options.snapshot_dir = dir_.string();
  options.max_response_bytes = 64 * 1024;
  auto small = EtcdServer::start(*store_, options);
  ASSERT_TRUE(small.ok()) << small.error().message;
  auto kv = etcdserverpb::KV::NewStub(grpc::CreateChannel((*small)->address(), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(put("big/" + std::to_string(i), std::string(10 * 1024, 'x')).ok());
  {
    grpc::ClientContext ctx;
    etcdserverpb::RangeRequest req;
    req.set_key("big/");
    req.set_range_end("big0");
    etcdserverpb::RangeResponse resp;
    auto s = kv->Range(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find("limit"), std::string::npos) << s.error_message();
    // Paged, the same keys are served.
    grpc::ClientContext paged;
    req.set_limit(4);
    ASSERT_TRUE(kv->Range(&paged, req, &resp).ok());
    EXPECT_EQ(resp.kvs_size(), 4);
    EXPECT_TRUE(resp.more());
    // keys_only answers are small.
    grpc::ClientContext keys;
    req.set_limit(0);
    req.set_keys_only(true);
    ASSERT_TRUE(kv->Range(&keys, req, &resp).ok());
    EXPECT_EQ(resp.kvs_size(), 10);
  }
  {
    // A transaction whose reads add up over the cap is refused before its write applies.
    etcdserverpb::TxnRequest txn;
    auto* w = txn.add_success()->mutable_request_put();
    w->set_key("written");
    w->set_value("1");
    for (int i = 0; i < 8; ++i) txn.add_success()->mutable_request_range()->set_key("big/0");
    grpc::ClientContext ctx;
    etcdserverpb::TxnResponse resp;
    auto s = kv->Txn(&ctx, txn, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find("limit"), std::string::npos) << s.error_message();
    EXPECT_EQ(get("written"), "");
    // Reads of what the transaction itself writes count too.
    etcdserverpb::TxnRequest own;
    auto* p = own.add_success()->mutable_request_put();
    p->set_key("fresh");
    p->set_value(std::string(40 * 1024, 'y'));
    own.add_success()->mutable_request_range()->set_key("fresh");
    own.add_success()->mutable_request_range()->set_key("fresh");
    grpc::ClientContext own_ctx;
    EXPECT_EQ(kv->Txn(&own_ctx, own, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(get("fresh"), "");
    // Under the cap, the same shape is served.
    own.mutable_success()->RemoveLast();
    grpc::ClientContext fits;
    ASSERT_TRUE(kv->Txn(&fits, own, &resp).ok());
    EXPECT_EQ(resp.responses(1).response_range().kvs(0).value().size(), 40u * 1024);
  }
}

TEST_F(EtcdApiTest, LeaseTtlsOverEtcdsMaximumAreRefused) {
  for (int64_t ttl : {std::numeric_limits<int64_t>::max(), int64_t{9'000'000'001}}) {
    grpc::ClientContext ctx;
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(ttl);
    etcdserverpb::LeaseGrantResponse resp;
    auto s = lease_->LeaseGrant(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE) << ttl;
    EXPECT_EQ(s.error_message(), "etcdserver: too large lease TTL");
  }
  // The maximum itself is granted and does not expire at once.
  const int64_t id = grant(9'000'000'000);
  ASSERT_NE(id, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  grpc::ClientContext ctx;
  etcdserverpb::LeaseTimeToLiveRequest req;
  req.set_id(id);
  etcdserverpb::LeaseTimeToLiveResponse resp;
  ASSERT_TRUE(lease_->LeaseTimeToLive(&ctx, req, &resp).ok());
  EXPECT_GT(resp.ttl(), 8'000'000'000);
  EXPECT_EQ(resp.grantedttl(), 9'000'000'000);
}

}  // namespace
}  // namespace zeppelin::etcd_api
