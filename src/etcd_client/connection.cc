#include "etcd_client/connection.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "store/store.h"

namespace zeppelin::etcd_client {

namespace {

struct Target {
  std::string address;  // HOST:PORT
  bool tls = false;
};

Result<Target> parse_endpoint(const std::string& url) {
  Target t;
  std::string rest = url;
  if (rest.starts_with("http://")) {
    rest = rest.substr(7);
  } else if (rest.starts_with("https://")) {
    rest = rest.substr(8);
    t.tls = true;
  } else if (rest.find("://") != std::string::npos) {
    return make_error(Errc::kInvalidArgument,
                      "etcd endpoint '" + url + "': expected http://HOST:PORT or https://HOST:PORT");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const auto colon = rest.rfind(':');
  if (rest.empty() || colon == std::string::npos || colon == 0 || colon + 1 == rest.size() ||
      rest.find_first_not_of("0123456789", colon + 1) != std::string::npos || rest.find('/') != std::string::npos) {
    return make_error(Errc::kInvalidArgument,
                      "etcd endpoint '" + url + "': expected http://HOST:PORT or https://HOST:PORT");
  }
  t.address = rest;
  return t;
}

Result<std::string> read_pem(const std::string& path, const char* flag) {
  if (path.empty()) return std::string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::kInvalidArgument, std::string(flag) + ": cannot read '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool is_transport_failure(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// True when the call failed before its request was sent: gRPC could not
// connect to the member at all (a fail-fast call on a channel in TRANSIENT_FAILURE).
bool never_sent(const grpc::Status& s) {
  if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  const std::string& m = s.error_message();
  return m.find("failed to connect to all addresses") != std::string::npos ||
         m.find("Connection refused") != std::string::npos || m.find("no address available") != std::string::npos ||
         m.find("no connection available") != std::string::npos;
}

// A remote etcd's conditions that it reports only in words (its
// api/v3rpc/rpctypes, after "etcdserver: "): the one place where Zeppelin
// reads an error's text. A message starting with `text` is that condition.
struct Worded {
  const char* text;
  Errc code;
  const char* store_words = nullptr;  // a store condition: its Error is worded as the embedded store's
};
constexpr Worded kWorded[] = {
    {"mvcc: required revision has been compacted", Errc::kCompacted, store::kErrCompacted},
    {"mvcc: required revision is a future revision", Errc::kFutureRevision, store::kErrFutureRevision},
    {"requested lease not found", Errc::kLeaseNotFound, store::kErrLeaseNotFound},
    {"lease not found", Errc::kLeaseNotFound, store::kErrLeaseNotFound},  // etcd's lease package, unconverted
    {"lease already exists", Errc::kLeaseExists, store::kErrLeaseExists},
    {"duplicate key given in txn request", Errc::kDuplicateKey, store::kErrDuplicateKey},
    {"key is not provided", Errc::kInvalidArgument, store::kErrEmptyKey},
    {"key not found", Errc::kKeyNotFound, store::kErrKeyNotFound},
    {"invalid auth token", Errc::kUnauthenticated},
    {"user name is empty", Errc::kUnauthenticated},  // a call without a token while auth is on
    {"user name not found", Errc::kNotFound},
    {"role name not found", Errc::kNotFound},
    {"role name already exists", Errc::kAlreadyExists},
};

// The message without etcd's "etcdserver: " (gRPC hands the message out by value).
std::string words(const grpc::Status& s) {
  std::string m = s.error_message();
  if (m.starts_with("etcdserver: ")) m.erase(0, std::string_view("etcdserver: ").size());
  return m;
}

const Worded* worded(const std::string& words) {
  for (const Worded& w : kWorded) {
    if (words.starts_with(w.text)) return &w;
  }
  return nullptr;
}

bool is_invalid_token(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAUTHENTICATED && code_of(s) == Errc::kUnauthenticated;
}

}  // namespace

Result<std::vector<std::string>> parse_endpoints(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const auto comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) {
      auto t = parse_endpoint(item);
      if (!t) return t.error();
      out.push_back(item);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.empty()) return make_error(Errc::kInvalidArgument, "no etcd endpoints given");
  return out;
}

Result<std::shared_ptr<Connection>> Connection::open(const ConnectionOptions& options) {
  if (options.endpoints.empty()) return make_error(Errc::kInvalidArgument, "no etcd endpoints given");
  auto ca = read_pem(options.ca_file, "--etcd-cacert");
  if (!ca) return ca.error();
  auto cert = read_pem(options.cert_file, "--etcd-cert");
  if (!cert) return cert.error();
  auto key = read_pem(options.key_file, "--etcd-key");
  if (!key) return key.error();
  if (cert->empty() != key->empty()) {
    return make_error(Errc::kInvalidArgument, "--etcd-cert and --etcd-key must be given together");
  }
  const bool tls_files = !ca->empty() || !cert->empty();

  std::shared_ptr<Connection> c(new Connection(options));
  for (const auto& url : options.endpoints) {
    auto target = parse_endpoint(url);
    if (!target) return target.error();
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (target->tls || tls_files) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = *ca;
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
      creds = grpc::SslCredentials(ssl);
    } else {
      creds = grpc::InsecureChannelCredentials();
    }
    grpc::ChannelArguments args;
    // A member that went away is tried again soon (gRPC's default backoff
    // grows to two minutes). The minimum stays gRPC's: it is also the connect
    // timeout, and a loaded machine needs more than a few milliseconds.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetMaxReceiveMessageSize(-1);
    auto m = std::make_unique<Member>();
    m->endpoint = url;
    m->channel = grpc::CreateCustomChannel(target->address, creds, args);
    m->kv = etcdserverpb::KV::NewStub(m->channel);
    m->watch = etcdserverpb::Watch::NewStub(m->channel);
    m->lease = etcdserverpb::Lease::NewStub(m->channel);
    m->maintenance = etcdserverpb::Maintenance::NewStub(m->channel);
    m->auth = etcdserverpb::Auth::NewStub(m->channel);
    m->lock = v3lockpb::Lock::NewStub(m->channel);
    m->election = v3electionpb::Election::NewStub(m->channel);
    c->members_.push_back(std::move(m));
  }
  if (!options.user.empty()) {
    if (auto s = c->authenticate(); !s) return s.error();
  } else {
    c->token_ = options.token;
  }
  return c;
}

std::size_t Connection::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

void Connection::failed(std::size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  if (current_ == index) current_ = (current_ + 1) % members_.size();
}

std::unique_ptr<grpc::ClientContext> Connection::context(std::chrono::milliseconds timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (timeout.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  std::lock_guard<std::mutex> lock(mu_);
  if (!token_.empty()) ctx->AddMetadata("token", token_);
  return ctx;
}

Status Connection::authenticate() {
  etcdserverpb::AuthenticateRequest req;
  req.set_name(options_.user);
  req.set_password(options_.password);
  etcdserverpb::AuthenticateResponse resp;
  grpc::Status status;
  for (std::size_t attempt = 0; attempt < 2 * members_.size(); ++attempt) {
    const std::size_t i = current();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
    status = members_[i]->auth->Authenticate(&ctx, req, &resp);
    if (status.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      token_ = resp.token();
      return ok_status();
    }
    if (!is_transport_failure(status)) break;
    failed(i);
  }
  return to_error(status, "etcd authentication as '" + options_.user + "'");
}

grpc::Status Connection::call(Retry retry, const Call& fn) { return call(retry, fn, options_.request_timeout); }

grpc::Status Connection::call(Retry retry, const Call& fn, std::chrono::milliseconds timeout) {
  // Two rounds over the members, then give up; a short pause between rounds
  // gives a cluster that lost its leader time to elect another. Calls that
  // could not even connect are cheap to repeat and safe, so they go on for
  // one request timeout (a member still starting, a loaded machine).
  const std::size_t attempts = std::max<std::size_t>(3, 2 * members_.size() + 1);
  const auto connect_patience = std::chrono::steady_clock::now() + options_.request_timeout;
  bool reauthenticated = false;
  grpc::Status status;
  for (std::size_t attempt = 0;; ++attempt) {
    if (attempt > 0 && attempt % members_.size() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const std::size_t i = current();
    auto ctx = context(timeout);
    status = fn(*members_[i], *ctx);
    if (status.ok()) return status;
    if (is_invalid_token(status) && !reauthenticated && !options_.user.empty()) {
      reauthenticated = true;
      if (authenticate()) {
        --attempt;
        continue;
      }
      return status;
    }
    if (!is_transport_failure(status)) return status;
    failed(i);
    const bool unsent = never_sent(status);
    if (retry == Retry::kUnsent && !unsent) return status;
    if (attempt + 1 >= attempts && !(unsent && std::chrono::steady_clock::now() < connect_patience)) return status;
  }
}

bool Connection::should_fail_over(std::size_t index, const grpc::Status& status) {
  if (is_invalid_token(status) && !options_.user.empty()) {
    return authenticate().ok();
  }
  // A stream the member ended for any reason other than a cancel by us is
  // worth resuming elsewhere: members close watch streams when they lose
  // their leader ("no leader") or shut down.
  if (status.error_code() == grpc::StatusCode::CANCELLED) {
    failed(index);
    return true;
  }
  if (is_transport_failure(status) || status.error_code() == grpc::StatusCode::INTERNAL ||
      status.error_code() == grpc::StatusCode::UNKNOWN || status.ok()) {
    failed(index);
    return true;
  }
  return false;
}

Errc code_of(const grpc::Status& status) {
  if (const Worded* w = worded(words(status))) return w->code;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return Errc::kUnavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Errc::kTimeout;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return Errc::kInvalidArgument;
    case grpc::StatusCode::NOT_FOUND:
      return Errc::kNotFound;
    default:
      return Errc::kInternal;
  }
}

Error to_error(const grpc::Status& status, const std::string& what) {
  const Errc code = code_of(status);
  const std::string said = words(status);
  if (const Worded* w = worded(said); w != nullptr && w->store_words != nullptr) {
    return make_error(code, w->store_words + said.substr(std::strlen(w->text)));
  }
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return make_error(code, what + ": etcd unavailable: " + status.error_message());
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return make_error(code, what + ": etcd did not answer in time: " + status.error_message());
    default:
      return make_error(code, what + ": " + status.error_message());
  }
}

}  // namespace zeppelin::etcd_client
