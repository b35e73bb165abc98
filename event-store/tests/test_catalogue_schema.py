#!/usr/bin/python3
"""The catalogue's C checks agree with a real JSON Schema 2020-12 validator.

For every event type: a valid sample, then mutations of each field (absent, null, the wrong
type, too short, too long, off-pattern, arrays too short, too long or with a bad element)
and an unknown field. Each payload is judged by python3-jsonschema (Debian's; run with
/usr/bin/python3) against schemas/events/<Type>.v1.json and by es_data_check through the
catalogue_check program; the test fails on any disagreement, and when a type of the
catalogue has no sample here (add one with the schema).

usage: test_catalogue_schema.py SCHEMA_DIR CATALOGUE_CHECK_BINARY
"""
import copy
import json
import os
import subprocess
import sys

import jsonschema

ID = "7301234567890"
HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
TIME = "2026-12-21T05:35:00.123456Z"
SAMPLES = {
    "UserRegistered": {"user_id": ID, "username": "chef_li", "email": "li@example.com",
                       "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"},
    "SessionStarted": {"session_id": ID, "user_id": ID, "refresh_hash": HASH, "expires_at": TIME},
    "SessionRefreshed": {"session_id": ID, "refresh_hash": HASH, "expires_at": TIME},
    "SessionRevoked": {"session_id": ID, "reason": "logout"},
    "RecipeCreated": {"recipe_id": ID, "author_id": ID, "title": "Crème brûlée",
                      "description": "", "ingredients": ["4 egg yolks"], "steps": ["Bake"],
                      "tags": ["dessert"], "image_media_ids": [], "language": "fr"},
    "RecipeUpdated": {"title": "Crème brûlée", "tags": ["x"], "language": "de"},
    "RecipeDeleted": {},
    "ProfileUpdated": {"full_name": "Li", "bio": None, "avatar_media_id": ID},
    "UserFollowed": {"user_id": ID, "followee_id": "7301234567891"},
    "UserUnfollowed": {"user_id": ID, "followee_id": "7301234567891"},
    "RecipeLiked": {"user_id": ID, "recipe_id": ID, "recipe_author_id": ID},
    "RecipeUnliked": {"user_id": ID, "recipe_id": ID, "recipe_author_id": ID},
    "RecipeCommented": {"comment_id": ID, "recipe_id": ID, "user_id": ID, "content": "Yum",
                        "recipe_author_id": ID},
    "CommentDeleted": {"comment_id": ID, "recipe_id": ID, "recipe_author_id": ID},
    "NotificationsRead": {"user_id": ID, "up_to_id": ID},
    "ConversationCreated": {"conversation_id": ID, "is_group": True, "title": "Supper club",
                            "creator_id": ID, "member_ids": [ID, "7301234567891"]},
    "ConversationUpdated": {"conversation_id": ID, "title": "Brunch", "admin_id": ID},
    "MemberAdded": {"conversation_id": ID, "user_id": ID, "added_by": ID},
    "MemberRemoved": {"conversation_id": ID, "user_id": ID, "removed_by": ID},
    "MessageSent": {"conversation_id": ID, "message_id": ID, "sender_id": ID,
                    "content": "See you at 8\nBring bread", "txn_id": "m.1733612345.1"},
    "MessagesRead": {"conversation_id": ID, "user_id": ID, "up_to_id": ID},
}
BAD_STRINGS = ["", "x", "X y", "0", "00", "abc", "ABC", "a@b", "a b@c", "$argon2i$",
               "2026-12-21T05:35:00Z", "1" * 20, "é" * 3]


def resolve(schema, prop):
    if "$ref" in prop:
        return schema["$defs"][prop["$ref"].split("/")[-1]]
    return prop


def mutations(schema, sample):
    yield "extra field", dict(sample, not_a_field="x")
    for name, prop in schema.get("properties", {}).items():
        prop = resolve(schema, prop)
        def with_value(v, why):
            d = copy.deepcopy(sample)
            d[name] = v
            return f"{name}: {why}", d
        if name in sample:
            d = copy.deepcopy(sample)
            del d[name]
            yield f"{name}: absent", d
        for v in (None, 7, True, "s", ["s"], {}):
            yield with_value(v, f"value {v!r}")
        for s in BAD_STRINGS:
            yield with_value(s, f"string {s!r}")
        if "maxLength" in prop:
            yield with_value("é" * prop["maxLength"], "max length")
            yield with_value("é" * (prop["maxLength"] + 1), "max length + 1")
        if prop.get("type") == "array":
            item = resolve(schema, prop.get("items", {}))
            good = ID if item.get("pattern", "").startswith("^[1-9]") else "ok"
            yield with_value([], "empty array")
            yield with_value([good] * prop.get("maxItems", 3), "max items")
            yield with_value([good] * (prop.get("maxItems", 3) + 1), "max items + 1")
            for bad in (None, 7, "", "0", "é" * (item.get("maxLength", 5) + 1)):
                yield with_value([good, bad], f"array element {bad!r}")


def main():
    schema_dir, binary = sys.argv[1], sys.argv[2]
    cases = []
    for fname in sorted(os.listdir(schema_dir)):
        if not fname.endswith(".json"):
            continue
        with open(os.path.join(schema_dir, fname), encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        etype = fname.split(".")[0]
        if etype not in SAMPLES:
            print(f"FAIL: no sample payload for {etype} in {__file__}")
            return 1
        cases.append((etype, "valid sample", SAMPLES[etype], validator))
        for why, data in mutations(schema, SAMPLES[etype]):
            cases.append((etype, why, data, validator))
    stdin = "".join(json.dumps({"type": t, "data": d}, ensure_ascii=False) + "\n"
                    for t, _, d, _ in cases)
    out = subprocess.run([binary], input=stdin.encode(), stdout=subprocess.PIPE, check=True)
    verdicts = out.stdout.decode().splitlines()
    assert len(verdicts) == len(cases), (len(verdicts), len(cases))
    disagree = 0
    for (etype, why, data, validator), verdict in zip(cases, verdicts):
        ref_ok = validator.is_valid(data)
        c_ok = verdict == "ok"
        if etype in SAMPLES and why == "valid sample" and not ref_ok:
            print(f"FAIL: the sample of {etype} is not valid: fix the test")
            disagree += 1
        elif ref_ok != c_ok:
            print(f"FAIL: {etype} {why}: jsonschema says {'valid' if ref_ok else 'invalid'}, "
                  f"the catalogue says {verdict!r}: {json.dumps(data, ensure_ascii=False)}")
            disagree += 1
    print(f"{len(cases)} payloads of {len(SAMPLES)} types judged; {disagree} disagreements")
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
