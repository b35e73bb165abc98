/*
 * libFuzzer target for the request validators (valid.h). The first input byte picks a
 * validator (register, login, refresh, recipe create, recipe update, profile, comment,
 * notifications read, room create, room update, member, chat message: its low 7 bits
 * modulo 12) and whether the rest
 * is also checked as raw text by cmd__text_fault; the rest is the request body. Checks:
 * no crash or sanitizer report; every error is {"field": string, "detail": string}; an
 * accepted body has what its command needs and nothing the write model cannot store
 * (an email is at most 254 code points, so at most 1016 bytes); text accepted by
 * cmd__text_fault has no control bytes other than "\n" and "\t" (multiline only) and a
 * code point count between len / 4 and len.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "valid.h"

#include "sp/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t len, bool multiline)
{
    size_t n_cp = 0;
    if (cmd__text_fault(s, len, multiline, &n_cp) != NULL)
        return;
    if (n_cp > len || n_cp < (len + 3) / 4)
        abort();
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ctl = c < 0x20 || c == 0x7f;
        if (ctl && !(multiline && (c == '\n' || c == '\t')))
            abort();
    }
}

static void check_errors(json_t *errors)
{
    size_t i;
    json_t *e;
    if (!json_is_array(errors))
        abort();
    json_array_foreach(errors, i, e) {
        if (!json_is_string(json_object_get(e, "field")) ||
            !json_is_string(json_object_get(e, "detail")))
            abort();
    }
}

static void check_register(json_t *body)
{
    json_t *name = json_object_get(body, "username"), *email = json_object_get(body, "email");
    const char *at;
    if (!json_is_string(name) || json_string_length(name) < 3 || json_string_length(name) > 32)
        abort();
    if (!json_is_string(email) || json_string_length(email) > (size_t)254 * 4)
        abort();
    at = strchr(json_string_value(email), '@');
    if (!at || strchr(at + 1, '@') || !json_is_string(json_object_get(body, "password")))
        abort();
}

static void check_room(json_t *body)
{
    json_t *ids = json_object_get(body, "member_ids"), *v;
    size_t i;
    if (!json_is_boolean(json_object_get(body, "is_group")) || !json_is_array(ids) ||
        json_array_size(ids) < 1 || json_array_size(ids) > CMD__ROOM_MEMBERS_MAX)
        abort();
    if (json_is_true(json_object_get(body, "is_group")) !=
        json_is_string(json_object_get(body, "title")))
        abort();
    json_array_foreach(ids, i, v) {
        if (!json_is_string(v) || json_string_length(v) > 19)
            abort();
        for (size_t j = 0; j < i; j++) {
            if (json_equal(v, json_array_get(ids, j)))
                abort();
        }
    }
}

static void check_message(json_t *body)
{
    json_t *content = json_object_get(body, "content"), *txn = json_object_get(body, "txn_id");
    if (!json_is_string(content) || json_string_length(content) > (size_t)CMD__MESSAGE_MAX_CP * 4 ||
        !json_is_string(txn) || json_string_length(txn) < 1 ||
        json_string_length(txn) > CMD__TXN_ID_CHARS)
        abort();
    for (const char *p = json_string_value(txn); *p; p++) {
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:-", *p))
            abort();
    }
}

static void check_accepted(unsigned which, json_t *body)
{
    switch (which) {
    case 0:
        check_register(body);
        break;
    case 1:
        if (!json_object_get(body, "username") && !json_object_get(body, "email"))
            abort();
        if (!json_is_string(json_object_get(body, "password")))
            abort();
        break;
    case 2:
        if (!json_is_string(json_object_get(body, "refresh_token")))
            abort();
        break;
    case 3:
        if (!json_is_string(json_object_get(body, "title")) ||
            !json_is_array(json_object_get(body, "ingredients")) ||
            !json_is_array(json_object_get(body, "steps")))
            abort();
        break;
    case 6:
        if (!json_is_string(json_object_get(body, "content")) ||
            json_string_length(json_object_get(body, "content")) > (size_t)2000 * 4)
            abort();
        break;
    case 7:
        if (!json_is_string(json_object_get(body, "up_to_id")))
            abort();
        break;
    case 8:
        check_room(body);
        break;
    case 10:
        if (!json_is_string(json_object_get(body, "user_id")))
            abort();
        break;
    case 11:
        check_message(body);
        break;
    default: /* recipe update, profile, room update: at least one field */
        if (json_object_size(body) == 0)
            abort();
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = (data[0] & 0x7fu) % 12;
    const char *rest = (const char *)data + 1;
    if (data[0] & 0x80) {
        check_text(rest, size - 1, true);
        check_text(rest, size - 1, false);
    }
    /* as sp_http_req_json: a JSON object at the top, duplicates refused */
    json_t *body = json_loadb(rest, size - 1, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    json_t *errors = json_array();
    switch (which) {
    case 0:
        cmd__valid_register(body, errors);
        break;
    case 1:
        cmd__valid_login(body, errors);
        break;
    case 2:
        cmd__valid_refresh(body, errors);
        break;
    case 5:
        cmd__valid_profile(body, errors);
        break;
    case 6:
        cmd__valid_comment(body, errors);
        break;
    case 7:
        cmd__valid_read(body, errors);
        break;
    case 8:
        cmd__valid_room_create(body, errors);
        break;
    case 9:
        cmd__valid_room_update(body, errors);
        break;
    case 10:
        cmd__valid_member(body, errors);
        break;
    case 11:
        cmd__valid_message(body, errors);
        break;
    default:
        cmd__valid_recipe(body, which == 4, errors);
        break;
    }
    check_errors(errors);
    if (json_array_size(errors) == 0)
        check_accepted(which, body);
    json_decref(errors);
    json_decref(body);
    return 0;
}
