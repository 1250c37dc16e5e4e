#!/usr/bin/env python3
"""A Parley client written from docs/PROTOCOL.md and proto/parley/client.proto
alone: Python's standard library, protobuf encoded by hand, no SDK.

It is the honest check that the page and the server agree. Run against a
real region's gate (ProtocolClientTests does):

    parley_protocol_client.py HOST PORT ALICE_TOKEN BOB_TOKEN [PLATFORM_URL SERVICE_TOKEN [LONG_POLL_URL]]

With PARLEY_CA_FILE set (the cluster's ca.pem), the gate's TCP port is
spoken in TLS, its certificate checked against that authority and the host,
and the long-poll URL is https:// ("Transport security").

and walks through what the page promises, exiting 1 on the first broken
promise: sign-in answers with the request's id; a fresh token on the open
connection is taken and a forged one refused; sends are acknowledged and
pushed with positions the cursor rules accept; a device that was away
syncs exactly what it missed; pipelined requests are answered in order; a
retried send is a duplicate; the hidden/replaces rules leave one copy
shown; push tokens and mutes are acknowledged and bad mutes refused;
friends, blocks, roles and group settings work with their refusal codes;
attachments, typing notices, deletion for one user and the conversation
list behave as "Messages" says; bad
frames and bad tokens get their documented codes. With a platform API
(docs/PLATFORM.md): a notice to bob arrives as a message from the service's
account, cannot be answered, and the API's errors are JSON naming the field.
With a long-poll URL: a session signs in, sends, is pushed to, gets a lost
poll answer again, and ends with its error on bad bytes.
"""
import json
import os
import socket
import ssl
import struct
import sys
import time
import urllib.error
import urllib.request

# ---- transport security ("Transport security"): TLS when the cluster's authority is given

TLS = None
if os.environ.get("PARLEY_CA_FILE"):
    TLS = ssl.create_default_context(cafile=os.environ["PARLEY_CA_FILE"])


def open_socket(host, port):
    """A connection to the gate's TCP port: in TLS, checking the certificate names `host`."""
    sock = socket.create_connection((host, port), timeout=15)
    return TLS.wrap_socket(sock, server_hostname=host) if TLS else sock


# ---- protobuf wire format (https://protobuf.dev/programming-guides/encoding/)


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value) if value else b""


def field_bytes(number, data):
    if isinstance(data, str):
        data = data.encode()
    return varint((number << 3) | 2) + varint(len(data)) + data


