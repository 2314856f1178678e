"""The customer's pages: the chat panel that the embed loader (``static/omnichannel-widget.js``)
puts in an iframe, and a demo host page that embeds the loader. Both speak the protocol
(docs/protocol.md) from the browser; the views only render the widget's configuration and
translated strings."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.utils import translation
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from conversations import files, services
from conversations.emails import unsubscribe_token_read
from conversations.models import Attachment
from omnichannel.csp import CSP, HEADER, set_policy
from workstreams.demo import DEMO_SETTING_NAME, demo_token
from workstreams.models import ChatWidget

# An origin as the admin validates it (workstreams.models.origin_validator); checked again here
# because it goes into a response header.
_ORIGIN = re.compile(r"^https?://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
DEFAULT_DEMO_CUSTOMER = "demo-customer"
MAX_DEMO_CUSTOMER = 64


def _widget(widget_key: str) -> ChatWidget:
    widget = (
        ChatWidget.objects.select_related("workstream", "authentication_setting").filter(widget_key=widget_key).first()
    )
    if widget is None:
        raise Http404("No such widget.")
    return widget


def frame_ancestors(widget: ChatWidget) -> list[str]:
    """The CSP ``frame-ancestors`` sources: this server and the widget's allowed origins."""
    origins = [origin for origin in widget.origins if _ORIGIN.match(origin)]
    return [CSP.SELF, *dict.fromkeys(origins)]


def _foreground(colour: str) -> str:
    """Black or white, whichever reads better on ``colour`` (#RRGGBB), by WCAG luminance."""
    try:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    except (TypeError, ValueError):
        return "#ffffff"
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#111827" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "#ffffff"


