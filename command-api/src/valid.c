/* Request body validation with one error per bad field (README "Field rules"). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "valid.h"

#include "es/catalogue.h"
#include "es/id.h"

#include "sp/banned.h"

struct text_rule {
    size_t min_cp, max_cp;
    bool multiline;
};

static const struct text_rule RULE_FULL_NAME = {0, 100, false};
static const struct text_rule RULE_BIO = {0, 1000, true};
static const struct text_rule RULE_COMMENT = {1, 2000, true};
static const struct text_rule RULE_ROOM_TITLE = {1, 100, false};
static const struct text_rule RULE_MESSAGE = {1, CMD__MESSAGE_MAX_CP, true};

void cmd__verr(json_t *errors, const char *field, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "detail", detail));
}

/* Decode one UTF-8 sequence at s[0..len); returns its length, or 0 if malformed. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t k;
    uint32_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) {
        k = 2, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        k = 3, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        k = 4, c &= 0x07;
    } else {
        return 0;
    }
    if (k > len)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[j] & 0x3F);
    }
    if ((k == 2 && c < 0x80) || (k == 3 && c < 0x800) || (k == 4 && c < 0x10000) || c > 0x10FFFF ||
        (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return k;
}

const char *cmd__text_fault(const char *s, size_t len, bool multiline, size_t *n_cp)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = utf8_next(p + i, len - i, &cp);
        if (k == 0)
            return "is not valid UTF-8";
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            if (!multiline)
                return "must not contain control characters";
            if (cp != '\n' && cp != '\t')
                return "must not contain control characters other than newline and tab";
        }
        i += k;
        n++;
    }
    *n_cp = n;
    return NULL;
}

/* Check one string value against @p rule; appends an error naming @p field. */
static void check_text(json_t *errors, const char *field, json_t *v, const struct text_rule *rule)
{
    size_t n_cp;
    if (!json_is_string(v)) {
        cmd__verr(errors, field, "must be a string");
        return;
    }
    const char *fault =
        cmd__text_fault(json_string_value(v), json_string_length(v), rule->multiline, &n_cp);
    if (fault)
        cmd__verr(errors, field, "%s", fault);
    else if (n_cp < rule->min_cp || n_cp > rule->max_cp)
        cmd__verr(errors, field, "must be %zu to %zu characters long (is %zu)", rule->min_cp,
                  rule->max_cp, n_cp);
}

/* Name every key of @p body not in the NULL-terminated @p known list. */
static void check_unknown(json_t *body, const char *const *known, json_t *errors)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, key) == 0;
        if (!ok)
            cmd__verr(errors, key, "is not a known field");
    }
}

static void check_username(json_t *errors, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (!v) {
        cmd__verr(errors, "username", "is required");
        return;
    }
    if (!s) {
        cmd__verr(errors, "username", "must be a string");
        return;
    }
    if (n < 3 || n > 32 ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789_.-") != n ||
        json_string_length(v) != n)
        cmd__verr(errors, "username", "must be 3 to 32 characters of A-Z, a-z, 0-9, _ . -");
}

static void check_email(json_t *errors, json_t *v)
{
    static const struct text_rule rule = {3, 254, false};
    const char *s = json_string_value(v);
    size_t before = json_array_size(errors);
    if (!v) {
        cmd__verr(errors, "email", "is required");
        return;
    }
    check_text(errors, "email", v, &rule);
    if (json_array_size(errors) != before)
        return;
    const char *at = strchr(s, '@');
    if (!at || at == s || at[1] == '\0' || strchr(at + 1, '@') || strpbrk(s, " \t"))
        cmd__verr(errors, "email", "must be an address with one @ and no spaces");
}

static void check_password(json_t *errors, json_t *v, size_t min_cp)
{
    const struct text_rule rule = {min_cp, 128, false};
    if (!v) {
        cmd__verr(errors, "password", "is required");
        return;
    }
    check_text(errors, "password", v, &rule);
}

void cmd__valid_register(json_t *body, json_t *errors)
{
    static const char *const known[] = {"username", "email", "password", NULL};
    check_unknown(body, known, errors);
    check_username(errors, json_object_get(body, "username"));
    check_email(errors, json_object_get(body, "email"));
    check_password(errors, json_object_get(body, "password"), 8);
}

