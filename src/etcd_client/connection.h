// A client connection to an etcd v3 cluster (a real etcd, or zeppelin's own
// etcd API): one gRPC channel per member endpoint, the member in use, the
// auth token, and the retry policy shared by EtcdStore and the CLI's
// Lock/Election commands.
//
// Failover: a call that fails with UNAVAILABLE or DEADLINE_EXCEEDED moves the
// connection to the next endpoint. Whether the call is then repeated there
// depends on what it is (as etcd's clientv3 does):
//  - Retry::kAlways: reads and idempotent calls (Range, lease keep-alive,
//    time-to-live, revoke, status) are repeated on the next endpoints.
//  - Retry::kUnsent: writes (Put, DeleteRange, Txn, Compact, LeaseGrant,
//    Lock, Campaign...) are repeated only when the request never left this
//    process (no connection could be made to the member); a write that may
//    have reached a member fails with Errc::kUnavailable and is not repeated,
//    because repeating it could apply it twice.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rpc.grpc.pb.h"
#include "common/result.h"
#include "rpc.grpc.pb.h"
#include "v3election.grpc.pb.h"
#include "v3lock.grpc.pb.h"

namespace zeppelin::etcd_client {

struct ConnectionOptions {
  // "http://HOST:PORT" or "https://HOST:PORT" (or a bare "HOST:PORT"), one per member.
  std::vector<std::string> endpoints;
  std::string user;      // empty: no authentication
  std::string password;
  // Without a user: a token issued elsewhere (a replica's ZEPPELIN_ETCD_TOKEN),
  // sent as is and never renewed.
  std::string token;
  // PEM files; with any of them set (or an https:// endpoint) the channels use TLS.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // The deadline of one unary call on one member.
  std::chrono::milliseconds request_timeout{5000};
};

// Splits "URL[,URL...]" and checks every URL. The error names the bad one.
Result<std::vector<std::string>> parse_endpoints(const std::string& list);

// The gRPC stubs of one member.
struct Member {
  std::string endpoint;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
  std::unique_ptr<v3lockpb::Lock::Stub> lock;
  std::unique_ptr<v3electionpb::Election::Stub> election;
};

enum class Retry { kAlways, kUnsent };

class Connection {
 public:
  static Result<std::shared_ptr<Connection>> open(const ConnectionOptions& options);

  // The member calls go to now.
  std::size_t current() const;
  Member& member(std::size_t index) { return *members_[index]; }
  std::size_t size() const { return members_.size(); }
  // Records that `index` failed: the next calls go to the member after it.
  void failed(std::size_t index);

  // A context with the auth token; `timeout` zero means no deadline (streams).
  std::unique_ptr<grpc::ClientContext> context(std::chrono::milliseconds timeout);
  std::unique_ptr<grpc::ClientContext> unary_context() { return context(options_.request_timeout); }

  // Runs `call` on the current member, failing over and retrying per `retry`
  // (see the top of this file); re-authenticates once on an invalid token.
  // Each attempt gets `timeout` (default: the request timeout; zero: none, for
  // calls that block until something happens, like Lock or Campaign).
  using Call = std::function<grpc::Status(Member&, grpc::ClientContext&)>;
  grpc::Status call(Retry retry, const Call& call);
  grpc::Status call(Retry retry, const Call& call, std::chrono::milliseconds timeout);

  // For a stream that broke: true when the status means "try another member"
  // (and `index` has been marked failed); re-authenticates on an invalid token.
  bool should_fail_over(std::size_t index, const grpc::Status& status);

  const ConnectionOptions& options() const { return options_; }

 private:
  explicit Connection(ConnectionOptions options) : options_(std::move(options)) {}
  Status authenticate();

  ConnectionOptions options_;
  std::vector<std::unique_ptr<Member>> members_;
  mutable std::mutex mu_;
  std::size_t current_ = 0;
  std::string token_;
};

// The code of a failed call: the conditions a remote etcd reports only in
// words (compacted, lease not found, invalid auth token, ...) by its message,
// the rest by their gRPC code (transport failures: Errc::kUnavailable).
Errc code_of(const grpc::Status& status);
// The store error for a failed call, with code_of()'s code; the store's
// conditions in the store's words (store::kErr*), the rest naming `what`.
Error to_error(const grpc::Status& status, const std::string& what);

}  // namespace zeppelin::etcd_client
