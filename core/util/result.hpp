// result - the one outcome type of every lookup and check in the suite.
//
// Found, NotFound, TempFail and PermFail, as Postfix's dict layer has them.
// A directory that is down, slow or erring is TempFail, never NotFound:
// "not found" makes Postfix bounce mail.
#pragma once

#include <string>
#include <utility>

namespace mailgrid {

enum class Status { Found, NotFound, TempFail, PermFail };

inline const char* status_name(Status s) {
    switch (s) {
        case Status::Found: return "found";
        case Status::NotFound: return "notfound";
        case Status::TempFail: return "tempfail";
        case Status::PermFail: return "permfail";
    }
    return "?";
}

struct Lookup {
    Status status = Status::NotFound;
    std::string value;  // the answer when Found, the reason otherwise

    static Lookup found(std::string v) { return {Status::Found, std::move(v)}; }
    static Lookup not_found() { return {Status::NotFound, {}}; }
    static Lookup temp_fail(std::string why) { return {Status::TempFail, std::move(why)}; }
    static Lookup perm_fail(std::string why) { return {Status::PermFail, std::move(why)}; }
    bool ok() const { return status == Status::Found; }
};

}  // namespace mailgrid