def decode(data):
    """Fields by number: a list of ints (varint) or bytes (length-delimited)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(data, i)
        elif wire == 2:
            length, i = read_varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def read_varint(data, i):
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def one(fields, number, default=None):
    return fields.get(number, [default])[0]


def text(fields, number):
    return one(fields, number, b"").decode()


# ---- Frame (client.proto field numbers)

AUTH, AUTH_OK, SEND, SEND_ACK, PUSH, SYNC, SYNC_BATCH = 2, 3, 4, 5, 6, 7, 8
HEARTBEAT, ERROR, HISTORY, HISTORY_PAGE = 11, 12, 15, 16
CHANGE_ACK, REGISTER_PUSH, MUTE = 24, 27, 28
CREATE_GROUP, GROUP_CREATED = 13, 14
FRIEND_REQUEST, FRIEND_RESPOND, BLOCK, FRIENDS, FRIEND_LIST = 29, 30, 32, 34, 35
UPDATE_GROUP, UPDATE_MEMBER, MEMBERS, MEMBER_LIST, GROUP_INFO, GROUP = 36, 37, 39, 40, 41, 42
GROUP_NAME, GROUP_DISSOLVED, MEMBER_ROLE = 1, 7, 1  # GroupField, MemberField
DELETE, TYPING, TYPING_NOTICE, CONVERSATIONS, CONVERSATION_LIST = 43, 46, 47, 48, 49
RECALL, MEMBER_MUTED_UNTIL = 20, 3
REVOKE_TOKENS = 52
MESSAGE_POSTED = 11  # Event.kind


def frame(request_id, body_number, body):
    return field_varint(1, request_id) + field_bytes(body_number, body)


def auth(token, device, session):
    ids = b"".join(field_bytes(3, field_bytes(1, o) + field_varint(2, s)) for o, s in sorted(session.items()))
    return field_bytes(1, token) + field_bytes(2, device) + ids


def send(client_msg_id, to_user, body):
    return field_bytes(1, client_msg_id) + field_bytes(2, to_user) + field_bytes(4, body)


def sync_request(cursor):
    positions = b"".join(field_bytes(1, field_bytes(1, o) + field_varint(2, s)) for o, s in sorted(cursor.items()))
    return positions


def parse_frame(payload):
    fields = decode(payload)
    request_id = one(fields, 1, 0)
    for number, values in fields.items():
        if number != 1:
            return request_id, number, decode(values[0])
    raise ValueError("a frame with no body")


def parse_push(fields):
    position = decode(one(fields, 1, b""))
    event = decode(one(fields, 2, b""))
    posted = decode(event[MESSAGE_POSTED][0]) if MESSAGE_POSTED in event else None
    return text(position, 1), one(position, 2, 0), posted


# ---- a device


class Failed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failed(what)


class Device:
    """One connection, with the cursor and the shown messages the page asks a device to keep."""

    def __init__(self, host, port, token, device_id, cursor=None, shown=None, session=None, keeps_cursor=True):
        self.sock = open_socket(host, port)
        self.buffer = b""
        self.next_id = 1
        self.cursor = dict(cursor or {})    # origin -> last user_seq processed
        self.shown = list(shown or [])      # [(message_id, body)] in the order shown
        self.origins = {}                   # message_id -> (sender, conversation_id)
        self.session = dict(session or {})  # origin -> newest event seq written or received
        self.gaps = 0
        self.typing = []                    # typing notices received: (conversation, user, typing)
        self.behind = False       # a live push showed a gap: sync once the current request is answered
        self.keeps_cursor = keeps_cursor  # False: a device that only sends, and ignores its pushes
        answer = self.request(AUTH, auth(token, device_id, self.session))
        check(answer[1] == AUTH_OK, f"auth answered {answer}")
        self.user = text(answer[2], 1)
        self.region = text(answer[2], 2)

    def write(self, payload):
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def read(self):
        while len(self.buffer) < 4 or len(self.buffer) < 4 + struct.unpack(">I", self.buffer[:4])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed by the gate")
            self.buffer += chunk
        length = struct.unpack(">I", self.buffer[:4])[0]
        payload, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
        return parse_frame(payload)

    def request(self, body_number, body):
        return self.pipeline([(body_number, body)])[0]

    def pipeline(self, requests):
        """Sends every request at once; returns the answers, checking they come in order."""
        ids = list(range(self.next_id, self.next_id + len(requests)))
        self.next_id += len(requests)
        self.sock.sendall(b"".join(
            struct.pack(">I", len(f)) + f for f in (frame(i, n, b) for i, (n, b) in zip(ids, requests))))
        answers = []
        while len(answers) < len(ids):
            request_id, number, fields = self.read()
            if request_id == 0 and number == PUSH:
                self.accept(fields, live=True)
                continue
            if request_id == 0 and number == TYPING_NOTICE:     # ephemeral, outside the cursor
                self.typing.append((text(fields, 1), text(fields, 2), one(fields, 3, 0)))
                continue
            check(request_id == ids[len(answers)],
                  f"answer {request_id} ({number}: {fields}) out of order, expected {ids[len(answers)]}")
            if number == SEND_ACK:
                event = decode(one(fields, 3, b""))
                self.saw(text(event, 1), one(event, 2, 0))
            answers.append((request_id, number, fields))
        if self.behind:
            self.behind = False
            self.sync()
        return answers

    def saw(self, origin, seq):
        self.session[origin] = max(self.session.get(origin, 0), seq)

    def accept(self, push, live):
        """The cursor rules of docs/PROTOCOL.md, then the rules for messages accepted twice."""
        if not self.keeps_cursor:
            return
        origin, user_seq, posted = parse_push(push)
        event = decode(one(push, 2, b""))
        self.saw(text(event, 1), one(event, 2, 0))
        have = self.cursor.get(origin, 0)
        if user_seq <= have:
            return
        if user_seq > have + 1:
            check(live, f"sync gave a gap: {origin} {have} -> {user_seq}")
            self.gaps += 1
            self.behind = True
            return
        self.cursor[origin] = user_seq
        if posted is not None and not one(posted, 9, 0):      # hidden: never shown
            replaced = {r.decode() for r in posted.get(10, [])}
            self.shown = [m for m in self.shown if m[0] not in replaced]
            self.shown.append((text(posted, 1), text(posted, 6)))
            self.origins[text(posted, 1)] = (text(posted, 3), text(posted, 2))

    def sync(self):
        while True:
            _, number, batch = self.request(SYNC, sync_request(self.cursor))
            check(number == SYNC_BATCH, f"sync answered {number}")
            for push in batch.get(1, []):
                self.accept(decode(push), live=False)
            if not one(batch, 2, 0):
                return

    def wait_for(self, body):
        """Reads pushes (answering nothing) until a message with this body is shown."""
        self.sock.settimeout(15)
        while not any(b == body for _, b in self.shown):
            request_id, number, fields = self.read()
            if request_id == 0 and number == TYPING_NOTICE:
                self.typing.append((text(fields, 1), text(fields, 2), one(fields, 3, 0)))
                continue
            check(request_id == 0 and number == PUSH, f"unexpected frame {number}")
            self.accept(fields, live=True)
            if self.behind:
                self.behind = False
                self.sync()

    def close(self):
        self.sock.close()


def check_messages(alice, bob, report):
    """Media by reference, typing, delete for me and the conversation list ("Messages")."""
    photo = field_varint(1, 1) + field_bytes(2, "https://cdn.example/a.jpg") + field_varint(3, 1000) + field_bytes(4, "image/jpeg")
    _, number, ack = alice.request(SEND, send("photo-1", "bob", "") + field_bytes(6, photo))
    check(number == SEND_ACK, f"a photo send answered {number}")
    photo_id = text(ack, 2)
    bad = field_varint(1, 1) + field_bytes(2, "ftp://cdn.example/a.jpg") + field_bytes(4, "image/jpeg")
    check(refused(alice, SEND, send("photo-2", "bob", "") + field_bytes(6, bad)) == 23, "an ftp url: 23")
    conversation = "d:alice:bob"
    _, number, _ = bob.request(TYPING, field_bytes(1, conversation) + field_varint(2, 1))
    check(number == CHANGE_ACK, f"typing answered {number}")
    check(refused(bob, TYPING, field_bytes(1, conversation) + field_varint(2, 1)) == 35, "typing again at once: 35")
    alice.request(HEARTBEAT, field_varint(1, 1))     # reads what was pushed meanwhile
    check(("d:alice:bob", "bob", 1) in alice.typing, f"alice saw bob typing: {alice.typing}")
    _, number, _ = alice.request(DELETE, field_bytes(1, photo_id))
    check(number == CHANGE_ACK, f"delete for me answered {number}")
    _, number, page = alice.request(HISTORY, field_bytes(1, conversation) + field_varint(3, 200))
    ids = [text(decode(one(decode(m), MESSAGE_POSTED, b"")), 1) for m in page.get(1, [])]
    check(number == HISTORY_PAGE and photo_id not in ids, "deleted for alice: not in her history")
    _, number, page = bob.request(HISTORY, field_bytes(1, conversation) + field_varint(3, 200))
    ids = [text(decode(one(decode(m), MESSAGE_POSTED, b"")), 1) for m in page.get(1, [])]
    check(photo_id in ids, "kept for bob")
    # The recall window (the test runs the region with --recall-window-ms=1000): 34 once it passed.
    _, _, late = bob.request(SEND, send("late-1", "alice", "recalled too late"))
    time.sleep(1.5)     # the passing of the window is what is checked
    check(refused(bob, RECALL, field_bytes(1, text(late, 2))) == 34, "a recall after the window: 34")
    _, number, listed = bob.request(CONVERSATIONS, b"")
    names = [text(decode(c), 1) for c in listed.get(1, [])]
    check(number == CONVERSATION_LIST and conversation in names, f"bob's conversations: {names}")
    report["messagesChecked"] = True


def refused(device, number, body):
    """The error code a request is answered with (0 when it is not refused)."""
    _, answer, fields = device.request(number, body)
    return one(fields, 1, 0) if answer == ERROR else 0


def check_social(alice, bob, report):
    """Friends, blocks and groups as docs/PROTOCOL.md's "Friends" and "Groups" describe them."""
    friend = lambda user, greeting="": field_bytes(1, user) + field_bytes(2, greeting)
    check(refused(alice, FRIEND_REQUEST, friend("alice")) == 23, "a friend request to yourself: 23")
    check(refused(alice, FRIEND_REQUEST, friend("nobody.py")) == 20, "a friend request to nobody: 20")
    _, number, ack = alice.request(FRIEND_REQUEST, friend("bob", "hello from python"))
    check(number == CHANGE_ACK and one(ack, 1) is not None, f"friend_request answered {number} {ack}")
    _, number, _ = bob.request(FRIEND_RESPOND, field_bytes(1, "alice") + field_varint(2, 1))
    check(number == CHANGE_ACK, f"friend_respond answered {number}")
    check(refused(bob, FRIEND_RESPOND, field_bytes(1, "alice") + field_varint(2, 1)) == 28, "no request waits any more: 28")
    _, number, friends = bob.request(FRIENDS, b"")
    listed = [decode(f) for f in friends.get(1, [])]
    check(number == FRIEND_LIST and [(text(f, 1), one(f, 2, 0)) for f in listed] == [("alice", 1)], f"bob's friends: {listed}")
    # A block: the blocked user's send is refused with 27, then allowed again.
    bob.request(BLOCK, field_bytes(1, "alice") + field_varint(2, 1))
    check(refused(alice, SEND, send("blocked-1", "bob", "blocked?")) == 27, "a send to someone who blocked you: 27")
    bob.request(BLOCK, field_bytes(1, "alice") + field_varint(2, 0))
    _, number, _ = alice.request(SEND, send("blocked-2", "bob", "unblocked"))
    check(number == SEND_ACK, f"after the unblock the send is answered {number}")

    # A group: a member may not rename it; an admin may; dissolved, it takes no messages.
    _, number, created = alice.request(CREATE_GROUP, field_bytes(1, "py group") + field_bytes(2, "bob"))
    check(number == GROUP_CREATED, f"create_group answered {number}")
    group = text(created, 1)
    rename = lambda name: field_bytes(1, group) + field_varint(2, GROUP_NAME) + field_bytes(3, name)
    check(refused(bob, UPDATE_GROUP, rename("bob's")) == 25, "a plain member renames: 25")
    check(refused(bob, UPDATE_GROUP, field_bytes(1, group) + field_varint(2, 99) + field_bytes(3, "x")) == 23, "an unknown field: 23")
    check(refused(bob, UPDATE_GROUP, field_bytes(1, "no-such-group") + field_varint(2, GROUP_NAME) + field_bytes(3, "x")) == 22,
          "an unknown group: 22")
    # Its region allows groups of at most 3 (--max-group-members=3): a fourth member is refused (26)
    # before the names are even looked up.
    too_many = field_bytes(1, "crowd") + b"".join(field_bytes(2, name) for name in ["bob", "x1", "x2", "x3"])
    check(refused(alice, CREATE_GROUP, too_many) == 26, "a group over its maximum size: 26")
    _, _, solo = alice.request(CREATE_GROUP, field_bytes(1, "alice alone"))
    solo_send = field_bytes(1, "not-a-member") + field_bytes(3, text(solo, 1)) + field_bytes(4, "let me in")
    check(refused(bob, SEND, solo_send) == 21, "a send to a group one is not in: 21")
    # A muted member may not send (33) until unmuted.
    mute = lambda until: field_bytes(1, group) + field_bytes(2, "bob") + field_varint(3, MEMBER_MUTED_UNTIL) + field_bytes(4, until)
    alice.request(UPDATE_MEMBER, mute(str(int(time.time() * 1000) + 600_000)))
    check(refused(bob, SEND, field_bytes(1, "muted-1") + field_bytes(3, group) + field_bytes(4, "hm")) == 33, "a muted member sends: 33")
    alice.request(UPDATE_MEMBER, mute(""))
    _, number, _ = bob.request(SEND, field_bytes(1, "muted-2") + field_bytes(3, group) + field_bytes(4, "unmuted"))
    check(number == SEND_ACK, f"unmuted, the send is answered {number}")
    _, number, _ = alice.request(UPDATE_MEMBER, field_bytes(1, group) + field_bytes(2, "bob") + field_varint(3, MEMBER_ROLE) + field_bytes(4, "admin"))
    check(number == CHANGE_ACK, f"update_member answered {number}")
    _, number, _ = bob.request(UPDATE_GROUP, rename("renamed by an admin"))
    check(number == CHANGE_ACK, f"an admin's rename answered {number}")
    _, number, info = bob.request(GROUP_INFO, field_bytes(1, group))
    check(number == GROUP and text(info, 2) == "renamed by an admin" and text(info, 3) == "alice", f"group_info: {info}")
    _, number, members = bob.request(MEMBERS, field_bytes(1, group))
    roles = [(text(decode(m), 1), text(decode(m), 2)) for m in members.get(1, [])]
    check(number == MEMBER_LIST and roles == [("alice", "owner"), ("bob", "admin")], f"members: {roles}")
    check(refused(bob, UPDATE_GROUP, field_bytes(1, group) + field_varint(2, GROUP_DISSOLVED) + field_bytes(3, "1")) == 25,
          "an admin dissolves: 25")
    alice.request(UPDATE_GROUP, field_bytes(1, group) + field_varint(2, GROUP_DISSOLVED) + field_bytes(3, "1"))
    group_send = field_bytes(1, "in-dissolved") + field_bytes(3, group) + field_bytes(4, "anyone?")
    check(refused(bob, SEND, group_send) == 29, "a send to a dissolved group: 29")
    report["socialChecked"] = True


