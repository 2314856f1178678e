// The customer's chat panel (templates/widget/panel.html), speaking the protocol (docs/protocol.md):
// REST for the widget config, credentials, history pages and gap filling; the widget WebSocket
// for live messages, typing and status. Message bodies are plain text: always textContent.
//
// Talks to the embed loader (static/omnichannel-widget.js) in the parent window through
// postMessage, only with the host origin that the widget allows (see docs/widget.md).

const config = JSON.parse(document.getElementById("widget-config").textContent);
const S = config.strings;

const SEND_TIMEOUT_MS = 10000;
const TOKEN_WAIT_MS = 5000;
const TYPING_INTERVAL_MS = 2000;
const TYPING_SHOW_MS = 5000;
const PAGE_SIZE = 50;
const GAP_PAGE = 200;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const ONGOING = new Set(["open", "active", "waiting"]);
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_FORBIDDEN = 4403;
const STORAGE_KEY = `omnichannel.visitor.${config.widgetKey}`;
const MAX_ATTACHMENTS = 10; // per message
// Images the server serves inline (conversations.files.INLINE_TYPES): shown as thumbnails.
const INLINE_IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

const $ = (id) => document.getElementById(id);
const ui = {
  panel: $("panel"),
  persistentNote: $("persistent-note"),
  log: $("log"),
  conversations: $("conversations"),
  empty: $("empty"),
  loadEarlier: $("load-earlier"),
  typing: $("typing"),
  typingText: $("typing-text"),
  announcer: $("announcer"),
  connection: $("connection"),
  ended: $("ended"),
  offline: $("offline"),
  offlineText: $("offline-text"),
  signin: $("signin"),
  signinText: $("signin-text"),
  unavailable: $("unavailable"),
  unavailableText: $("unavailable-text"),
  composer: $("composer"),
  input: $("message-input"),
  send: $("send-button"),
  endButton: $("end-button"),
  endDialog: $("end-dialog"),
  minimise: $("minimise-button"),
  offlineForm: $("offline-form"),
  offlineName: $("offline-name"),
  offlineEmail: $("offline-email"),
  offlineBody: $("offline-body"),
  offlineFormError: $("offline-form-error"),
  offlineSend: $("offline-send"),
  transcriptButton: $("transcript-button"),
  notice: $("notice"),
  prechat: $("prechat"),
  prechatFields: $("prechat-fields"),
  attach: $("attach-button"),
  fileInput: $("file-input"),
  chips: $("attachment-chips"),
  attachError: $("attach-error"),
  dropHint: $("drop-hint"),
  dropHintText: $("drop-hint-text"),
};

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_match, name) => String(values[name] ?? ""));
}

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- State ----------------------------------------------------------------------------------------

const state = {
  token: null,
  widgetInfo: null, // GET /api/v1/widget/{key}/
  sections: new Map(), // conversation id -> section
  current: null, // the section of the customer's current conversation (or a draft)
  draft: null, // a section for a conversation that the next echo will start
  pending: new Map(), // client_id -> pending message
  socket: null,
  authenticated: false,
  attempts: 0,
  reconnectTimer: null,
  renewTimer: null, // asks the host for a fresh token before this one expires
  connectedOnce: false,
  stopped: false, // no reconnects (forbidden widget, no credentials)
  lastTypingSent: 0,
  typingTimer: null,
  openingTimer: null,
  gapFill: Promise.resolve(),
  loadingEarlier: false,
  visible: window.parent === window,
  booted: false,
  stick: true, // the log follows new messages (the customer has not scrolled up)
  uploads: [], // the files for the next message: {name, size, status, attachment, xhr, chip}
};

let starting = null; // the start() in progress

// --- The host page (the embed loader) -------------------------------------------------------------

const inFrame = window.parent !== window;
const hostOrigin = resolveHostOrigin();

function resolveHostOrigin() {
  if (!inFrame) return null;
  const allowed = new Set([location.origin, ...config.allowedOrigins]);
  // The browser's word first (Chromium, Safari); else what the loader said in ?origin=.
  // A wrong claim only means our messages are not delivered: postMessage checks targetOrigin.
  const ancestors = location.ancestorOrigins;
  const candidate =
    ancestors && ancestors.length ? ancestors[0] : new URLSearchParams(location.search).get("origin");
  return candidate && allowed.has(candidate) ? candidate : null;
}

function toHost(type, data = {}) {
  if (hostOrigin) window.parent.postMessage({ omnichannel: "panel", type, ...data }, hostOrigin);
}

let tokenWaiter = null;

window.addEventListener("message", (event) => {
  if (!hostOrigin || event.source !== window.parent || event.origin !== hostOrigin) return;
  const data = event.data;
  if (!data || typeof data !== "object" || data.omnichannel !== "host") return;
  if (data.type === "token") {
    const token = typeof data.token === "string" && data.token ? data.token : null;
    if (tokenWaiter) {
      tokenWaiter(token);
    } else if (config.authRequired && token && token !== state.token) {
      useNewToken(token); // the site signed the customer in (or refreshed the token)
    } else if (config.authRequired && !token && state.token) {
      signOut(); // the site signed the customer out
    }
  } else if (data.type === "open") {
    state.visible = true;
    onVisible();
  } else if (data.type === "close") {
    state.visible = false;
  }
});

function askHostForToken(reason) {
  if (!hostOrigin) return Promise.resolve(null);
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(null), TOKEN_WAIT_MS);
    function finish(token) {
      clearTimeout(timer);
      tokenWaiter = null;
      resolve(token);
    }
    tokenWaiter = finish;
    toHost("token-request", { reason });
  });
}

// --- REST -------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || (status === 0 ? "network" : "error");
    this.body = body || {};
  }
}

async function api(method, path, body, { auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (auth && state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(config.api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, null);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// --- Credentials ---------------------------------------------------------------------------------------

function storedVisitorToken() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch (error) {
    return null; // storage blocked: the visitor lasts as long as the page
  }
}

function storeVisitorToken(token) {
  try {
    if (token) localStorage.setItem(STORAGE_KEY, token);
    else localStorage.removeItem(STORAGE_KEY);
  } catch (error) {
    /* storage blocked */
  }
}

async function obtainToken() {
  if (config.authRequired) return state.token || askHostForToken("initial");
  const stored = storedVisitorToken();
  if (stored) return stored;
  const data = await api("POST", "visitor/", {}, { auth: false });
  storeVisitorToken(data.token);
  return data.token;
}

let renewing = null;

// The token was refused (expired JWT, or a visitor token the server no longer accepts).
function renewToken() {
  if (renewing) return renewing;
  renewing = (async () => {
    const old = state.token;
    let token = null;
    if (config.authRequired) {
      token = await askHostForToken("expired");
      if (token === old) token = null;
    } else {
      storeVisitorToken(null);
      try {
        token = await obtainToken();
      } catch (error) {
        token = null;
      }
    }
    state.token = token;
    return token;
  })();
  renewing.finally(() => {
    renewing = null;
  });
  return renewing;
}

async function withToken(call) {
  try {
    return await call();
  } catch (error) {
    if (error.status !== 401) throw error;
    const token = await renewToken();
    if (!token) {
      showSignIn(true);
      throw error;
    }
    return call();
  }
}

function signOut() {
  clearTimeout(state.renewTimer);
  state.token = null;
  state.stopped = true;
  const socket = state.socket;
  state.socket = null;
  state.authenticated = false;
  if (socket) socket.close();
  clearTimeout(state.reconnectTimer);
  for (const pending of state.pending.values()) clearTimeout(pending.timer);
  state.pending.clear();
  state.sections.clear();
  state.current = null;
  state.draft = null;
  ui.conversations.replaceChildren();
  clearUploads(true);
  state.booted = false;
  state.connectedOnce = false;
  starting = null;
  hideTyping();
  showSignIn(false);
}

function useNewToken(token) {
  state.token = token;
  state.stopped = false;
  hide(ui.signin);
  if (!state.booted) {
    if (!starting) start();
    return;
  }
  reconnectNow();
}

// --- Rendering messages ------------------------------------------------------------------------------

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  day: "numeric",
  month: "short",
  hour: "numeric",
  minute: "2-digit",
});

