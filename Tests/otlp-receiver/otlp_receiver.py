#!/usr/bin/env python3
"""A minimal OTLP/gRPC trace receiver for the tracing test (TracingTests).

    otlp_receiver.py PORT OUT

Listens on 127.0.0.1:PORT for OpenTelemetry's TraceService/Export and
appends one JSON line per span to OUT: trace_id, span_id, parent_span_id,
name, its attributes, and the resource's service.name and parley.region. Prints "ready"
once listening. Stops on SIGTERM.
"""
import json
import signal
import time
import sys
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def attributes(resource):
    return {a.key: a.value.string_value for a in resource.attributes}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        with open(self.out, "a") as f:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource)
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        f.write(json.dumps({
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "service": resource.get("service.name", ""),
                            "region": resource.get("parley.region", ""),
                            "received_at": time.time(),
                            "attributes": {a.key: a.value.string_value or str(a.value.int_value) for a in span.attributes},
                        }) + "\n")
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(out), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
