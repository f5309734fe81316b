#include "common/tls.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <cstring>
#include <mutex>
#include <set>

#include "common/fs_util.h"
#include "common/log.h"

namespace zeppelin {

namespace ssl = boost::asio::ssl;

namespace {

constexpr long kDay = 24 * 60 * 60;
constexpr long kRenewBefore = 30 * kDay;

std::string openssl_error(const std::string& what) {
  std::string out = what;
  if (const unsigned long e = ERR_get_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += ": ";
    out += buf;
  }
  ERR_clear_error();
  return out;
}

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

Result<Key> new_key() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return make_error(Errc::kInternal, openssl_error("cannot generate an EC P-256 key"));
  return key;
}

Result<std::string> bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  if (n < 0) return make_error(Errc::kInternal, "cannot read a memory BIO");
  return std::string(data, static_cast<std::size_t>(n));
}

Result<std::string> key_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return make_error(Errc::kInternal, openssl_error("cannot encode a private key"));
  }
  return bio_text(bio.get());
}

Result<std::string> cert_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return make_error(Errc::kInternal, openssl_error("cannot encode a certificate"));
  }
  return bio_text(bio.get());
}

Result<Cert> read_cert(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  Bio bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return make_error(Errc::kInvalidArgument, openssl_error(path + " holds no PEM certificate"));
  return cert;
}

Result<Key> read_key(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  Bio bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  Key key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return make_error(Errc::kInvalidArgument, openssl_error(path + " holds no PEM private key"));
  return key;
}

// True when `cert` is no longer valid `margin` seconds from now.
bool expires_within(X509* cert, long margin) {
  time_t at = ::time(nullptr) + margin;
  return X509_cmp_time(X509_get0_notAfter(cert), &at) <= 0;
}

Status add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return make_error(Errc::kInternal, openssl_error("cannot make the extension " + value));
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (added != 1) return make_error(Errc::kInternal, openssl_error("cannot add the extension " + value));
  return ok_status();
}

// A certificate for `key`, issued by `issuer` (null: self-signed) and signed with `issuer_key`.
Result<Cert> issue(EVP_PKEY* key, const std::string& common_name, long days, X509* issuer, EVP_PKEY* issuer_key,
                   const std::vector<std::pair<int, std::string>>& extensions) {
  Cert cert(X509_new());
  if (!cert) return make_error(Errc::kInternal, openssl_error("X509_new"));
  X509_set_version(cert.get(), 2);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), BN_free);
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return make_error(Errc::kInternal, openssl_error("cannot make a serial number"));
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // clocks a little behind still accept it
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * kDay);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("zeppelin"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  if (X509_set_pubkey(cert.get(), key) != 1) return make_error(Errc::kInternal, openssl_error("X509_set_pubkey"));
  for (const auto& [nid, value] : extensions) {
    if (auto s = add_extension(cert.get(), issuer ? issuer : cert.get(), nid, value); !s) return s.error();
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return make_error(Errc::kInternal, openssl_error("cannot sign a certificate"));
  }
  return cert;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
  return out;
}

bool is_wildcard(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host == "[::]" || host.empty();
}

std::string san_entry(const std::string& name) {
  std::string bare = name;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(bare, ec);
  if (!ec) return "IP:" + ip.to_string();
  std::string lower = bare;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return "DNS:" + lower;
}

}  // namespace

std::vector<std::string> default_sans(const std::string& listen_host, const std::vector<std::string>& extra) {
  std::vector<std::string> names;
  auto add = [&](const std::string& name) {
    if (name.empty()) return;
    const std::string entry = san_entry(name);
    if (std::find(names.begin(), names.end(), entry) == names.end()) names.push_back(entry);
  };
  if (is_wildcard(listen_host)) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) add(host);
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == 0) {
      for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) continue;
        char text[INET6_ADDRSTRLEN] = {};
        if (i->ifa_addr->sa_family == AF_INET) {
          ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, text, sizeof text);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
          const auto* a6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
          if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;  // needs a zone: no client names it
          ::inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof text);
        } else {
          continue;
        }
        add(text);
      }
      ::freeifaddrs(list);
    }
  } else {
    add(listen_host);
  }
  for (const char* name : {"localhost", "127.0.0.1", "::1"}) add(name);
  for (const auto& name : extra) add(name);
  return names;
}

