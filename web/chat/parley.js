// The Parley client protocol for browsers (docs/PROTOCOL.md), over
// WebSocket with the `parley.json` subprotocol: frames are protobuf's JSON
// mapping, 64-bit integers as strings. This file knows the protocol and
// nothing of the page: it finds a region through route, signs in, keeps the
// cursor and the session, delivers each event once and in order, and moves
// to another region when its own fails.

const SUBPROTOCOL = "parley.json";
// A region that failed is tried last for this long.
const FAILED_REGION_MS = 30_000;
// How long a push past a gap waits for the pushes it overtook.
const GAP_WAIT_MS = 20;

/// Errors a sign-in cannot get past by trying elsewhere: the user must sign in again.
const FATAL_SIGN_IN = new Set([10, 11, 12, 18]);

export class ProtocolError extends Error {
  constructor(code, message, retryAfterMs) {
    super(`${message} (${code})`);
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

class Disconnected extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class ParleyConnection extends EventTarget {
  /// routes: route base URLs (http://host:port), the page's own region's first.
  /// home: the region the page came from, asked for first.
  constructor({ routes, home, homeURL, token, deviceId }) {
    super();
    this.routes = routes;
    this.home = home;
    this.homeURL = homeURL;
    this.token = token;
    this.deviceId = deviceId;
    this.cursor = new Map(); // origin -> last user_seq processed
    this.session = new Map(); // origin -> highest event seq written or seen
    this.held = new Map(); // "origin/userSeq" -> push waiting for a gap to close
    this.failedAt = new Map(); // region -> ms it last failed
    this.pending = new Map(); // request id -> {resolve, reject}
    this.nextRequestID = 1;
    this.socket = null;
    this.region = null;
    this.userId = null;
    this.connected = null; // a promise resolved while signed in
    this.markDisconnected();
    this.stopped = false;
    this.syncing = null;
  }

  markDisconnected() {
    this.connected = new Promise((resolve) => (this.signalConnected = resolve));
  }

  status(state, detail = {}) {
    this.dispatchEvent(new CustomEvent("status", { detail: { state, region: this.region, ...detail } }));
  }

  /// Runs until stop(): connect, serve, and on any loss connect again elsewhere.
  async start() {
    let failures = 0;
    while (!this.stopped) {
      this.status("connecting");
      let served = false;
      for (const candidate of await this.candidates()) {
        if (this.stopped) return;
        try {
          await this.open(candidate);
        } catch (error) {
          this.failedAt.set(candidate.region, Date.now());
          if (error instanceof ProtocolError && FATAL_SIGN_IN.has(error.code)) {
            this.stopped = true;
            this.status("signed-out", { error: error.message });
            return;
          }
          continue;
        }
        served = true;
        failures = 0;
        const reason = await this.closed;
        this.markDisconnected();
        if (this.stopped) return;
        if (reason.code === 14) {
          this.status("reconnecting", { error: "the gate is going away" });
        } else if (reason.fatal) {
          this.stopped = true;
          this.status("signed-out", { error: reason.message });
          return;
        } else {
          this.failedAt.set(candidate.region, Date.now());
          this.status("reconnecting", { error: reason.message });
        }
        break;
      }
      if (!served) failures += 1;
      await sleep(Math.min(5000, 200 * 2 ** Math.min(failures, 5)));
    }
  }

  stop() {
    this.stopped = true;
    this.socket?.close();
  }

  /// The gates to try, in route's order; regions that failed lately last;
  /// the page's own gate when no route answers.
  async candidates() {
    let regions = null;
    const hint = this.region ?? this.home;
    for (const route of this.routes) {
      try {
        const answer = await fetch(`${route}/route?hint=${encodeURIComponent(hint)}`, {
          signal: AbortSignal.timeout(2000),
          cache: "no-store",
        });
        if (!answer.ok) continue;
        regions = (await answer.json()).regions;
        if (regions.length > 0) break;
      } catch {
        // This route's region may be the one that failed: ask the next.
      }
    }
    let list = (regions ?? []).flatMap((region) => region.gates.map((gate) => ({ region: region.region, url: gate.webSocket })));
    if (list.length === 0) list = [{ region: this.home, url: this.homeURL }];
    const now = Date.now();
    const failedLately = (c) => now - (this.failedAt.get(c.region) ?? -Infinity) < FAILED_REGION_MS;
    return [...list.filter((c) => !failedLately(c)), ...list.filter(failedLately)];
  }

  /// Opens a WebSocket to `candidate`, signs in, and catches up; resolves
  /// once serving, with `this.closed` settling when the socket ends.
  async open(candidate) {
    const socket = new WebSocket(candidate.url, SUBPROTOCOL);
    this.socket = socket;
    let closedWith;
    this.closed = new Promise((resolve) => (closedWith = resolve));
    let lastError = { message: "connection lost" };
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("connect timed out")), 5000);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      socket.onerror = () => {
        clearTimeout(timer);
        reject(new Error("could not connect"));
      };
    });
    socket.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return socket.close();
      }
      if (frame.error && !frame.requestId && frame.error.code < 20) {
        lastError = { code: frame.error.code, message: frame.error.message, fatal: FATAL_SIGN_IN.has(frame.error.code) };
      }
      this.receive(frame);
    };
    socket.onclose = () => {
      clearInterval(this.heartbeat);
      for (const { reject } of this.pending.values()) reject(new Disconnected("disconnected"));
      this.pending.clear();
      closedWith(lastError);
    };
    const answer = await this.request({
      auth: {
        token: this.token,
        deviceId: this.deviceId,
        session: [...this.session].map(([origin, seq]) => ({ origin, seq: String(seq) })),
      },
    }, socket);
    this.userId = answer.authOk.userId;
    this.region = answer.authOk.region;
    const interval = answer.authOk.heartbeatIntervalMs ?? 15000;
    this.heartbeat = setInterval(() => {
      this.request({ heartbeat: { clientTimeMs: String(Date.now()) } }).catch(() => {});
    }, interval);
    this.status("syncing", { url: candidate.url });
    await this.sync();
    this.signalConnected();
    this.status("connected", { url: candidate.url });
  }

  /// Sends a request; resolves with the answer frame, rejects with a
  /// ProtocolError for an `error` answer, or Disconnected.
  request(body, socket = this.socket) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return Promise.reject(new Disconnected("not connected"));
    const requestId = String(this.nextRequestID++);
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject });
      socket.send(JSON.stringify({ requestId, ...body }));
    });
  }

  /// A request once signed in, retried across reconnects (and after
  /// `retry_after_ms`) until answered: sends keep their client_msg_id, so a
  /// retry is stored once.
  async call(body) {
    for (;;) {
      await this.connected;
      try {
        return await this.request(body);
      } catch (error) {
        if (error instanceof Disconnected) continue;
        if (error instanceof ProtocolError && [30, 32].includes(error.code)) {
          await sleep(500);
          continue;
        }
        if (error instanceof ProtocolError && error.code === 35 && error.retryAfterMs) {
          await sleep(Number(error.retryAfterMs));
          continue;
        }
        throw error;
      }
    }
  }

  receive(frame) {
    const id = frame.requestId;
    if (id && this.pending.has(id)) {
      const { resolve, reject } = this.pending.get(id);
      this.pending.delete(id);
      if (frame.error) reject(new ProtocolError(frame.error.code, frame.error.message, frame.error.retryAfterMs));
      else resolve(frame);
      return;
    }
    if (frame.push) this.pushed(frame.push);
    else if (frame.typingNotice) this.dispatchEvent(new CustomEvent("typing", { detail: frame.typingNotice }));
    else if (frame.reauthRequired) this.status("connected", { error: "the token expires: sign in again soon" });
  }

  /// A live push: the next position is processed; one already seen is
  /// dropped; one past a gap waits briefly, then a sync fills the gap.
  pushed(push) {
    const origin = push.position.origin;
    const seq = Number(push.position.userSeq);
    const last = this.cursor.get(origin) ?? 0;
    if (seq <= last) return;
    if (seq === last + 1) {
      this.deliver(push);
      this.releaseHeld(origin);
      return;
    }
    this.held.set(`${origin}/${seq}`, push);
    setTimeout(() => {
      if (this.held.has(`${origin}/${seq}`)) this.sync().catch(() => {});
    }, GAP_WAIT_MS);
  }

  releaseHeld(origin) {
    for (;;) {
      const next = (this.cursor.get(origin) ?? 0) + 1;
      const push = this.held.get(`${origin}/${next}`);
      if (!push) break;
      this.held.delete(`${origin}/${next}`);
      this.deliver(push);
    }
    for (const key of [...this.held.keys()]) {
      const [o, s] = key.split("/");
      if (o === origin && Number(s) <= (this.cursor.get(origin) ?? 0)) this.held.delete(key);
    }
  }

  /// `catchingUp`: part of a first sync from an empty cursor, which only
  /// brings the cursor to the present (the page shows the server's
  /// conversation list and history instead of replaying everything).
  deliver(push, catchingUp = false) {
    const { origin, userSeq } = push.position;
    this.cursor.set(origin, Number(userSeq));
    const event = push.event;
    this.saw(event.origin, event.seq);
    this.dispatchEvent(new CustomEvent("event", { detail: { event, catchingUp } }));
  }

  /// The session: the newest event of each origin this device wrote or saw.
  saw(origin, seq) {
    const value = Number(seq ?? 0);
    if (value > (this.session.get(origin) ?? 0)) this.session.set(origin, value);
  }

  /// Pages of what happened after the cursor, until there is no more; one at a time.
  sync() {
    if (this.syncing) return this.syncing;
    const catchingUp = this.cursor.size === 0;
    this.syncing = (async () => {
      try {
        for (;;) {
          const cursor = [...this.cursor].map(([origin, userSeq]) => ({ origin, userSeq: String(userSeq) }));
          const answer = await this.request({ sync: { cursor, limit: 500 } });
          const batch = answer.syncBatch;
          for (const push of batch.events ?? []) {
            const last = this.cursor.get(push.position.origin) ?? 0;
            if (Number(push.position.userSeq) > last) this.deliver(push, catchingUp);
          }
          for (const position of batch.cursor ?? []) {
            const seq = Number(position.userSeq);
            if (seq > (this.cursor.get(position.origin) ?? 0)) this.cursor.set(position.origin, seq);
          }
          for (const origin of new Set([...this.held.keys()].map((k) => k.split("/")[0]))) this.releaseHeld(origin);
          if (!batch.more) break;
        }
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }
}