def _strings() -> dict[str, str | list[str]]:
    """Every text the panel's JavaScript shows, in the active language. (All of the widget's
    texts are translated in the context "chat widget", apart from the rest of the site's.)"""
    return {
        "sending": pgettext("chat widget", "Sending…"),
        "sent": pgettext("chat widget", "Sent"),
        "failed": pgettext("chat widget", "Not sent."),
        "retry": pgettext("chat widget", "Retry"),
        "you": pgettext("chat widget", "You"),
        "agent": pgettext("chat widget", "Agent"),
        "system": pgettext("chat widget", "Automated message"),
        "typing": pgettext("chat widget", "%(name)s is typing…"),
        "agentTyping": pgettext("chat widget", "Agent is typing…"),
        "connecting": pgettext("chat widget", "Connecting…"),
        "reconnecting": pgettext("chat widget", "Connection lost. Reconnecting…"),
        "reconnected": pgettext("chat widget", "Connected again."),
        "offlineOpensAtTime": pgettext("chat widget", "We open again at %(time)s."),
        "offlineOpensOn": pgettext("chat widget", "We open again on %(date)s."),
        "offlineClosed": pgettext("chat widget", "Please come back later."),
        "signIn": pgettext("chat widget", "Sign in on the website to chat."),
        "signInExpired": pgettext("chat widget", "Your sign-in has expired. Sign in on the website again to continue."),
        "ended": pgettext("chat widget", "This conversation has ended. Write a message to start a new one."),
        "newConversation": pgettext("chat widget", "New conversation"),
        "loadEarlier": pgettext("chat widget", "Load earlier messages"),
        "loading": pgettext("chat widget", "Loading…"),
        "newMessageFrom": pgettext("chat widget", "New message from %(name)s: %(body)s"),
        "errorGeneric": pgettext("chat widget", "Something went wrong. Please try again."),
        "rateLimited": pgettext("chat widget", "You are sending messages too fast. Wait a moment and retry."),
        "tooLong": pgettext("chat widget", "The message is longer than 4,000 characters."),
        "unavailable": pgettext("chat widget", "The chat is unavailable right now. Please try again later."),
        "notFound": pgettext("chat widget", "This chat is not available."),
        "cannotEnd": pgettext("chat widget", "Only an agent can end this conversation."),
        "openChat": pgettext("chat widget", "Open chat"),
        "closeChat": pgettext("chat widget", "Close chat"),
        "unread": pgettext("chat widget", "%(count)s unread messages"),
        "unreadOne": pgettext("chat widget", "1 unread message"),
        "offlineSent": pgettext("chat widget", "Thank you! We will answer by email at %(email)s."),
        "emailRequired": pgettext("chat widget", "Enter your email address, so we can answer."),
        "bodyRequired": pgettext("chat widget", "Write your message."),
        "transcriptSent": pgettext("chat widget", "We are emailing you this conversation."),
        "transcriptNoEmail": pgettext("chat widget", "We do not know your email address, so we cannot send it."),
        "transcriptTooMany": pgettext("chat widget", "You asked for several transcripts already. Try again later."),
        "optional": pgettext("chat widget", "(optional)"),
        "choose": pgettext("chat widget", "Choose…"),
        "answerRequired": pgettext("chat widget", "Please answer this question."),
        "emailInvalid": pgettext("chat widget", "Enter a valid email address."),
        "prechatInvalid": pgettext("chat widget", "Please check the form above the message box."),
        "csatQuestion": pgettext("chat widget", "How was your conversation?"),
        "csatRatings": [
            pgettext("chat widget", "Very poor"),
            pgettext("chat widget", "Poor"),
            pgettext("chat widget", "OK"),
            pgettext("chat widget", "Good"),
            pgettext("chat widget", "Excellent"),
        ],
        "csatComment": pgettext("chat widget", "Anything to add? (optional)"),
        "csatSend": pgettext("chat widget", "Send rating"),
        "csatChoose": pgettext("chat widget", "Choose a rating from 1 to 5."),
        "csatThanks": pgettext("chat widget", "Thank you for your rating!"),
        "csatAlready": pgettext("chat widget", "You have already rated this conversation. Thank you!"),
        "csatClosed": pgettext("chat widget", "This survey is closed."),
        "attach": pgettext("chat widget", "Attach files"),
        "attachedFiles": pgettext("chat widget", "Files for your next message"),
        "dropHint": pgettext("chat widget", "Drop files here to attach them"),
        "removeFile": pgettext("chat widget", "Remove %(name)s"),
        "uploading": pgettext("chat widget", "Uploading %(name)s…"),
        "attached": pgettext("chat widget", "%(name)s is attached."),
        "stillUploading": pgettext("chat widget", "Wait until the files have uploaded, then send."),
        "tooManyFiles": pgettext("chat widget", "A message can carry at most %(count)s files."),
        "fileTooLarge": pgettext("chat widget", "%(name)s is too large: a file can be at most %(size)s."),
        "fileTypeNotAllowed": pgettext("chat widget", "%(name)s cannot be sent: files of this type are not allowed."),
        "fileEmpty": pgettext("chat widget", "%(name)s is empty."),
        "uploadFailed": pgettext("chat widget", "%(name)s could not be uploaded. Please try again."),
        "uploadRateLimited": pgettext("chat widget", "You are sending files too fast. Wait a moment and try again."),
        "opensInNewTab": pgettext("chat widget", "(opens in a new tab)"),
        "fileSize": [
            pgettext("chat widget", "%(size)s B"),
            pgettext("chat widget", "%(size)s KB"),
            pgettext("chat widget", "%(size)s MB"),
        ],
    }


@never_cache
@xframe_options_exempt
def widget_panel(request: HttpRequest, widget_key: str) -> HttpResponse:
    """The chat panel, meant for an iframe on the widget's allowed origins (CSP frame-ancestors)."""
    widget = _widget(widget_key)
    with translation.override(widget.language):
        workstream = widget.workstream
        config = {
            "widgetKey": widget.widget_key,
            "title": widget.title,
            "colour": widget.colour,
            "foreground": _foreground(widget.colour),
            "language": widget.language,
            "mode": workstream.mode,
            "customerCanEnd": workstream.customer_can_end,
            "prechat": [question.as_config(widget.language) for question in workstream.prechat_fields.all()],
            "authRequired": widget.authentication_setting_id is not None,
            "api": f"/api/v1/widget/{widget.widget_key}/",
            "socket": f"/ws/widget/{widget.widget_key}/",
            "allowedOrigins": [origin for origin in widget.origins if _ORIGIN.match(origin)],
            "strings": _strings(),
        }
        response = render(
            request,
            "widget/panel.html",
            {
                "widget": widget,
                "config": config,
                "foreground": config["foreground"],
                "persistent": workstream.persistent,
            },
        )
    set_policy(response, {"frame-ancestors": frame_ancestors(widget)})
    response["Content-Language"] = widget.language
    return response


