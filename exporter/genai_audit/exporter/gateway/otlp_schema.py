"""The protobuf schemas the gateway parses OTLP trace and log requests with.

Copies of the OTLP ``.proto`` files, renamed into their own packages, with two rewrites:

* *shallow* (always): ``AnyValue.array_value`` and ``kvlist_value`` are ``bytes`` (the
  same wire format as the nested message), so parsing a request never descends into
  attribute values: the parser's recursion limit (100 levels in upb) cannot be reached
  by one deep attribute. ``nested_classes`` gives the ArrayValue / KeyValueList classes to
  parse those bytes one level at a time.
* *lenient*: every ``string`` field is ``bytes`` too, for requests with invalid UTF-8.
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

SHALLOW_PREFIX = "genai_audit_shallow"  # AnyValue's array/kvlist read as bytes
LENIENT_PREFIX = "genai_audit_lenient"  # ...and every string as bytes too
NESTED = ("array_value", "kvlist_value")
ANY_VALUE = "opentelemetry.proto.common.v1.AnyValue"
#: signal -> (its modules after common and resource, its export request's full name)
_SIGNALS = {
    "traces": ((trace_pb2, trace_service_pb2),
               "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"),
    "logs": ((logs_pb2, logs_service_pb2),
             "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest"),
}


@functools.cache
def request_class(*, lenient: bool, signal: str = "traces") -> type[Message]:
    """``ExportTraceServiceRequest`` (``signal="logs"``: ``ExportLogsServiceRequest``)
    whose ``AnyValue`` holds arrays and kvlists as bytes
    (parsed level by level, so nesting cannot exhaust the parser); ``lenient``: every
    ``string`` field read as bytes too (for invalid UTF-8)."""
    prefix = LENIENT_PREFIX if lenient else SHALLOW_PREFIX
    modules, request_name = _SIGNALS[signal]
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, *modules):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        proto.name = f"{prefix}/{proto.name}"
        proto.package = f"{prefix}.{proto.package}"
        deps = [f"{prefix}/{dep}" for dep in proto.dependency]
        del proto.dependency[:]
        proto.dependency.extend(deps)
        proto.ClearField("service")
        proto.ClearField("options")
        for message in proto.message_type:
            _rewrite(message, prefix, lenient)
        pool.Add(proto)
    descriptor = pool.FindMessageTypeByName(f"{prefix}.{request_name}")
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


@functools.cache
def nested_classes(any_value_name: str) -> dict[str, type[Message]]:
    """The ArrayValue and KeyValueList classes of the schema an ``AnyValue`` came from."""
    prefix = any_value_name.split(".", 1)[0]
    pool = request_class(lenient=prefix == LENIENT_PREFIX).DESCRIPTOR.file.pool
    base = f"{prefix}.opentelemetry.proto.common.v1."
    return {"array_value": message_factory.GetMessageClass(
                pool.FindMessageTypeByName(base + "ArrayValue")),
            "kvlist_value": message_factory.GetMessageClass(
                pool.FindMessageTypeByName(base + "KeyValueList"))}


def _rewrite(message: descriptor_pb2.DescriptorProto, prefix: str, lenient: bool) -> None:
    for fld in message.field:
        if message.name == "AnyValue" and fld.name in NESTED:
            fld.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
            fld.ClearField("type_name")
            continue
        if lenient and fld.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
            fld.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
        if fld.type_name.startswith(".opentelemetry."):
            fld.type_name = f".{prefix}{fld.type_name}"
    for nested in message.nested_type:
        _rewrite(nested, prefix, lenient)