Result<TlsFiles> ensure_generated_certificate(const std::string& dir, const std::vector<std::string>& sans,
                                              const std::string& name) {
  if (auto s = make_dirs(dir, 0700); !s) return s.error();
  ::chmod(dir.c_str(), 0700);
  const std::string ca_path = dir + "/ca.pem", ca_key_path = dir + "/ca-key.pem";
  const std::string cert_path = dir + "/" + name + ".pem", key_path = dir + "/" + name + "-key.pem";
  const std::string sans_path = dir + "/" + name + ".sans";

  Key ca_key;
  Cert ca;
  bool new_ca = false;
  auto old_ca = read_cert(ca_path);
  auto old_ca_key = read_key(ca_key_path);
  if (old_ca && old_ca_key && !expires_within(old_ca->get(), kRenewBefore) &&
      X509_check_private_key(old_ca->get(), old_ca_key->get()) == 1) {
    ca = std::move(*old_ca);
    ca_key = std::move(*old_ca_key);
  } else {
    auto key = new_key();
    if (!key) return key.error();
    auto cert = issue(key->get(), "zeppelin private CA", 3650, nullptr, key->get(),
                      {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                       {NID_key_usage, "critical,keyCertSign,cRLSign"},
                       {NID_subject_key_identifier, "hash"}});
    if (!cert) return cert.error();
    auto key_text = key_pem(key->get());
    auto cert_text = cert_pem(cert->get());
    if (!key_text) return key_text.error();
    if (!cert_text) return cert_text.error();
    if (auto s = write_file_atomic(ca_key_path, *key_text, 0600); !s) return s.error();
    if (auto s = write_file_atomic(ca_path, *cert_text, 0600); !s) return s.error();
    log::info("TLS: made a private CA in {} (clients trust {})", dir, ca_path);
    ca = std::move(*cert);
    ca_key = std::move(*key);
    new_ca = true;
  }

  const std::string wanted = join(sans);
  auto current_sans = read_file(sans_path);
  auto current = read_cert(cert_path);
  auto current_key = read_key(key_path);
  if (!new_ca && current && current_key && current_sans && *current_sans == wanted &&
      !expires_within(current->get(), kRenewBefore) &&
      X509_check_private_key(current->get(), current_key->get()) == 1 &&
      X509_verify(current->get(), ca_key.get()) == 1) {
    return TlsFiles{cert_path, key_path};
  }
  auto key = new_key();
  if (!key) return key.error();
  auto cert = issue(key->get(), "zeppelin server", 397, ca.get(), ca_key.get(),
                    {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature"},
                     {NID_ext_key_usage, "serverAuth"},
                     {NID_subject_key_identifier, "hash"},
                     {NID_authority_key_identifier, "keyid"},
                     {NID_subject_alt_name, wanted}});
  if (!cert) return cert.error();
  auto key_text = key_pem(key->get());
  auto cert_text = cert_pem(cert->get());
  if (!key_text) return key_text.error();
  if (!cert_text) return cert_text.error();
  if (auto s = write_file_atomic(key_path, *key_text, 0600); !s) return s.error();
  if (auto s = write_file_atomic(cert_path, *cert_text, 0600); !s) return s.error();
  if (auto s = write_file_atomic(sans_path, wanted, 0600); !s) return s.error();
  log::info("TLS: issued a server certificate for {}", wanted);
  return TlsFiles{cert_path, key_path};
}

namespace {

// The ALPN wire format of `protocols`: each name preceded by its length.
std::string alpn_wire(const AlpnProtocols& protocols) {
  std::string wire;
  for (const auto& p : protocols) {
    wire += static_cast<char>(p.size());
    wire += p;
  }
  return wire;
}

// The wire format of `protocols`, kept for the life of the process: an
// SSL_CTX (and the callback's argument with it) outlives its ssl::context as
// long as a session on it does, and few distinct lists exist.
const std::string* interned_alpn_wire(const AlpnProtocols& protocols) {
  static std::mutex mu;
  static std::set<std::string> wires;
  std::lock_guard<std::mutex> lock(mu);
  return &*wires.insert(alpn_wire(protocols)).first;
}

// Picks the first of our protocols (`arg`, in wire format) the client offers.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  const auto* ours = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(ours->data()),
                            static_cast<unsigned int>(ours->size()), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // RFC 7301: no protocol in common
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<std::shared_ptr<ssl::context>> make_server_context(const TlsFiles& files, const AlpnProtocols& alpn) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(files.cert, ec);
  if (ec)
    return make_error(Errc::kInvalidArgument, "cannot load the TLS certificate " + files.cert + ": " + ec.message());
  ctx->use_private_key_file(files.key, ssl::context::pem, ec);
  if (ec) return make_error(Errc::kInvalidArgument, "cannot load the TLS key " + files.key + ": " + ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    return make_error(Errc::kInvalidArgument,
                      "the TLS key " + files.key + " does not match the certificate " + files.cert);
  }
  if (!alpn.empty()) {
    SSL_CTX_set_alpn_select_cb(ctx->native_handle(), select_alpn, const_cast<std::string*>(interned_alpn_wire(alpn)));
  }
  return ctx;
}

std::vector<TlsContextSource::Stamp> TlsContextSource::stamp() const {
  std::vector<Stamp> out;
  for (const auto* path : {&files_.cert, &files_.key}) {
    struct stat st {};
    Stamp s;
    if (::stat(path->c_str(), &st) == 0) s = {st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size, st.st_ino};
    out.push_back(s);
  }
  return out;
}

Result<std::unique_ptr<TlsContextSource>> TlsContextSource::load(TlsFiles files, AlpnProtocols alpn) {
  std::unique_ptr<TlsContextSource> source(new TlsContextSource(std::move(files), std::move(alpn)));
  source->stamp_ = source->stamp();
  auto ctx = make_server_context(source->files_, source->alpn_);
  if (!ctx) return ctx.error();
  source->context_ = std::move(*ctx);
  return source;
}

std::shared_ptr<ssl::context> TlsContextSource::current() {
  auto now = stamp();
  std::lock_guard<std::mutex> lock(mu_);
  if (now == stamp_) return context_;
  stamp_ = now;
  if (auto ctx = make_server_context(files_, alpn_)) {
    context_ = std::move(*ctx);
    log::info("TLS: loaded the new certificate {}", files_.cert);
  } else {
    log::warn("TLS: keeping the previous certificate: {}", ctx.error().message);
  }
  return context_;
}

}  // namespace zeppelin