function formatTime(iso) {
  const date = iso ? new Date(iso) : new Date();
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
}

function authorLabel(message) {
  if (message.sender === "customer") return S.you;
  if (message.sender === "system") return S.system;
  return message.author || S.agent;
}

function renderMessage(message) {
  const item = document.createElement("li");
  item.className = `msg msg-${message.sender}`;
  item.dataset.sender = message.sender;
  if (message.kind) item.dataset.kind = message.kind;
  const author = document.createElement("span");
  author.className = message.sender === "agent" ? "msg-author" : "visually-hidden";
  author.textContent = authorLabel(message) + (message.sender === "agent" ? "" : ": ");
  item.append(author);
  const attachments = message.attachments || [];
  // A message of files only has no text bubble.
  if (message.body || !attachments.length) {
    const bubble = document.createElement("div");
    bubble.className = "msg-bubble";
    bubble.textContent = message.body;
    item.append(bubble);
  }
  if (attachments.length) item.append(renderAttachments(attachments));
  const meta = document.createElement("div");
  meta.className = "msg-meta";
  const time = document.createElement("time");
  if (message.created_at) time.dateTime = message.created_at;
  time.textContent = formatTime(message.created_at);
  meta.append(time);
  item.append(meta);
  if (message.seq != null) item.dataset.seq = String(message.seq);
  return item;
}

// --- Attachments in messages -------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const FILE_ICON = "M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z M14 2v6h6 M8 13h8 M8 17h5";
const sizeFormat = new Intl.NumberFormat(config.language || undefined, { maximumFractionDigits: 1 });

function icon(path, size = 20) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const line = document.createElementNS(SVG, "path");
  line.setAttribute("d", path);
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "1.8");
  line.setAttribute("stroke-linecap", "round");
  line.setAttribute("stroke-linejoin", "round");
  svg.append(line);
  return svg;
}

// "512 B", "12 KB", "1.5 MB" (the number in the widget's language).
function humanSize(bytes) {
  const [inBytes, inKilobytes, inMegabytes] = S.fileSize;
  const round = (value) => sizeFormat.format(value >= 10 ? Math.round(value) : Math.round(value * 10) / 10);
  if (bytes < 1024) return format(inBytes, { size: String(bytes) });
  if (bytes < 1024 * 1024) return format(inKilobytes, { size: round(bytes / 1024) });
  return format(inMegabytes, { size: round(bytes / (1024 * 1024)) });
}

// The server's address of a file (a path on this origin); anything else is not followed.
function fileUrl(attachment) {
  const url = new URL(String(attachment.url || ""), location.href);
  return url.origin === location.origin ? url.pathname + url.search : "#";
}

function isInlineImage(attachment) {
  return INLINE_IMAGES.has(attachment.content_type);
}

function renderAttachments(attachments) {
  const list = document.createElement("div");
  list.className = "msg-attachments";
  for (const attachment of attachments) list.append(renderAttachment(attachment));
  return list;
}

// An image: its thumbnail, linked to the full picture in a new tab. Anything else: a download
// link with its name and size. (The URL is the server's signed, same-origin /files/… address.)
function renderAttachment(attachment) {
  const link = document.createElement("a");
  link.href = fileUrl(attachment);
  if (isInlineImage(attachment)) {
    link.className = "msg-thumb";
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    const image = document.createElement("img");
    image.alt = attachment.name;
    image.loading = "lazy"; // a long history loads only the pictures in view
    image.decoding = "async";
    image.addEventListener("load", () => {
      link.classList.add("loaded");
      if (state.stick) scrollToBottom(); // it grew the log
    });
    image.src = link.getAttribute("href");
    const note = document.createElement("span");
    note.className = "visually-hidden";
    note.textContent = ` ${S.opensInNewTab}`;
    link.append(image, note);
  } else {
    link.className = "msg-file";
    link.download = attachment.name;
    const name = document.createElement("span");
    name.className = "msg-file-name";
    name.textContent = attachment.name;
    const size = document.createElement("span");
    size.className = "msg-file-size";
    size.textContent = ` · ${humanSize(attachment.size)}`;
    const text = document.createElement("span");
    text.className = "msg-file-text";
    text.append(name, size);
    link.append(icon(FILE_ICON), text);
  }
  return link;
}

function setAuthorGrouping(item) {
  const previous = item.previousElementSibling;
  const same =
    previous &&
    previous.classList.contains("msg") &&
    previous.dataset.sender === item.dataset.sender &&
    item.dataset.sender !== "system" &&
    previous.querySelector(".msg-author")?.textContent === item.querySelector(".msg-author")?.textContent;
  item.classList.toggle("same-author", Boolean(same));
  const author = item.querySelector(".msg-author");
  if (author) author.hidden = Boolean(same);
}

function setPendingState(pending, status) {
  const { item } = pending;
  item.classList.toggle("sending", status === "sending");
  item.classList.toggle("failed", status === "failed");
  item.dataset.state = status;
  const meta = item.querySelector(".msg-meta");
  meta.querySelector(".msg-state")?.remove();
  meta.querySelector(".retry")?.remove();
  const label = document.createElement("span");
  label.className = "msg-state";
  if (status === "sending") label.textContent = S.sending;
  else if (status === "sent") label.textContent = S.sent;
  else label.textContent = pending.error ? `${S.failed} ${pending.error}` : S.failed;
  meta.append(label);
  if (status === "failed") {
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = S.retry;
    retry.addEventListener("click", () => {
      transmit(pending);
      ui.input.focus();
    });
    meta.append(retry);
  }
}

function announce(text) {
  const line = document.createElement("p");
  line.textContent = text;
  ui.announcer.append(line);
  while (ui.announcer.childElementCount > 5) ui.announcer.firstElementChild.remove();
}

function nearBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
}

function scrollToBottom() {
  ui.log.scrollTop = ui.log.scrollHeight;
}

// --- Conversations (sections of the log) ------------------------------------------------------------

function createSection(id) {
  const section = {
    id,
    conversation: null,
    list: document.createElement("ol"),
    items: new Map(), // seq -> <li>
    maxSeq: 0,
    minSeq: 0,
    hasMoreBefore: false,
  };
  section.list.className = "conversation";
  if (id != null) section.list.dataset.conversationId = String(id);
  if (ui.conversations.childElementCount) {
    const divider = document.createElement("div");
    divider.className = "divider";
    divider.setAttribute("role", "separator");
    divider.setAttribute("aria-label", S.newConversation);
    divider.textContent = S.newConversation;
    ui.conversations.append(divider);
  }
  ui.conversations.append(section.list);
  return section;
}

