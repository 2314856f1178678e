"""The conversation console: read-only history, and supervisor actions through the engine."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from agents.models import Agent
from conversations import files, privacy, services
from conversations.errors import DomainError
from conversations.models import Conversation, Customer, Label, Message, OutboundEmail, Status
from omnichannel.csp import CSP, set_policy


class ReadOnlyAdminMixin:
    """History is written by the engine only; the admin shows it."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Message
    fields = ["seq", "created_at", "sender", "author", "kind", "channel", "note", "body", "files"]
    readonly_fields = fields
    ordering = ["seq"]
    extra = 0
    can_delete = False
    verbose_name_plural = _("messages (full history)")

    @admin.display(boolean=True, description=_("internal note"))
    def note(self, message: Message) -> bool:
        return message.internal

    @admin.display(description=_("attachments"))
    def files(self, message: Message) -> str:
        """Each attachment as a link by its signed URL (the file itself, never its name, decides
        how a browser shows it: conversations.views.attachment_file)."""
        return format_html_join(
            ", ",
            '<a href="{}" rel="noopener" target="_blank">{}</a>',
            ((files.signed_url(a["id"]), a["name"]) for a in message.attachments or ()),
        )


class ReassignForm(forms.Form):
    agent = forms.ModelChoiceField(
        label=_("agent"), queryset=Agent.objects.select_related("user").order_by("user__username")
    )


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    """Labels are configuration: administrators define them; agents set them on conversations
    through the engine (conversations.services.labels), never here."""

    list_display = ["name", "colour_swatch", "conversation_count"]
    search_fields = ["name"]
    fields = ["name", "colour"]

    @admin.display(description=_("colour"), ordering="colour")
    def colour_swatch(self, obj: Label) -> str:
        return format_html('<span class="label-swatch" data-colour="{}">{}</span>', obj.colour, obj.colour)

    @admin.display(description=_("conversations"))
    def conversation_count(self, obj: Label) -> int:
        return obj.conversations.count()


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "workstream",
        "queue",
        "agent",
        "customer_link",
        "waiting_since",
        "last_activity_at",
    ]
    list_filter = ["status", "workstream", "queue", "agent", "workstream__persistent", "labels", "csat_rating"]
    search_fields = [
        "=id",
        "customer__display_name",
        "customer__email",
        "customer__external_id",
        "agent__user__username",
    ]
    list_select_related = ["workstream", "queue", "agent__user", "customer"]
    date_hierarchy = "created_at"
    inlines = [MessageInline]
    actions = ["force_close", "reassign"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    *("status", "workstream", "widget", "queue", "agent", "customer", "language"),
                    *("last_seq", "customer_last_seq"),
                ]
            },
        ),
        (
            _("Timeline"),
            {
                "fields": [
                    "created_at",
                    "queued_at",
                    "first_assigned_at",
                    "assigned_at",
                    "last_customer_message_at",
                    "last_agent_message_at",
                    "last_activity_at",
                    "waiting_since",
                    "returned_at",
                    "ended_at",
                    "closed_at",
                ]
            },
        ),
        (_("Ending"), {"fields": ["ended_by", "end_reason", "wrap_up_notes", "label_names"]}),
        (
            _("Satisfaction survey"),
            {"fields": ["csat_requested_at", "csat_rating", "csat_comment", "csat_submitted_at"]},
        ),
    ]

    @admin.display(description=pgettext_lazy("conversation", "labels"))
    def label_names(self, obj: Conversation) -> str:
        return ", ".join(label.name for label in obj.labels.all()) or "-"

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.display(description=_("customer"), ordering="customer__display_name")
    def customer_link(self, obj: Conversation) -> str:
        url = reverse("admin:conversations_customer_change", args=[obj.customer_id])
        return format_html('<a href="{}">{}</a>', url, obj.customer.name)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_staff:
            return {}
        return actions

    @admin.action(description=_("Force-close selected conversations"))
    def force_close(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse | None:
        if not request.user.is_staff:
            raise PermissionDenied
        open_ones = queryset.exclude(status=Status.CLOSED)
        if request.POST.get("post"):
            name = request.user.get_full_name() or request.user.get_username()
            closed = 0
            for pk in open_ones.values_list("pk", flat=True):
                try:
                    services.conversation_force_close(conversation_id=pk, by_name=name)
                    closed += 1
                except DomainError as exc:
                    self.message_user(request, f"#{pk}: {exc.detail}", messages.WARNING)
            self.message_user(
                request,
                ngettext("Closed %(n)d conversation.", "Closed %(n)d conversations.", closed) % {"n": closed},
                messages.SUCCESS,
            )
            return None
        return TemplateResponse(
            request,
            "admin/conversations/force_close_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Force-close conversations?"),
                "conversations": open_ones.select_related("customer", "agent__user"),
                "queryset": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description=_("Reassign selected conversations to an agent"))
    def reassign(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse | None:
        if not request.user.is_staff:
            raise PermissionDenied
        form = ReassignForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            agent = form.cleaned_data["agent"]
            moved = 0
            for conversation in queryset.exclude(status__in=[Status.CLOSED, Status.WRAP_UP]):
                try:
                    if conversation.status == Status.OPEN:
                        services.conversation_assign(conversation_id=conversation.pk, agent=agent)
                    else:
                        services.conversation_transfer(
                            conversation_id=conversation.pk, agent=None, to_agent=agent, supervisor=True
                        )
                    moved += 1
                except DomainError as exc:
                    self.message_user(request, f"#{conversation.pk}: {exc.detail}", messages.WARNING)
            self.message_user(
                request,
                ngettext(
                    "Reassigned %(n)d conversation to %(agent)s.", "Reassigned %(n)d conversations to %(agent)s.", moved
                )
                % {"n": moved, "agent": agent},
                messages.SUCCESS,
            )
            return None
        return TemplateResponse(
            request,
            "admin/conversations/reassign.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Reassign conversations"),
                "form": form,
                "queryset": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )


class ConversationInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Conversation
    fields = ["link", "status", "workstream", "agent", "created_at", "closed_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = False
    ordering = ["-created_at"]

    @admin.display(description=_("conversation"))
    def link(self, obj: Conversation) -> str:
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:conversations_conversation_change", args=[obj.pk]), obj.pk
        )


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "email", "external_id", "authenticated_display", "scope", "created_at"]
    list_filter = ["authentication_setting", "widget"]
    search_fields = ["display_name", "email", "external_id"]
    list_select_related = ["authentication_setting", "widget"]
    fields = [
        "display_name",
        "email",
        "email_unsubscribed_at",
        "external_id",
        "authentication_setting",
        "widget",
        "context",
        "created_at",
    ]
    readonly_fields = fields
    inlines = [ConversationInline]
    actions = ["export_data", "erase"]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_export_permission(self, request) -> bool:
        """A bulk download of personal data: only for users granted "view customer" (and
        superusers), not for every staff supervisor who may look at one customer."""
        return request.user.is_active and request.user.has_perm("conversations.view_customer")

    def has_erase_permission(self, request) -> bool:
        return request.user.is_active and request.user.has_perm("conversations.delete_customer")

    @staticmethod
    def _actor(request: HttpRequest) -> str:
        return f"admin:{request.user.get_username()}"

    @admin.action(description=_("Export selected customers' data (JSON)"), permissions=["export"])
    def export_data(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse:
        """Privacy request (access, portability): the customers and their whole history as one
        JSON download (conversations.privacy)."""
        document = privacy.customers_export(customers=list(queryset), actor=self._actor(request))
        response = HttpResponse(
            json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
            content_type="application/json; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="customer-export-{stamp}.json"'
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Erase selected customers and all their conversations"), permissions=["erase"])
    def erase(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
        """Privacy request (erasure), shaped like Django's delete_selected: a confirmation page
        that says what goes, then one service call per customer (conversations.privacy)."""
        plans = [privacy.erasure_plan(customer) for customer in queryset.select_related("authentication_setting")]
        if request.POST.get("post") and plans:
            close_ongoing = bool(request.POST.get("close_ongoing"))
            erased = 0
            for plan in plans:
                try:
                    result = privacy.customer_erase(
                        customer_id=plan.customer.pk, actor=self._actor(request), close_ongoing=close_ongoing
                    )
                except DomainError as exc:
                    self.message_user(
                        request,
                        _("Customer #%(id)s was not erased: %(reason)s")
                        % {"id": plan.customer.pk, "reason": exc.detail},
                        messages.WARNING,
                    )
                    continue
                LogEntry.objects.create(
                    user_id=request.user.pk,
                    content_type=ContentType.objects.get_for_model(Customer),
                    object_id=str(result.customer_id),
                    object_repr=f"customer #{result.customer_id}",  # not the name: the audit keeps no personal data
                    action_flag=DELETION,
                    change_message=f"Erased on a privacy request: {result.conversations} conversation(s), "
                    f"{result.messages} message(s).",
                )
                erased += 1
            if erased:
                self.message_user(
                    request,
                    ngettext("Erased %(n)d customer.", "Erased %(n)d customers.", erased) % {"n": erased},
                    messages.SUCCESS,
                )
            return None
        return TemplateResponse(
            request,
            "admin/conversations/erase_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Erase customers?"),
                "plans": plans,
                "ongoing": any(plan.ongoing for plan in plans),
                "queryset": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.display(boolean=True, description=_("authenticated"))
    def authenticated_display(self, obj: Customer) -> bool:
        return obj.authenticated

    @admin.display(description=_("scope"))
    def scope(self, obj: Customer) -> str:
        return str(obj.authentication_setting or obj.widget)


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every email the engine sent or will send (the outbox): with ``make run``'s file backend,
    the place a newcomer reads them (docs/email.md)."""

    list_display = ["created_at", "kind", "to", "subject", "sent_at", "attempts", "conversation_link"]
    list_filter = ["kind", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["to", "subject", "message_id"]
    date_hierarchy = "created_at"
    fields = [
        "kind",
        "to",
        "subject",
        "conversation_link",
        "created_at",
        "sent_at",
        "attempts",
        "next_attempt_at",
        "last_error",
        "message_id",
        "headers",
        "body_text",
        "html_preview",
    ]
    readonly_fields = fields

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.display(description=_("conversation"))
    def conversation_link(self, obj: OutboundEmail) -> str:
        if obj.conversation_id is None:
            return "–"
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:conversations_conversation_change", args=[obj.conversation_id]),
            obj.conversation_id,
        )

    @admin.display(description=_("HTML"))
    def html_preview(self, obj: OutboundEmail) -> str:
        """The HTML part in a sandboxed frame (no scripts, no same origin), as a mail client shows it."""
        if not obj.body_html:
            return "–"
        url = reverse("admin:conversations_outboundemail_preview", args=[obj.pk])
        return format_html('<iframe sandbox="" src="{}" class="email-preview" title="{}"></iframe>', url, obj.subject)

    def get_urls(self):
        preview = path(
            "<int:pk>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="conversations_outboundemail_preview",
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The email's HTML as it was sent, under a policy of its own: its inline styles (as mail
        clients need them) apply, nothing runs, nothing loads but images, only this admin frames it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        email = get_object_or_404(OutboundEmail, pk=pk)
        response = HttpResponse(email.body_html, content_type="text/html; charset=utf-8")
        response["X-Frame-Options"] = "SAMEORIGIN"
        return set_policy(
            response,
            {
                "default-src": [CSP.NONE],
                "script-src": [CSP.NONE],
                "style-src": ["'unsafe-inline'"],
                "img-src": ["https:", "data:"],
                "frame-ancestors": [CSP.SELF],
                "sandbox": [],
            },
        )
