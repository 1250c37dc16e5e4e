// The Parley web chat: what the page shows and does. The protocol lives in
// parley.js; everything here is state kept from events and drawn with
// textContent (never HTML from a message).
import { ParleyConnection, ProtocolError } from "./parley.js";

const $ = (selector) => document.querySelector(selector);
const element = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};
const randomID = () => crypto.getRandomValues(new Uint32Array(2)).reduce((s, n) => s + n.toString(36), "");

/// Orders messages as the server does: (hlc, origin, seq).
const order = (a, b) => (a.hlc < b.hlc ? -1 : a.hlc > b.hlc ? 1 : a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : a.seq - b.seq);

const state = {
  me: null,
  connection: null,
  conversations: new Map(), // id -> {id, name, unread, pinned, muted, lastActivity, last}
  messages: new Map(), // conversation id -> Map(message id -> message)
  hidden: new Set(), // message ids that lost to a copy (docs/PROTOCOL.md, "Messages accepted twice")
  more: new Map(), // conversation id -> older history remains
  readBy: new Map(), // conversation id -> message id the other user read up to
  myRead: new Map(), // conversation id -> message id this user read up to
  typing: new Map(), // conversation id -> {user, until}
  open: null,
  editing: null,
  lastTypingSent: 0,
};

// ---- sign-in -------------------------------------------------------------

async function main() {
  const config = await (await fetch("config.json", { cache: "no-store" })).json();
  const params = new URLSearchParams(location.hash.slice(1));
  $("#region-home").textContent = config.region;
  const saved = sessionStorage.getItem("parley.device") ?? `web.${randomID().slice(0, 8)}`;
  $("#device").value = params.get("device") ?? saved;
  $("#token").value = params.get("token") ?? "";
  $("#sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(config, $("#token").value.trim(), $("#device").value.trim());
  });
  if (params.get("token")) signIn(config, params.get("token"), $("#device").value);
}

function signIn(config, token, deviceId) {
  if (!token || !deviceId) return;
  sessionStorage.setItem("parley.device", deviceId);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const connection = new ParleyConnection({
    routes: config.routes, home: config.region, homeURL: `${scheme}//${location.host}/ws`, token, deviceId,
  });
  state.connection = connection;
  connection.addEventListener("status", (e) => showStatus(e.detail));
  // A fresh page's first catch-up is not replayed: the server's list and history show it.
  connection.addEventListener("event", (e) => { if (!e.detail.catchingUp) apply(e.detail.event); });
  connection.addEventListener("typing", (e) => typingNotice(e.detail));
  $("#sign-in-panel").hidden = true;
  $("#chat").hidden = false;
  connection.start();
  refreshConversationsWhenConnected();
}

/// After each (re)connection: the server's list, with its unread counts.
async function refreshConversationsWhenConnected() {
  const connection = state.connection;
  for (;;) {
    await connection.connected;
    try {
      const answer = await connection.call({ conversations: { limit: 200 } });
      for (const summary of answer.conversationList.conversations ?? []) {
        const conversation = conversationOf(summary.conversationId);
        conversation.name = summary.name || conversation.name;
        conversation.unread = Number(summary.unread ?? 0);
        conversation.pinned = !!summary.pinned;
        conversation.lastActivity = BigInt(summary.lastActivity ?? 0);
        if (summary.lastMessage?.messagePosted) conversation.last = summary.lastMessage.messagePosted;
      }
      drawConversations();
      if (state.open) await loadHistory(state.open, true);
    } catch (error) {
      console.warn("conversation list", error);
    }
    // Wait for this connection to end before asking again.
    await connection.closed;
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (connection.stopped) return;
  }
}

function showStatus({ state: s, region, url, error }) {
  $("#status").textContent = s;
  $("#status").dataset.state = s;
  $("#region").textContent = region ?? "—";
  if (url) $("#gate-url").textContent = url;
  $("#status-detail").textContent = error ?? "";
  if (state.connection?.userId) $("#me").textContent = state.connection.userId;
  state.me = state.connection?.userId ?? state.me;
  if (s === "signed-out") {
    $("#sign-in-panel").hidden = false;
    $("#sign-in-error").textContent = error ?? "";
  }
}

// ---- state from events ---------------------------------------------------

function conversationOf(id) {
  if (!state.conversations.has(id)) {
    state.conversations.set(id, { id, name: defaultName(id), unread: 0, pinned: false, lastActivity: 0n, last: null });
  }
  return state.conversations.get(id);
}

function defaultName(id) {
  if (id.startsWith("d:")) return id.slice(2).split(":").find((user) => user !== state.me) ?? id;
  return id.startsWith("g:") ? id.slice(2) : id;
}

function messagesOf(id) {
  if (!state.messages.has(id)) state.messages.set(id, new Map());
  return state.messages.get(id);
}

