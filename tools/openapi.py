"""OpenAPI 3.0 document for the mobile team, derived from gen/api.binpb.

No offline generator turns `google.api.http` rules into OpenAPI (the usual
one, protoc-gen-openapiv2, is Go), so this module reads the descriptor set
that tools/gen.py builds and writes what Envoy's gRPC-JSON transcoder
actually serves:

- one operation per HttpRule (additional bindings included); operationId
  `Service.Method`;
- AIP path templates such as `/v1/{name=users/*/devices/*}` become
  `/v1/users/{user}/devices/{device}`: one path parameter per wildcard, named
  after the resource pattern variable when a `google.api.resource` pattern
  matches, each with a pattern that forbids `/`;
- the request body follows `body` ("*" = the request minus path fields, or one
  field); every other request field is a query parameter (scalars, enums,
  scalar well-known types; nested messages in dotted form);
- schemas follow the proto3 JSON mapping with proto field names (snake_case,
  Envoy runs with preserve_proto_field_names): 64-bit integers as strings,
  enums as their names, Timestamp as date-time strings, FieldMask as a
  comma-separated string;
- errors: a default response shaped like google.rpc.Status (what Envoy's
  convert_grpc_status prints);
- bearer JWT security except on public methods (`security: []`), and a
  required `Idempotency-Key` header on mutating methods.

The output is sorted and has no timestamps, so it is byte-stable.

    python tools/openapi.py gen/api.binpb > gen/openapi.yaml
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message_factory

HTTP_VERBS = ("get", "put", "post", "delete", "patch")
STATUS_SCHEMA = "google.rpc.Status"
IDEMPOTENCY_PARAMETER = "IdempotencyKey"
# The idempotency key format of docs/CONVENTIONS.md.
IDEMPOTENCY_KEY_PATTERN = "^[A-Za-z0-9_.:-]{1,128}$"
SEGMENT_PATTERN = "^[^/]+$"

FieldDescriptor = descriptor.FieldDescriptor

# Well-known types whose JSON form is not an object of their fields.
WKT_SCHEMAS: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": 'Duration in seconds with an "s" suffix, e.g. "3.5s".',
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths, e.g. `full_name,address`.",
    },
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": "number", "format": "double", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "format": "float", "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "uint32", "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
}

SCALAR_SCHEMAS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    # proto3 JSON prints 64-bit integers as strings (JavaScript numbers lose
    # precision above 2^53; money minor units are int64).
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}

# google.api.FieldBehavior values (google/api/field_behavior.proto).
BEHAVIOR_REQUIRED = 2
BEHAVIOR_OUTPUT_ONLY = 3
BEHAVIOR_INPUT_ONLY = 4

_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class HttpBinding:
    """One HttpRule (or additional binding) of a method."""

    verb: str
    template: str
    body: str


@dataclass(frozen=True)
class PathParam:
    """A path parameter: OpenAPI name, the request field it fills, its slot."""

    name: str
    field_path: str
    description: str


@dataclass
class Api:
    """The descriptor set, loaded into its own pool with option extensions."""

    pool: descriptor_pool.DescriptorPool
    files: list[descriptor_pb2.FileDescriptorProto]
    comments: dict[str, str] = field(default_factory=dict)
    resource_patterns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._method_options = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName("google.protobuf.MethodOptions")
        )
        self._field_options = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName("google.protobuf.FieldOptions")
        )
        self._message_options = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName("google.protobuf.MessageOptions")
        )
        self._file_options = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName("google.protobuf.FileOptions")
        )
        # Typed Any: the stubs only accept extension handles of generated
        # modules, and these come from the private pool.
        self.http_ext: Any = self.pool.FindExtensionByName("google.api.http")
        self.policy_ext: Any = self.pool.FindExtensionByName("fintech.api.v1.method_policy")
        self.behavior_ext: Any = self.pool.FindExtensionByName("google.api.field_behavior")
        self.resource_ext: Any = self.pool.FindExtensionByName("google.api.resource")
        self.resource_def_ext: Any = self.pool.FindExtensionByName("google.api.resource_definition")
        for file in self.files:
            self._index_comments(file)
            self._index_resources(file)
        self.resource_patterns.sort()

    def _index_comments(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        """Map full names of messages, fields, enums, services and methods to
        their leading comments (the source info keeps paths, not names)."""
        by_path = {
            tuple(loc.path): _clean_comment(loc.leading_comments)
            for loc in file.source_code_info.location
            if loc.leading_comments.strip()
        }
        prefix = f"{file.package}." if file.package else ""

        def messages(
            protos: Any, path: tuple[int, ...], scope: str
        ) -> None:  # recursive over nested types
            for i, msg in enumerate(protos):
                mpath = (*path, i)
                full = f"{scope}{msg.name}"
                self._comment(full, by_path.get(mpath))
                for j, fld in enumerate(msg.field):
                    self._comment(f"{full}.{fld.name}", by_path.get((*mpath, 2, j)))
                for j, enum in enumerate(msg.enum_type):
                    self._enum_comments(enum, (*mpath, 4, j), f"{full}.", by_path)
                messages(msg.nested_type, (*mpath, 3), f"{full}.")

        messages(file.message_type, (4,), prefix)
        for i, enum in enumerate(file.enum_type):
            self._enum_comments(enum, (5, i), prefix, by_path)
        for i, svc in enumerate(file.service):
            full = f"{prefix}{svc.name}"
            self._comment(full, by_path.get((6, i)))
            for j, method in enumerate(svc.method):
                self._comment(f"{full}.{method.name}", by_path.get((6, i, 2, j)))

    def _enum_comments(
        self,
        enum: descriptor_pb2.EnumDescriptorProto,
        path: tuple[int, ...],
        scope: str,
        by_path: dict[tuple[int, ...], str],
    ) -> None:
        self._comment(f"{scope}{enum.name}", by_path.get(path))

    def _comment(self, full_name: str, text: str | None) -> None:
        if text:
            self.comments[full_name] = text

    def _index_resources(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        options = self._file_options.FromString(file.options.SerializeToString())
        for resource in options.Extensions[self.resource_def_ext]:
            self.resource_patterns.extend(resource.pattern)

        def walk(protos: Any) -> None:
            for msg in protos:
                msg_options = self._message_options.FromString(msg.options.SerializeToString())
                if msg_options.HasExtension(self.resource_ext):
                    self.resource_patterns.extend(msg_options.Extensions[self.resource_ext].pattern)
                walk(msg.nested_type)

        walk(file.message_type)

    def method_options(self, method: descriptor.MethodDescriptor) -> Any:
        return self._method_options.FromString(method.GetOptions().SerializeToString())

    def field_behaviors(self, fld: descriptor.FieldDescriptor) -> set[int]:
        options = self._field_options.FromString(fld.GetOptions().SerializeToString())
        return set(options.Extensions[self.behavior_ext])

    def services(self) -> Iterator[descriptor.ServiceDescriptor]:
        for file in sorted(self.files, key=lambda f: f.name):
            file_desc = self.pool.FindFileByName(file.name)
            for name in sorted(file_desc.services_by_name):
                yield file_desc.services_by_name[name]


def _clean_comment(text: str) -> str:
    """`// text` comments keep the space after the slashes; drop it per line."""
    return "\n".join(line.strip() for line in text.strip().splitlines())


def load(binpb: bytes) -> Api:
    """Load a FileDescriptorSet (with imports) into a private pool.

    A private pool (rather than the generated `_pb2` modules) keeps this
    independent of gen/, which may be stale or absent while regenerating.
    """
    fds = descriptor_pb2.FileDescriptorSet.FromString(binpb)
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    return Api(pool=pool, files=list(fds.file))


def http_bindings(api: Api, method: descriptor.MethodDescriptor) -> list[HttpBinding]:
    """Every HttpRule of a method: the main one, then additional bindings."""
    options = api.method_options(method)
    if not options.HasExtension(api.http_ext):
        return []
    rule = options.Extensions[api.http_ext]
    bindings = []
    for r in (rule, *rule.additional_bindings):
        kind = r.WhichOneof("pattern")
        if kind is None:
            continue
        if kind == "custom":
            bindings.append(HttpBinding(r.custom.kind.lower(), r.custom.path, r.body))
        else:
            bindings.append(HttpBinding(kind, getattr(r, kind), r.body))
    return bindings


def method_policy(api: Api, method: descriptor.MethodDescriptor) -> Any:
    return api.method_options(method).Extensions[api.policy_ext]


def _variable_names(segments: list[str], patterns: list[str]) -> list[str]:
    """Names for the wildcards of one template variable's segments.

    `users/*/devices/*` matches the resource pattern
    `users/{user}/devices/{device}` and yields ["user", "device"].
    """
    for pattern in patterns:
        parts = pattern.split("/")
        if len(parts) != len(segments):
            continue
        names = []
        for seg, part in zip(segments, parts, strict=True):
            if seg == "*" and part.startswith("{") and part.endswith("}"):
                names.append(part[1:-1])
            elif seg != part:
                break
        else:
            return names
    return []


def openapi_path(template: str, patterns: list[str]) -> tuple[str, list[PathParam]]:
    """Convert an HttpRule template into an OpenAPI path and its parameters."""
    params: list[PathParam] = []
    used: set[str] = set()

    def unique(name: str) -> str:
        candidate, n = name, 2
        while candidate in used:
            candidate, n = f"{name}_{n}", n + 1
        used.add(candidate)
        return candidate

    def replace(match: re.Match[str]) -> str:
        field_path, sub = match.group(1), match.group(2) or "*"
        segments = sub.split("/")
        if "**" in segments:
            # A multi-segment capture cannot be one OpenAPI parameter; it is
            # not used in these contracts.
            raise ValueError(f"'**' in {template} is not supported")
        names = _variable_names(segments, patterns)
        out = []
        wildcard = 0
        for seg in segments:
            if seg != "*":
                out.append(seg)
                continue
            base = names[wildcard] if names else field_path.replace(".", "_")
            if not names and segments.count("*") > 1:
                base = f"{base}_{wildcard + 1}"
            name = unique(base)
            wildcard += 1
            params.append(
                PathParam(
                    name=name,
                    field_path=field_path,
                    description=f"Segment {wildcard} of `{field_path}` (`{sub}`).",
                )
            )
            out.append("{" + name + "}")
        return "/".join(out)

    return _VARIABLE.sub(replace, template), params


def _template_fields(template: str) -> list[str]:
    return [m.group(1) for m in _VARIABLE.finditer(template)]


class SchemaBuilder:
    """components/schemas from message descriptors, added on demand."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref(self, full_name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{full_name}"}

    def message(
        self,
        msg: descriptor.Descriptor,
        *,
        exclude: frozenset[str] = frozenset(),
        name: str | None = None,
    ) -> dict[str, Any]:
        """Register `msg` (minus `exclude` fields) and return a $ref to it."""
        key = name or msg.full_name
        if msg.full_name in WKT_SCHEMAS and not exclude:
            return dict(WKT_SCHEMAS[msg.full_name])
        if key in self.schemas:
            return self.ref(key)
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        self.schemas[key] = schema  # registered first so recursion terminates
        comment = self.api.comments.get(msg.full_name)
        if comment:
            schema["description"] = comment
        required = []
        for fld in msg.fields:
            if fld.name in exclude:
                continue
            prop = self.field(fld)
            behaviors = self.api.field_behaviors(fld)
            if BEHAVIOR_OUTPUT_ONLY in behaviors:
                prop = (
                    {**prop, "readOnly": True}
                    if "$ref" not in prop
                    else {"allOf": [prop], "readOnly": True}
                )
            if BEHAVIOR_INPUT_ONLY in behaviors:
                prop = (
                    {**prop, "writeOnly": True}
                    if "$ref" not in prop
                    else {"allOf": [prop], "writeOnly": True}
                )
            text = self.api.comments.get(f"{msg.full_name}.{fld.name}")
            if fld.containing_oneof is not None:
                note = f"Member of oneof `{fld.containing_oneof.name}`: set at most one."
                text = f"{text}\n\n{note}" if text else note
            if text:
                prop = (
                    {**prop, "description": text}
                    if "$ref" not in prop
                    else {"allOf": [prop], "description": text}
                )
            schema["properties"][fld.name] = prop
            if BEHAVIOR_REQUIRED in behaviors:
                required.append(fld.name)
        if required:
            schema["required"] = sorted(required)
        return self.ref(key)

    def enum(self, enum: descriptor.EnumDescriptor) -> dict[str, Any]:
        key = enum.full_name
        if key not in self.schemas:
            schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in enum.values]}
            comment = self.api.comments.get(enum.full_name)
            if comment:
                schema["description"] = comment
            self.schemas[key] = schema
        return self.ref(key)

    def single(self, fld: descriptor.FieldDescriptor) -> dict[str, Any]:
        """Schema of one value of the field (ignoring repetition)."""
        if fld.message_type is not None:
            return self.message(fld.message_type)
        if fld.enum_type is not None:
            return self.enum(fld.enum_type)
        return dict(SCALAR_SCHEMAS[fld.type])

    def field(self, fld: descriptor.FieldDescriptor) -> dict[str, Any]:
        msg_type = fld.message_type
        if msg_type is not None and msg_type.GetOptions().map_entry:
            return {
                "type": "object",
                "additionalProperties": self.single(msg_type.fields_by_name["value"]),
            }
        if _is_repeated(fld):
            return {"type": "array", "items": self.single(fld)}
        return self.single(fld)


