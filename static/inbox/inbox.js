// The agent inbox and the supervisor view: one WebSocket (/ws/agent/, docs/protocol.md) that keeps
// the server-rendered page live. htmx swaps the server's partials; this module only decides
// when, renders messages as they arrive, and sends. The database and `seq` are the truth: a
// gap in seq, or a reconnect, fetches what was missed over REST. No build step.

const root = document.getElementById("inbox") || document.getElementById("supervisor");
const strings = JSON.parse(document.getElementById("inbox-strings").textContent);
const csrfToken = JSON.parse(root.getAttribute("hx-headers"))["X-CSRFToken"];
const isInbox = root.dataset.page === "inbox";
const SEND_TIMEOUT = 10_000;
const TYPING_INTERVAL = 2_000;
const TYPING_SHOWN = 4_000;
const MAX_FILES = 10; // attachments of one message (docs/protocol.md, "Attachments")
// Images the server serves inline (conversations.files.INLINE_TYPES); every other file downloads.
const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, key) => values[key] ?? "");
}

function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}

const clock = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
  hour: "2-digit",
  minute: "2-digit",
});

function localiseTimes(scope) {
  for (const time of scope.querySelectorAll("time.msg-time[datetime]")) {
    const when = new Date(time.dateTime);
    if (!Number.isNaN(when.getTime())) {
      time.textContent = clock.format(when);
      time.title = when.toLocaleString();
    }
  }
}

// --- Toasts and notices ---------------------------------------------------------------------------

function showToast(html, { kind = "info", text = null } = {}) {
  const toasts = document.getElementById("toasts");
  if (!toasts) return;
  let toast;
  if (text !== null) {
    toast = document.createElement("div");
    toast.className = `toast toast-${kind}`;
    toast.setAttribute("role", kind === "error" ? "alert" : "status");
    toast.textContent = text;
  } else {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    toast = template.content.firstElementChild;
  }
  if (!toast) return;
  toasts.append(toast);
  setTimeout(() => toast.remove(), 8000);
}

function browserNotify(title, body, tag) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const notification = new Notification(title, { body, tag });
    notification.onclick = () => window.focus();
  } catch {
    // Some browsers only allow notifications from a service worker; the in-page notice stays.
  }
}

function setupNotificationButton() {
  const button = document.getElementById("enable-notifications");
  if (!button || !("Notification" in window) || Notification.permission !== "default") return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";
  });
}

// --- htmx glue ------------------------------------------------------------------------------------

document.body.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  if (status >= 400) {
    // A refused action: the server says why in a toast; the page stays as it is.
    event.detail.shouldSwap = false;
    const body = event.detail.xhr.responseText || "";
    if (status < 500 && body.includes("toast")) showToast(body);
    else showToast("", { kind: "error", text: `HTTP ${status}` });
  }
});

document.body.addEventListener("htmx:afterSwap", (event) => {
  // A toast the server sent (HX-Retarget: #toasts) goes away as the others do.
  if (event.detail.target && event.detail.target.id === "toasts") {
    const toast = event.detail.target.lastElementChild;
    if (toast) setTimeout(() => toast.remove(), 8000);
  }
  const details = event.detail.elt && event.detail.elt.closest ? event.detail.elt.closest("details") : null;
  if (details) details.open = false;
});

// --- Labels: each in its colour, set through the CSSOM (the page's policy allows no inline style) --

function paintLabels() {
  document.querySelectorAll(".chip[data-colour]").forEach((chip) => chip.style.setProperty("--chip", chip.dataset.colour));
}
paintLabels();
document.body.addEventListener("htmx:afterSettle", paintLabels);

document.body.addEventListener("htmx:sendError", () => {
  showToast("", { kind: "error", text: strings.offline });
});

// --- The socket -----------------------------------------------------------------------------------

let socket = null;
let backoff = 500;
let everReady = false;

