"""An independent gRPC client for the EPP: Python's grpcio (the C-core stack, not grpc-js).

    python3 grpcio-interop.py <ext_proc host:port> <health host:port> <request path> <json body> <routing header>

Calls grpc.health.v1.Health/Check on both ports and runs one ext_proc Process exchange in
FULL_DUPLEX_STREAMED mode (request headers, then the whole body with end_of_stream, then
half-close), reading the routing header's value from the headers response. Messages are encoded and decoded here by hand (protobuf wire format) with grpcio's
generic stubs, so nothing is shared with the server's proto-loader code. Prints one JSON object:
{"health": [status, status], "destination": <routing header value or null>,
 "clear_route_cache": bool, "responses": n, "code": <final status name>}.
"""
import json
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):
    """A length-delimited field (wire type 2)."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def flag(num, value):
    """A varint field (wire type 0)."""
    return varint(num << 3) + varint(value)


def parse(buf):
    """Top-level fields of one message: {field number: [values]} (bytes for wire type 2)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unexpected wire type %d" % wt)
        out.setdefault(num, []).append(val)
    return out


def read_varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def header(key, value):
    # envoy.config.core.v3.HeaderValue: key = 1, raw_value = 3 (what current Envoys send)
    return field(1, field(1, key.encode()) + field(3, value.encode()))


def identity(b):
    return b


def health(target):
    with grpc.insecure_channel(target) as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=identity, response_deserializer=identity)
        reply = check(b"", timeout=10)  # HealthCheckRequest{service: ""}
        return parse(reply).get(1, [0])[0]  # HealthCheckResponse.status


def process(target, path, body, routing_header):
    headers = header(":method", "POST") + header(":path", path) + header("content-type", "application/json")
    # ProcessingRequest.request_headers (2) = HttpHeaders{headers (1) = HeaderMap{headers...}};
    # protocol_config (11) = {request_body_mode: 4, response_body_mode: 4} (FULL_DUPLEX_STREAMED)
    first = field(2, field(1, headers)) + field(11, flag(1, 4) + flag(2, 4))
    # ProcessingRequest.request_body (4) = HttpBody{body: 1, end_of_stream: 2}
    second = field(4, field(1, body.encode()) + flag(2, 1))
    with grpc.insecure_channel(target) as ch:
        call = ch.stream_stream("/envoy.service.ext_proc.v3.ExternalProcessor/Process", request_serializer=identity, response_deserializer=identity)
        replies = call(iter([first, second]), timeout=10)
        destination, clear, n = None, False, 0
        code = "OK"
        try:
            for reply in replies:
                n += 1
                msg = parse(reply)
                # ProcessingResponse.request_headers (1) → HeadersResponse.response (1) → CommonResponse
                for hr in msg.get(1, []):
                    for common in parse(hr).get(1, []):
                        c = parse(common)
                        clear = clear or c.get(5, [0])[0] == 1
                        for mutation in c.get(2, []):  # header_mutation
                            for option in parse(mutation).get(1, []):  # set_headers
                                for hv in parse(option).get(1, []):  # header
                                    h = parse(hv)
                                    if h.get(1, [b""])[0] == routing_header.encode():
                                        destination = (h.get(3) or h.get(2) or [b""])[0].decode()
        except grpc.RpcError as e:
            code = e.code().name
        return {"destination": destination, "clear_route_cache": clear, "responses": n, "code": code}


def main():
    grpc_target, health_target, path, body, routing_header = sys.argv[1:6]
    result = {"health": [health(grpc_target), health(health_target)]}
    result.update(process(grpc_target, path, body, routing_header))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