def _may_mint_demo_tokens(request: HttpRequest) -> bool:
    return bool(settings.DEBUG or (request.user.is_authenticated and request.user.is_staff))


def _demo_customer(request: HttpRequest) -> str:
    sub = (request.GET.get("customer") or DEFAULT_DEMO_CUSTOMER).strip()[:MAX_DEMO_CUSTOMER]
    return sub or DEFAULT_DEMO_CUSTOMER


@never_cache
def widget_demo(request: HttpRequest, widget_key: str) -> HttpResponse:
    """A demo shop page that embeds the widget with its snippet. For the "Demo site"
    authentication setting it signs a customer token here, in DEBUG or for staff only."""
    widget = _widget(widget_key)
    setting = widget.authentication_setting
    token = ""
    customer = ""
    # none (anonymous widget), demo (signed here), missing (the page's script takes one from the
    # address after "#token=": a fragment never reaches a server, so no log or Referer holds it;
    # a "?token=" in the query is ignored, never echoed).
    token_source = "none"
    if setting is not None:
        customer = _demo_customer(request)
        if setting.name == DEMO_SETTING_NAME and _may_mint_demo_tokens(request):
            token = demo_token(customer, name=customer.replace("-", " ").title(), email=f"{customer}@example.com")
            token_source = "demo"
        else:
            token_source = "missing"
    parts = urlsplit(request.build_absolute_uri("/"))
    server = f"{parts.scheme}://{parts.netloc}"
    with translation.override(widget.language):
        response = render(
            request,
            "widget/demo.html",
            {
                "widget": widget,
                "server": server,
                "loader_url": server + static("omnichannel-widget.js"),
                "token": token,
                "token_source": token_source,
                "customer": customer,
                "is_demo_setting": setting is not None and setting.name == DEMO_SETTING_NAME,
                "snippet": widget.embed_snippet(),
            },
        )
    response["Content-Language"] = widget.language
    return response


@csrf_exempt  # a mail client's one-click unsubscribe (RFC 8058) posts without a token
@never_cache
def email_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """The unsubscribe link of an email: GET asks (a link scanner must not unsubscribe anyone),
    POST unsubscribes (the page's button, or the mail client's List-Unsubscribe-Post)."""
    customer_id = unsubscribe_token_read(token)
    if customer_id is None:
        return render(request, "unsubscribe.html", {"state": "invalid"}, status=404)
    if request.method == "POST":
        done = services.customer_email_unsubscribe(customer_id=customer_id)
        return render(request, "unsubscribe.html", {"state": "done" if done else "invalid"})
    return render(request, "unsubscribe.html", {"state": "ask"})


FILE_CHUNK = 64 * 1024


async def _chunks(handle):
    """A stored file's bytes, a chunk at a time, read off the event loop."""
    read = sync_to_async(handle.read, thread_sensitive=False)
    try:
        while chunk := await read(FILE_CHUNK):
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


@require_safe
def attachment_file(request: HttpRequest, token: str) -> HttpResponse:
    """An attachment, by its signed and short-lived URL (conversations.files), with no other
    credential. It can never run in this origin: ``nosniff``, the type its bytes were found to
    be, ``Content-Disposition: attachment`` unless it is an image a browser shows
    (``files.INLINE_TYPES``; never SVG), and a policy that lets nothing load or run."""
    attachment_id = files.unsign(token)
    attachment = Attachment.objects.filter(pk=attachment_id).first() if attachment_id else None
    if attachment is None:
        return JsonResponse(
            {
                "code": "not_found",
                "detail": _("This link has expired or the file is gone; load the conversation again."),
            },
            status=404,
        )
    try:
        handle = attachment.file.open("rb")
    except OSError:  # the file is gone from storage
        return JsonResponse({"code": "not_found", "detail": _("The file is gone.")}, status=404)
    inline = attachment.content_type in files.INLINE_TYPES
    # Read in chunks by an async iterator: under ASGI, Django would read a sync iterator (a
    # FileResponse) whole into memory before sending it.
    response = StreamingHttpResponse(_chunks(handle), content_type=attachment.content_type)
    response["Content-Length"] = str(attachment.size)
    response["Content-Disposition"] = content_disposition_header(not inline, attachment.name)
    response["X-Content-Type-Options"] = "nosniff"
    response[HEADER] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
