"""The REST API of docs/protocol.md: the customer's widget endpoints and the agent's conversation
endpoints. Views authenticate, parse, call one service or selector, and render with
conversations.events (the one source of the wire format)."""

from __future__ import annotations

import hmac
from typing import NoReturn

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from conversations import emails, events, files, inbound, services
from conversations.customer_tokens import authenticate_customer, get_widget, issue_visitor_token
from conversations.errors import (
    AuthenticationRequired,
    BodyEmpty,
    BodyTooLong,
    FileTooLarge,
    InvalidToken,
    NotFound,
    SenderMismatch,
    ValidationFailed,
)
from conversations.models import Conversation, Customer, Label, Status
from conversations.selectors import (
    current_conversation,
    is_agents_conversation,
    message_page,
    readable_by,
)
from conversations.serializers import (
    AcceptedOut,
    AgentConversationOut,
    AttachmentUploadDoc,
    AttachmentUploadOut,
    CloseInput,
    ConversationListOut,
    ConversationOut,
    CsatInput,
    CsatOut,
    CurrentConversationOut,
    ErrorOut,
    InboundEmailOut,
    LabelListOut,
    LabelsDoc,
    MessageOut,
    MessagePageOut,
    MessagePageQuery,
    MessageSend,
    MessageSendDoc,
    OfflineMessageDoc,
    OfflineMessageInput,
    TokenOut,
    TranscriptInput,
    TransferInput,
    WidgetConfigOut,
)
from omnichannel.api import AgentThrottle, WidgetThrottle
from omnichannel.parsers import JSONParser
from workstreams.models import ChatWidget, DistributionMode, Queue, Workstream

ERRORS = dict.fromkeys((400, 401, 403, 404, 409, 413, 429), ErrorOut)
PAGE_PARAMETERS = [
    OpenApiParameter(
        "after_seq",
        {"type": "integer", "minimum": 0},
        description="Messages after this seq, oldest first (wins over before_seq).",
    ),
    OpenApiParameter("before_seq", {"type": "integer", "minimum": 0}, description="The page just before this seq."),
    OpenApiParameter(
        "limit", {"type": "integer", "minimum": 1, "maximum": 200}, description="Page size, default 50, at most 200."
    ),
]
BEARER = [OpenApiParameter("Authorization", OpenApiTypes.STR, OpenApiParameter.HEADER, description="Bearer <token>")]


def _page(conversation_id: int | None, query_params, *, for_agent: bool) -> dict:
    query = MessagePageQuery(data=query_params)
    query.is_valid(raise_exception=True)
    if conversation_id is None:
        return {"messages": [], "has_more": False}
    messages, has_more = message_page(conversation_id, **query.validated_data, for_customer=not for_agent)
    return {"messages": [events.message_object(m, for_agent=for_agent) for m in messages], "has_more": has_more}


def _send_response(result: services.SendResult, *, for_agent: bool) -> Response:
    return Response(
        events.message_object(result.message, for_agent=for_agent),
        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
    )


