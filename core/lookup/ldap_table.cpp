#include "lookup/ldap_table.hpp"

#include <ldap.h>

#include "directory/table_results.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid {

struct LdapTable::Walk {
    TableResults results;
    std::string temp_error;
};

LdapTable::LdapTable(std::string name, LdapTableConfig config, std::shared_ptr<Directory> directory)
    : name_(std::move(name)), config_(std::move(config)), directory_(std::move(directory)) {
    attributes_ = config_.requested_attributes();
    timeout_ = std::chrono::milliseconds(std::max(1, config_.server.timeout_seconds) * 1000);
}

awaitable<Lookup> LdapTable::query(std::string key) {
    key = to_lower(key);
    if (!valid_utf8(key)) co_return Lookup::not_found();
    if (!config_.domain_allows(key)) co_return Lookup::not_found();
    auto base = config_.templates.expand_query(config_.search_base, key, Quote::Dn);
    auto filter = config_.templates.expand_query(config_.query_filter, key, Quote::Filter);
    if (!filter || (!config_.search_base.empty() && !base)) co_return Lookup::not_found();

    SearchRequest req;
    req.base = base.value_or("");
    req.scope = config_.scope;
    req.filter = std::move(*filter);
    req.attributes = attributes_;
    req.size_limit = config_.size_limit;
    req.timeout = timeout_;
    auto r = co_await directory_->search(req);
    switch (r.code) {
        case SearchResult::Code::TempFail: co_return Lookup::temp_fail(r.error);
        case SearchResult::Code::SizeLimit: co_return Lookup::temp_fail("size limit exceeded for key " + printable(key, 100));
        case SearchResult::Code::NoSuchObject:
            if (config_.dynamic_base) co_return Lookup::not_found();
            co_return Lookup::temp_fail("search base " + printable(req.base, 100) + " not found");
        case SearchResult::Code::Ok: break;
    }
    if (r.entries.size() > 1)
        log::warning("table %s: key %s matches %zu entries (%s, %s)", name_.c_str(), printable(key, 100).c_str(),
                     r.entries.size(), printable(r.entries[0].dn, 100).c_str(), printable(r.entries[1].dn, 100).c_str());

    Walk walk{TableResults(config_, key), {}};
    co_await collect(walk, std::move(r.entries), 0);
    if (!walk.temp_error.empty()) co_return Lookup::temp_fail(walk.temp_error);
    if (walk.results.failed()) {
        log::warning("table %s: %s", name_.c_str(), walk.results.error().c_str());
        co_return Lookup::temp_fail(walk.results.error());
    }
    if (walk.results.value().empty()) co_return Lookup::not_found();
    co_return Lookup::found(walk.results.value());
}

awaitable<void> LdapTable::collect(Walk& walk, std::vector<Entry> entries, int depth) {
    std::size_t nth = 0;
    for (const auto& e : entries) {
        auto items = walk.results.items(e, depth, ++nth);
        for (auto& item : items) {
            if (walk.results.failed() || !walk.temp_error.empty()) co_return;
            if (item.reference) co_await follow(walk, std::move(item.text), depth + 1);
            else walk.results.append(item.text);
        }
        if (walk.results.failed() || !walk.temp_error.empty()) co_return;
    }
}

awaitable<void> LdapTable::follow(Walk& walk, std::string ref, int depth) {
    SearchRequest req;
    req.size_limit = config_.size_limit;
    req.timeout = timeout_;
    if (is_ldap_url(ref)) {
        LDAPURLDesc* url = nullptr;
        if (ldap_url_parse(ref.c_str(), &url) != LDAP_URL_SUCCESS) {
            walk.temp_error = "malformed URL " + printable(ref, 100);
            log::warning("table %s: %s", name_.c_str(), walk.temp_error.c_str());
            co_return;
        }
        req.base = url->lud_dn ? url->lud_dn : "";
        req.scope = url->lud_scope == LDAP_SCOPE_BASE ? Scope::Base
                    : url->lud_scope == LDAP_SCOPE_ONELEVEL ? Scope::One
                                                            : (url->lud_scope == LDAP_SCOPE_DEFAULT ? Scope::Base : Scope::Sub);
        req.filter = url->lud_filter ? url->lud_filter : "(objectClass=*)";
        // Only attributes that are both in the URL and in our result list.
        if (url->lud_attrs) {
            for (char** a = url->lud_attrs; *a; ++a)
                for (const auto& mine : attributes_)
                    if (iequals(mine, *a)) req.attributes.push_back(mine);
        } else {
            req.attributes = attributes_;
        }
        ldap_free_urldesc(url);
        if (req.attributes.empty()) co_return;
    } else {
        req.base = ref;
        req.scope = Scope::Base;
        req.filter = "(objectclass=*)";
        req.attributes = attributes_;
    }
    auto r = co_await directory_->search(req);
    switch (r.code) {
        case SearchResult::Code::Ok: break;
        case SearchResult::Code::NoSuchObject:
            log::warning("table %s: DN %s not found, skipping", name_.c_str(), printable(ref, 100).c_str());
            co_return;
        case SearchResult::Code::SizeLimit: walk.temp_error = "size limit exceeded following " + printable(ref, 100); co_return;
        case SearchResult::Code::TempFail: walk.temp_error = r.error; co_return;
    }
    co_await collect(walk, std::move(r.entries), depth);
}

}  // namespace mailgrid