function setConnection(state) {
  const badge = document.getElementById("connection");
  if (!badge) return;
  badge.dataset.state = state;
  badge.textContent = strings[state] || state;
}

function socketOpen() {
  return socket !== null && socket.readyState === WebSocket.OPEN;
}

function sendFrame(frame) {
  if (!socketOpen()) return false;
  socket.send(JSON.stringify(frame));
  return true;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(`${scheme}${location.host}/ws/agent/`);
  setConnection("connecting");
  socket.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    onFrame(frame);
  });
  socket.addEventListener("close", (event) => {
    setConnection("offline");
    if (event.code === 4401 || event.code === 4403) {
      // The session ended: the page itself will send the agent to the login page.
      setTimeout(() => location.reload(), 1000);
      return;
    }
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10_000);
  });
}

window.addEventListener("online", () => {
  if (!socketOpen() && socket && socket.readyState !== WebSocket.CONNECTING) {
    backoff = 500;
    connect();
  }
});

function onFrame(frame) {
  switch (frame.type) {
    case "ready":
      setConnection("connected");
      backoff = 500;
      if (frame.agent) updateAgent(frame.agent);
      if (everReady) resync();
      everReady = true;
      break;
    case "agent":
      updateAgent(frame.agent);
      break;
    case "queue":
      updateWaiting(frame.queue_id, frame.waiting);
      break;
    case "conversation":
      onConversation(frame.conversation);
      break;
    case "message":
      onMessage(frame.message);
      break;
    case "typing":
      onTyping(frame);
      break;
    case "notification":
      onNotification(frame);
      break;
    case "error":
      onErrorFrame(frame);
      break;
    default:
      break;
  }
}

// --- Supervisor view ------------------------------------------------------------------------------

const refreshBoard = debounce(() => {
  const board = document.getElementById("board");
  if (!board) return;
  if (board.querySelector("details[open]")) {
    // Someone is choosing an action: refresh when they are done.
    refreshBoard();
    return;
  }
  htmx.trigger(board, "refresh");
}, 700);

// --- Inbox: header ----------------------------------------------------------------------------------

function updateAgent(agent) {
  if (!isInbox || String(agent.id) !== root.dataset.agentId) return;
  const select = document.getElementById("presence-select");
  if (select && document.activeElement !== select) {
    select.value = agent.presence;
    select.className = `presence presence-${agent.presence}`;
  }
  const meter = document.getElementById("capacity-meter");
  if (meter) {
    meter.max = agent.capacity.total;
    meter.value = agent.capacity.used;
    meter.low = agent.capacity.total - 1;
    meter.high = agent.capacity.total - 1;
  }
  const text = document.getElementById("capacity-text");
  if (text) text.textContent = text.textContent.replace(/\d+\/\d+/, `${agent.capacity.used}/${agent.capacity.total}`);
}

function updateWaiting(queueId, waiting) {
  const counter = document.getElementById("waiting-count");
  if (!counter) return;
  const counts = new Map(
    (counter.dataset.queues || "")
      .split(",")
      .filter(Boolean)
      .map((pair) => pair.split(":").map(Number)),
  );
  if (!counts.has(queueId)) return; // not one of my queues
  counts.set(queueId, waiting);
  counter.dataset.queues = Array.from(counts, ([id, n]) => `${id}:${n}`).join(",");
  counter.textContent = String(Array.from(counts.values()).reduce((a, b) => a + b, 0));
}

// --- Inbox: the sidebar -----------------------------------------------------------------------------

const refreshSidebar = debounce(() => {
  const id = currentId();
  const query = new URLSearchParams();
  if (id) query.set("current", id);
  const label = document.getElementById("label-filter-select");
  if (label && label.value) query.set("label", label.value);
  const url = root.dataset.sidebarUrl + (query.size ? `?${query}` : "");
  // Issued by #sidebar (hx-sync="this:replace"), as the label filter's are: a later request
  // replaces one still in flight, so an older list never lands over a newer one.
  htmx.ajax("GET", url, { source: "#sidebar", target: "#sidebar", swap: "innerHTML" }).then(updateTitle);
}, 250);

