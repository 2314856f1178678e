/* The demo shop page: a customer token given in the address after "#token=" is handed to the
 * widget through window.OmnichannelWidget.getAuthToken. The fragment (the part after #) never
 * leaves the browser: it is not sent to the server, so no access log, proxy or Referer header
 * ever holds the token. (A token in the query string would reach them; the server ignores one.) */
(function () {
  "use strict";
  var match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return;
  var token;
  try {
    token = decodeURIComponent(match[1]);
  } catch (error) {
    return;
  }
  var api = (window.OmnichannelWidget = window.OmnichannelWidget || {});
  api.getAuthToken = function () {
    return token;
  };
  var given = document.getElementById("token-from-address");
  var missing = document.getElementById("token-missing");
  if (given) given.hidden = false;
  if (missing) missing.hidden = true;
})();
