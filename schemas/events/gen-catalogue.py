#!/usr/bin/env python3
"""Generate the event catalogue's C tables from the JSON Schemas in schemas/events/.

The schemas are the one home of each event type: its name, version, stream category and
payload fields. This script compiles them into

  <out>/include/es/event_types.h   ES_EVENT_TYPE_LIST X-macro and enum es_type
  <out>/src/catalogue_gen.c        one struct es_event_type per type (es/catalogue.h)

at build time (CMake runs it whenever a schema changes), so the command side, every
projection, the replay tools and the tests read the same definitions. It accepts only the
JSON Schema 2020-12 keywords that event-store/src/catalogue.c enforces and stops with an
error naming the schema and keyword otherwise, so a schema can never say more than the code
checks. ECMA-262 patterns are translated to POSIX extended regular expressions (the subset
the schemas use: anchors, classes, quantifiers, escapes \\. \\$ \\s \\d).

Stockpot keywords (annotations that JSON Schema validators ignore):
  x-stockpot-stream     the stream category, e.g. "recipe" for stream recipe-<id>
  x-stockpot-stream-id  the payload field that must equal the stream's id (optional)

usage: gen-catalogue.py SCHEMA_DIR OUT_DIR
"""
import json
import os
import re
import sys

NODE_KEYWORDS = {"type", "minLength", "maxLength", "pattern", "format", "enum", "items",
                 "minItems", "maxItems", "$ref", "anyOf", "description"}
ROOT_KEYWORDS = {"$schema", "$id", "title", "description", "type", "$defs", "properties",
                 "required", "additionalProperties", "minProperties", "maxProperties",
                 "x-stockpot-stream", "x-stockpot-stream-id"}
TYPE_BITS = {"string": "ES_JSON_STRING", "null": "ES_JSON_NULL", "array": "ES_JSON_ARRAY",
             "integer": "ES_JSON_INTEGER", "boolean": "ES_JSON_BOOLEAN"}
FILE_RE = re.compile(r"^([A-Za-z0-9_]+)\.v([1-9][0-9]*)\.json$")


class SchemaError(Exception):
    pass