function updateTitle() {
  const content = document.getElementById("sidebar-content");
  const unread = content ? Number(content.dataset.unread || 0) : 0;
  document.title = document.title.replace(/^\(\d+\) /, "");
  if (unread > 0) document.title = `(${unread}) ${document.title}`;
}

// --- Inbox: the open conversation ------------------------------------------------------------------

const pending = new Map(); // client_id -> {item, body, timer}
let typingTimer = null;
let lastTypingSent = 0;
let gapFill = Promise.resolve();

function view() {
  return document.getElementById("conversation-view");
}

function currentId() {
  const v = view();
  return v ? Number(v.dataset.conversationId) : null;
}

function list() {
  return document.getElementById("messages");
}

function seqs() {
  return Array.from(list()?.querySelectorAll("li[data-seq]") || [], (li) => Number(li.dataset.seq));
}

function lastSeq() {
  const all = seqs();
  return all.length ? Math.max(...all) : 0;
}

function firstSeq() {
  const all = seqs();
  return all.length ? Math.min(...all) : 0;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function authorLine(name, internal) {
  const author = element("span", "msg-author", name);
  if (internal) author.append(" ", element("span", "msg-badge", strings.note));
  return author;
}

// As Django's filesizeformat (templates/agent/_attachment.html): bytes, then KB, MB, GB by 1024.
const sizeNumber = new Intl.NumberFormat(document.documentElement.lang || undefined, {
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
  useGrouping: false,
});

function humanSize(size) {
  const units = [
    [1024 ** 3, strings.gigabytes],
    [1024 ** 2, strings.megabytes],
    [1024, strings.kilobytes],
  ];
  for (const [unit, template] of units) {
    if (size >= unit) return format(template, { size: sizeNumber.format(size / unit) }).replace(/ /g, "\u00a0");
  }
  return format(strings.bytes, { size: String(size) }).replace(/ /g, "\u00a0");
}

// One attachment of a message, as templates/agent/_attachment.html renders it: an image the
// browser shows inline as a thumbnail linking to the full size, any other file as a download.
function renderAttachment(attachment) {
  const inline = INLINE_TYPES.has(attachment.content_type);
  const item = element("li", inline ? "file file-image" : "file");
  const link = element("a", inline ? "file-thumb" : "file-link");
  link.href = attachment.url;
  if (inline) {
    link.target = "_blank";
    link.rel = "noopener";
    link.title = attachment.name;
    const image = element("img");
    image.src = attachment.url;
    image.alt = attachment.name;
    image.decoding = "async";
    link.append(image);
  } else {
    link.download = attachment.name;
    const icon = element("span", "file-icon");
    icon.setAttribute("aria-hidden", "true");
    link.append(icon, element("span", "file-name", attachment.name), " ", element("span", "file-size", humanSize(attachment.size)));
  }
  item.append(link);
  return item;
}

function renderAttachments(attachments) {
  const files = element("ul", "msg-files");
  files.setAttribute("aria-label", strings.attachments);
  files.append(...attachments.map(renderAttachment));
  return files;
}

function messageText(message) {
  // What a notice or the live region says of a message: its body, or its files' names.
  return message.body || (message.attachments || []).map((attachment) => attachment.name).join(", ");
}

function renderMessage(message) {
  const item = element("li", `msg msg-${message.sender}${message.internal ? " msg-note" : ""}`);
  item.dataset.seq = message.seq;
  if (message.kind) item.dataset.kind = message.kind;
  if (message.client_id) item.dataset.clientId = message.client_id;
  if (message.sender !== "system") item.append(authorLine(message.author || strings.you, message.internal));
  if (message.body) item.append(element("div", "msg-body", message.body));
  if (message.attachments?.length) item.append(renderAttachments(message.attachments));
  const time = element("time", "msg-time");
  time.dateTime = message.created_at;
  const when = new Date(message.created_at);
  time.textContent = clock.format(when);
  time.title = when.toLocaleString();
  item.append(time);
  if (message.channel === "email") item.append(element("span", "msg-channel", strings.byEmail));
  return item;
}

function nearBottom(ol, grown = 0) {
  return ol.scrollHeight - ol.scrollTop - ol.clientHeight - grown < 80;
}

function scrollToBottom() {
  const ol = list();
  if (ol) ol.scrollTop = ol.scrollHeight;
}

function insertMessage(message, { announce = false } = {}) {
  const ol = list();
  if (!ol || ol.querySelector(`li[data-seq="${message.seq}"]`)) return false;
  const stick = nearBottom(ol);
  const item = renderMessage(message);
  if (message.client_id && pending.has(message.client_id)) {
    const mine = pending.get(message.client_id);
    clearTimeout(mine.timer);
    mine.item.remove();
    pending.delete(message.client_id);
    item.append(element("span", "msg-status", strings.sent));
  }
  let before = null;
  for (const other of ol.querySelectorAll("li[data-seq]")) {
    if (Number(other.dataset.seq) > message.seq) {
      before = other;
      break;
    }
  }
  ol.insertBefore(item, before || ol.querySelector("li.pending"));
  if (announce && message.sender !== "agent") {
    const live = document.getElementById("live-messages");
    if (live) live.textContent = `${message.author || strings.system}: ${messageText(message)}`;
  }
  if (stick || message.sender === "agent") scrollToBottom();
  return true;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

function fillGap(afterSeq) {
  // Serialised, so two gaps detected at once do not fetch the same page twice.
  gapFill = gapFill.then(async () => {
    const v = view();
    if (!v) return;
    let cursor = afterSeq;
    for (;;) {
      const page = await getJSON(`${v.dataset.messagesUrl}?after_seq=${cursor}&limit=200`);
      if (v !== view()) return;
      for (const message of page.messages) insertMessage(message);
      if (!page.has_more || page.messages.length === 0) break;
      cursor = page.messages[page.messages.length - 1].seq;
    }
  }).catch(() => {});
  return gapFill;
}

let loadingOlder = false;

async function loadOlder() {
  const v = view();
  const ol = list();
  if (!v || !ol || loadingOlder || ol.dataset.hasMore !== "1") return;
  loadingOlder = true;
  try {
    const page = await getJSON(`${v.dataset.messagesUrl}?before_seq=${firstSeq()}&limit=50`);
    if (v !== view()) return;
    const height = ol.scrollHeight;
    const anchor = ol.querySelector("li[data-seq]");
    for (const message of page.messages) {
      if (!ol.querySelector(`li[data-seq="${message.seq}"]`)) ol.insertBefore(renderMessage(message), anchor);
    }
    ol.scrollTop += ol.scrollHeight - height;
    if (!page.has_more) {
      ol.dataset.hasMore = "0";
      ol.querySelector("li.load-older")?.remove();
    }
  } catch {
    showToast("", { kind: "error", text: strings.offline });
  } finally {
    loadingOlder = false;
  }
}

const markRead = debounce(async () => {
  const v = view();
  if (!v || v.dataset.mine !== "1" || document.visibilityState !== "visible") return;
  const body = new URLSearchParams({ seq: String(lastSeq()) });
  try {
    await fetch(v.dataset.readUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken },
      body,
    });
  } finally {
    refreshSidebar();
  }
}, 400);