/// A message as history or an event states it.
function remember(event) {
  const posted = event.messagePosted;
  const messages = messagesOf(posted.conversationId);
  for (const replaced of posted.replaces ?? []) {
    messages.delete(replaced);
    state.hidden.add(replaced);
  }
  if (posted.hidden || state.hidden.has(posted.messageId)) {
    state.hidden.add(posted.messageId);
    messages.delete(posted.messageId);
    return false;
  }
  const known = messages.get(posted.messageId);
  messages.set(posted.messageId, {
    id: posted.messageId, sender: posted.sender, body: posted.body ?? "", edited: !!posted.edited,
    recalled: !!posted.recalled, replyTo: posted.replyTo, attachment: posted.attachment,
    hlc: BigInt(event.hlc ?? 0), origin: event.origin, seq: Number(event.seq ?? 0),
    // An edit or recall seen before the message itself stays applied.
    ...(known?.recalled && !posted.recalled ? { recalled: true, body: "" }
      : known?.edited && !posted.edited && !posted.recalled ? { edited: true, body: known.body } : {}),
  });
  return !known;
}

function apply(event) {
  const me = state.me ?? state.connection.userId;
  if (event.messagePosted) {
    const posted = event.messagePosted;
    const conversation = conversationOf(posted.conversationId);
    const isNew = remember(event);
    if (isNew && !posted.hidden) {
      conversation.last = posted;
      conversation.lastActivity = BigInt(event.hlc ?? 0);
      if (posted.sender !== me) {
        if (state.open === conversation.id && document.visibilityState === "visible") markRead(conversation.id);
        else conversation.unread += 1;
      }
      state.typing.delete(conversation.id);
    }
    drawConversations();
    if (state.open === posted.conversationId) drawMessages();
  } else if (event.messageEdited) {
    const edit = event.messageEdited;
    const message = messagesOf(edit.conversationId).get(edit.messageId);
    if (message && !message.recalled) Object.assign(message, { body: edit.body, edited: true });
    if (state.open === edit.conversationId) drawMessages();
  } else if (event.messageRecalled) {
    const recall = event.messageRecalled;
    const message = messagesOf(recall.conversationId).get(recall.messageId);
    if (message) Object.assign(message, { body: "", recalled: true });
    if (state.open === recall.conversationId) drawMessages();
  } else if (event.messageDeleted) {
    const deleted = event.messageDeleted;
    messagesOf(deleted.conversationId).delete(deleted.messageId);
    if (state.open === deleted.conversationId) drawMessages();
  } else if (event.readMoved) {
    const read = event.readMoved;
    if (read.reader === me) {
      state.myRead.set(read.conversationId, read.messageId);
      conversationOf(read.conversationId).unread = 0;
      drawConversations();
    } else {
      state.readBy.set(read.conversationId, read.messageId);
      if (state.open === read.conversationId) drawMessages();
    }
  } else if (event.groupCreated) {
    const group = event.groupCreated;
    conversationOf(`g:${group.groupId}`).name = group.name;
    drawConversations();
  } else if (event.groupUpdated && event.groupUpdated.field === "GROUP_NAME") {
    conversationOf(`g:${event.groupUpdated.groupId}`).name = event.groupUpdated.value;
    drawConversations();
  }
}

function typingNotice(notice) {
  if (notice.typing) state.typing.set(notice.conversationId, { user: notice.userId, until: Date.now() + 6000 });
  else state.typing.delete(notice.conversationId);
  drawTyping();
}

setInterval(() => {
  const now = Date.now();
  for (const [id, typing] of state.typing) if (typing.until < now) state.typing.delete(id);
  drawTyping();
}, 1000);

// ---- requests ------------------------------------------------------------

async function loadHistory(id, newest = false) {
  const messages = messagesOf(id);
  const shown = [...messages.values()].sort(order);
  const before = newest || shown.length === 0 ? "" : shown[0].id;
  let answer;
  try {
    answer = await state.connection.call({ history: { conversationId: id, beforeMessageId: before, limit: 30 } });
  } catch (error) {
    // A direct conversation nobody wrote in yet has no history.
    if (error instanceof ProtocolError && error.code === 22) return;
    throw error;
  }
  for (const event of answer.historyPage.messages ?? []) if (event.messagePosted) remember(event);
  if (!newest || !state.more.has(id)) state.more.set(id, !!answer.historyPage.more);
  if (state.open === id) drawMessages();
}

async function markRead(id) {
  const newest = [...messagesOf(id).values()].sort(order).pop();
  if (!newest || state.myRead.get(id) === newest.id) return;
  state.myRead.set(id, newest.id);
  conversationOf(id).unread = 0;
  drawConversations();
  try {
    await state.connection.call({ markRead: { conversationId: id, messageId: newest.id } });
  } catch (error) {
    console.warn("mark read", error);
  }
}

async function sendText(text) {
  const id = state.open;
  const target = id.startsWith("g:") ? { groupId: id.slice(2) } : { toUser: defaultName(id) };
  const clientMsgId = `web-${randomID()}`;
  const pending = element("li", "pending", text);
  pending.dataset.clientMsgId = clientMsgId;
  $("#pending").append(pending);
  try {
    // Retried across reconnects with the same client_msg_id: stored once.
    const answer = await state.connection.call({ send: { clientMsgId, ...target, body: text } });
    state.connection.saw(answer.sendAck.event.origin, answer.sendAck.event.seq);
  } catch (error) {
    showError(error);
  } finally {
    pending.remove();
  }
}