def c_string(s):
    out = []
    for ch in s:
        if ch in '\\"':
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.extend("\\%03o" % b for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def ere(pattern, where):
    """ECMA-262 pattern (the subset our schemas use) -> POSIX ERE."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= len(pattern):
                raise SchemaError(f"{where}: pattern ends with a backslash")
            nxt = pattern[i + 1]
            i += 2
            if nxt == "s":
                out.append("[:space:]" if in_class else "[[:space:]]")
            elif nxt == "d":
                out.append("0-9" if in_class else "[0-9]")
            elif nxt in ".$^*+?()[]{}|\\/-":
                out.append(nxt if in_class and nxt not in "]\\" else "\\" + nxt)
            else:
                raise SchemaError(f"{where}: pattern escape \\{nxt} is not supported")
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif ch == "(" and pattern[i + 1:i + 2] == "?":
            raise SchemaError(f"{where}: pattern groups (?...) are not supported")
        out.append(ch)
        i += 1
    return "".join(out)


class Gen:
    def __init__(self):
        self.nodes = []  # C definitions of struct es_schema_node, in dependency order
        self.by_body = {}  # definition body -> node name: identical nodes are emitted once
        self.enums = []

    def node(self, schema, defs, where):
        """Emit a struct es_schema_node for @schema; return its C name."""
        unknown = set(schema) - NODE_KEYWORDS
        if unknown:
            raise SchemaError(f"{where}: unsupported keyword(s) {sorted(unknown)}")
        if "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/$defs/") or ref[8:] not in defs or len(schema) > 2:
                raise SchemaError(f"{where}: only a bare \"#/$defs/<name>\" $ref is supported")
            return self.node(defs[ref[8:]], defs, where + "/" + ref)
        if "anyOf" in schema:
            # anyOf of single-type branches with disjoint types: one node allowing each.
            merged = {}
            for k, branch in enumerate(schema["anyOf"]):
                if "$ref" in branch:
                    branch = defs.get(branch["$ref"][8:], None) or {}
                t = branch.get("type")
                if not isinstance(t, str) or t in merged.get("_types", []):
                    raise SchemaError(f"{where}: anyOf branches must each have one distinct type")
                merged.setdefault("_types", []).append(t)
                for key, val in branch.items():
                    if key not in ("type", "description"):
                        merged[key] = val
            types = merged.pop("_types")
            merged["type"] = types
            return self.node(merged, defs, where)
        types = schema.get("type")
        if types is None:
            raise SchemaError(f"{where}: every property needs a type")
        types = [types] if isinstance(types, str) else types
        for t in types:
            if t not in TYPE_BITS:
                raise SchemaError(f"{where}: type {t!r} is not supported")
        if "format" in schema and schema["format"] != "date-time":
            raise SchemaError(f"{where}: format {schema['format']!r} is not supported")
        if "format" in schema and "pattern" not in schema:
            raise SchemaError(f"{where}: format date-time needs a pattern (formats only annotate)")
        items = "NULL"
        if "items" in schema:
            items = "&" + self.node(schema["items"], defs, where + "/items")
        enum = "NULL"
        if "enum" in schema:
            vals = schema["enum"]
            if not all(isinstance(v, str) for v in vals):
                raise SchemaError(f"{where}: only string enums are supported")
            enum = f"enum_{len(self.enums)}"
            self.enums.append(f"static const char *const {enum}[] = {{"
                              + ", ".join(c_string(v) for v in vals) + ", NULL};")
        pattern = c_string(ere(schema["pattern"], where)) if "pattern" in schema else "NULL"
        body = (
            f"    .types = {' | '.join(TYPE_BITS[t] for t in types)},\n"
            f"    .min_length = {schema.get('minLength', -1)},\n"
            f"    .max_length = {schema.get('maxLength', -1)},\n"
            f"    .pattern = {pattern},\n"
            f"    .enum_values = {enum},\n"
            f"    .min_items = {schema.get('minItems', -1)},\n"
            f"    .max_items = {schema.get('maxItems', -1)},\n"
            f"    .items = {items},\n")
        if body not in self.by_body:
            self.by_body[body] = f"node_{len(self.nodes)}"
            self.nodes.append(f"static const struct es_schema_node {self.by_body[body]} = {{\n"
                              + body + "};")
        return self.by_body[body]


def upper_snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).upper()


def load(schema_dir):
    types = []
    for fname in sorted(os.listdir(schema_dir)):
        if not fname.endswith(".json"):
            continue
        m = FILE_RE.match(fname)
        if not m:
            raise SchemaError(f"{fname}: schema files are named <Type>.v<N>.json")
        with open(os.path.join(schema_dir, fname), encoding="utf-8") as f:
            schema = json.load(f)
        types.append((m.group(1), int(m.group(2)), fname, schema))
    names = [t[0] for t in types]
    for n in names:
        if names.count(n) > 1:
            raise SchemaError(f"{n}: several versions need an upcaster first (not supported yet)")
    return types


def gen_type(gen, name, version, fname, schema):
    unknown = set(schema) - ROOT_KEYWORDS
    if unknown:
        raise SchemaError(f"{fname}: unsupported keyword(s) {sorted(unknown)}")
    if schema.get("type") != "object":
        raise SchemaError(f"{fname}: the payload must be of type object")
    if schema.get("additionalProperties", True) is not False:
        raise SchemaError(f"{fname}: additionalProperties must be false")
    category = schema.get("x-stockpot-stream")
    if not isinstance(category, str) or not re.fullmatch(r"[a-z0-9_]+", category):
        raise SchemaError(f"{fname}: x-stockpot-stream must name the stream category")
    props = schema.get("properties", {})
    required = schema.get("required", [])
    id_field = schema.get("x-stockpot-stream-id")
    if id_field is not None and id_field not in props:
        raise SchemaError(f"{fname}: x-stockpot-stream-id names no property")
    for r in required:
        if r not in props:
            raise SchemaError(f"{fname}: required field {r!r} is not a property")
    defs = schema.get("$defs", {})
    fields = []
    for pname, pschema in props.items():
        node = gen.node(pschema, defs, f"{fname}/properties/{pname}")
        fields.append(f"    {{{c_string(pname)}, &{node}, {'true' if pname in required else 'false'}}},")
    sym = upper_snake(name)
    fields_name = f"fields_{name}"
    body = []
    if fields:
        body.append(f"static const struct es_field {fields_name}[] = {{\n" + "\n".join(fields) + "\n};")
    body.append(
        f"static const struct es_event_type type_{name} = {{\n"
        f"    .type = ES_TYPE_{sym},\n"
        f"    .name = {c_string(name)},\n"
        f"    .version = {version},\n"
        f"    .dataschema = {c_string('schemas/events/' + fname)},\n"
        f"    .stream_category = {c_string(category)},\n"
        f"    .stream_id_field = {c_string(id_field) if id_field else 'NULL'},\n"
        f"    .fields = {fields_name if fields else 'NULL'},\n"
        f"    .n_fields = {len(fields)},\n"
        f"    .min_properties = {schema.get('minProperties', -1)},\n"
        f"    .max_properties = {schema.get('maxProperties', -1)},\n"
        f"}};")
    return sym, body


HEADER = """/* Generated by schemas/events/gen-catalogue.py from schemas/events/<Type>.v<N>.json: do not edit. */
"""


def write_if_changed(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    schema_dir, out_dir = sys.argv[1], sys.argv[2]
    try:
        types = load(schema_dir)
        gen = Gen()
        syms, bodies = [], []
        for name, version, fname, schema in types:
            sym, body = gen_type(gen, name, version, fname, schema)
            syms.append((sym, name))
            bodies.extend(body)
    except (SchemaError, ValueError, OSError) as e:
        sys.stderr.write(f"gen-catalogue: {e}\n")
        return 1

    h = [HEADER, "#ifndef ES_EVENT_TYPES_H", "#define ES_EVENT_TYPES_H", "",
         "/* X(SYMBOL, Name) for every event type of the catalogue, in name order. */",
         "#define ES_EVENT_TYPE_LIST(X) \\"]
    h += [f"    X({sym}, {name}) \\" for sym, name in syms]
    h += ["", "/** Event types of the catalogue; ES_TYPE_UNKNOWN for any other name. */",
          "enum es_type {", "    ES_TYPE_UNKNOWN = 0,"]
    h += [f"    ES_TYPE_{sym}," for sym, _ in syms]
    h += ["    ES_TYPE__COUNT", "};", "", "#endif", ""]
    write_if_changed(os.path.join(out_dir, "include", "es", "event_types.h"), "\n".join(h))

    c = [HEADER, "#include <stddef.h>", "", '#include "es/catalogue.h"', ""]
    c += gen.enums + [""] + gen.nodes + [""] + bodies + [""]
    c += ["const struct es_event_type *const es__catalogue[ES_TYPE__COUNT] = {",
          "    [ES_TYPE_UNKNOWN] = NULL,"]
    c += [f"    [ES_TYPE_{sym}] = &type_{name}," for sym, name in syms]
    c += ["};", ""]
    write_if_changed(os.path.join(out_dir, "src", "catalogue_gen.c"), "\n".join(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
