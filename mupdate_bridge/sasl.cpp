// sasl - libsasl2's server API on a thread of its own (see sasl.hpp).
#include "sasl.hpp"

#include <sasl/sasl.h>

#include <mutex>
#include <stdexcept>

#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid::bridge {

namespace {

// libsasl2 keeps the callbacks of sasl_server_init for the whole process.
std::map<std::string, std::string> g_options;

int get_option(void*, const char*, const char* option, const char** result, unsigned* len) {
    auto it = g_options.find(option);
    if (it == g_options.end()) return SASL_FAIL;
    *result = it->second.c_str();
    if (len) *len = static_cast<unsigned>(it->second.size());
    return SASL_OK;
}

int log_message(void*, int level, const char* message) {
    if (!message) return SASL_OK;
    switch (level) {
        case SASL_LOG_ERR: log::warning("sasl: %s", message); break;
        case SASL_LOG_FAIL:
        case SASL_LOG_WARN: log::info("sasl: %s", message); break;
        case SASL_LOG_NOTE: log::debug("sasl: %s", message); break;
        default:
            // Trace levels can carry secrets; never passed on.
            break;
    }
    return SASL_OK;
}

// libsasl2's callback table stores every callback as int (*)(void);
// void (*)(void) is the generic function pointer type that may hold any.
template <class F>
int (*callback(F* f))(void) {
    return reinterpret_cast<int (*)(void)>(reinterpret_cast<void (*)(void)>(f));
}

sasl_callback_t g_callbacks[] = {
    {SASL_CB_GETOPT, nullptr, nullptr},
    {SASL_CB_LOG, nullptr, nullptr},
    {SASL_CB_LIST_END, nullptr, nullptr},
};

std::string error_text(sasl_conn_t* conn, int rc) {
    const char* d = conn ? sasl_errdetail(conn) : nullptr;
    return d ? d : sasl_errstring(rc, nullptr, nullptr);
}

std::vector<std::string> list_mechanisms(sasl_conn_t* conn) {
    const char* out = nullptr;
    unsigned len = 0;
    int count = 0;
    std::vector<std::string> mechs;
    if (sasl_listmech(conn, nullptr, "", " ", "", &out, &len, &count) != SASL_OK || !out) return mechs;
    for (auto& m : split_list(std::string_view(out, len))) mechs.push_back(m);
    return mechs;
}

}  // namespace

class SaslServer::Exchange {
public:
    explicit Exchange(asio::thread_pool& thread) : thread_(thread) {}
    ~Exchange() {
        if (conn_) {
            // Disposed where it was used; libsasl2 is not thread safe.
            asio::post(thread_, [c = conn_]() mutable { sasl_dispose(&c); });
        }
    }
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    asio::thread_pool& thread_;
    sasl_conn_t* conn_ = nullptr;
    bool plaintext_allowed_ = true;
    bool tls_ = false;
};

SaslServer::SaslServer(SaslOptions options) : options_(std::move(options)) {
    static std::once_flag once;
    static int init_rc = SASL_OK;
    g_options = options_.options;
    g_callbacks[0].proc = callback(&get_option);
    g_callbacks[1].proc = callback(&log_message);
    std::call_once(once, [&] { init_rc = sasl_server_init(g_callbacks, options_.app_name.c_str()); });
    if (init_rc != SASL_OK) throw std::runtime_error(std::string("sasl_server_init: ") + sasl_errstring(init_rc, nullptr, nullptr));
}

SaslServer::~SaslServer() { thread_.wait(); }