function refreshHead() {
  const v = view();
  if (!v) return;
  htmx.ajax("GET", v.dataset.headUrl, { target: "#conversation-head", swap: "outerHTML" }).then(applyHead);
}

function applyHead() {
  const head = document.getElementById("conversation-head");
  const composer = document.getElementById("composer");
  if (head && composer) composer.hidden = head.dataset.canWrite !== "1";
}

function inSidebar(conversationId) {
  return document.querySelector(`#sidebar a.row[data-conversation-id="${conversationId}"]`) !== null;
}

function onConversation(conversation) {
  if (!isInbox) {
    refreshBoard();
    return;
  }
  // Staff agents hear every conversation (supervisors' group): only mine, ones leaving my
  // list, and open ones (a pick queue) change this sidebar.
  const mine = conversation.agent && String(conversation.agent.id) === root.dataset.agentId;
  if (mine || conversation.status === "open" || inSidebar(conversation.id)) refreshSidebar();
  const v = view();
  if (!v || Number(v.dataset.conversationId) !== conversation.id) return;
  const head = document.getElementById("conversation-head");
  const mineNow = conversation.agent && String(conversation.agent.id) === root.dataset.agentId;
  if ((v.dataset.mine === "1") !== Boolean(mineNow)) {
    // Assigned to me, or taken away: the whole pane changes (composer, actions).
    htmx.ajax("GET", `${root.dataset.inboxUrl}conversations/${conversation.id}/`, {
      target: "#conversation",
      swap: "innerHTML",
    });
    return;
  }
  const returned = conversation.status === "active" && Boolean(conversation.returned_at);
  if (!head || head.dataset.status !== conversation.status || head.dataset.returned !== String(returned)) {
    refreshHead();
  }
  if (conversation.last_seq > lastSeq()) fillGap(lastSeq());
}

