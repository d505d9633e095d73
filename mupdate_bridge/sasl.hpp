// sasl - the server side of SASL through libsasl2, as Cyrus's own master
// authenticates its peers: service "mupdate", the mechanisms and password
// check libsasl2 is configured for (pwcheck_method: saslauthd reaches
// sasl_ldap_auth; auxprop/sasldb reads a sasldb file).
//
// libsasl2 is not safe to call from several threads at once and its
// password checks block (a saslauthd round trip, a sasldb read), so every
// call runs on one thread of its own, never on the event loop.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/asio.hpp"

namespace mailgrid::bridge {

struct SaslOptions {
    std::string app_name = "mupdate_bridge";  // libsasl2 also reads <app_name>.conf if present
    std::string service = "mupdate";
    std::string server_fqdn;                  // the sasldb realm unless `realm` is set
    std::string realm;
    std::map<std::string, std::string> options;  // pwcheck_method, mech_list, saslauthd_path, ...
};

struct SaslStep {
    enum class Kind { Done, Continue, Fail } kind = Kind::Fail;
    std::string challenge;  // Continue: raw bytes to send (base64 on the wire)
    std::string identity;   // Done: the authorization identity
    std::string error;      // Fail: libsasl2's reason (for the log)
    bool bad_credentials = false;  // Fail: the client's fault (not a server error)
};

class SaslServer {
public:
    // Initialises libsasl2 once per process. Throws std::runtime_error.
    explicit SaslServer(SaslOptions options);
    ~SaslServer();
    SaslServer(const SaslServer&) = delete;
    SaslServer& operator=(const SaslServer&) = delete;

    // Mechanisms a client may use: without TLS only those that send no
    // cleartext password unless plaintext is allowed.
    std::vector<std::string> mechanisms(bool plaintext_allowed);

    class Exchange;
    // One authentication exchange of a connection.
    std::shared_ptr<Exchange> exchange(bool plaintext_allowed, bool tls);
    awaitable<SaslStep> start(std::shared_ptr<Exchange> x, std::string mechanism, const std::string* initial);
    awaitable<SaslStep> step(std::shared_ptr<Exchange> x, std::string response);

private:
    SaslOptions options_;
    asio::thread_pool thread_{1};
};

}  // namespace mailgrid::bridge
