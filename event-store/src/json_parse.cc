// The log's JSON parser: simdjson's DOM, built into jansson values (json_parse.h).
// C++ only because simdjson is a C++ library; the interface is C.
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "json_parse.h"

namespace
{

struct build_error {
    const char *what;
};

json_t *build(simdjson::dom::element e, std::string &key, build_error &err)
{
    using simdjson::dom::element_type;
    switch (e.type()) {
    case element_type::OBJECT: {
        json_t *o = json_object();
        for (simdjson::dom::key_value_pair field : simdjson::dom::object(e)) {
            if (field.key.find('\0') != std::string_view::npos) {
                err.what = "object key contains U+0000";
                json_decref(o);
                return nullptr;
            }
            json_t *v = build(field.value, key, err); /* may reuse key for its own keys */
            if (v == nullptr) {
                json_decref(o);
                return nullptr;
            }
            key.assign(field.key);
            if (json_object_get(o, key.c_str()) != nullptr) {
                err.what = "duplicate object key";
                json_decref(v);
                json_decref(o);
                return nullptr;
            }
            if (json_object_set_new_nocheck(o, key.c_str(), v) != 0) {
                json_decref(o);
                return nullptr;
            }
        }
        return o;
    }
    case element_type::ARRAY: {
        json_t *a = json_array();
        for (simdjson::dom::element x : simdjson::dom::array(e)) {
            json_t *v = build(x, key, err);
            if (v == nullptr || json_array_append_new(a, v) != 0) {
                json_decref(a);
                return nullptr;
            }
        }
        return a;
    }
    case element_type::STRING: {
        std::string_view s = e.get_string().value_unsafe();
        if (s.find('\0') != std::string_view::npos) {
            err.what = "string contains U+0000";
            return nullptr;
        }
        return json_stringn_nocheck(s.data(), s.size()); // simdjson validated the UTF-8
    }
    case element_type::INT64:
        return json_integer(e.get_int64().value_unsafe());
    case element_type::UINT64:
        err.what = "integer out of range";
        return nullptr;
    case element_type::DOUBLE:
        return json_real(e.get_double().value_unsafe());
    case element_type::BOOL:
        return json_boolean(e.get_bool().value_unsafe());
    case element_type::NULL_VALUE:
        return json_null();
    }
    err.what = "unknown value type";
    return nullptr;
}

} // namespace

extern "C" int es__json_parse_ex(const void *buf,
                                 size_t len,
                                 const char *key,
                                 json_t **out,
                                 char **text,
                                 size_t *text_len,
                                 struct sp_errbuf *eb)
{
    thread_local simdjson::dom::parser parser;
    thread_local std::string name;
    simdjson::dom::element doc;
    build_error err{nullptr};

    *out = nullptr;
    if (text != nullptr) {
        *text = nullptr;
        *text_len = 0;
    }
    auto error = parser.parse(static_cast<const char *>(buf), len, true).get(doc);
    if (error != simdjson::SUCCESS)
        return sp_err_set(eb, SP_ECORRUPT, nullptr, "invalid JSON: %s",
                          simdjson::error_message(error));
    *out = build(doc, name, err);
    if (*out == nullptr)
        return sp_err_set(eb, SP_ECORRUPT, nullptr, "invalid JSON: %s",
                          err.what ? err.what : "out of memory");
    simdjson::dom::element member;
    if (key == nullptr || text == nullptr || !doc.is_object() ||
        doc.get_object().value_unsafe().at_key(key).get(member) != simdjson::SUCCESS)
        return 0;
    std::string s = simdjson::to_string(member);
    *text = static_cast<char *>(malloc(s.size() + 1));
    if (*text == nullptr) {
        json_decref(*out);
        *out = nullptr;
        return sp_err_set(eb, SP_ECORRUPT, nullptr, "invalid JSON: out of memory");
    }
    memcpy(*text, s.data(), s.size() + 1);
    *text_len = s.size();
    return 0;
}

extern "C" int es_json_parse(const void *buf, size_t len, json_t **out, struct sp_errbuf *eb)
{
    return es__json_parse_ex(buf, len, nullptr, out, nullptr, nullptr, eb);
}

extern "C" bool es__utf8_valid(const char *s, size_t len)
{
    return simdjson::validate_utf8(s, len);
}