def _is_repeated(fld: descriptor.FieldDescriptor) -> bool:
    # `is_repeated` exists on newer runtimes; `label` is deprecated there.
    is_repeated = getattr(fld, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(getattr(fld, "label") == FieldDescriptor.LABEL_REPEATED)  # noqa: B009


def _query_parameters(
    builder: SchemaBuilder,
    msg: descriptor.Descriptor,
    prefix: str,
    skip: set[str],
    depth: int,
) -> list[dict[str, Any]]:
    """Query parameters for the fields of `msg` not bound to path or body.

    Scalars, enums and scalar well-known types map to one parameter each;
    nested messages are flattened with dots (the transcoder's convention),
    up to a small depth so recursive types terminate.
    """
    params: list[dict[str, Any]] = []
    for fld in msg.fields:
        path = f"{prefix}{fld.name}"
        if path in skip:
            continue
        msg_type = fld.message_type
        if msg_type is not None and msg_type.GetOptions().map_entry:
            continue  # maps cannot be expressed as query parameters
        if msg_type is not None and msg_type.full_name not in WKT_SCHEMAS:
            if depth > 0 and not _is_repeated(fld):
                params.extend(_query_parameters(builder, msg_type, f"{path}.", skip, depth - 1))
            continue
        if msg_type is not None and WKT_SCHEMAS[msg_type.full_name].get("type") in (
            None,
            "object",
            "array",
        ):
            continue
        param: dict[str, Any] = {
            "name": path,
            "in": "query",
            "required": False,
            "schema": builder.field(fld),
        }
        if _is_repeated(fld):
            param["style"] = "form"
            param["explode"] = True
        text = builder.api.comments.get(f"{msg.full_name}.{fld.name}")
        if text:
            param["description"] = text
        params.append(param)
    return params


def build(api: Api) -> dict[str, Any]:
    """The OpenAPI document as plain data."""
    builder = SchemaBuilder(api)
    paths: dict[str, dict[str, Any]] = {}
    tags = set()
    for service in api.services():
        for method in service.methods:
            policy = method_policy(api, method)
            bindings = http_bindings(api, method)
            for index, binding in enumerate(bindings):
                path, path_params = openapi_path(binding.template, api.resource_patterns)
                op = _operation(api, builder, service, method, policy, binding, path_params)
                if index:
                    op["operationId"] += f"_{index}"
                tags.add(service.name)
                verbs = paths.setdefault(path, {})
                if binding.verb in verbs:
                    raise ValueError(f"{binding.verb.upper()} {path} is bound twice")
                verbs[binding.verb] = op
    builder.schemas[STATUS_SCHEMA] = _status_schema()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Fintech mobile API",
            "version": "v1",
            "description": (
                "HTTPS/JSON API served by Envoy's gRPC-JSON transcoder. Generated from the "
                "google.api.http rules in proto/ by tools/openapi.py; do not edit. Field names "
                "are the proto names (snake_case); 64-bit integers are strings; enums are "
                "names; errors are google.rpc.Status."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in sorted(tags)],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "parameters": {
                IDEMPOTENCY_PARAMETER: {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "description": (
                        "Client-chosen key that makes the call safe to retry: the same key "
                        "and request return the stored first response; the same key with a "
                        "different request fails with ALREADY_EXISTS."
                    ),
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                }
            },
            "schemas": builder.schemas,
        },
    }


