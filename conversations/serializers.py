"""Input validation of the REST API, and response shapes for the OpenAPI schema. Responses are
built by conversations.events (the one source of the wire format); the response serializers
here only document those shapes."""

from __future__ import annotations

from rest_framework import serializers

from conversations.errors import BadFrame
from conversations.selectors import DEFAULT_PAGE, MAX_PAGE


class FrameText(serializers.CharField):
    """A text field of a frame: a JSON string or nothing else, as the sockets read it
    (``conversations.consumers.required``). DRF's CharField turns ``5``, ``1.5`` into text;
    here a number, ``true``, a list or an object is ``bad_frame``, the socket's answer."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise BadFrame(f'"{self.field_name}" has the wrong type.')
        return super().to_internal_value(data)


class MessagePageQuery(serializers.Serializer):
    after_seq = serializers.IntegerField(min_value=0, required=False)
    before_seq = serializers.IntegerField(min_value=0, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=DEFAULT_PAGE)

    def validate(self, attrs):
        if "after_seq" in attrs:
            attrs.pop("before_seq", None)  # catching up wins over paging back
        return attrs


class MessageSend(serializers.Serializer):
    client_id = FrameText(max_length=64, required=False, allow_null=True, trim_whitespace=False)
    # Required unless the message carries attachments (the engine's clean_body then allows none).
    body = FrameText(allow_blank=True, trim_whitespace=False, required=False)
    attachments = serializers.JSONField(required=False, allow_null=True)  # checked by the engine
    # As the socket reads it: the engine checks it (true or false; services.clean_internal).
    internal = serializers.JSONField(required=False, allow_null=True)
    prechat = serializers.JSONField(required=False, allow_null=True)  # checked by the engine (clean_prechat)

    def validate(self, attrs):
        if "body" not in attrs and not attrs.get("attachments"):
            raise serializers.ValidationError({"body": ["This field is required."]})
        return attrs


class MessageSendDoc(serializers.Serializer):
    """What the schema promises: the body holds a visible character and at most 4,000 of them
    (trimmed, docs/protocol.md); the server answers body_empty / body_too_long otherwise."""

    client_id = serializers.CharField(max_length=64, required=False, allow_null=True)
    body = serializers.CharField(
        max_length=4000,
        required=False,
        allow_blank=True,
        help_text="1 to 4,000 characters after trimming; may be empty or absent when attachments are given.",
    )
    attachments = serializers.ListField(
        child=serializers.UUIDField(),
        max_length=10,
        required=False,
        help_text="Ids of the sender's uploads for this conversation (POST …/attachments/), at most 10.",
    )
    internal = serializers.BooleanField(
        required=False, default=False, help_text="An agent's internal note: agents see it, the customer never does."
    )
    prechat = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="The customer's answers to the pre-chat form, with the message that starts a conversation.",
    )


class TranscriptInput(serializers.Serializer):
    email = serializers.EmailField()


class OfflineMessageInput(serializers.Serializer):
    name = FrameText(max_length=255, required=False, allow_blank=True)
    email = serializers.EmailField()
    body = FrameText(allow_blank=True, trim_whitespace=False)


class OfflineMessageDoc(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    email = serializers.EmailField()
    body = serializers.RegexField(r"\S", max_length=4000)


class CsatInput(serializers.Serializer):
    """For the schema: the engine checks the answer (conversations.services.feedback)."""

    conversation_id = serializers.IntegerField(min_value=1)
    rating = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=2000)


class CsatAnswerOut(serializers.Serializer):
    rating = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(allow_blank=True)


class CsatOut(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    csat = CsatAnswerOut()


class CloseInput(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class LabelsDoc(serializers.Serializer):
    """For the schema: the engine checks the list itself (conversations.services.labels)."""

    labels = serializers.ListField(child=serializers.CharField(max_length=50), max_length=20)


class LabelOut(serializers.Serializer):
    name = serializers.CharField()
    colour = serializers.CharField()


class LabelListOut(serializers.Serializer):
    labels = LabelOut(many=True)


class TransferInput(serializers.Serializer):
    agent_id = serializers.IntegerField(required=False, min_value=1)
    queue_id = serializers.IntegerField(required=False, min_value=1)

    def validate(self, attrs):
        if ("agent_id" in attrs) == ("queue_id" in attrs):
            raise serializers.ValidationError("Give exactly one of agent_id and queue_id.")
        return attrs


class PresenceInput(serializers.Serializer):
    presence = serializers.ChoiceField(choices=["available", "busy", "busy_dnd", "away", "offline"])


# --- Response shapes (documentation only) ----------------------------------------------------


class AcceptedOut(serializers.Serializer):
    status = serializers.CharField(help_text='"accepted"')


class InboundEmailOut(serializers.Serializer):
    status = serializers.CharField(help_text='"accepted" or "rejected"')
    reason = serializers.CharField(allow_null=True, help_text="Why a mail was rejected (docs/email.md).")
    conversation_id = serializers.IntegerField(required=False)
    seq = serializers.IntegerField(required=False)


class AttachmentOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    size = serializers.IntegerField()
    content_type = serializers.CharField(help_text="Decided from the file's bytes.")
    url = serializers.CharField(
        help_text="Signed and short-lived (ATTACHMENT_URL_MAX_AGE); needs no other credential. "
        "Relative to the server's origin."
    )


class AttachmentUploadOut(serializers.Serializer):
    attachment = AttachmentOut()


class AttachmentUploadDoc(serializers.Serializer):
    file = serializers.FileField(help_text="One file; its workstream's size and type limits apply.")


class MessageOut(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    seq = serializers.IntegerField()
    client_id = serializers.CharField(allow_null=True)
    sender = serializers.ChoiceField(choices=["customer", "agent", "system"])
    author = serializers.CharField()
    kind = serializers.CharField(allow_null=True)
    channel = serializers.ChoiceField(choices=["chat", "email"])
    body = serializers.CharField()
    internal = serializers.BooleanField(help_text="An internal note (only agents ever see one).")
    attachments = AttachmentOut(many=True)
    created_at = serializers.DateTimeField()


class NamedRef(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ConversationOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["open", "active", "waiting", "wrap_up", "closed"])
    mode = serializers.ChoiceField(choices=["live", "persistent"])
    customer_can_end = serializers.BooleanField()
    agent = NamedRef(allow_null=True)
    last_seq = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class CustomerRef(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField(allow_blank=True)
    authenticated = serializers.BooleanField()


class AgentConversationOut(ConversationOut):
    workstream = NamedRef()
    queue = NamedRef()
    customer = CustomerRef()
    queued_at = serializers.DateTimeField(allow_null=True)
    waiting_since = serializers.DateTimeField(allow_null=True)
    returned_at = serializers.DateTimeField(allow_null=True)
    last_customer_message_at = serializers.DateTimeField(allow_null=True)
    last_activity_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    labels = serializers.ListField(child=serializers.CharField())
    csat = CsatAnswerOut(allow_null=True, help_text="The customer's rating, once given.")
    prechat = serializers.DictField(child=serializers.CharField(), help_text="The answers to the pre-chat form.")


class MessagePageOut(serializers.Serializer):
    messages = MessageOut(many=True)
    has_more = serializers.BooleanField()


class CurrentConversationOut(serializers.Serializer):
    conversation = ConversationOut(allow_null=True)


class ConversationListOut(serializers.Serializer):
    conversations = AgentConversationOut(many=True)


class PrechatQuestionOut(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField(help_text="In the widget's language.")
    type = serializers.ChoiceField(choices=["text", "email", "textarea", "choice"])
    required = serializers.BooleanField()
    choices = serializers.ListField(child=serializers.CharField())


class AttachmentLimitsOut(serializers.Serializer):
    max_size = serializers.IntegerField(help_text="The largest file, in bytes.")
    types = serializers.ListField(
        child=serializers.CharField(), help_text="Allowed media types (image/* for every image); empty: none."
    )


class WidgetConfigOut(serializers.Serializer):
    title = serializers.CharField()
    subtitle = serializers.CharField(allow_blank=True)
    colour = serializers.CharField()
    mode = serializers.ChoiceField(choices=["live", "persistent"])
    customer_can_end = serializers.BooleanField()
    auth_required = serializers.BooleanField()
    online = serializers.BooleanField()
    next_opening = serializers.DateTimeField(allow_null=True)
    language = serializers.CharField()
    prechat = PrechatQuestionOut(many=True, help_text="The pre-chat form; empty when the workstream asks nothing.")
    attachments = AttachmentLimitsOut(help_text="What the workstream accepts as attachments (checked again on upload).")


class TokenOut(serializers.Serializer):
    token = serializers.CharField()


class CapacityOut(serializers.Serializer):
    total = serializers.IntegerField()
    used = serializers.IntegerField()
    available = serializers.IntegerField()


class AgentMeOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    presence = serializers.CharField()
    capacity = CapacityOut()


class ErrorOut(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
