/*!
 * Omnichannel chat widget: the embed loader (docs/widget.md).
 *
 *   <script src="https://chat.example.com/static/omnichannel-widget.js"
 *           data-widget-key="KEY" data-server="https://chat.example.com" async></script>
 *
 * Optional: data-token="<customer JWT>", or before the script
 *   window.OmnichannelWidget = { getAuthToken: async () => "<customer JWT>" };
 * After loading, window.OmnichannelWidget also has open(), close(), toggle() and refreshToken().
 *
 * Adds a launcher button and an iframe with the chat panel of the server. They talk through
 * postMessage; each side accepts messages only from the other's window and origin.
 */
(function () {
  "use strict";

  var script =
    document.currentScript ||
    document.querySelector('script[src*="omnichannel-widget.js"][data-widget-key]');
  if (!script) return;
  var widgetKey = script.getAttribute("data-widget-key");
  if (!widgetKey || !/^[-a-zA-Z0-9_]+$/.test(widgetKey)) {
    console.warn("Omnichannel widget: data-widget-key is missing or invalid.");
    return;
  }
  var server;
  try {
    server = new URL(script.getAttribute("data-server") || script.src, location.href).origin;
  } catch (error) {
    console.warn("Omnichannel widget: data-server is not a URL.");
    return;
  }
  var registry = (window.__omnichannelWidgets = window.__omnichannelWidgets || {});
  if (registry[widgetKey]) return; // the snippet twice on one page
  registry[widgetKey] = true;

  var STORAGE_OPEN = "omnichannel.open." + widgetKey;
  var panelUrl =
    server + "/widget/" + encodeURIComponent(widgetKey) + "/?origin=" + encodeURIComponent(location.origin);

  var CSS = [
    ":host { all: initial; }",
    "* { box-sizing: border-box; }",
    "[hidden] { display: none !important; }",
    ".launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483646; width: 60px; height: 60px;",
    "  display: inline-flex; align-items: center; justify-content: center; padding: 0; border: 0; border-radius: 50%;",
    "  background: var(--accent, #2563eb); color: var(--on-accent, #fff); cursor: pointer;",
    "  box-shadow: 0 6px 20px rgba(15, 23, 42, .28); transition: transform .15s ease; }",
    ".launcher:hover { transform: scale(1.05); }",
    ".launcher:focus-visible { outline: 3px solid #111827; outline-offset: 3px; }",
    ".launcher svg { width: 28px; height: 28px; }",
    ".badge { position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px; padding: 0 6px;",
    "  border-radius: 11px; background: #d92d20; color: #fff; border: 2px solid #fff;",
    "  font: 700 12px/18px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; text-align: center; }",
    ".frame { position: fixed; right: 20px; bottom: 92px; z-index: 2147483647; width: 380px;",
    "  height: min(640px, calc(100vh - 112px)); border-radius: 16px; overflow: hidden; background: #fff;",
    "  box-shadow: 0 12px 40px rgba(15, 23, 42, .28); }",
    ".frame iframe { display: block; width: 100%; height: 100%; border: 0; }",
    "@media (max-width: 480px), (max-height: 560px) {",
    "  .frame { inset: 0; right: 0; bottom: 0; width: 100%; height: 100%; border-radius: 0; }",
    "  .open .launcher { display: none; }",
    "}",
    ".visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);",
    "  white-space: nowrap; }",
  ].join("\n");

  var CHAT_ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M12 3C6.5 3 2 6.8 2 ' +
    "11.5c0 2.4 1.3 4.6 3.3 6.1L4.6 21l3.9-2c1.1.3 2.3.5 3.5.5 5.5 0 10-3.8 10-8.5S17.5 3 12 3z\"/></svg>";
  var CLOSE_ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M6 6l12 12M18 6L6 18" ' +
    'stroke="currentColor" stroke-width="2.4" stroke-linecap="round" fill="none"/></svg>';

  var labels = {
    open: "Open chat",
    close: "Close chat",
    unread: "%(count)s unread messages",
    unreadOne: "1 unread message",
  };
  var isOpen = false;
  var ready = false;
  var unread = 0;

  var host = document.createElement("div");
  host.setAttribute("data-omnichannel-widget", widgetKey);
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement("style");
    if (script.nonce) style.nonce = script.nonce; // a host page with a strict CSP
    style.textContent = CSS;
    root.appendChild(style);
  }

  var wrapper = document.createElement("div");
  var frameBox = document.createElement("div");
  frameBox.className = "frame";
  frameBox.id = "omnichannel-frame";
  frameBox.hidden = true;
  var iframe = document.createElement("iframe");
  iframe.src = panelUrl;
  iframe.title = "Chat";
  iframe.setAttribute("referrerpolicy", "origin");
  frameBox.appendChild(iframe);

  var launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "launcher";
  launcher.hidden = true; // until the panel says it is ready (an unknown widget shows nothing)
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "omnichannel-frame");
  var icon = document.createElement("span");
  icon.innerHTML = CHAT_ICON; // a constant of this file
  icon.style.display = "inline-flex";
  var label = document.createElement("span");
  label.className = "visually-hidden";
  var badge = document.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  badge.setAttribute("aria-hidden", "true");
  launcher.appendChild(icon);
  launcher.appendChild(label);
  launcher.appendChild(badge);

  wrapper.appendChild(frameBox);
  wrapper.appendChild(launcher);
  root.appendChild(wrapper);

  function format(template, values) {
    return String(template).replace(/%\((\w+)\)s/g, function (_match, name) {
      return values[name] == null ? "" : String(values[name]);
    });
  }

  function toPanel(type, data) {
    var message = { omnichannel: "host", type: type };
    for (var key in data || {}) message[key] = data[key];
    if (iframe.contentWindow) iframe.contentWindow.postMessage(message, server);
  }

  function remember(open) {
    try {
      if (open) sessionStorage.setItem(STORAGE_OPEN, "1");
      else sessionStorage.removeItem(STORAGE_OPEN);
    } catch (error) {
      /* storage blocked */
    }
  }

  function remembered() {
    try {
      return sessionStorage.getItem(STORAGE_OPEN) === "1";
    } catch (error) {
      return false;
    }
  }

  function render() {
    wrapper.className = isOpen ? "open" : "";
    frameBox.hidden = !isOpen;
    launcher.setAttribute("aria-expanded", isOpen ? "true" : "false");
    icon.innerHTML = isOpen ? CLOSE_ICON : CHAT_ICON;
    var text = isOpen ? labels.close : labels.open;
    if (!isOpen && unread > 0) {
      text += ", " + (unread === 1 ? labels.unreadOne : format(labels.unread, { count: unread }));
    }
    label.textContent = text;
    launcher.title = isOpen ? labels.close : labels.open;
    badge.textContent = unread > 9 ? "9+" : String(unread);
    badge.hidden = isOpen || unread === 0;
  }

  function open(options) {
    if (!ready) return;
    isOpen = true;
    unread = 0;
    remember(true);
    render();
    toPanel("open");
    if (!(options && options.restore)) {
      try {
        iframe.focus();
        iframe.contentWindow.focus();
      } catch (error) {
        /* the panel focuses its composer itself */
      }
    }
  }

  function close() {
    var hadFocus = isOpen;
    isOpen = false;
    remember(false);
    render();
    toPanel("close");
    if (hadFocus) launcher.focus();
  }

  function getToken() {
    var api = window.OmnichannelWidget;
    if (api && typeof api.getAuthToken === "function") {
      return Promise.resolve()
        .then(function () {
          return api.getAuthToken();
        })
        .then(
          function (token) {
            return typeof token === "string" && token ? token : null;
          },
          function (error) {
            console.warn("Omnichannel widget: getAuthToken failed", error);
            return null;
          }
        );
    }
    return Promise.resolve(script.getAttribute("data-token") || null);
  }

  function sendToken() {
    return getToken().then(function (token) {
      toPanel("token", { token: token });
    });
  }

  window.addEventListener("message", function (event) {
    if (event.source !== iframe.contentWindow || event.origin !== server) return;
    var data = event.data;
    if (!data || typeof data !== "object" || data.omnichannel !== "panel") return;
    switch (data.type) {
      case "ready":
        ready = true;
        if (data.labels && typeof data.labels === "object") {
          for (var key in labels) if (typeof data.labels[key] === "string") labels[key] = data.labels[key];
        }
        if (typeof data.colour === "string" && /^#[0-9a-fA-F]{6}$/.test(data.colour)) {
          launcher.style.setProperty("--accent", data.colour);
        }
        if (typeof data.foreground === "string" && /^#[0-9a-fA-F]{6}$/.test(data.foreground)) {
          launcher.style.setProperty("--on-accent", data.foreground);
        }
        if (typeof data.title === "string") iframe.title = data.title;
        launcher.hidden = false;
        render();
        if (isOpen || remembered()) open({ restore: true });
        break;
      case "token-request":
        sendToken();
        break;
      case "message":
        if (!isOpen) {
          unread += 1;
          render();
        }
        break;
      case "close":
        close();
        break;
      default:
        break;
    }
  });

  launcher.addEventListener("click", function () {
    if (isOpen) close();
    else open();
  });

  var api = (window.OmnichannelWidget = window.OmnichannelWidget || {});
  api.open = function () {
    open();
  };
  api.close = close;
  api.toggle = function () {
    if (isOpen) close();
    else open();
  };
  // Call after the customer signs in or out on the site: the panel gets the new token.
  api.refreshToken = sendToken;

  render();
  function attach() {
    document.body.appendChild(host);
  }
  if (document.body) attach();
  else document.addEventListener("DOMContentLoaded", attach);
})();