// The section for a conversation id we have not seen: the draft the customer is writing into,
// or a new one below a divider. Older conversations than the current one are not shown again.
function sectionFor(id) {
  let section = state.sections.get(id);
  if (section) return section;
  if (state.current && state.current.id != null && id < state.current.id) return null;
  if (state.draft) {
    section = state.draft;
    state.draft = null;
    section.id = id;
    section.list.dataset.conversationId = String(id);
  } else {
    section = createSection(id);
  }
  state.sections.set(id, section);
  if (state.current && state.current !== section) state.current.hasMoreBefore = false;
  state.current = section;
  return section;
}

function currentIsOngoing() {
  const section = state.current;
  return Boolean(section && section.id != null && (!section.conversation || ONGOING.has(section.conversation.status)));
}

// Where a message the customer writes now goes: the ongoing conversation, else a new one.
function sectionForSend() {
  if (currentIsOngoing()) return state.current;
  if (state.current && state.current.id == null) return state.current;
  if (!state.draft) state.draft = createSection(null);
  state.current = state.draft;
  return state.draft;
}

function placeInSection(section, item, seq) {
  const list = section.list;
  let before = null;
  for (const child of list.children) {
    const childSeq = child.dataset.seq ? Number(child.dataset.seq) : Infinity;
    if (childSeq > seq) {
      before = child;
      break;
    }
  }
  list.insertBefore(item, before);
  setAuthorGrouping(item);
  if (item.nextElementSibling) setAuthorGrouping(item.nextElementSibling);
}

// One message from any source (REST page, ready frame, live frame, REST send). Returns true when
// it was new. `live` marks messages that arrive now (announced, counted as unread by the loader).
function addMessage(message, { live = false } = {}) {
  const section = sectionFor(message.conversation_id);
  if (!section) return false;
  const pending = message.client_id ? state.pending.get(message.client_id) : null;
  if (section.items.has(message.seq)) {
    if (pending) settle(pending, section.items.get(message.seq));
    return false;
  }
  const gapBefore = live && message.seq > section.maxSeq + 1 ? section.maxSeq : null;
  const stick = nearBottom() || (pending && true);
  let item;
  if (pending) {
    item = pending.item;
    item.dataset.seq = String(message.seq);
    item.querySelector("time").dateTime = message.created_at || "";
    item.querySelector("time").textContent = formatTime(message.created_at);
    settle(pending, item);
  } else {
    item = renderMessage(message);
  }
  placeInSection(section, item, message.seq);
  section.items.set(message.seq, item);
  section.maxSeq = Math.max(section.maxSeq, message.seq);
  section.minSeq = section.minSeq ? Math.min(section.minSeq, message.seq) : message.seq;
  refreshEmpty();
  if (live && message.sender !== "customer") {
    const text = message.body || (message.attachments || []).map((attachment) => attachment.name).join(", ");
    announce(
      format(S.newMessageFrom, {
        name: authorLabel(message),
        body: text.length > 200 ? `${text.slice(0, 200)}…` : text,
      }),
    );
    toHost("message", { sender: message.sender });
    if (message.sender === "agent") hideTyping();
  }
  if (stick) scrollToBottom();
  if (gapBefore != null && section === state.current) fillGap(section, gapBefore);
  return true;
}

function settle(pending, item) {
  clearTimeout(pending.timer);
  state.pending.delete(pending.clientId);
  pending.item = item;
  item.classList.remove("sending", "failed");
  item.dataset.state = "sent";
  item.querySelector(".msg-state")?.remove();
  item.querySelector(".retry")?.remove();
  const label = document.createElement("span");
  label.className = "msg-state";
  label.textContent = S.sent;
  item.querySelector(".msg-meta").append(label);
}

function refreshEmpty() {
  const anything = Boolean(ui.conversations.querySelector(".msg"));
  const stateCard = !ui.offline.hidden || !ui.signin.hidden || !ui.unavailable.hidden;
  ui.empty.hidden = anything || stateCard;
  // A state card with nothing to show above it takes the whole panel.
  ui.panel.classList.toggle("state-only", stateCard && !anything);
  if (ui.persistentNote) ui.persistentNote.hidden = !ui.signin.hidden || !ui.unavailable.hidden;
}

function setConversation(conversation) {
  const section = sectionFor(conversation.id);
  if (!section) return; // an older conversation than the one shown
  const known = section.conversation;
  // Frames of one conversation can overtake each other (they are sent after different
  // commits); one that knows fewer messages than what we have is stale.
  if (known && (conversation.last_seq ?? 0) < (known.last_seq ?? 0)) return;
  section.conversation = conversation;
  refreshControls();
}

// Fetch what the socket did not deliver: everything after `afterSeq`, in pages.
function fillGap(section, afterSeq) {
  state.gapFill = state.gapFill.then(async () => {
    let after = afterSeq;
    for (let round = 0; round < 50; round++) {
      if (state.current !== section) return;
      let page;
      try {
        page = await withToken(() => api("GET", `conversation/messages/?after_seq=${after}&limit=${GAP_PAGE}`));
      } catch (error) {
        return; // the next reconnect resumes from after_seq anyway
      }
      for (const message of page.messages) addMessage(message);
      if (!page.has_more || !page.messages.length) return;
      after = page.messages[page.messages.length - 1].seq;
    }
  });
  return state.gapFill;
}

async function loadEarlier() {
  const section = state.current;
  if (!section || !section.hasMoreBefore || state.loadingEarlier) return;
  state.loadingEarlier = true;
  ui.loadEarlier.textContent = S.loading;
  ui.loadEarlier.disabled = true;
  try {
    const page = await withToken(() =>
      api("GET", `conversation/messages/?before_seq=${section.minSeq}&limit=${PAGE_SIZE}`),
    );
    const before = ui.log.scrollHeight;
    const top = ui.log.scrollTop;
    for (const message of page.messages) addMessage(message);
    section.hasMoreBefore = page.has_more;
    ui.log.scrollTop = top + (ui.log.scrollHeight - before);
  } catch (error) {
    /* the button stays; the customer can try again */
  } finally {
    state.loadingEarlier = false;
    ui.loadEarlier.textContent = S.loadEarlier;
    ui.loadEarlier.disabled = false;
    refreshControls();
  }
}

// --- Typing ------------------------------------------------------------------------------------------

function showTyping(frame) {
  if (!state.current || frame.conversation_id !== state.current.id) return;
  const agent = state.current.conversation && state.current.conversation.agent;
  ui.typingText.textContent = agent && agent.name ? format(S.typing, { name: agent.name }) : S.agentTyping;
  ui.typing.hidden = false;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
}

function hideTyping() {
  clearTimeout(state.typingTimer);
  ui.typing.hidden = true;
}

function sendTyping() {
  const now = Date.now();
  if (now - state.lastTypingSent < TYPING_INTERVAL_MS || !socketReady()) return;
  if (!currentIsOngoing()) return;
  state.lastTypingSent = now;
  state.socket.send(JSON.stringify({ type: "typing" }));
}