def error_code_on(host, port, payload):
    """Writes raw bytes and returns the error code the gate closes the connection with."""
    sock = open_socket(host, port)
    sock.sendall(payload)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    check(len(data) >= 4, "the gate closed without an error frame")
    length = struct.unpack(">I", data[:4])[0]
    _, number, fields = parse_frame(data[4:4 + length])
    check(number == ERROR, f"expected an error frame, got {number}")
    return one(fields, 1, 0)


def platform_call(url, token, body):
    """POST to the platform API: (HTTP status, JSON body)."""
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15, context=TLS if url.startswith("https:") else None) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def check_notices(platform, service_token, alice, bob, report):
    """docs/PLATFORM.md and PROTOCOL.md, "Notices from services"."""
    notices = platform + "/notices"
    status, body = platform_call(notices, None, '{"notice_id": "py-1", "to": ["bob"], "text": "x"}')
    check(status == 401 and body["error"]["code"] == "unauthorized", f"no token: {status} {body}")
    status, body = platform_call(notices, service_token, '{"notice_id": "py-1", "to": "bob", "text": "x"}')
    check(status == 400 and body["error"]["field"] == "to", f"to not a list: {status} {body}")
    status, body = platform_call(notices, service_token, '{"notice_id": "py-1", "to": ["bob", "nobody-py"], "text": "Your parcel is here"}')
    check(status == 200 and [r["status"] for r in body["results"]] == ["posted", "unknown_user"], f"notice: {status} {body}")
    bob.wait_for("Your parcel is here")
    message_id = next(m for m, b in bob.shown if b == "Your parcel is here")
    sender, conversation = bob.origins[message_id]
    check(sender.startswith("~") and conversation == f"d:bob:{sender}", f"a notice from {sender} in {conversation}")
    status, body = platform_call(notices, service_token, '{"notice_id": "py-1", "to": ["bob"], "text": "Your parcel is here"}')
    check(status == 200 and body["results"][0]["status"] == "duplicate", f"a retried notice: {status} {body}")
    _, number, error = bob.request(SEND, send("reply-1", sender, "thanks"))
    check(number == ERROR and one(error, 1, 0) == 20, f"a reply to {sender}: {number} {error}")
    report["noticeFrom"] = sender