# --- Customer side ---------------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class WidgetApiView(APIView):
    """No Django authentication (a customer's browser may hold an unrelated admin session):
    customers send ``Authorization: Bearer <token>``."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [WidgetThrottle]

    def widget(self, widget_key: str) -> ChatWidget:
        return get_widget(widget_key)

    def customer(self, request: Request, widget: ChatWidget) -> Customer:
        token = _bearer(request)
        if token is None:
            raise AuthenticationRequired()
        return authenticate_customer(widget, token)


class WidgetConfigApi(WidgetApiView):
    @extend_schema(responses={200: WidgetConfigOut, 404: ErrorOut}, summary="Widget configuration")
    def get(self, request: Request, widget_key: str) -> Response:
        widget = self.widget(widget_key)
        workstream = widget.workstream
        hours = widget.effective_operating_hours
        now = timezone.now()
        online = hours is None or hours.is_open(now)
        next_opening = None if online else hours.next_opening(now)
        return Response(
            {
                "title": widget.title,
                "subtitle": widget.subtitle,
                "colour": widget.colour,
                "mode": workstream.mode,
                "customer_can_end": workstream.customer_can_end,
                "prechat": [question.as_config(widget.language) for question in workstream.prechat_fields.all()],
                "attachments": {"max_size": workstream.attachment_max_size, "types": workstream.attachment_type_list},
                "auth_required": widget.authentication_setting_id is not None,
                "online": online,
                "next_opening": next_opening.isoformat() if next_opening else None,
                "language": widget.language,
            }
        )


class VisitorTokenApi(WidgetApiView):
    @extend_schema(request=None, responses={201: TokenOut, **ERRORS}, summary="Visitor token (anonymous live chat)")
    def post(self, request: Request, widget_key: str) -> Response:
        return Response({"token": issue_visitor_token(self.widget(widget_key))}, status=status.HTTP_201_CREATED)


class CustomerConversationApi(WidgetApiView):
    @extend_schema(parameters=BEARER, responses={200: CurrentConversationOut, **ERRORS})
    def get(self, request: Request, widget_key: str) -> Response:
        widget = self.widget(widget_key)
        conversation = current_conversation(self.customer(request, widget), widget.workstream)
        return Response({"conversation": events.conversation_object(conversation) if conversation else None})


class CustomerMessagesApi(WidgetApiView):
    @extend_schema(parameters=BEARER + PAGE_PARAMETERS, responses={200: MessagePageOut, **ERRORS})
    def get(self, request: Request, widget_key: str) -> Response:
        widget = self.widget(widget_key)
        customer = self.customer(request, widget)
        conversation = current_conversation(customer, widget.workstream)
        page = _page(conversation.pk if conversation else None, request.query_params, for_agent=False)
        if page["messages"]:
            # What the customer read here reached it: not emailed as unread (docs/email.md).
            services.customer_messages_fetched(customer=customer)
        return Response(page)

    @extend_schema(parameters=BEARER, request=MessageSendDoc, responses={200: MessageOut, 201: MessageOut, **ERRORS})
    def post(self, request: Request, widget_key: str) -> Response:
        widget = self.widget(widget_key)
        customer = self.customer(request, widget)
        data = MessageSend(data=request.data)
        data.is_valid(raise_exception=True)
        return _send_response(
            services.customer_message_send(
                widget=widget,
                customer=customer,
                body=data.validated_data.get("body"),
                client_id=data.validated_data.get("client_id"),
                internal=data.validated_data.get("internal"),
                prechat=data.validated_data.get("prechat"),
                attachments=data.validated_data.get("attachments"),
            ),
            for_agent=False,
        )


def _upload(request: Request, workstream: Workstream):
    """The request's one file, refused as too large from its declared length before the body
    is read (omnichannel.uploads refuses, before Django, what no workstream would take)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0) or None
    except ValueError:
        length = None
    if workstream.attachment_request_too_large(length):
        raise FileTooLarge(max_size=workstream.attachment_max_size)
    return request.FILES.get("file")


def _attachment_response(attachment) -> Response:
    return Response({"attachment": files.attachment_object(attachment.summary())}, status=status.HTTP_201_CREATED)


UPLOAD_ERRORS = {**ERRORS, 415: ErrorOut}
# multipart/form-data; a JSON body is read too, so that it gets the same answer as everywhere (a
# CSRF refusal before anything else for a session, then "no file": validation_error).
UPLOAD_PARSERS = [MultiPartParser, JSONParser]


class CustomerAttachmentsApi(WidgetApiView):
    parser_classes = UPLOAD_PARSERS

    @extend_schema(
        parameters=BEARER,
        request={"multipart/form-data": AttachmentUploadDoc},
        responses={201: AttachmentUploadOut, **UPLOAD_ERRORS},
        summary="Upload an attachment (customer)",
    )
    def post(self, request: Request, widget_key: str) -> Response:
        """A file for the customer's next message (docs/protocol.md, "Attachments")."""
        widget = self.widget(widget_key)
        customer = self.customer(request, widget)
        upload = _upload(request, widget.workstream)
        return _attachment_response(
            services.customer_attachment_upload(widget=widget, customer=customer, upload=upload)
        )


class CustomerEndApi(WidgetApiView):
    @extend_schema(parameters=BEARER, request=None, responses={200: ConversationOut, **ERRORS})
    def post(self, request: Request, widget_key: str) -> Response:
        """docs/protocol.md: "200 <conversation>" (the object itself, like the message of POST
        .../messages/)."""
        widget = self.widget(widget_key)
        conversation = services.customer_conversation_end(widget=widget, customer=self.customer(request, widget))
        return Response(events.conversation_object(conversation))