// --- Sending -------------------------------------------------------------------------------------------

function submit() {
  const body = ui.input.value.trim();
  if (state.uploads.some((upload) => upload.status === "uploading")) {
    showAttachErrors([S.stillUploading]);
    return;
  }
  // The files go with the text, or alone (the body may then be empty).
  const attachments = state.uploads.map((upload) => upload.attachment);
  if (!body && !attachments.length) return;
  if (body.length > 4000) {
    announce(S.tooLong);
    return;
  }
  // The message that starts a conversation carries the pre-chat answers (checked here first).
  const prechat = prechatNeeded() ? prechatAnswers() : null;
  if (prechatNeeded() && !prechat) return;
  const section = sectionForSend();
  const pending = {
    clientId: newClientId(),
    body,
    attachments, // a retry sends the same ids again
    prechat,
    item: renderMessage({ sender: "customer", body, attachments, created_at: null }),
    timer: null,
    error: "",
  };
  pending.item.dataset.clientId = pending.clientId;
  state.pending.set(pending.clientId, pending);
  section.list.append(pending.item);
  setAuthorGrouping(pending.item);
  ui.input.value = "";
  autosize();
  clearUploads(false);
  hide(ui.ended);
  refreshEmpty();
  scrollToBottom();
  transmit(pending);
}

function transmit(pending) {
  pending.error = "";
  setPendingState(pending, "sending");
  clearTimeout(pending.timer);
  pending.timer = setTimeout(() => fail(pending, ""), SEND_TIMEOUT_MS);
  state.pending.set(pending.clientId, pending);
  if (socketReady()) {
    state.socket.send(JSON.stringify(sendFrame(pending)));
  } else {
    sendByRest(pending);
  }
}

function sendFrame(pending) {
  const frame = { type: "message.send", client_id: pending.clientId, body: pending.body };
  if (pending.attachments.length) frame.attachments = pending.attachments.map((attachment) => attachment.id);
  if (pending.prechat) frame.prechat = pending.prechat;
  return frame;
}

async function sendByRest(pending) {
  if (!state.token) {
    fail(pending, "");
    return;
  }
  pending.restInFlight = true; // the socket's ready must not send it a second time meanwhile
  try {
    const message = await withToken(() =>
      api("POST", "conversation/messages/", {
        client_id: pending.clientId,
        body: pending.body,
        ...(pending.attachments.length ? { attachments: pending.attachments.map((attachment) => attachment.id) } : {}),
        ...(pending.prechat ? { prechat: pending.prechat } : {}),
      }),
    );
    addMessage(message, { live: true });
  } catch (error) {
    onSendError(pending, error.code, error.body);
  } finally {
    pending.restInFlight = false;
  }
}

function fail(pending, reason) {
  if (!state.pending.has(pending.clientId)) return;
  clearTimeout(pending.timer);
  pending.error = reason;
  setPendingState(pending, "failed");
  announce(reason ? `${S.failed} ${reason}` : S.failed);
}

function onSendError(pending, code, body) {
  if (code === "validation_error" && pending.prechat && body && body.fields && showPrechatErrors(body.fields)) {
    // The answers need fixing: the message goes back into the composer, nothing was stored.
    clearTimeout(pending.timer);
    state.pending.delete(pending.clientId);
    pending.item.remove();
    if (!ui.input.value) ui.input.value = pending.body;
    restoreUploads(pending.attachments);
    refreshControls();
    return;
  }
  if (code === "outside_operating_hours") {
    showOffline(body && body.next_opening);
    fail(pending, "");
  } else if (code === "rate_limited") {
    fail(pending, S.rateLimited);
  } else if (code === "body_too_long") {
    fail(pending, S.tooLong);
  } else if (code === "unavailable" || code === "network") {
    fail(pending, "");
  } else {
    fail(pending, (body && body.detail) || S.errorGeneric);
  }
}

// --- Ending (live chat) ------------------------------------------------------------------------------------

// --- Pre-chat form ----------------------------------------------------------------------------------

// The workstream's questions (config.prechat), asked above the composer until a conversation is
// ongoing; the first message carries the answers, the server checks them again.
const prechatInputs = new Map(); // name -> {question, input, error}