def long_poll(url, path, session=None, body=None):
    """One long-poll request: (HTTP status, session, Parley-Last, [(request_id, body_number, fields)])."""
    request = urllib.request.Request(url + path, data=body, method="POST" if body is not None else "GET")
    if session:
        request.add_header("Parley-Session", session)
    if body is not None:
        request.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(request, timeout=30, context=TLS if url.startswith("https:") else None) as answer:
            status, headers, data = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        status, headers, data = error.code, error.headers, error.read()
    frames = []
    while len(data) >= 4:
        length = struct.unpack(">I", data[:4])[0]
        frames.append(parse_frame(data[4:4 + length]))
        data = data[4 + length:]
    last = headers.get("Parley-Last")
    return status, headers.get("Parley-Session"), int(last) if last is not None else None, frames


def framed(request_id, body_number, body):
    payload = frame(request_id, body_number, body)
    return struct.pack(">I", len(payload)) + payload


def check_long_poll(url, token, bob, report):
    """docs/PROTOCOL.md, "Long-poll"."""
    status, session, _, _ = long_poll(url, "/send", body=framed(1, AUTH, auth(token, "pylp", {})))
    check(status == 202 and session, f"long-poll sign-in answered {status}")
    status, _, last, frames = long_poll(url, f"/poll?after=0", session)
    check(status == 200 and last == 1 and frames[0][1] == AUTH_OK and frames[0][0] == 1, f"first poll: {status} {last} {frames}")
    status, _, again, repeated = long_poll(url, f"/poll?after=0", session)
    check(again == 1 and repeated == frames, "a poll after 0 again gets the same frame")
    status, _, _, _ = long_poll(url, "/send", session, framed(2, SEND, send("lp-1", "bob", "over long-poll")))
    check(status == 202, f"long-poll send answered {status}")
    answers = []
    while not any(n == SEND_ACK for _, n, _ in answers):
        status, _, last, more = long_poll(url, f"/poll?after={last}", session)
        check(status == 200, f"poll answered {status}")
        answers += more
    check(next(r for r, n, _ in answers if n == SEND_ACK) == 2, "the send's answer carries its request id")
    bob.wait_for("over long-poll")
    long_poll(url, "/send", session, struct.pack(">I", 3) + b"\xff\xff\xff")
    codes = []
    while True:
        status, _, next_last, more = long_poll(url, f"/poll?after={last}", session)
        if status == 410:
            break
        check(status == 200, f"poll answered {status}")
        codes += [one(fields, 1, 0) for _, n, fields in more if n == ERROR]
        last = next_last
    check(codes == [1], f"bad bytes end the session with malformed (1): {codes}")
    report["longPoll"] = "ok"


