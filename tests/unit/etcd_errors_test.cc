// The error model at the etcd protocol's two edges: the etcd API makes etcd's
// gRPC statuses from typed codes, and the etcd client reads a remote etcd's
// statuses back into typed codes (its one table of etcd's messages).
#include <gtest/gtest.h>

#include "etcd_api/convert.h"
#include "etcd_client/connection.h"
#include "store/store.h"

namespace zeppelin {
namespace {

using Code = grpc::StatusCode;

struct EtcdAnswer {
  Errc code;
  std::string message;  // as the store words it, details included
  Code grpc_code;
  std::string wire;  // what etcd clients receive (rpctypes)
};

// Each store condition, as etcd 3.4 answers it.
const std::vector<EtcdAnswer>& store_answers() {
  static const std::vector<EtcdAnswer> answers = {
      {Errc::kCompacted, std::string(store::kErrCompacted) + " (asked 2, compacted at 3)", Code::OUT_OF_RANGE,
       "etcdserver: mvcc: required revision has been compacted"},
      {Errc::kFutureRevision, std::string(store::kErrFutureRevision) + " (asked 9, current 3)", Code::OUT_OF_RANGE,
       "etcdserver: mvcc: required revision is a future revision"},
      {Errc::kLeaseNotFound, std::string(store::kErrLeaseNotFound) + " (lease 7)", Code::NOT_FOUND,
       "etcdserver: requested lease not found"},
      {Errc::kLeaseExists, std::string(store::kErrLeaseExists) + " (lease 7)", Code::FAILED_PRECONDITION,
       "etcdserver: lease already exists"},
      {Errc::kLeaseTtlTooLarge, std::string(store::kErrLeaseTtlTooLarge) + " (9999999999 > 9000000000)",
       Code::OUT_OF_RANGE, "etcdserver: too large lease TTL"},
      {Errc::kNoSpace, store::kErrNoSpace, Code::RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"},
      {Errc::kDuplicateKey, std::string(store::kErrDuplicateKey) + " (k)", Code::INVALID_ARGUMENT,
       "etcdserver: duplicate key given in txn request"},
      {Errc::kKeyNotFound, std::string(store::kErrKeyNotFound) + " (k)", Code::INVALID_ARGUMENT,
       "etcdserver: key not found"},
      {Errc::kInvalidArgument, store::kErrEmptyKey, Code::INVALID_ARGUMENT, "etcdserver: key is not provided"},
      // Not etcd's: the message, which says how to page, goes out whole.
      {Errc::kResponseTooLarge, "response is too large (over 10 bytes)", Code::RESOURCE_EXHAUSTED,
       "etcdserver: response is too large (over 10 bytes)"},
  };
  return answers;
}

TEST(EtcdApiEdge, StoreCodesBecomeEtcdsStatuses) {
  for (const auto& a : store_answers()) {
    const grpc::Status s = etcd_api::to_status(make_error(a.code, a.message));
    EXPECT_EQ(s.error_code(), a.grpc_code) << a.message;
    EXPECT_EQ(s.error_message(), a.wire) << a.message;
  }
}

TEST(EtcdApiEdge, TheCodeDecidesNotTheMessage) {
  // A message that reads like a store condition is not one without its code.
  const grpc::Status s = etcd_api::to_status(make_error(Errc::kInternal, store::kErrCompacted));
  EXPECT_EQ(s.error_code(), Code::INTERNAL);
  EXPECT_EQ(s.error_message(), std::string("etcdserver: ") + store::kErrCompacted);
}

TEST(EtcdApiEdge, OtherCodesKeepTheirMessage) {
  const struct {
    Errc code;
    Code grpc_code;
  } cases[] = {
      {Errc::kInvalidArgument, Code::INVALID_ARGUMENT},
      {Errc::kTooLarge, Code::INVALID_ARGUMENT},
      {Errc::kUnavailable, Code::UNAVAILABLE},
      {Errc::kNotFound, Code::FAILED_PRECONDITION},
      {Errc::kAlreadyExists, Code::FAILED_PRECONDITION},
      {Errc::kFailedPrecondition, Code::FAILED_PRECONDITION},
      {Errc::kUnauthenticated, Code::UNAUTHENTICATED},
      {Errc::kPermissionDenied, Code::PERMISSION_DENIED},
      {Errc::kTimeout, Code::INTERNAL},
      {Errc::kInternal, Code::INTERNAL},
  };
  for (const auto& c : cases) {
    const grpc::Status s = etcd_api::to_status(make_error(c.code, "it went wrong"));
    EXPECT_EQ(s.error_code(), c.grpc_code) << static_cast<int>(c.code);
    EXPECT_EQ(s.error_message(), "etcdserver: it went wrong");
  }
  EXPECT_TRUE(etcd_api::to_status(ok_status()).ok());
}

TEST(EtcdClientErrors, EtcdsStoreAnswersReadBackAsTheirCodes) {
  for (const auto& a : store_answers()) {
    if (a.code == Errc::kResponseTooLarge || a.code == Errc::kLeaseTtlTooLarge || a.code == Errc::kNoSpace) {
      continue;  // not conditions the client tells apart
    }
    const grpc::Status remote(a.grpc_code, a.wire);
    EXPECT_EQ(etcd_client::code_of(remote), a.code) << a.wire;
    const Error e = etcd_client::to_error(remote, "range");
    EXPECT_EQ(e.code, a.code) << a.wire;
    // In the store's words, as the embedded store's errors.
    const std::string words = a.code == Errc::kLeaseNotFound ? store::kErrLeaseNotFound : a.wire.substr(12);
    EXPECT_EQ(e.message, words);
  }
}

TEST(EtcdClientErrors, AuthAnswersReadBackAsCodes) {
  const struct {
    Code grpc_code;
    const char* wire;
    Errc code;
  } cases[] = {
      {Code::UNAUTHENTICATED, "etcdserver: invalid auth token", Errc::kUnauthenticated},
      {Code::INVALID_ARGUMENT, "etcdserver: user name is empty", Errc::kUnauthenticated},
      {Code::FAILED_PRECONDITION, "etcdserver: user name not found", Errc::kNotFound},
      {Code::FAILED_PRECONDITION, "etcdserver: role name not found", Errc::kNotFound},
      {Code::FAILED_PRECONDITION, "etcdserver: role name already exists", Errc::kAlreadyExists},
  };
  for (const auto& c : cases) {
    const grpc::Status remote(c.grpc_code, c.wire);
    EXPECT_EQ(etcd_client::code_of(remote), c.code) << c.wire;
    const Error e = etcd_client::to_error(remote, "user add");
    EXPECT_EQ(e.code, c.code) << c.wire;
    EXPECT_EQ(e.message, std::string("user add: ") + c.wire);  // worded as before, naming the call
  }
}

TEST(EtcdClientErrors, OtherAnswersGoByTheirGrpcCode) {
  EXPECT_EQ(etcd_client::code_of(grpc::Status(Code::UNAVAILABLE, "etcdserver: no leader")), Errc::kUnavailable);
  EXPECT_EQ(etcd_client::code_of(grpc::Status(Code::DEADLINE_EXCEEDED, "context deadline exceeded")), Errc::kTimeout);
  EXPECT_EQ(etcd_client::code_of(grpc::Status(Code::PERMISSION_DENIED, "etcdserver: permission denied")),
            Errc::kInternal);
  EXPECT_EQ(etcd_client::to_error(grpc::Status(Code::UNAVAILABLE, "etcdserver: no leader"), "put").message,
            "put: etcd unavailable: etcdserver: no leader");
}

// Zeppelin's own etcd port and its etcd client agree: every condition the
// client tells apart comes back with the code it left with.
TEST(EtcdErrors, RoundTripKeepsTheCode) {
  for (Errc code : {Errc::kCompacted, Errc::kFutureRevision, Errc::kLeaseNotFound, Errc::kLeaseExists,
                    Errc::kDuplicateKey, Errc::kKeyNotFound}) {
    const grpc::Status wire = etcd_api::to_status(make_error(code, "details"));
    EXPECT_EQ(etcd_client::code_of(wire), code) << wire.error_message();
  }
  EXPECT_EQ(etcd_client::code_of(etcd_api::to_status(make_error(Errc::kUnauthenticated, "invalid auth token"))),
            Errc::kUnauthenticated);
}

}  // namespace
}  // namespace zeppelin