function buildPrechat() {
  for (const question of config.prechat || []) {
    const id = `prechat-${question.name}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = question.required ? question.label : `${question.label} ${S.optional}`;
    let input;
    if (question.type === "textarea") {
      input = document.createElement("textarea");
      input.rows = 2;
      input.maxLength = 2000;
    } else if (question.type === "choice") {
      input = document.createElement("select");
      const none = document.createElement("option");
      none.value = "";
      none.textContent = S.choose;
      input.append(none);
      for (const choice of question.choices) {
        const option = document.createElement("option");
        option.value = choice;
        option.textContent = choice;
        input.append(option);
      }
    } else {
      input = document.createElement("input");
      input.type = question.type === "email" ? "email" : "text";
      input.maxLength = question.type === "email" ? 254 : 200;
      input.autocomplete = { name: "name", email: "email" }[question.name] || "off";
    }
    input.id = id;
    input.name = question.name;
    if (question.required) input.setAttribute("aria-required", "true");
    const error = document.createElement("p");
    error.id = `${id}-error`;
    error.className = "field-error";
    error.hidden = true;
    input.setAttribute("aria-describedby", error.id);
    input.addEventListener("input", () => fieldError(input, ""));
    ui.prechatFields.append(label, input, error);
    prechatInputs.set(question.name, { question, input, error });
  }
}

function prechatNeeded() {
  return prechatInputs.size > 0 && !currentIsOngoing();
}

// A message that starts the conversation is on its way: the form has done its part.
function hasPendingStart() {
  return [...state.pending.values()].some((pending) => pending.prechat);
}

// The answers, or null after showing what is missing or wrong (focus on the first).
function prechatAnswers() {
  const answers = {};
  let first = null;
  for (const [name, { question, input }] of prechatInputs) {
    const value = input.value.trim();
    let problem = "";
    if (!value && question.required) problem = S.answerRequired;
    else if (value && question.type === "email" && !input.checkValidity()) problem = S.emailInvalid;
    fieldError(input, problem);
    if (problem && !first) first = input;
    if (value) answers[name] = value;
  }
  if (first) {
    first.focus();
    announce(S.prechatInvalid);
    return null;
  }
  return answers;
}

// The server's reasons, beside their questions; false when none is a question of the form.
function showPrechatErrors(fields) {
  let first = null;
  for (const [name, reason] of Object.entries(fields)) {
    const entry = prechatInputs.get(name);
    if (!entry) continue;
    fieldError(entry.input, String(reason));
    if (!first) first = entry.input;
  }
  if (!first) return false;
  show(ui.prechat);
  first.focus();
  announce(S.prechatInvalid);
  return true;
}

// --- Satisfaction survey (CSAT) ---------------------------------------------------------------------

// After a live chat ended or a persistent conversation closed the server asks (csat.request): a
// card under that conversation with five choices and an optional comment, answered once.
function showSurvey(conversationId) {
  if (ui.conversations.querySelector(`form.csat[data-conversation-id="${conversationId}"]`)) return;
  const form = document.createElement("form");
  form.className = "csat";
  form.noValidate = true;
  form.dataset.conversationId = String(conversationId);
  const fieldset = document.createElement("fieldset");
  const legend = document.createElement("legend");
  legend.textContent = S.csatQuestion;
  fieldset.append(legend);
  const scale = document.createElement("div");
  scale.className = "csat-scale";
  S.csatRatings.forEach((text, index) => {
    const label = document.createElement("label");
    label.className = "csat-choice";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "rating";
    input.value = String(index + 1);
    const face = document.createElement("span");
    face.className = "csat-number";
    face.textContent = String(index + 1);
    const name = document.createElement("span");
    name.className = "csat-text";
    name.textContent = text;
    label.append(input, face, name);
    scale.append(label);
  });
  fieldset.append(scale);
  const commentLabel = document.createElement("label");
  commentLabel.className = "csat-comment-label";
  commentLabel.textContent = S.csatComment;
  const comment = document.createElement("textarea");
  comment.name = "comment";
  comment.rows = 2;
  comment.maxLength = 2000;
  commentLabel.append(comment);
  const error = document.createElement("p");
  error.className = "field-error";
  error.setAttribute("role", "alert");
  error.hidden = true;
  const button = document.createElement("button");
  button.type = "submit";
  button.className = "button-primary";
  button.textContent = S.csatSend;
  form.append(fieldset, commentLabel, error, button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitSurvey(form, conversationId);
  });
  const section = state.sections.get(conversationId);
  if (section) section.list.after(form);
  else ui.conversations.append(form);
  scrollToBottom(); // the newest thing in the panel
  announce(S.csatQuestion);
}

async function submitSurvey(form, conversationId) {
  const chosen = form.querySelector("input[name=rating]:checked");
  const error = form.querySelector(".field-error");
  if (!chosen) {
    error.textContent = S.csatChoose;
    error.hidden = false;
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  const body = { conversation_id: conversationId, rating: Number(chosen.value), comment: form.elements.comment.value };
  let thanks = S.csatThanks;
  try {
    await withToken(() => api("POST", "csat/", body));
  } catch (failure) {
    if (failure.code === "already_rated") thanks = S.csatAlready;
    else if (failure.code === "not_found") thanks = S.csatClosed;
    else {
      error.textContent = failure.code === "rate_limited" ? S.rateLimited : S.errorGeneric;
      error.hidden = false;
      button.disabled = false;
      return;
    }
  }
  const done = document.createElement("p");
  done.className = "csat-done";
  done.setAttribute("role", "status");
  done.textContent = thanks;
  form.replaceChildren(done);
}

async function endConversation() {
  if (socketReady()) {
    state.socket.send(JSON.stringify({ type: "conversation.end" }));
    return;
  }
  try {
    const data = await withToken(() => api("POST", "conversation/end/", {}));
    setConversation(data.conversation || data);
  } catch (error) {
    announce(error.code === "customer_cannot_end" ? S.cannotEnd : S.errorGeneric);
  }
}

// --- Socket ---------------------------------------------------------------------------------------------------

// A signed-in customer's token runs out at its `exp` (the server allows 30 s more, then closes
// the socket with 4401). Before that the panel asks the host page for a fresh token and hands it
// to the open socket in an auth frame, which answers ready again and keeps the socket.
const RENEW_BEFORE_MS = 60000;

function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "="))).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch (error) {
    return null; // not a JWT (a visitor token: 30 days)
  }
}

function scheduleRenewal() {
  clearTimeout(state.renewTimer);
  const expiry = config.authRequired && state.token ? tokenExpiry(state.token) : null;
  if (expiry === null) return;
  const remaining = expiry - Date.now();
  const delay = Math.max(1000, Math.min(remaining - RENEW_BEFORE_MS, remaining * 0.8));
  state.renewTimer = setTimeout(renewBeforeExpiry, delay);
}

async function renewBeforeExpiry() {
  const old = state.token;
  const token = await askHostForToken("expiring");
  // No fresh token: the socket closes when this one runs out, and the panel asks again then.
  if (!token || token === old || state.token !== old) return;
  state.token = token;
  if (socketReady()) {
    const afterSeq = state.current && state.current.id != null ? state.current.maxSeq : 0;
    state.socket.send(JSON.stringify({ type: "auth", token, after_seq: afterSeq }));
  } else {
    scheduleRenewal();
  }
}

function socketReady() {
  return Boolean(state.socket && state.socket.readyState === WebSocket.OPEN && state.authenticated);
}

function connect() {
  if (state.stopped || !state.token) return;
  clearTimeout(state.reconnectTimer);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${config.socket}`);
  state.socket = socket;
  state.authenticated = false;
  socket.addEventListener("open", () => {
    const afterSeq = state.current && state.current.id != null ? state.current.maxSeq : 0;
    socket.send(JSON.stringify({ type: "auth", token: state.token, after_seq: afterSeq }));
  });
  socket.addEventListener("message", (event) => {
    if (socket !== state.socket) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    onFrame(frame, socket);
  });
  socket.addEventListener("close", (event) => {
    if (socket !== state.socket) return;
    state.socket = null;
    state.authenticated = false;
    onSocketClosed(event.code);
  });
}

async function onSocketClosed(code) {
  hideTyping();
  if (code === CLOSE_FORBIDDEN) {
    state.stopped = true;
    showUnavailable(S.notFound);
    return;
  }
  if (code === CLOSE_UNAUTHENTICATED) {
    const token = await renewToken();
    if (!token) {
      state.stopped = true;
      showSignIn(true);
      return;
    }
    connect();
    return;
  }
  if (state.connectedOnce) showConnection(S.reconnecting);
  scheduleReconnect();
}

function scheduleReconnect() {
  if (state.stopped) return;
  clearTimeout(state.reconnectTimer);
  const base = BACKOFF_MS[Math.min(state.attempts, BACKOFF_MS.length - 1)];
  state.attempts += 1;
  const delay = base * (0.8 + Math.random() * 0.4);
  state.reconnectTimer = setTimeout(connect, delay);
}

// Reconnect at once (back online, a new token): the old socket may be dead without knowing it.
function reconnectNow() {
  const old = state.socket;
  state.socket = null;
  state.authenticated = false;
  if (old) {
    try {
      old.close();
    } catch (error) {
      /* already closed */
    }
  }
  state.attempts = 0;
  connect();
}

function onFrame(frame, socket) {
  switch (frame.type) {
    case "ready":
      onReady(frame);
      break;
    case "message":
      if (frame.message) addMessage(frame.message, { live: true });
      break;
    case "conversation":
      if (frame.conversation) setConversation(frame.conversation);
      break;
    case "typing":
      if (frame.sender === "agent") showTyping(frame);
      break;
    case "csat.request":
      if (Number.isInteger(frame.conversation_id)) showSurvey(frame.conversation_id);
      break;
    case "error":
      onErrorFrame(frame, socket);
      break;
    default:
      break;
  }
}