class CsatApi(WidgetApiView):
    @extend_schema(parameters=BEARER, request=CsatInput, responses={201: CsatOut, **ERRORS})
    def post(self, request: Request, widget_key: str) -> Response:
        """The customer's rating of a conversation that asked for it (``csat.request``), once,
        within 7 days (docs/protocol.md, "Satisfaction survey")."""
        widget = self.widget(widget_key)
        customer = self.customer(request, widget)
        data = request.data if isinstance(request.data, dict) else {}
        conversation = services.customer_csat_submit(
            widget=widget,
            customer=customer,
            conversation_id=data.get("conversation_id"),
            rating=data.get("rating"),
            comment=data.get("comment"),
        )
        return Response(
            {"conversation_id": conversation.pk, "csat": events.csat_object(conversation)},
            status=status.HTTP_201_CREATED,
        )


class CustomerTranscriptApi(WidgetApiView):
    @extend_schema(parameters=BEARER, request=None, responses={202: AcceptedOut, **ERRORS})
    def post(self, request: Request, widget_key: str) -> Response:
        """The current or last conversation, to the customer's email (docs/email.md)."""
        widget = self.widget(widget_key)
        customer = self.customer(request, widget)
        conversation = current_conversation(customer, widget.workstream)
        if conversation is None:
            raise NotFound("There is no conversation yet.")
        if not customer.email:
            raise ValidationFailed("We do not know your email address.")
        emails.transcript_allowed(f"customer:{customer.pk}", emails.CUSTOMER_TRANSCRIPTS_PER_HOUR)
        services.conversation_transcript_email(conversation_id=conversation.pk, to=customer.email)
        return Response({"status": "accepted"}, status=status.HTTP_202_ACCEPTED)


class OfflineMessageApi(WidgetApiView):
    @extend_schema(parameters=BEARER, request=OfflineMessageDoc, responses={201: MessageOut, 200: MessageOut, **ERRORS})
    def post(self, request: Request, widget_key: str) -> Response:
        """Live chat outside operating hours: the offline form's message, answered by email.
        A visitor of an anonymous widget may send it without a token."""
        widget = self.widget(widget_key)
        anonymous = not request.META.get("HTTP_AUTHORIZATION") and widget.authentication_setting_id is None
        customer = None if anonymous else self.customer(request, widget)
        data = OfflineMessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        return _send_response(
            services.customer_offline_message(
                widget=widget,
                customer=customer,
                name=data.validated_data.get("name", "").strip(),
                email=data.validated_data["email"],
                body=data.validated_data.get("body"),
            ),
            for_agent=False,
        )