void cmd__valid_login(json_t *body, json_t *errors)
{
    static const char *const known[] = {"username", "email", "password", NULL};
    static const struct text_rule rule = {1, 254, false};
    json_t *user = json_object_get(body, "username"), *email = json_object_get(body, "email");
    check_unknown(body, known, errors);
    if (!user && !email)
        cmd__verr(errors, "username", "username or email is required");
    if (user)
        check_text(errors, "username", user, &rule);
    if (email)
        check_text(errors, "email", email, &rule);
    check_password(errors, json_object_get(body, "password"), 1);
}

void cmd__valid_refresh(json_t *body, json_t *errors)
{
    static const char *const known[] = {"refresh_token", NULL};
    static const struct text_rule rule = {1, 256, false};
    json_t *v = json_object_get(body, "refresh_token");
    check_unknown(body, known, errors);
    if (!v)
        cmd__verr(errors, "refresh_token", "is required");
    else
        check_text(errors, "refresh_token", v, &rule);
}

/* The command side's character rules for a string or each string of an array (the schema
 * rules are checked already): no control characters, but newline and tab when @p multiline. */
static void check_chars(json_t *errors, const char *field, json_t *v, bool multiline)
{
    char item[64];
    size_t i, n_cp;
    json_t *e;
    const char *fault;

    if (json_is_string(v)) {
        fault = cmd__text_fault(json_string_value(v), json_string_length(v), multiline, &n_cp);
        if (fault != NULL)
            cmd__verr(errors, field, "%s", fault);
        return;
    }
    json_array_foreach(v, i, e) {
        if (json_is_string(e)) { /* the item's field name is made only for a fault */
            fault = cmd__text_fault(json_string_value(e), json_string_length(e), multiline, &n_cp);
            if (fault == NULL)
                continue;
        }
        snprintf(item, sizeof(item), "%s/%zu", field, i);
        check_chars(errors, item, e, multiline);
    }
}

/*
 * Recipe bodies carry the content fields of a recipe: those of the RecipeUpdated schema
 * (es/catalogue.h), each checked against its schema node (type, lengths, items, pattern)
 * and the character rules (description and steps may hold newlines and tabs). A create
 * must give every field RecipeCreated requires whose empty value ("" or []) the schema
 * refuses (title, ingredients, steps); the decider fills the others with that empty value.
 */
void cmd__valid_recipe(json_t *body, bool update, json_t *errors)
{
    const struct es_event_type *upd = es_catalogue_get(ES_TYPE_RECIPE_UPDATED);
    const struct es_event_type *cre = es_catalogue_get(ES_TYPE_RECIPE_CREATED);
    struct sp_errbuf eb;
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v) {
        if (es_event_type_field(upd, key) == NULL)
            cmd__verr(errors, key, "is not a known field");
    }
    if (update && json_object_size(body) == 0)
        cmd__verr(errors, "body", "must contain at least one recipe field");
    for (size_t i = 0; i < upd->n_fields; i++) {
        const struct es_field *f = &upd->fields[i], *fc = es_event_type_field(cre, f->name);
        const struct es_schema_node *s = f->schema;

        if ((v = json_object_get(body, f->name)) == NULL) {
            if (!update && fc != NULL && fc->required && (s->min_length > 0 || s->min_items > 0))
                cmd__verr(errors, f->name, "is required");
            continue;
        }
        sp_err_clear(&eb);
        if (es_value_check(s, v, f->name, &eb) != 0)
            cmd__verr(errors, eb.field, "%s", eb.msg);
        else
            check_chars(errors, f->name, v,
                        strcmp(f->name, "description") == 0 || strcmp(f->name, "steps") == 0);
    }
}

static void check_id(json_t *errors, const char *field, json_t *v)
{
    int64_t id;
    if (!json_is_string(v) || es_id_parse(json_string_value(v), &id) != 0)
        cmd__verr(errors, field, "must be a decimal id string");
}

void cmd__valid_profile(json_t *body, json_t *errors)
{
    static const char *const known[] = {"full_name", "bio", "avatar_media_id", NULL};
    json_t *v;
    check_unknown(body, known, errors);
    if (json_object_size(body) == 0)
        cmd__verr(errors, "body", "must contain at least one profile field");
    if ((v = json_object_get(body, "full_name")) && !json_is_null(v))
        check_text(errors, "full_name", v, &RULE_FULL_NAME);
    if ((v = json_object_get(body, "bio")) && !json_is_null(v))
        check_text(errors, "bio", v, &RULE_BIO);
    if ((v = json_object_get(body, "avatar_media_id")) && !json_is_null(v))
        check_id(errors, "avatar_media_id", v);
}