namespace {

sasl_conn_t* new_conn(const SaslOptions& o, bool plaintext_allowed, bool tls, std::string& error) {
    sasl_conn_t* conn = nullptr;
    int rc = sasl_server_new(o.service.c_str(), o.server_fqdn.empty() ? nullptr : o.server_fqdn.c_str(),
                             o.realm.empty() ? nullptr : o.realm.c_str(), nullptr, nullptr, nullptr, 0, &conn);
    if (rc != SASL_OK) {
        error = std::string("sasl_server_new: ") + sasl_errstring(rc, nullptr, nullptr);
        return nullptr;
    }
    // No security layer is ever negotiated: MUPDATE after authentication
    // stays plain text (or TLS), as Cyrus's clients expect of PLAIN.
    sasl_security_properties_t props{};
    props.min_ssf = 0;
    props.max_ssf = 0;
    props.maxbufsize = 0;
    props.security_flags = SASL_SEC_NOANONYMOUS | (plaintext_allowed ? 0 : SASL_SEC_NOPLAINTEXT);
    sasl_setprop(conn, SASL_SEC_PROPS, &props);
    if (tls) {
        sasl_ssf_t ssf = 128;
        sasl_setprop(conn, SASL_SSF_EXTERNAL, &ssf);
    }
    return conn;
}

}  // namespace

std::vector<std::string> SaslServer::mechanisms(bool plaintext_allowed) {
    auto job = [this, plaintext_allowed]() {
        std::string error;
        sasl_conn_t* conn = new_conn(options_, plaintext_allowed, false, error);
        if (!conn) return std::vector<std::string>{};
        auto mechs = list_mechanisms(conn);
        sasl_dispose(&conn);
        return mechs;
    };
    return asio::post(thread_, asio::use_future(std::move(job))).get();
}

std::shared_ptr<SaslServer::Exchange> SaslServer::exchange(bool plaintext_allowed, bool tls) {
    auto x = std::make_shared<Exchange>(thread_);
    x->plaintext_allowed_ = plaintext_allowed;
    x->tls_ = tls;
    return x;
}

namespace {

SaslStep finish(sasl_conn_t* conn, int rc, const char* out, unsigned outlen) {
    SaslStep s;
    if (rc == SASL_CONTINUE) {
        s.kind = SaslStep::Kind::Continue;
        if (out) s.challenge.assign(out, outlen);
        return s;
    }
    if (rc == SASL_OK) {
        const void* user = nullptr;
        if (sasl_getprop(conn, SASL_USERNAME, &user) != SASL_OK || !user) {
            s.error = "no user name after authentication";
            return s;
        }
        s.kind = SaslStep::Kind::Done;
        s.identity = static_cast<const char*>(user);
        return s;
    }
    s.error = error_text(conn, rc);
    s.bad_credentials = rc == SASL_BADAUTH || rc == SASL_NOUSER || rc == SASL_BADPROT || rc == SASL_NOMECH ||
                        rc == SASL_TOOWEAK || rc == SASL_ENCRYPT || rc == SASL_NOAUTHZ || rc == SASL_BADPARAM;
    return s;
}

}  // namespace

awaitable<SaslStep> SaslServer::start(std::shared_ptr<Exchange> x, std::string mechanism, const std::string* initial) {
    std::optional<std::string> init;
    if (initial) init = *initial;
    auto job = [this, x, mech = std::move(mechanism), init = std::move(init)]() {
        SaslStep s;
        if (!x->conn_) {
            x->conn_ = new_conn(options_, x->plaintext_allowed_, x->tls_, s.error);
            if (!x->conn_) return s;
        }
        const char* out = nullptr;
        unsigned outlen = 0;
        int rc = sasl_server_start(x->conn_, mech.c_str(), init ? init->data() : nullptr,
                                   init ? static_cast<unsigned>(init->size()) : 0, &out, &outlen);
        return finish(x->conn_, rc, out, outlen);
    };
    co_return co_await asio::co_spawn(thread_, run_blocking_body(std::move(job)), use_awaitable);
}

awaitable<SaslStep> SaslServer::step(std::shared_ptr<Exchange> x, std::string response) {
    auto job = [x, r = std::move(response)]() {
        const char* out = nullptr;
        unsigned outlen = 0;
        int rc = sasl_server_step(x->conn_, r.data(), static_cast<unsigned>(r.size()), &out, &outlen);
        return finish(x->conn_, rc, out, outlen);
    };
    co_return co_await asio::co_spawn(thread_, run_blocking_body(std::move(job)), use_awaitable);
}

}  // namespace mailgrid::bridge