class InboundEmailApi(APIView):
    """A reply by email, posted raw by an inbound-mail service or a local MTA (docs/email.md)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        request={"message/rfc822": OpenApiTypes.BINARY},
        responses={202: InboundEmailOut, 401: ErrorOut, 404: ErrorOut},
        parameters=BEARER,
    )
    def post(self, request: Request) -> Response:
        secret = settings.INBOUND_EMAIL_SECRET
        if not secret or not settings.INBOUND_EMAIL_DOMAIN:
            raise NotFound("Replies by email are not configured.")
        token = _bearer(request)
        if token is None:
            raise AuthenticationRequired("Send Authorization: Bearer <INBOUND_EMAIL_SECRET>.")
        if not hmac.compare_digest(token.encode(), secret.encode()):
            raise InvalidToken()
        limit = settings.INBOUND_EMAIL_MAX_BYTES
        raw = request._request.read(limit + 1)  # the stream, never more than the limit in memory
        try:
            reply = inbound.read(raw, domain=settings.INBOUND_EMAIL_DOMAIN, max_bytes=limit, max_body=services.MAX_BODY)
            result = services.customer_email_reply(
                conversation_id=reply.to.conversation_id,
                customer_id=reply.to.customer_id,
                sender=reply.sender,
                body=reply.text,
                message_id=reply.message_id,
            )
        except inbound.Rejected as rejected:
            return _inbound_answer("rejected", rejected.reason)
        except NotFound:
            return _inbound_answer("rejected", inbound.INVALID_TOKEN)
        except SenderMismatch:
            return _inbound_answer("rejected", inbound.SENDER_MISMATCH)
        except (BodyEmpty, BodyTooLong, ValidationFailed) as error:
            return _inbound_answer("rejected", {"body_empty": inbound.EMPTY}.get(error.code, inbound.MALFORMED))
        return _inbound_answer(
            "accepted", None, conversation_id=result.message.conversation_id, seq=result.message.customer_seq
        )


def _inbound_answer(outcome: str, reason: str | None, **extra: object) -> Response:
    return Response({"status": outcome, "reason": reason, **extra}, status=status.HTTP_202_ACCEPTED)


# --- Agent side ----------------------------------------------------------------------------------------

AGENT_RELATED = ("workstream", "queue", "customer", "agent__user")


class AgentApiView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [AgentThrottle]

    def agent(self, request: Request) -> Agent:
        agent = Agent.objects.select_related("user").filter(user=request.user).first()
        if agent is None:
            raise PermissionDenied("Only agents may use this endpoint.")
        return agent

    def visible(self, request: Request, conversation_id: int) -> Conversation:
        """A conversation the user may read (``readable_by``); anything else does not exist."""
        conversation = (
            self._visible(request, conversation_id).select_related(*AGENT_RELATED).prefetch_related("labels").first()
        )
        if conversation is None:
            self._not_visible(request)
        return conversation

    def visible_id(self, request: Request, conversation_id: int) -> int:
        """``visible``, when only the id is needed (a page of messages): no joins, no rows.
        The agent's own conversation, nearly every page, is asked first, in a statement
        written out once (docs/decisions.md, "The agent's own conversation is checked first")."""
        user = request.user
        if not user.is_staff and is_agents_conversation(conversation_id, user.pk):
            return conversation_id
        if not self._visible(request, conversation_id).exists():
            self._not_visible(request)
        return conversation_id

    def _visible(self, request: Request, conversation_id: int):
        # The one rule (readable_by): by the user's id, the agent is not looked up first.
        return Conversation.objects.filter(readable_by(request.user), pk=conversation_id)

    def _not_visible(self, request: Request) -> NoReturn:
        """403 for a user who is no agent (as every agent endpoint answers), else 404."""
        if not request.user.is_staff:
            self.agent(request)
        raise NotFound()

    def respond(self, conversation: Conversation) -> Response:
        conversation = (
            Conversation.objects.select_related(*AGENT_RELATED).prefetch_related("labels").get(pk=conversation.pk)
        )
        return Response(events.conversation_object(conversation, for_agent=True))


class AgentConversationsApi(AgentApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                {"type": "array", "items": {"type": "string", "enum": list(Status.values)}},
                style="form",
                explode=False,
                description="Comma-separated statuses (default: every status but closed).",
            ),
            OpenApiParameter("label", str, description="Only conversations with this label (a name)."),
        ],
        responses={200: ConversationListOut, **ERRORS},
        operation_id="v1_agent_conversations_list",
    )
    def get(self, request: Request) -> Response:
        agent = self.agent(request)
        wanted = [s for s in request.query_params.get("status", "").split(",") if s]
        if any(s not in Status.values for s in wanted):
            raise ValidationFailed(f"status must be among {', '.join(Status.values)}")
        conversations = (
            Conversation.objects.filter(agent=agent).select_related(*AGENT_RELATED).prefetch_related("labels")
        )
        conversations = (
            conversations.filter(status__in=wanted) if wanted else conversations.exclude(status=Status.CLOSED)
        )
        label = request.query_params.get("label")
        if label is not None:
            conversations = conversations.filter(labels__name=label.strip())
        return Response(
            {
                "conversations": [
                    events.conversation_object(c, for_agent=True) for c in conversations.order_by("-last_activity_at")
                ]
            }
        )


class AgentQueueApi(AgentApiView):
    @extend_schema(responses={200: ConversationListOut, **ERRORS})
    def get(self, request: Request) -> Response:
        agent = self.agent(request)
        conversations = (
            Conversation.objects.filter(
                status=Status.OPEN, workstream__distribution_mode=DistributionMode.PICK, queue__agents=agent
            )
            .select_related(*AGENT_RELATED)
            .prefetch_related("labels")
            .order_by("queued_at", "pk")
        )
        return Response({"conversations": [events.conversation_object(c, for_agent=True) for c in conversations]})


class AgentConversationApi(AgentApiView):
    @extend_schema(responses={200: AgentConversationOut, **ERRORS})
    def get(self, request: Request, conversation_id: int) -> Response:
        return self.respond(self.visible(request, conversation_id))


class AgentMessagesApi(AgentApiView):
    @extend_schema(parameters=PAGE_PARAMETERS, responses={200: MessagePageOut, **ERRORS})
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(_page(self.visible_id(request, conversation_id), request.query_params, for_agent=True))

    @extend_schema(request=MessageSendDoc, responses={200: MessageOut, 201: MessageOut, **ERRORS})
    def post(self, request: Request, conversation_id: int) -> Response:
        data = MessageSend(data=request.data)
        data.is_valid(raise_exception=True)
        return _send_response(
            services.agent_message_send(
                conversation_id=conversation_id,
                agent=self.agent(request),
                body=data.validated_data.get("body"),
                client_id=data.validated_data.get("client_id"),
                internal=data.validated_data.get("internal"),
                attachments=data.validated_data.get("attachments"),
            ),
            for_agent=True,
        )


class AgentAttachmentsApi(AgentApiView):
    parser_classes = UPLOAD_PARSERS

    @extend_schema(
        request={"multipart/form-data": AttachmentUploadDoc},
        responses={201: AttachmentUploadOut, **UPLOAD_ERRORS},
        summary="Upload an attachment (agent)",
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        """A file for the agent's next message or note in its conversation."""
        agent = self.agent(request)
        conversation = Conversation.objects.select_related("workstream").filter(pk=conversation_id, agent=agent).first()
        if conversation is None:
            raise NotFound()
        upload = _upload(request, conversation.workstream)
        return _attachment_response(
            services.agent_attachment_upload(conversation_id=conversation_id, agent=agent, upload=upload)
        )