function onMessage(message) {
  if (!isInbox) {
    refreshBoard();
    return;
  }
  if (message.conversation_id === currentId()) {
    const last = lastSeq();
    if (message.seq > last + 1) {
      fillGap(last).then(() => insertMessage(message, { announce: true }));
    } else {
      insertMessage(message, { announce: true });
    }
    if (message.sender === "customer") hideTyping();
    markRead();
  } else if (!inSidebar(message.conversation_id)) {
    return; // another agent's conversation (staff hear them all)
  } else if (message.sender === "customer" && document.visibilityState !== "visible") {
    browserNotify(
      format(strings.newMessage, { name: message.author }),
      messageText(message),
      `message-${message.conversation_id}`,
    );
  }
  refreshSidebar();
}

function onTyping(frame) {
  if (frame.conversation_id !== currentId() || frame.sender !== "customer") return;
  const indicator = document.getElementById("typing");
  if (!indicator) return;
  indicator.hidden = false;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(hideTyping, TYPING_SHOWN);
}

function hideTyping() {
  const indicator = document.getElementById("typing");
  if (indicator) indicator.hidden = true;
  clearTimeout(typingTimer);
}

async function onNotification(frame) {
  if (!isInbox) return;
  refreshSidebar();
  const url = `${root.dataset.inboxUrl}conversations/${frame.conversation_id}/`;
  if (frame.kind === "customer_returned") {
    let name = "";
    try {
      name = (await getJSON(`/api/v1/agent/conversations/${frame.conversation_id}/`)).customer.name;
    } catch {
      // The notice still says which conversation.
    }
    const text = format(strings.returned, { name, id: frame.conversation_id });
    showNotice(text, url, frame.conversation_id);
    browserNotify(strings.returnedTitle, text, `returned-${frame.conversation_id}`);
    if (frame.conversation_id === currentId()) refreshHead();
  } else if (frame.kind === "assigned") {
    const text = format(strings.assigned, { id: frame.conversation_id });
    showToast("", { text });
    if (document.visibilityState !== "visible") browserNotify(text, "", `assigned-${frame.conversation_id}`);
  }
}

function showNotice(text, url, conversationId) {
  const notices = document.getElementById("notices");
  if (!notices) return;
  notices.querySelector(`[data-conversation-id="${conversationId}"]`)?.remove();
  const notice = element("div", "notice-returned");
  notice.setAttribute("role", "alert");
  notice.dataset.conversationId = conversationId;
  notice.append(element("span", "", text));
  const open = element("a", "", strings.open);
  open.href = url;
  open.setAttribute("hx-get", url);
  open.setAttribute("hx-target", "#conversation");
  open.setAttribute("hx-push-url", "true");
  open.addEventListener("click", () => notice.remove());
  const dismiss = element("button", "link", strings.dismiss);
  dismiss.type = "button";
  dismiss.addEventListener("click", () => notice.remove());
  notice.append(open, dismiss);
  notices.append(notice);
  htmx.process(notice);
}