async function onReady(frame) {
  const wasConnected = state.connectedOnce;
  const renewal = state.authenticated; // the answer to a fresh token on the open socket
  state.authenticated = true;
  state.connectedOnce = true;
  state.attempts = 0;
  scheduleRenewal();
  if (renewal) {
    // Nothing was lost: only what the frame carries (after the seq shown) to add.
  } else if (wasConnected) {
    showConnection(S.reconnected, true);
    setTimeout(() => {
      if (socketReady()) hide(ui.connection);
    }, 2500);
  } else {
    hide(ui.connection);
  }
  const conversation = frame.conversation;
  if (!conversation && currentIsOngoing() && state.current.conversation) {
    // It ended while we were away (closed by an agent, a supervisor or the sweep).
    state.current.conversation = { ...state.current.conversation, status: "closed" };
  }
  if (conversation) {
    const known = state.sections.has(conversation.id);
    const sentAfter = known ? null : state.current && state.current.id != null ? state.current.maxSeq : 0;
    setConversation(conversation);
    const section = state.sections.get(conversation.id);
    for (const message of frame.messages || []) addMessage(message, { live: wasConnected });
    if (section && sentAfter) {
      // The socket resumed after a seq of another conversation: load this one from its start.
      await fillGap(section, 0);
    } else if (section && frame.has_more) {
      await fillGap(section, section.maxSeq);
    }
  }
  // Messages that were in flight when the socket dropped: resend (same client_id, no duplicate).
  for (const pending of state.pending.values()) {
    if (!renewal && pending.item.dataset.state === "sending" && !pending.restInFlight && socketReady()) {
      state.socket.send(JSON.stringify(sendFrame(pending)));
    }
  }
  refreshControls();
}

function onErrorFrame(frame) {
  const pending = frame.client_id ? state.pending.get(frame.client_id) : null;
  if (pending) {
    onSendError(pending, frame.code, frame);
    return;
  }
  switch (frame.code) {
    case "outside_operating_hours":
      showOffline(frame.next_opening);
      break;
    case "customer_cannot_end":
      announce(S.cannotEnd);
      break;
    case "invalid_token":
    case "authentication_required":
    case "not_found":
    case "origin_not_allowed":
      break; // the close that follows says what to do
    default:
      if (frame.detail) announce(frame.detail);
  }
}

// --- States and controls ---------------------------------------------------------------------------------------

function hide(element) {
  if (element) element.hidden = true;
}

function show(element) {
  if (element) element.hidden = false;
}

function showConnection(text, ok = false) {
  ui.connection.textContent = text;
  ui.connection.classList.toggle("ok", ok);
  show(ui.connection);
}

function showSignIn(expired) {
  ui.signinText.textContent = expired ? S.signInExpired : S.signIn;
  show(ui.signin);
  hide(ui.connection);
  refreshControls();
}

function showUnavailable(text) {
  ui.unavailableText.textContent = text;
  show(ui.unavailable);
  hide(ui.connection);
  refreshControls();
}

// "We open again at 17:00" today, else "on Monday 14 July at 09:00": in the customer's own
// locale and time zone.
function openingText(iso) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return S.offlineClosed;
  if (date.toDateString() === new Date().toDateString()) {
    return format(S.offlineOpensAtTime, { time: timeFormat.format(date) });
  }
  const when = new Intl.DateTimeFormat(undefined, {
    weekday: "long",
    day: "numeric",
    month: "long",
    hour: "numeric",
    minute: "2-digit",
  }).format(date);
  return format(S.offlineOpensOn, { date: when });
}

function showOffline(nextOpening) {
  if (state.widgetInfo) {
    state.widgetInfo.online = false;
    state.widgetInfo.next_opening = nextOpening || null;
  }
  ui.offlineText.textContent = openingText(nextOpening);
  show(ui.offline);
  refreshControls();
  // Look again when it opens (or in five minutes, whichever is first).
  clearTimeout(state.openingTimer);
  const wait = nextOpening ? Math.max(new Date(nextOpening).getTime() - Date.now() + 1000, 5000) : 300000;
  state.openingTimer = setTimeout(refreshWidgetInfo, Math.min(wait, 300000));
}

async function refreshWidgetInfo() {
  try {
    state.widgetInfo = await api("GET", "", undefined, { auth: false });
  } catch (error) {
    state.openingTimer = setTimeout(refreshWidgetInfo, 60000);
    return;
  }
  applyOnline();
}

function applyOnline() {
  const info = state.widgetInfo;
  if (info && config.mode === "live" && info.online === false) showOffline(info.next_opening);
  else {
    hide(ui.offline);
    clearTimeout(state.openingTimer);
    refreshControls();
  }
}

// What the customer can do now: composer, End, load earlier, the ended note.
function refreshControls() {
  const blocked = !ui.signin.hidden || !ui.unavailable.hidden;
  const ongoing = currentIsOngoing();
  const offline = !ui.offline.hidden && !ongoing;
  const ready = Boolean(state.token) && state.booted;
  ui.composer.hidden = blocked || offline || !ready;
  ui.prechat.hidden = ui.composer.hidden || !prechatNeeded() || hasPendingStart();
  if (ui.offline && !ui.offline.hidden && ongoing) hide(ui.offline);
  if (ui.endButton) ui.endButton.hidden = blocked || !ongoing || !config.customerCanEnd;
  const limits = attachmentLimits();
  ui.attach.hidden = !limits;
  if (limits) ui.fileInput.accept = limits.types.join(",");
  const section = state.current;
  const endedNow = Boolean(section && section.conversation && !ONGOING.has(section.conversation.status));
  ui.ended.hidden = !endedNow || blocked || offline;
  ui.loadEarlier.hidden = !(section && section.hasMoreBefore);
  ui.transcriptButton.hidden = blocked || !ready || !(section && section.id != null);
  refreshEmpty();
}

