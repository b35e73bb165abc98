/*
 * Request validation per the README's field rules: every bad field becomes one
 * {"field","detail"} object appended to an errors array (RFC 9457 extension member
 * "errors"), so one answer names every problem. Lengths are in Unicode code points.
 */
#ifndef CMD_VALID_H
#define CMD_VALID_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/**
 * Check that @p len bytes at @p s are valid UTF-8 (RFC 3629: no overlongs, surrogates
 * or code points past U+10FFFF) without control characters (C0, DEL, C1), except "\n"
 * and "\t" when @p multiline.
 * @param[out] n_cp  code points counted
 * @return NULL if fine, else a static description of the fault
 */
const char *cmd__text_fault(const char *s, size_t len, bool multiline, size_t *n_cp);

/** Append {"field": @p field, "detail": formatted} to @p errors. */
void cmd__verr(json_t *errors, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Validate a register body {username, email, password}; faults go to @p errors. */
void cmd__valid_register(json_t *body, json_t *errors);

/** Validate a login body {username | email, password}. */
void cmd__valid_login(json_t *body, json_t *errors);

/** Validate a refresh body {refresh_token}. */
void cmd__valid_refresh(json_t *body, json_t *errors);

/**
 * Validate a recipe body. @p update: every field optional but at least one required;
 * otherwise title, ingredients and steps are required.
 */
void cmd__valid_recipe(json_t *body, bool update, json_t *errors);

/**
 * Validate a profile body {full_name?, bio?, avatar_media_id?}: at least one field;
 * full_name ≤ 100 and bio ≤ 1000 code points (bio may hold newlines and tabs),
 * avatar_media_id a decimal id string; each may be null (clears it).
 */
void cmd__valid_profile(json_t *body, json_t *errors);

/** Validate a comment body {content}: 1 to 2000 code points, newlines and tabs allowed. */
void cmd__valid_comment(json_t *body, json_t *errors);

/** Validate a notifications read body {up_to_id}: a decimal id string. */
void cmd__valid_read(json_t *body, json_t *errors);

#define CMD__ROOM_MEMBERS_MAX 1024 /* member_ids items at most; chat.max_members caps lower */
#define CMD__MESSAGE_MAX_CP   4000 /* code points of a chat message (MessageSent schema) */
#define CMD__TXN_ID_CHARS     64   /* characters of a txn_id (MessageSent schema) */

/**
 * Validate a room body {is_group, member_ids[], title?}: is_group a boolean; member_ids
 * 1 to CMD__ROOM_MEMBERS_MAX decimal id strings without repeats (the caller may be
 * listed or not); a group's title 1 to 100 code points is required, a direct room has
 * none. The member count against chat.max_members and a direct room's one other member
 * are checked by the handler, which knows the caller.
 */
void cmd__valid_room_create(json_t *body, json_t *errors);

/** Validate a room update {title?, admin_id?}: at least one; title 1 to 100 code points. */
void cmd__valid_room_update(json_t *body, json_t *errors);

/** Validate a member body {user_id}: a decimal id string. */
void cmd__valid_member(json_t *body, json_t *errors);

/**
 * Validate a message body {content, txn_id}: content 1 to CMD__MESSAGE_MAX_CP code points
 * (newlines and tabs allowed); txn_id 1 to CMD__TXN_ID_CHARS of [A-Za-z0-9._~:-].
 */
void cmd__valid_message(json_t *body, json_t *errors);

#endif