function onErrorFrame(frame) {
  if (frame.client_id && pending.has(frame.client_id)) {
    fail(frame.client_id, frame.detail);
    return;
  }
  showToast("", { kind: "error", text: frame.detail });
}

// --- Sending --------------------------------------------------------------------------------------

function pendingItem(clientId, body, internal, attachments) {
  const item = element("li", `msg msg-agent pending${internal ? " msg-note" : ""}`);
  item.dataset.clientId = clientId;
  item.append(authorLine(strings.you, internal));
  if (body) item.append(element("div", "msg-body", body));
  if (attachments.length) item.append(renderAttachments(attachments));
  item.append(element("span", "msg-status", strings.sending));
  return item;
}

function submit() {
  const input = document.getElementById("composer-input");
  const body = input.value.trim();
  if (!view()) return;
  if (uploads.some((upload) => !upload.attachment)) {
    showComposerError(strings.stillUploading, { clear: true });
    return;
  }
  const attachments = uploads.map((upload) => upload.attachment);
  if (!body && !attachments.length) return;
  const clientId = newClientId();
  const internal = document.getElementById("composer-note")?.checked || false;
  const item = pendingItem(clientId, body, internal, attachments);
  list().append(item);
  scrollToBottom();
  pending.set(clientId, { item, body, internal, attachments, conversationId: currentId(), timer: null });
  input.value = "";
  clearUploads();
  clearComposerError();
  transmit(clientId);
}

function transmit(clientId) {
  const entry = pending.get(clientId);
  if (!entry) return;
  entry.item.classList.remove("failed");
  entry.item.querySelector(".msg-status").replaceChildren(strings.sending);
  clearTimeout(entry.timer);
  entry.timer = setTimeout(() => fail(clientId, strings.failed), SEND_TIMEOUT);
  const frame = { type: "message.send", conversation_id: entry.conversationId, client_id: clientId, body: entry.body };
  if (entry.internal) frame.internal = true;
  if (entry.attachments.length) frame.attachments = entry.attachments.map((attachment) => attachment.id);
  if (!sendFrame(frame)) sendByRest(clientId);
}

async function sendByRest(clientId) {
  const entry = pending.get(clientId);
  const v = view();
  if (!entry || !v) return;
  try {
    const response = await fetch(v.dataset.messagesUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify({
        client_id: clientId,
        body: entry.body,
        internal: entry.internal,
        attachments: entry.attachments.map((attachment) => attachment.id),
      }),
    });
    const data = await response.json();
    if (response.ok) insertMessage(data);
    else fail(clientId, data.detail || strings.failed);
  } catch {
    fail(clientId, strings.failed);
  }
}

function fail(clientId, reason) {
  const entry = pending.get(clientId);
  if (!entry) return;
  clearTimeout(entry.timer);
  entry.item.classList.add("failed");
  const status = entry.item.querySelector(".msg-status");
  const retry = element("button", "link retry", strings.retry);
  retry.type = "button";
  retry.addEventListener("click", () => transmit(clientId));
  status.replaceChildren(`${reason} `, retry);
}

function sendTyping() {
  const now = Date.now();
  if (now - lastTypingSent < TYPING_INTERVAL || !currentId()) return;
  lastTypingSent = now;
  sendFrame({ type: "typing", conversation_id: currentId() });
}

// --- Attachments: chosen, dropped or pasted files upload at once; the message sends their ids ---

let uploads = []; // in the composer's order: {name, attachment (once uploaded), controller, chip}