def _operation(
    api: Api,
    builder: SchemaBuilder,
    service: descriptor.ServiceDescriptor,
    method: descriptor.MethodDescriptor,
    policy: Any,
    binding: HttpBinding,
    path_params: list[PathParam],
) -> dict[str, Any]:
    request = method.input_type
    comment = api.comments.get(f"{service.full_name}.{method.name}", "")
    op: dict[str, Any] = {
        "operationId": f"{service.name}.{method.name}",
        "tags": [service.name],
        "x-grpc-method": f"/{service.full_name}/{method.name}",
    }
    if comment:
        op["summary"] = comment.splitlines()[0]
        op["description"] = comment
    parameters: list[dict[str, Any]] = [
        {
            "name": p.name,
            "in": "path",
            "required": True,
            "description": p.description,
            "schema": {"type": "string", "pattern": SEGMENT_PATTERN},
        }
        for p in path_params
    ]
    bound = set(_template_fields(binding.template))
    if binding.body == "*":
        top = frozenset(f for f in bound if "." not in f)
        name = f"{request.full_name}_Body" if top else None
        body_schema = builder.message(request, exclude=top, name=name)
        op["requestBody"] = _json_body(body_schema)
    elif binding.body:
        body_field = request.fields_by_name[binding.body]
        if body_field.message_type is not None and (
            body_field.message_type.full_name == "google.api.HttpBody"
        ):
            op["requestBody"] = {
                "required": True,
                "description": "Raw body, passed to the service byte for byte.",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        else:
            op["requestBody"] = _json_body(builder.field(body_field))
        bound.add(binding.body)
    if binding.body != "*":
        parameters.extend(_query_parameters(builder, request, "", bound, depth=2))
    if policy.mutating:
        parameters.append({"$ref": f"#/components/parameters/{IDEMPOTENCY_PARAMETER}"})
    if parameters:
        op["parameters"] = parameters
    if policy.public:
        op["security"] = []
    if policy.roles:
        op["x-roles"] = sorted(policy.roles)
    op["x-mutating"] = bool(policy.mutating)
    op["responses"] = {
        "200": _json_response("OK", builder.message(method.output_type)),
        "default": _json_response(
            "Error: google.rpc.Status with ErrorInfo (reason, domain) and, for invalid "
            "input, BadRequest field violations.",
            builder.ref(STATUS_SCHEMA),
        ),
    }
    return op


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "google.rpc.Status as printed by Envoy (convert_grpc_status).",
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "google.rpc.Code"},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "additionalProperties": True,
                    "description": (
                        "google.rpc.ErrorInfo {reason, domain, metadata}, "
                        "google.rpc.BadRequest {field_violations}, ..."
                    ),
                },
            },
        },
    }


def render(binpb: bytes) -> str:
    """The OpenAPI document as YAML text (sorted keys, stable)."""
    document = build(load(binpb))
    return yaml.safe_dump(
        document, sort_keys=True, default_flow_style=False, allow_unicode=True, width=100
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python tools/openapi.py gen/api.binpb", file=sys.stderr)
        return 2
    sys.stdout.write(render(Path(args[0]).read_bytes()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
