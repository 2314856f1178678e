"""The agent inbox (``/agent/``) and the supervisor view (``/agent/supervisor/``).

Server-rendered pages with htmx partials; every change goes through one engine service
(conversations.services), and the page follows it live over ``/ws/agent/`` (static/inbox/).
Views authenticate, parse, call one service and render, nothing more."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from agents import selectors
from agents.models import Agent, Presence
from conversations import emails, files, services
from conversations.errors import DomainError, NotFound, ValidationFailed
from conversations.models import Conversation, Label, Status
from conversations.selectors import MAX_PAGE, message_page
from omnichannel import rows
from workstreams.models import DistributionMode, Queue

GROUP_LABELS = {
    "active": gettext_lazy("Active"),
    "returned": gettext_lazy("Customer returned"),
    "waiting": gettext_lazy("Waiting"),
    "wrap_up": gettext_lazy("Wrap-up"),
}
ACTIONS = ("pick", "wait", "resume", "end", "close", "transfer")
SUPERVISOR_ACTIONS = ("assign", "transfer", "force_close")
HISTORY_PAGE = 50
MAX_SEQ = 2**31 - 1  # a PositiveIntegerField on PostgreSQL


def _number(raw: str | None, maximum: int = rows.MAX_ID) -> int | None:
    """A non-negative integer written in ASCII digits, no larger than ``maximum``; else None.
    (``str.isdigit`` alone lets "²" through, which ``int()`` refuses.)"""
    if not raw or not (raw.isascii() and raw.isdigit()) or len(raw) > 20:
        return None
    value = int(raw)
    return value if value <= maximum else None


def _agent(request: HttpRequest) -> Agent | None:
    return Agent.objects.select_related("user").filter(user=request.user).first()


def agent_required(view: Callable) -> Callable:
    """Logged in (else the login page) and an agent (else 403)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        agent = _agent(request)
        if agent is None:
            raise PermissionDenied(_("Only agents can use the inbox."))
        request.agent = agent
        return view(request, *args, **kwargs)

    return wrapper


def reader_required(view: Callable) -> Callable:
    """Logged in and an agent or staff (a supervisor reads any conversation without a profile)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        request.agent = _agent(request)
        if request.agent is None and not request.user.is_staff:
            raise PermissionDenied(_("Only agents can use the inbox."))
        return view(request, *args, **kwargs)

    return wrapper


def staff_required(view: Callable) -> Callable:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied(_("Only supervisors (staff) can use the supervisor view."))
        request.agent = _agent(request)
        return view(request, *args, **kwargs)

    return wrapper


def _error(request: HttpRequest, error: DomainError, fallback: str) -> HttpResponse:
    """A refused action: a toast for htmx (the status says why), a message and a redirect
    without JavaScript."""
    if request.htmx:
        html = render_to_string("agent/_error.html", {"error": error}, request=request)
        return HttpResponse(html, status=error.status)
    messages.error(request, error.detail)
    return redirect(fallback)


# --- The inbox --------------------------------------------------------------------------------------


def _label_filter(request: HttpRequest, labels: list[Label]) -> str | None:
    """The ``label`` filter of the inbox and the supervisor view: a defined label's name, or none."""
    wanted = request.GET.get("label")
    return wanted if any(label.name == wanted for label in labels) else None


def _inbox_context(request: HttpRequest) -> dict:
    labels = list(Label.objects.all())
    label = _label_filter(request, labels)
    return {
        "inbox": selectors.inbox(request.agent, GROUP_LABELS, label=label),
        "presences": Presence.choices,
        "all_labels": labels,
        "label_filter": label,
    }


def _with_attachments(messages_: list) -> list:
    """Each message's attachments as the page shows them (``m.attachment_objects``): what it
    keeps, with a fresh signed URL, and whether a browser shows it inline as an image; as
    static/inbox/inbox.js renders those of a live message."""
    for message in messages_:
        message.attachment_objects = [
            {**files.attachment_object(summary), "inline": summary.get("content_type") in files.INLINE_TYPES}
            for summary in message.attachments or ()
        ]
    return messages_


def _conversation_context(request: HttpRequest, conversation: Conversation) -> dict:
    messages_, has_more = message_page(conversation.pk, limit=HISTORY_PAGE)
    agent = request.agent
    mine = agent is not None and conversation.agent_id == agent.pk
    agents, queues = selectors.transfer_targets(conversation)
    return {
        "conversation": conversation,
        "history": _with_attachments(messages_),
        "has_more": has_more,
        "mine": mine,
        "can_write": mine and conversation.status in (Status.ACTIVE, Status.WAITING),
        "can_pick": conversation.status == Status.OPEN
        and conversation.workstream.distribution_mode == DistributionMode.PICK
        and agent is not None
        and conversation.queue.agents.filter(pk=agent.pk).exists(),
        "earlier": selectors.earlier_conversations(conversation, request.user),
        "quick_replies": selectors.quick_replies(conversation),
        "transfer_agents": agents,
        "transfer_queues": queues,
        "context_items": sorted((conversation.customer.context or {}).items()),
        "prechat_items": selectors.prechat_items(conversation, translation.get_language()),
        "conversation_labels": list(conversation.labels.all()),
        "all_labels": list(Label.objects.all()),
        "can_label": mine or request.user.is_staff,
    }