class _ActionApi(AgentApiView):
    service = None

    @extend_schema(request=None, responses={200: AgentConversationOut, **ERRORS})
    def post(self, request: Request, conversation_id: int) -> Response:
        return self.respond(type(self).service(conversation_id=conversation_id, agent=self.agent(request)))


class PickApi(_ActionApi):
    service = staticmethod(services.conversation_pick)


class WaitApi(_ActionApi):
    service = staticmethod(services.conversation_wait)


class ResumeApi(_ActionApi):
    service = staticmethod(services.conversation_resume)


class EndApi(_ActionApi):
    service = staticmethod(services.conversation_end)


class AgentTranscriptApi(AgentApiView):
    @extend_schema(request=TranscriptInput, responses={202: AcceptedOut, **ERRORS})
    def post(self, request: Request, conversation_id: int) -> Response:
        """The messages the customer saw (no notes), to the given address (docs/email.md)."""
        conversation = self.visible(request, conversation_id)
        data = TranscriptInput(data=request.data)
        data.is_valid(raise_exception=True)
        emails.transcript_allowed(f"agent:{request.user.pk}", emails.AGENT_TRANSCRIPTS_PER_HOUR)
        services.conversation_transcript_email(conversation_id=conversation.pk, to=data.validated_data["email"])
        return Response({"status": "accepted"}, status=status.HTTP_202_ACCEPTED)


class CloseApi(AgentApiView):
    @extend_schema(request=CloseInput, responses={200: AgentConversationOut, **ERRORS})
    def post(self, request: Request, conversation_id: int) -> Response:
        data = CloseInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self.respond(
            services.conversation_close(
                conversation_id=conversation_id, agent=self.agent(request), notes=data.validated_data.get("notes", "")
            )
        )


class LabelsApi(AgentApiView):
    @extend_schema(request=LabelsDoc, responses={200: AgentConversationOut, **ERRORS})
    def put(self, request: Request, conversation_id: int) -> Response:
        """The conversation's labels become exactly these (names defined in the admin)."""
        if not request.user.is_staff:
            self.agent(request)
        labels = request.data.get("labels") if isinstance(request.data, dict) else None
        return self.respond(
            services.conversation_labels_set(conversation_id=conversation_id, user=request.user, labels=labels)
        )


class LabelListApi(AgentApiView):
    @extend_schema(responses={200: LabelListOut, **ERRORS})
    def get(self, request: Request) -> Response:
        """Every label defined in the admin, by name."""
        if not request.user.is_staff:
            self.agent(request)
        return Response({"labels": [{"name": label.name, "colour": label.colour} for label in Label.objects.all()]})


class TransferApi(AgentApiView):
    @extend_schema(request=TransferInput, responses={200: AgentConversationOut, **ERRORS})
    def post(self, request: Request, conversation_id: int) -> Response:
        data = TransferInput(data=request.data)
        data.is_valid(raise_exception=True)
        to_agent = to_queue = None
        if "agent_id" in data.validated_data:
            to_agent = Agent.objects.select_related("user").filter(pk=data.validated_data["agent_id"]).first()
            if to_agent is None:
                raise NotFound("No such agent.")
        else:
            to_queue = Queue.objects.filter(pk=data.validated_data["queue_id"]).first()
            if to_queue is None:
                raise NotFound("No such queue.")
        return self.respond(
            services.conversation_transfer(
                conversation_id=conversation_id, agent=self.agent(request), to_agent=to_agent, to_queue=to_queue
            )
        )