function showComposerError(text, { clear = false } = {}) {
  const box = document.getElementById("composer-error");
  if (!box) return;
  if (clear) box.replaceChildren();
  box.append(element("span", "", text));
  box.hidden = false;
}

function clearComposerError() {
  const box = document.getElementById("composer-error");
  if (!box) return;
  box.replaceChildren();
  box.hidden = true;
}

function renderChips() {
  const chips = document.getElementById("composer-files");
  if (!chips) return;
  chips.replaceChildren(...uploads.map((upload) => upload.chip));
  chips.hidden = uploads.length === 0;
}

function fileChip(upload) {
  const chip = element("li", "file-chip uploading");
  const status = element("span", "spinner");
  status.setAttribute("role", "img");
  status.setAttribute("aria-label", strings.uploading);
  const remove = element("button", "file-remove", "×");
  remove.type = "button";
  remove.setAttribute("aria-label", format(strings.removeFile, { name: upload.name }));
  remove.addEventListener("click", () => {
    removeUpload(upload);
    document.getElementById("composer-input")?.focus();
  });
  chip.append(status, element("span", "file-name", upload.name), remove);
  return chip;
}

function uploaded(upload, attachment) {
  upload.attachment = attachment;
  const chip = upload.chip;
  chip.classList.remove("uploading");
  const status = chip.querySelector(".spinner");
  if (INLINE_TYPES.has(attachment.content_type)) {
    const thumb = element("img", "chip-thumb");
    thumb.src = attachment.url;
    thumb.alt = "";
    status.replaceWith(thumb);
  } else {
    const icon = element("span", "file-icon");
    icon.setAttribute("aria-hidden", "true");
    status.replaceWith(icon);
  }
  chip.querySelector(".file-name").after(element("span", "file-size", humanSize(attachment.size)));
}

function removeUpload(upload) {
  upload.controller.abort();
  uploads = uploads.filter((other) => other !== upload);
  renderChips();
}

function clearUploads() {
  for (const upload of uploads) upload.controller.abort();
  uploads = [];
  renderChips();
}

function canAttach() {
  const composer = document.getElementById("composer");
  return Boolean(composer && !composer.hidden && document.getElementById("composer-file") && view());
}

function addFiles(fileList) {
  const chosen = Array.from(fileList || []);
  if (!chosen.length || !canAttach()) return;
  clearComposerError();
  for (const file of chosen) {
    if (uploads.length >= MAX_FILES) {
      showComposerError(format(strings.tooManyFiles, { count: MAX_FILES }));
      break;
    }
    startUpload(file);
  }
}

async function startUpload(file) {
  const v = view();
  const entry = { name: file.name || "file", attachment: null, controller: new AbortController(), chip: null };
  entry.chip = fileChip(entry);
  uploads.push(entry);
  renderChips();
  const form = new FormData();
  form.append("file", file, entry.name);
  let detail = strings.uploadFailed;
  try {
    const response = await fetch(v.dataset.attachmentsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      body: form,
      signal: entry.controller.signal,
    });
    const data = await response.json().catch(() => ({}));
    if (response.ok && data.attachment) {
      if (uploads.includes(entry)) uploaded(entry, data.attachment);
      return;
    }
    if (data.detail) detail = data.detail;
  } catch (error) {
    if (error.name === "AbortError") return; // removed, sent without it, or another conversation
  }
  if (!uploads.includes(entry)) return;
  removeUpload(entry);
  showComposerError(`${entry.name}: ${detail}`);
}

function hasFiles(event) {
  return Array.from(event.dataTransfer?.types || []).includes("Files");
}

function wireAttachments(input) {
  const picker = document.getElementById("composer-file");
  if (!picker) return;
  document.getElementById("composer-attach").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    addFiles(picker.files);
    picker.value = ""; // the same file can be chosen again
  });
  input.addEventListener("paste", (event) => {
    const pasted = Array.from(event.clipboardData?.files || []);
    if (!pasted.length) return;
    event.preventDefault(); // a screenshot, not its name as text
    addFiles(pasted);
  });
}