def check_limits(host, port, token, report):
    """A device over its request limit ("Limits"): each request over it is answered in its
    turn with rate_limited (35) and retry_after_ms; the same send passes after that wait."""
    flood = Device(host, port, token, "flood", keeps_cursor=False)
    answers = flood.pipeline([(SEND, send(f"flood-{i}", "bob", f"flood {i}")) for i in range(400)])
    refusals = [(i, fields) for i, (_, number, fields) in enumerate(answers) if number == ERROR]
    acked = sum(1 for _, number, _ in answers if number == SEND_ACK)
    check(refusals and acked + len(refusals) == 400, f"400 sends over the limit: {acked} acknowledged, {len(refusals)} refused")
    check(all(one(fields, 1, 0) == 35 and one(fields, 3, 0) > 0 for _, fields in refusals),
          f"each refusal is 35 with retry_after_ms: {refusals[:2]}")
    index, fields = refusals[-1]
    time.sleep(one(fields, 3, 0) / 1000)
    _, number, ack = flood.request(SEND, send(f"flood-{index}", "bob", f"flood {index}"))
    check(number == SEND_ACK and text(ack, 1) == f"flood-{index}", f"the refused send after its wait: {number} {ack}")
    report["rateLimited"] = len(refusals)
    flood.close()


def check_revocation(host, port, token, alice, report):
    """Signing a device out ("Sessions and tokens"): its open connection is told token_revoked (18)
    and closed, and the token it had is refused for it from then on."""
    gone = Device(host, port, token, "gone", keeps_cursor=False)
    _, number, _ = alice.request(REVOKE_TOKENS, field_bytes(1, "gone"))
    check(number == CHANGE_ACK, f"revoke_tokens answered {number}")
    codes = []
    try:
        while True:
            _, number, fields = gone.read()
            if number == ERROR:
                codes.append(one(fields, 1, 0))
    except EOFError:
        pass
    check(codes[-1:] == [18], f"the signed-out device is told token_revoked and closed: {codes}")
    signing_in = frame(1, AUTH, auth(token, "gone", {}))
    report["revokedCode"] = error_code_on(host, port, struct.pack(">I", len(signing_in)) + signing_in)
    check(report["revokedCode"] == 18, f"a revoked token signing in: code {report['revokedCode']}")