// --- Composer and controls ---------------------------------------------------------------------------------------

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight + 2, 136)}px`;
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
  ui.input.focus();
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});

ui.input.addEventListener("input", () => {
  autosize();
  if (ui.input.value.trim()) sendTyping();
});

ui.loadEarlier.addEventListener("click", loadEarlier);

// --- Attaching files: the button, drag and drop, a pasted screenshot ------------------------------------

// Each file uploads at once (POST …/conversation/attachments/) and waits as a chip above the
// message box; the next message carries the ids. The size and type are checked here first for a
// quick answer; the server decides (by the file's bytes) and may still refuse.

// What the workstream accepts (the widget config), or null: no attachments here.
function attachmentLimits() {
  const limits = state.widgetInfo && state.widgetInfo.attachments;
  return limits && Array.isArray(limits.types) && limits.types.length ? limits : null;
}

function canAttach() {
  return Boolean(attachmentLimits()) && !ui.composer.hidden;
}

function typeAllowed(type, allowed) {
  return allowed.some((entry) => entry === type || (entry.endsWith("/*") && type.startsWith(entry.slice(0, -1))));
}

// The browser guesses a file's type from its name; an empty guess, or a text type (the server may
// well find plain text in a .md or .log file), is left to the server.
function refusedByType(file, allowed) {
  const type = (file.type || "").toLowerCase();
  return Boolean(type) && !type.startsWith("text/") && !typeAllowed(type, allowed);
}

function showAttachErrors(lines) {
  ui.attachError.replaceChildren(
    ...lines.map((text) => {
      const line = document.createElement("span");
      line.textContent = text;
      return line;
    }),
  );
  ui.attachError.hidden = !lines.length;
}

function addAttachError(text) {
  const lines = Array.from(ui.attachError.children, (line) => line.textContent);
  if (!lines.includes(text)) lines.push(text);
  showAttachErrors(lines);
}

function dropAttachError(text) {
  showAttachErrors(Array.from(ui.attachError.children, (line) => line.textContent).filter((line) => line !== text));
}

function addFiles(files) {
  const limits = attachmentLimits();
  if (!limits || ui.composer.hidden || !files.length) return;
  showAttachErrors([]);
  for (const file of files) {
    const name = file.name || "file";
    if (state.uploads.length >= MAX_ATTACHMENTS) {
      addAttachError(format(S.tooManyFiles, { count: MAX_ATTACHMENTS }));
      break;
    }
    if (file.size === 0) {
      addAttachError(format(S.fileEmpty, { name }));
    } else if (file.size > limits.max_size) {
      addAttachError(format(S.fileTooLarge, { name, size: humanSize(limits.max_size) }));
    } else if (refusedByType(file, limits.types)) {
      addAttachError(format(S.fileTypeNotAllowed, { name }));
    } else {
      startUpload(file, name);
    }
  }
}

async function startUpload(file, name) {
  const upload = { file, name, size: file.size, status: "uploading", attachment: null, xhr: null, chip: null };
  upload.chip = renderChip(upload);
  state.uploads.push(upload);
  ui.chips.append(upload.chip);
  refreshChips();
  try {
    const data = await withToken(() => uploadRequest(upload));
    if (!state.uploads.includes(upload)) return; // removed meanwhile
    upload.attachment = data.attachment;
    upload.status = "done";
    upload.file = null;
    const chip = renderChip(upload);
    const hadFocus = upload.chip.contains(document.activeElement);
    upload.chip.replaceWith(chip);
    upload.chip = chip;
    if (hadFocus) chip.querySelector(".chip-remove").focus();
    announce(format(S.attached, { name }));
    if (!state.uploads.some((other) => other.status === "uploading")) dropAttachError(S.stillUploading);
  } catch (error) {
    if (!state.uploads.includes(upload)) return;
    removeUpload(upload);
    addAttachError(uploadErrorText(error, upload));
  }
}

function uploadErrorText(error, upload) {
  const name = upload.name;
  const limits = attachmentLimits();
  switch (error.code) {
    case "file_too_large": {
      const maxSize = error.body.max_size || (limits && limits.max_size);
      return maxSize ? format(S.fileTooLarge, { name, size: humanSize(maxSize) }) : error.message;
    }
    case "file_type_not_allowed":
      return format(S.fileTypeNotAllowed, { name });
    case "validation_error":
      return format(S.fileEmpty, { name }); // the one check of a file that is sent at all
    case "rate_limited":
      return S.uploadRateLimited;
    case "network":
    case "unavailable":
    case "error":
      return format(S.uploadFailed, { name });
    default:
      return error.body.detail ? `${name}: ${error.body.detail}` : format(S.uploadFailed, { name });
  }
}

// XMLHttpRequest rather than fetch: it tells the upload's progress.
function uploadRequest(upload) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    upload.xhr = xhr;
    xhr.open("POST", `${config.api}conversation/attachments/`);
    xhr.setRequestHeader("Accept", "application/json");
    if (state.token) xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    xhr.upload.addEventListener("progress", (event) => {
      const bar = upload.chip && upload.chip.querySelector("progress");
      if (bar && event.lengthComputable && event.total) bar.value = event.loaded / event.total;
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch (error) {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data && data.attachment) resolve(data);
      else reject(new ApiError(xhr.status, data));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, null)));
    xhr.addEventListener("abort", () => reject(new ApiError(0, null)));
    const body = new FormData();
    body.append("file", upload.file, upload.name);
    xhr.send(body);
  });
}

// A chip: an icon (a small picture once an image is uploaded), the name, the size or the
// progress, and × to take it off the message.
function renderChip(upload) {
  const chip = document.createElement("li");
  chip.className = "chip";
  chip.dataset.state = upload.status;
  const done = upload.status === "done";
  if (done) chip.dataset.attachmentId = upload.attachment.id;
  else chip.setAttribute("aria-busy", "true");
  if (done && isInlineImage(upload.attachment)) {
    const preview = document.createElement("img");
    preview.className = "chip-preview";
    preview.alt = "";
    preview.src = fileUrl(upload.attachment);
    chip.append(preview);
  } else {
    const symbol = document.createElement("span");
    symbol.className = "chip-icon";
    symbol.append(icon(FILE_ICON, 18));
    chip.append(symbol);
  }
  const text = document.createElement("span");
  text.className = "chip-text";
  const name = document.createElement("span");
  name.className = "chip-name";
  name.textContent = upload.name;
  name.title = upload.name;
  text.append(name);
  if (done) {
    const size = document.createElement("span");
    size.className = "chip-size";
    size.textContent = humanSize(upload.size);
    text.append(size);
  } else {
    const bar = document.createElement("progress");
    bar.className = "chip-progress";
    bar.max = 1;
    bar.setAttribute("aria-label", format(S.uploading, { name: upload.name }));
    text.append(bar);
  }
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "chip-remove";
  remove.setAttribute("aria-label", format(S.removeFile, { name: upload.name }));
  remove.title = remove.getAttribute("aria-label");
  remove.textContent = "×";
  remove.addEventListener("click", () => {
    removeUpload(upload);
    ui.input.focus();
  });
  chip.append(text, remove);
  return chip;
}

// Off the next message (an upload in progress stops; the server forgets an unsent one).
function removeUpload(upload) {
  const index = state.uploads.indexOf(upload);
  if (index >= 0) state.uploads.splice(index, 1);
  if (upload.status === "uploading" && upload.xhr) upload.xhr.abort();
  upload.chip.remove();
  refreshChips();
}

// After a send the chips go (the files are the message's now); after a sign-out the uploads stop too.
function clearUploads(abort) {
  for (const upload of state.uploads) {
    if (abort && upload.status === "uploading" && upload.xhr) upload.xhr.abort();
  }
  state.uploads = [];
  ui.chips.replaceChildren();
  refreshChips();
  showAttachErrors([]);
}

// A message the server sent back to the composer (the pre-chat answers need fixing): its files too.
function restoreUploads(attachments) {
  const restored = attachments.map((attachment) => {
    const upload = { name: attachment.name, size: attachment.size, status: "done", attachment, xhr: null };
    upload.chip = renderChip(upload);
    return upload;
  });
  state.uploads = [...restored, ...state.uploads];
  ui.chips.prepend(...restored.map((upload) => upload.chip));
  refreshChips();
}

function refreshChips() {
  ui.chips.hidden = !state.uploads.length;
}

ui.attach.setAttribute("aria-label", S.attach);
ui.attach.title = S.attach;
ui.chips.setAttribute("aria-label", S.attachedFiles);
ui.dropHintText.textContent = S.dropHint;

ui.attach.addEventListener("click", () => ui.fileInput.click());
ui.fileInput.addEventListener("change", () => {
  addFiles(Array.from(ui.fileInput.files || []));
  ui.fileInput.value = ""; // the same file can be chosen again
  ui.input.focus();
});

// A screenshot pasted into the message box. Text on the clipboard wins: an office app copies a
// picture of the text beside it.
ui.input.addEventListener("paste", (event) => {
  const data = event.clipboardData;
  const files = data ? Array.from(data.files || []) : [];
  if (!files.length || data.getData("text/plain") || !canAttach()) return;
  event.preventDefault();
  addFiles(files);
});

// Files dragged over the panel: a hint over it, and the drop attaches them. A drop of files is
// never left to the browser (it would open the file in place of the panel).
let dragDepth = 0;

function draggingFiles(event) {
  return Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types || []).includes("Files");
}

document.addEventListener("dragenter", (event) => {
  if (!draggingFiles(event)) return;
  event.preventDefault();
  dragDepth += 1;
  ui.dropHint.hidden = !canAttach();
});
document.addEventListener("dragover", (event) => {
  if (!draggingFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = canAttach() ? "copy" : "none";
});
document.addEventListener("dragleave", (event) => {
  if (!draggingFiles(event)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) hide(ui.dropHint);
});
document.addEventListener("drop", (event) => {
  if (!draggingFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  hide(ui.dropHint);
  if (!canAttach()) return;
  addFiles(Array.from(event.dataTransfer.files || []));
  ui.input.focus();
});

// --- Beyond the tab: the offline form and the transcript (docs/email.md) -------------------------------

function showNotice(text) {
  ui.notice.textContent = text;
  show(ui.notice);
}

function fieldError(input, text) {
  const error = $(`${input.id}-error`);
  input.setAttribute("aria-invalid", text ? "true" : "false");
  if (error) {
    error.textContent = text || "";
    error.hidden = !text;
  }
}

function offlineFormValid() {
  const email = ui.offlineEmail.value.trim();
  const body = ui.offlineBody.value.trim();
  fieldError(ui.offlineEmail, email && ui.offlineEmail.checkValidity() ? "" : S.emailRequired);
  fieldError(ui.offlineBody, body ? "" : S.bodyRequired);
  const firstInvalid = ui.offlineForm.querySelector('[aria-invalid="true"]');
  if (firstInvalid) firstInvalid.focus();
  return !firstInvalid;
}

ui.offlineForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  ui.offlineFormError.hidden = true;
  if (!offlineFormValid()) return;
  const email = ui.offlineEmail.value.trim();
  const payload = { name: ui.offlineName.value.trim(), email, body: ui.offlineBody.value.trim() };
  ui.offlineSend.disabled = true;
  try {
    const message = await withToken(() => api("POST", "offline-message/", payload));
    ui.offlineForm.reset();
    hide(ui.offlineForm);
    showNotice(format(S.offlineSent, { email })); // a role="status" line: read out as it appears
    if (message && message.conversation_id != null) addMessage(message, { live: true });
  } catch (error) {
    const fields = (error.body && error.body.fields) || {};
    if (fields.email) fieldError(ui.offlineEmail, fields.email);
    if (fields.body) fieldError(ui.offlineBody, fields.body);
    if (!fields.email && !fields.body) {
      ui.offlineFormError.textContent =
        error.code === "rate_limited" ? S.rateLimited : (error.body && error.body.detail) || S.errorGeneric;
      show(ui.offlineFormError);
    }
  } finally {
    ui.offlineSend.disabled = false;
  }
});

ui.transcriptButton.addEventListener("click", async () => {
  ui.transcriptButton.disabled = true;
  try {
    await withToken(() => api("POST", "conversation/transcript/", {}));
    showNotice(S.transcriptSent);
  } catch (error) {
    if (error.code === "validation_error") showNotice(S.transcriptNoEmail);
    else if (error.code === "rate_limited") showNotice(S.transcriptTooMany);
    else showNotice(S.errorGeneric);
  } finally {
    ui.transcriptButton.disabled = false;
  }
});
ui.log.addEventListener("scroll", () => {
  state.stick = nearBottom();
  if (ui.log.scrollTop < 60 && ui.log.clientHeight > 0) loadEarlier();
});
// The log was hidden (panel closed) or resized (phone keyboard): keep the newest in view.
new ResizeObserver(() => {
  if (state.stick) scrollToBottom();
}).observe(ui.log);

if (ui.endButton && ui.endDialog) {
  ui.endButton.addEventListener("click", () => ui.endDialog.showModal());
  ui.endDialog.addEventListener("close", () => {
    if (ui.endDialog.returnValue === "end") endConversation();
    ui.endDialog.returnValue = "";
    (ui.endButton.hidden ? ui.input : ui.endButton).focus();
  });
}

if (inFrame && hostOrigin) {
  show(ui.minimise);
  ui.minimise.addEventListener("click", () => toHost("close"));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !(ui.endDialog && ui.endDialog.open)) toHost("close");
  });
}

window.addEventListener("online", () => {
  if (state.booted) reconnectNow();
});
window.addEventListener("offline", () => {
  if (state.connectedOnce) showConnection(S.reconnecting);
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.booted && !state.socket && !state.stopped) reconnectNow();
});

// --- Start ---------------------------------------------------------------------------------------------------------

function onVisible() {
  if (!state.booted && !config.authRequired) start();
  if (!ui.composer.hidden) ui.input.focus();
}

// Load the current conversation's latest page over REST; the socket then resumes after it.
async function loadHistory() {
  let data;
  try {
    data = await withToken(() => api("GET", "conversation/"));
  } catch (error) {
    return; // the socket's ready frame brings the conversation anyway
  }
  if (!data || !data.conversation) return;
  setConversation(data.conversation);
  const section = state.sections.get(data.conversation.id);
  try {
    const page = await withToken(() => api("GET", `conversation/messages/?limit=${PAGE_SIZE}`));
    for (const message of page.messages) addMessage(message);
    if (section) section.hasMoreBefore = page.has_more;
  } catch (error) {
    /* the ready frame fills it */
  }
  scrollToBottom();
}


function start() {
  if (starting) return starting;
  starting = (async () => {
    // Say "Connecting…" only when it takes a while.
    setTimeout(() => {
      if (!state.connectedOnce && !state.stopped && ui.signin.hidden) showConnection(S.connecting);
    }, 1000);
    const [info, token] = await Promise.all([
      api("GET", "", undefined, { auth: false }).catch((error) => error),
      obtainToken().catch(() => null),
    ]);
    // Without the config (a failed request) the panel still chats; it only cannot tell the
    // opening hours in advance (a refused message brings them).
    if (!(info instanceof ApiError)) state.widgetInfo = info;
    if (!token) {
      starting = null;
      if (config.authRequired) showSignIn(false);
      else showUnavailable(S.unavailable);
      return;
    }
    state.token = token;
    await loadHistory();
    state.booted = true;
    applyOnline();
    refreshControls();
    scrollToBottom();
    connect();
    if (state.visible && !ui.prechat.hidden) ui.prechatFields.querySelector("input, select, textarea").focus();
    else if (state.visible && !ui.composer.hidden) ui.input.focus({ preventScroll: true });
  })();
  return starting;
}

buildPrechat();
toHost("ready", {
  title: config.title,
  colour: config.colour,
  foreground: config.foreground,
  labels: { open: S.openChat, close: S.closeChat, unread: S.unread, unreadOne: S.unreadOne },
});

// A customer with credentials already (a signed-in customer, a returning visitor) connects at
// once, so the launcher can show unread messages; a new anonymous visitor when they open the chat.
if (config.authRequired || storedVisitorToken() || state.visible) start();
else refreshControls();