// Files dropped anywhere on the conversation pane attach; the hint shows while they are dragged
// over it. Dropped elsewhere they do nothing (the browser would otherwise open them in this tab).
function dropTarget(event) {
  return canAttach() && view().contains(event.target);
}

function showDropHint(shown) {
  const hint = document.getElementById("drop-hint");
  if (hint) hint.hidden = !shown;
}

function wireDrops() {
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    const target = dropTarget(event);
    event.dataTransfer.dropEffect = target ? "copy" : "none";
    showDropHint(target);
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) showDropHint(false); // out of the window
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    showDropHint(false);
    if (!dropTarget(event)) return;
    addFiles(event.dataTransfer.files);
    document.getElementById("composer-input")?.focus();
  });
}

// --- Wiring the conversation pane -----------------------------------------------------------------

function initConversation() {
  hideTyping();
  clearUploads(); // another conversation's files are not this one's
  const v = view();
  if (!v) return;
  localiseTimes(v);
  scrollToBottom();
  applyHead();
  const ol = list();
  ol.addEventListener("scroll", () => {
    if (ol.scrollTop < 40) loadOlder();
  });
  // A thumbnail that loads after the list was scrolled to its end keeps the end in view.
  ol.addEventListener(
    "load",
    (event) => {
      if (event.target.tagName === "IMG" && nearBottom(ol, event.target.offsetHeight)) scrollToBottom();
    },
    true,
  );
  ol.querySelector("li.load-older button")?.addEventListener("click", loadOlder);
  const composer = document.getElementById("composer");
  if (composer) {
    const input = document.getElementById("composer-input");
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
    input.addEventListener("input", () => {
      if (!document.getElementById("composer-note")?.checked) sendTyping(); // a note is not typing to the customer
    });
    const note = document.getElementById("composer-note");
    const send = document.getElementById("composer-send");
    const placeholder = input.placeholder;
    note?.addEventListener("change", () => {
      composer.classList.toggle("composer-note", note.checked);
      input.placeholder = note.checked ? strings.notePlaceholder : placeholder;
      send.textContent = note.checked ? strings.addNote : strings.send;
      input.focus();
    });
    for (const button of composer.querySelectorAll("button.quick-reply")) {
      button.addEventListener("click", () => {
        input.value = input.value ? `${input.value}\n${button.dataset.body}` : button.dataset.body;
        input.focus();
      });
    }
    wireAttachments(input);
  }
  // What arrived between the page render and the socket's ready is filled by seq.
  if (Number(v.dataset.lastSeq) > lastSeq()) fillGap(lastSeq());
  markRead();
}

function resync() {
  if (!isInbox) {
    refreshBoard();
    return;
  }
  refreshSidebar();
  if (view()) {
    fillGap(lastSeq());
    refreshHead();
  }
}

// The sidebar is asked for by live refreshes and by the label filter; answers may come back out
// of order, and an older list must never land over a newer one (it would also reset the filter).
let sidebarAsked = 0;
document.body.addEventListener("htmx:configRequest", (event) => {
  if (event.detail.target?.id === "sidebar") event.detail.headers["X-Sidebar-Request"] = String(++sidebarAsked);
});
document.body.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.target?.id !== "sidebar") return;
  const asked = Number(event.detail.requestConfig?.headers?.["X-Sidebar-Request"] || sidebarAsked);
  if (asked < sidebarAsked) event.detail.shouldSwap = false;
});

if (isInbox) {
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id === "conversation") {
      initConversation();
      refreshSidebar();
      document.querySelector("#conversation h1")?.setAttribute("tabindex", "-1");
      document.querySelector("#conversation h1")?.focus({ preventScroll: true });
    }
  });
  document.body.addEventListener("htmx:historyRestore", initConversation);
  wireDrops();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") markRead();
  });
  initConversation();
  updateTitle();
}

setupNotificationButton();
connect();