def _readable(request: HttpRequest, pk: int) -> Conversation:
    conversation = selectors.readable(request.user).filter(pk=pk).first()
    if conversation is None:
        raise Http404(_("No such conversation in your inbox."))
    return conversation


@require_GET
@agent_required
def inbox(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The whole page; with htmx, only the conversation pane (or its head)."""
    conversation = _readable(request, pk) if pk is not None else None
    if request.htmx and conversation is not None:
        template = "agent/_conversation_head.html" if request.GET.get("part") == "head" else "agent/_conversation.html"
        return render(request, template, _conversation_context(request, conversation))
    context = _inbox_context(request)
    if conversation is not None:
        if conversation.agent_id == request.agent.pk and conversation.last_seq > conversation.agent_read_seq:
            services.conversation_mark_read(
                conversation_id=conversation.pk, agent=request.agent, seq=conversation.last_seq
            )
        context.update(_conversation_context(request, conversation))
    return render(request, "agent/inbox.html", context)


@require_GET
@agent_required
def sidebar(request: HttpRequest) -> HttpResponse:
    """The conversation list, with the header's figures swapped out of band."""
    context = {**_inbox_context(request), "oob": True, "current": _number(request.GET.get("current"))}
    return render(request, "agent/_sidebar.html", context)


@require_POST
@agent_required
def presence(request: HttpRequest) -> HttpResponse:
    try:
        services.agent_presence_set(agent=request.agent, presence=request.POST.get("presence", ""))
    except DomainError as error:
        return _error(request, error, reverse("agents:inbox"))
    if request.htmx:
        return render(request, "agent/_status.html", _inbox_context(request))
    return redirect("agents:inbox")


@require_POST
@agent_required
def conversation_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Pick, ✖ wait, resume, end, close (with notes) or transfer: one service call each."""
    page = reverse("agents:conversation", args=[pk])
    agent = request.agent
    try:
        if action == "pick":
            services.conversation_pick(conversation_id=pk, agent=agent)
        elif action == "wait":
            services.conversation_wait(conversation_id=pk, agent=agent)
        elif action == "resume":
            services.conversation_resume(conversation_id=pk, agent=agent)
        elif action == "end":
            services.conversation_end(conversation_id=pk, agent=agent)
        elif action == "close":
            services.conversation_close(conversation_id=pk, agent=agent, notes=request.POST.get("notes", ""))
        elif action == "transfer":
            to_agent, to_queue = _transfer_target(request)
            services.conversation_transfer(conversation_id=pk, agent=agent, to_agent=to_agent, to_queue=to_queue)
        else:
            raise Http404
    except DomainError as error:
        return _error(request, error, page)
    if action == "close" or action == "transfer" or (action == "wait" and not _still_mine(pk, agent)):
        # The conversation left this inbox: show the next one (or the empty pane).
        target = reverse("agents:inbox")
    else:
        target = page
    if request.htmx:
        if target == page:
            return render(request, "agent/_conversation.html", _conversation_context(request, _readable(request, pk)))
        response = render(request, "agent/_empty.html", {"flash": _done_message(action)})
        response["HX-Push-Url"] = target
        return response
    messages.success(request, _done_message(action))
    return redirect(target)


def _still_mine(pk: int, agent: Agent) -> bool:
    return Conversation.objects.filter(pk=pk, agent=agent).exists()


def _done_message(action: str) -> str:
    return {
        "close": _("Conversation closed."),
        "transfer": _("Conversation transferred."),
        "wait": _("The conversation went back to the queue."),
    }.get(action, _("Done."))


def _transfer_target(request: HttpRequest) -> tuple[Agent | None, Queue | None]:
    """``target`` is ``agent:<id>`` or ``queue:<id>`` (one select in the form)."""
    kind, _sep, raw = request.POST.get("target", "").partition(":")
    target_id = _number(raw)
    if target_id is None or kind not in ("agent", "queue"):
        raise ValidationFailed(_("Choose an agent or a queue to transfer to."))
    if kind == "agent":
        target = Agent.objects.select_related("user").filter(pk=target_id).first()
        if target is None:
            raise NotFound(_("No such agent."))
        return target, None
    queue = Queue.objects.filter(pk=target_id).first()
    if queue is None:
        raise NotFound(_("No such queue."))
    return None, queue


@require_POST
@reader_required
def labels(request: HttpRequest, pk: int) -> HttpResponse:
    """The conversation's labels become the ticked ones (conversations.services.labels)."""
    page = reverse("agents:conversation", args=[pk])
    try:
        services.conversation_labels_set(conversation_id=pk, user=request.user, labels=request.POST.getlist("labels"))
    except DomainError as error:
        return _error(request, error, page)
    if request.htmx:
        return render(request, "agent/_conversation.html", _conversation_context(request, _readable(request, pk)))
    messages.success(request, _("Labels saved."))
    return redirect(page)


@require_POST
@agent_required
def mark_read(request: HttpRequest, pk: int) -> HttpResponse:
    raw = request.POST.get("seq", "")
    if not Conversation.objects.filter(pk=pk, agent=request.agent).exists():
        # Someone else's conversation does not exist for this agent (as everywhere else), rather
        # than a 204 that did nothing.
        raise Http404(_("No such conversation in your inbox."))
    seq = _number(raw, maximum=10**20)
    if seq is None:
        return JsonResponse({"code": "validation_error", "detail": _("seq must be a non-negative integer")}, status=400)
    # Reading past the last message is reading it all (the service caps at last_seq).
    services.conversation_mark_read(conversation_id=pk, agent=request.agent, seq=min(seq, MAX_SEQ))
    return HttpResponse(status=204)


@require_GET
@reader_required
def transcript(request: HttpRequest, pk: int) -> HttpResponse:
    """The conversation as plain text, for download."""
    conversation = _readable(request, pk)
    response = HttpResponse(selectors.transcript_text(conversation), content_type="text/plain; charset=utf-8")
    stamp = timezone.localtime(conversation.created_at).strftime("%Y-%m-%d")
    response["Content-Disposition"] = f'attachment; filename="conversation-{conversation.pk}-{stamp}.txt"'
    return response


@require_POST
@reader_required
def email_transcript(request: HttpRequest, pk: int) -> HttpResponse:
    """The messages the customer saw (no notes) to an address the agent gives (docs/email.md);
    as ``POST /api/v1/agent/conversations/{id}/transcript/``, with its rate limit."""
    conversation = _readable(request, pk)
    page = reverse("agents:conversation", args=[pk])
    address = request.POST.get("email", "").strip()
    try:
        try:
            validate_email(address)
        except DjangoValidationError:
            raise ValidationFailed(_("Enter a valid email address.")) from None
        emails.transcript_allowed(f"agent:{request.user.pk}", emails.AGENT_TRANSCRIPTS_PER_HOUR)
        services.conversation_transcript_email(conversation_id=conversation.pk, to=address)
    except DomainError as error:
        return _error(request, error, page)
    done = _("The transcript is on its way to %(email)s.") % {"email": address}
    if request.htmx:
        response = render(request, "agent/_toast.html", {"text": done})
        response["HX-Retarget"] = "#toasts"
        response["HX-Reswap"] = "beforeend"
        return response
    messages.success(request, done)
    return redirect(page)


@require_GET
@login_required
def earlier_transcript(request: HttpRequest, pk: int) -> HttpResponse:
    """An earlier conversation of the customer, shown inline in the customer panel."""
    request.agent = _agent(request)
    conversation = _readable(request, pk)
    messages_, has_more = message_page(conversation.pk, limit=MAX_PAGE)
    return render(
        request,
        "agent/_transcript.html",
        {"conversation": conversation, "history": _with_attachments(messages_), "has_more": has_more},
    )


# --- The supervisor view ----------------------------------------------------------------------------


def _board_context(request: HttpRequest) -> dict:
    status = request.GET.get("status") or None
    if status not in Status.values:
        status = None
    labels = list(Label.objects.all())
    filters = {
        "queue_id": _number(request.GET.get("queue")),
        "agent_id": _number(request.GET.get("agent")),
        "status": status,
        "label": _label_filter(request, labels),
    }
    return {
        "all_labels": labels,
        "board": selectors.board(**filters),
        "filters": filters,
        "statuses": [(value, label) for value, label in Status.choices if value != Status.CLOSED],
        "query": request.GET.urlencode(),
    }


@require_GET
@staff_required
def supervisor(request: HttpRequest) -> HttpResponse:
    template = "agent/_board.html" if request.htmx else "agent/supervisor.html"
    return render(request, template, _board_context(request))


@require_POST
@staff_required
def supervisor_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Assign an open conversation, transfer, or force-close: through the engine."""
    back = reverse("agents:supervisor") + (f"?{request.POST['query']}" if request.POST.get("query") else "")
    try:
        if action == "assign":
            target, _queue = _transfer_target(request)
            if target is None:
                raise ValidationFailed(_("Choose an agent."))
            services.conversation_assign(conversation_id=pk, agent=target)
            done = _("Conversation assigned.")
        elif action == "transfer":
            to_agent, to_queue = _transfer_target(request)
            services.conversation_transfer(
                conversation_id=pk, agent=None, to_agent=to_agent, to_queue=to_queue, supervisor=True
            )
            done = _("Conversation transferred.")
        elif action == "force_close":
            services.conversation_force_close(
                conversation_id=pk, by_name=request.user.get_full_name() or request.user.get_username()
            )
            done = _("Conversation closed.")
        else:
            raise Http404
    except DomainError as error:
        return _error(request, error, back)
    if request.htmx:
        request.GET = QueryDict(request.POST.get("query", ""))
        return render(request, "agent/_board.html", {**_board_context(request), "flash": done})
    messages.success(request, done)
    return redirect(back)