def main():
    host, port, alice_token, bob_token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    report = {}
    alice = Device(host, port, alice_token, "py")
    bob = Device(host, port, bob_token, "py")
    check(alice.user == "alice" and bob.user == "bob", "auth_ok names the token's user")
    # A fresh token on the open connection is answered auth_ok with its expiry; a forged one is
    # refused (11) and the connection keeps the token it has ("Sessions and tokens").
    _, number, ok = alice.request(AUTH, field_bytes(1, alice_token))
    check(number == AUTH_OK and one(ok, 4, 0) > time.time() * 1000, f"a fresh token on the connection: {number} {ok}")
    check(refused(alice, AUTH, field_bytes(1, alice_token[:-4] + "AAAA")) == 11, "a forged token on the connection: 11")
    report["region"] = alice.region

    # Sends, acknowledged, pushed live to bob in order.
    for i in range(3):
        _, number, ack = alice.request(SEND, send(f"live-{i}", "bob", f"live {i}"))
        check(number == SEND_ACK and text(ack, 1) == f"live-{i}", f"send answered {number}")
    bob.wait_for("live 2")
    check([b for _, b in bob.shown] == ["live 0", "live 1", "live 2"], f"bob shows {bob.shown}")

    # A retried send is the same message.
    _, _, first = alice.request(SEND, send("retry-1", "bob", "once"))
    _, _, again = alice.request(SEND, send("retry-1", "bob", "once"))
    check(one(again, 6, 0) == 1 and text(again, 2) == text(first, 2), "a retry is answered as a duplicate")

    # bob goes away; alice pipelines 50 sends; bob comes back and syncs exactly what he missed.
    bob.close()
    answers = alice.pipeline([(SEND, send(f"away-{i}", "bob", f"away {i}")) for i in range(50)])
    check(all(number == SEND_ACK for _, number, _ in answers), "every pipelined send acknowledged")
    bob = Device(host, port, bob_token, "py", cursor=bob.cursor, shown=bob.shown, session=bob.session)
    bob.sync()
    bodies = [b for _, b in bob.shown]
    check(bodies.count("once") == 1, f"the retried send shown once: {bodies}")
    check(bodies[-50:] == [f"away {i}" for i in range(50)], "the 50 missed messages, in order, once each")
    check(len(bodies) == len(set(bodies)), "nothing shown twice")
    report["bobShows"] = len(bodies)

    # A heartbeat is echoed with its request id.
    request_id, number, _ = bob.request(HEARTBEAT, field_varint(1, 42))
    check(number == HEARTBEAT, "heartbeat echoed")

    # Offline push: a push token and a mute are changes answered with change_ack
    # and an event; a malformed or unknown conversation gets its code.
    _, number, ack = bob.request(REGISTER_PUSH, field_bytes(1, "tok-py"))
    check(number == CHANGE_ACK and text(decode(one(ack, 1, b"")), 1) == alice.region, f"register_push answered {number}")
    _, number, _ = bob.request(MUTE, field_bytes(1, "d:alice:bob") + field_varint(2, 1))
    check(number == CHANGE_ACK, f"mute answered {number}")
    for conversation, code in [("not-a-conversation", 23), ("g:no-such-group", 22), ("d:alice:carol", 21)]:
        _, number, error = bob.request(MUTE, field_bytes(1, conversation) + field_varint(2, 1))
        check(number == ERROR and one(error, 1, 0) == code, f"mute {conversation}: {number} {error}")

    check_social(alice, bob, report)
    check_messages(alice, bob, report)

    if len(sys.argv) > 6:
        check_notices(sys.argv[5], sys.argv[6], alice, bob, report)
    if len(sys.argv) > 7:
        check_long_poll(sys.argv[7], alice_token, bob, report)

    check_limits(host, port, alice_token, report)
    check_revocation(host, port, alice_token, alice, report)

    # Bad input gets its documented code and the connection closed.
    report["garbageCode"] = error_code_on(host, port, struct.pack(">I", 3) + b"\xff\xff\xff")
    check(report["garbageCode"] == 1, f"malformed frame: code {report['garbageCode']}")
    forged = frame(1, AUTH, auth(alice_token[:-4] + "AAAA", "py", {}))
    report["forgedCode"] = error_code_on(host, port, struct.pack(">I", len(forged)) + forged)
    check(report["forgedCode"] == 11, f"forged token: code {report['forgedCode']}")
    huge = 10 * 1024 * 1024
    report["oversizedCode"] = error_code_on(host, port, struct.pack(">I", huge))
    check(report["oversizedCode"] == 2, f"oversized frame: code {report['oversizedCode']}")

    # The others were served meanwhile.
    alice.request(SEND, send("after", "bob", "after the bad input"))
    bob.wait_for("after the bad input")
    alice.close()
    bob.close()
    print(json.dumps({"ok": True, **report}))


if __name__ == "__main__":
    try:
        main()
    except (Failed, EOFError, OSError, ValueError, KeyError, StopIteration) as failure:
        print(json.dumps({"ok": False, "failed": str(failure)}))
        sys.exit(1)