void cmd__valid_comment(json_t *body, json_t *errors)
{
    static const char *const known[] = {"content", NULL};
    json_t *v = json_object_get(body, "content");
    check_unknown(body, known, errors);
    if (!v)
        cmd__verr(errors, "content", "is required");
    else
        check_text(errors, "content", v, &RULE_COMMENT);
}

void cmd__valid_read(json_t *body, json_t *errors)
{
    static const char *const known[] = {"up_to_id", NULL};
    json_t *v = json_object_get(body, "up_to_id");
    check_unknown(body, known, errors);
    if (!v)
        cmd__verr(errors, "up_to_id", "is required");
    else
        check_id(errors, "up_to_id", v);
}

void cmd__valid_room_create(json_t *body, json_t *errors)
{
    static const char *const known[] = {"is_group", "member_ids", "title", NULL};
    json_t *is_group = json_object_get(body, "is_group"),
           *ids = json_object_get(body, "member_ids");
    json_t *title = json_object_get(body, "title"), *v;
    char field[40];
    size_t i;
    check_unknown(body, known, errors);
    if (!json_is_boolean(is_group))
        cmd__verr(errors, "is_group", is_group ? "must be true or false" : "is required");
    if (!json_is_array(ids) || json_array_size(ids) < 1 ||
        json_array_size(ids) > CMD__ROOM_MEMBERS_MAX) {
        cmd__verr(errors, "member_ids", "must be an array of 1 to %d user ids",
                  CMD__ROOM_MEMBERS_MAX);
        ids = NULL;
    }
    json_array_foreach(ids, i, v) {
        snprintf(field, sizeof(field), "member_ids[%zu]", i);
        check_id(errors, field, v);
        for (size_t j = 0; j < i && json_is_string(v); j++) {
            if (json_equal(v, json_array_get(ids, j))) {
                cmd__verr(errors, field, "repeats member_ids[%zu]", j);
                break;
            }
        }
    }
    if (title)
        check_text(errors, "title", title, &RULE_ROOM_TITLE);
    if (json_is_false(is_group) && title)
        cmd__verr(errors, "title", "a direct (1:1) room has no title");
    if (json_is_true(is_group) && !title)
        cmd__verr(errors, "title", "is required for a group");
}

void cmd__valid_room_update(json_t *body, json_t *errors)
{
    static const char *const known[] = {"title", "admin_id", NULL};
    json_t *v;
    check_unknown(body, known, errors);
    if (json_object_size(body) == 0)
        cmd__verr(errors, "body", "must contain title or admin_id");
    if ((v = json_object_get(body, "title")))
        check_text(errors, "title", v, &RULE_ROOM_TITLE);
    if ((v = json_object_get(body, "admin_id")))
        check_id(errors, "admin_id", v);
}

void cmd__valid_member(json_t *body, json_t *errors)
{
    static const char *const known[] = {"user_id", NULL};
    json_t *v = json_object_get(body, "user_id");
    check_unknown(body, known, errors);
    if (!v)
        cmd__verr(errors, "user_id", "is required");
    else
        check_id(errors, "user_id", v);
}

void cmd__valid_message(json_t *body, json_t *errors)
{
    static const char *const known[] = {"content", "txn_id", NULL};
    json_t *v = json_object_get(body, "content"), *t = json_object_get(body, "txn_id");
    const char *s = json_string_value(t);
    size_t n = json_string_length(t);
    check_unknown(body, known, errors);
    if (!v)
        cmd__verr(errors, "content", "is required");
    else
        check_text(errors, "content", v, &RULE_MESSAGE);
    if (!t) {
        cmd__verr(errors, "txn_id", "is required");
        return;
    }
    if (!s || n < 1 || n > CMD__TXN_ID_CHARS ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:-") != n)
        cmd__verr(errors, "txn_id", "must be 1 to %d characters of A-Z a-z 0-9 . _ ~ : -",
                  CMD__TXN_ID_CHARS);
}