async function change(body) {
  try {
    const answer = await state.connection.call(body);
    const event = answer.changeAck?.event;
    if (event) state.connection.saw(event.origin, event.seq);
  } catch (error) {
    showError(error);
  }
}

function showError(error) {
  $("#status-detail").textContent = error instanceof ProtocolError ? error.message : String(error);
}

function openConversation(id) {
  state.open = id;
  state.editing = null;
  conversationOf(id);
  $("#conversation-title").textContent = conversationOf(id).name;
  $("#composer").disabled = false;
  drawConversations();
  drawMessages();
  loadHistory(id, true).then(() => markRead(id)).catch(showError);
}

// ---- drawing -------------------------------------------------------------

function drawConversations() {
  const list = $("#conversations");
  list.replaceChildren();
  const sorted = [...state.conversations.values()].sort((a, b) =>
    a.pinned !== b.pinned ? (a.pinned ? -1 : 1) : a.lastActivity > b.lastActivity ? -1 : a.lastActivity < b.lastActivity ? 1 : 0);
  for (const conversation of sorted) {
    const item = element("li", "conversation");
    item.dataset.id = conversation.id;
    if (conversation.id === state.open) item.classList.add("open");
    item.append(element("span", "name", conversation.name));
    if (conversation.unread > 0) item.append(element("span", "unread", String(conversation.unread)));
    const last = conversation.last;
    item.append(element("span", "preview", last ? (last.recalled ? "(recalled)" : `${last.sender}: ${last.body ?? ""}`) : ""));
    item.addEventListener("click", () => openConversation(conversation.id));
    list.append(item);
  }
}

function drawMessages() {
  const list = $("#messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren();
  if (!state.open) return;
  $("#older").hidden = !state.more.get(state.open);
  const messages = [...messagesOf(state.open).values()].sort(order);
  const readUpTo = state.readBy.get(state.open);
  const readIndex = messages.findIndex((m) => m.id === readUpTo);
  messages.forEach((message, index) => {
    const mine = message.sender === state.me;
    const item = element("li", `message${mine ? " mine" : ""}${message.recalled ? " recalled" : ""}`);
    item.dataset.id = message.id;
    item.append(element("span", "sender", message.sender));
    item.append(element("span", "body", message.recalled ? "" : message.body));
    if (message.recalled) item.append(element("span", "note", "message recalled"));
    else if (message.edited) item.append(element("span", "note", "edited"));
    if (mine && readIndex >= index) item.append(element("span", "read", "read"));
    if (mine && !message.recalled) {
      const edit = element("button", "edit", "edit");
      edit.addEventListener("click", () => startEditing(message));
      const recall = element("button", "recall", "recall");
      recall.addEventListener("click", () => change({ recall: { messageId: message.id } }));
      item.append(edit, recall);
    }
    list.append(item);
  });
  if (atBottom) list.scrollTop = list.scrollHeight;
  drawTyping();
}

function drawTyping() {
  const typing = state.open && state.typing.get(state.open);
  $("#typing").textContent = typing ? `${typing.user} is typing…` : "";
}

function startEditing(message) {
  state.editing = message.id;
  $("#composer").value = message.body;
  $("#composer").focus();
  $("#send").textContent = "save";
}

// ---- wiring --------------------------------------------------------------

$("#compose").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("#composer").value.trim();
  if (!text || !state.open) return;
  $("#composer").value = "";
  if (state.editing) {
    change({ edit: { messageId: state.editing, body: text } });
    state.editing = null;
    $("#send").textContent = "send";
  } else {
    sendText(text);
  }
  if (state.lastTypingSent) {
    state.lastTypingSent = 0;
    state.connection.request({ typing: { conversationId: state.open, typing: false } }).catch(() => {});
  }
});

$("#composer").addEventListener("input", () => {
  // One notice every few seconds while typing: the server refuses repeats within a second.
  if (!state.open || Date.now() - state.lastTypingSent < 3000) return;
  state.lastTypingSent = Date.now();
  state.connection.request({ typing: { conversationId: state.open, typing: true } }).catch(() => {});
});

$("#older").addEventListener("click", () => loadHistory(state.open).catch(showError));

$("#new-chat").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = $("#new-chat-user").value.trim();
  if (!user || !state.me) return;
  $("#new-chat-user").value = "";
  openConversation(`d:${[state.me, user].sort().join(":")}`);
});

$("#new-group").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("#new-group-name").value.trim();
  const members = $("#new-group-members").value.split(",").map((m) => m.trim()).filter(Boolean);
  if (!name) return;
  try {
    const answer = await state.connection.call({ createGroup: { name, members, clientGroupId: `web${randomID()}` } });
    $("#new-group-name").value = "";
    $("#new-group-members").value = "";
    conversationOf(`g:${answer.groupCreated.groupId}`).name = name;
    openConversation(`g:${answer.groupCreated.groupId}`);
  } catch (error) {
    showError(error);
  }
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.open) markRead(state.open);
});

main().catch((error) => {
  $("#sign-in-error").textContent = `cannot start: ${error}`;
});
