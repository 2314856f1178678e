from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from agents.models import Agent, ApiToken
from conversations import services
from workstreams.models import Queue

User = get_user_model()


class QueuePicker(admin.widgets.FilteredSelectMultiple):
    """The two-box picker in a wrapper of its own: its script moves the boxes to the start
    of the select's parent, which would otherwise put them before the field's label."""

    def render(self, name, value, attrs=None, renderer=None):
        return format_html('<div class="related-widget-wrapper">{}</div>', super().render(name, value, attrs, renderer))


class AgentForm(forms.ModelForm):
    queues = forms.ModelMultipleChoiceField(
        label=capfirst(_("queues")),
        queryset=Queue.objects.all(),
        required=False,
        widget=QueuePicker(_("queues"), is_stacked=False),
        help_text=_("The queues whose conversations this agent handles."),
    )

    class Meta:
        model = Agent
        fields = ["user", "presence", "presence_auto", "capacity", "email_notifications"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["queues"].initial = self.instance.queues.all()

    def save_profile(self) -> Agent:
        """Save the profile through the engine (``services.agent_profile_update``: the agent
        frame, its queues drained at once). A new profile's row is created first, as the form
        built it; the engine then gives it its queues."""
        agent = self.instance
        if agent._state.adding:
            agent.save()
        return services.agent_profile_update(
            agent_id=agent.pk,
            presence=self.cleaned_data["presence"],
            presence_auto=self.cleaned_data["presence_auto"],
            capacity=self.cleaned_data["capacity"],
            queue_ids=[queue.pk for queue in self.cleaned_data["queues"]],
            email_notifications=self.cleaned_data["email_notifications"],
        )


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    form = AgentForm
    list_display = ["display_name", "username", "presence", "presence_auto", "capacity_in_use", "queue_names"]
    list_filter = ["presence", "queues"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "user__email"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        # Moving a profile, with its conversations, to another user is no edit of an agent.
        return ["user"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        form.save_profile()

    def get_queryset(self, request):
        from conversations.selectors import capacity_used_expression

        return super().get_queryset(request).prefetch_related("queues").annotate(used=capacity_used_expression())

    @admin.display(description=_("capacity in use"), ordering="used")
    def capacity_in_use(self, obj: Agent) -> str:
        return f"{obj.used} / {obj.capacity}"

    @admin.display(description=_("name"), ordering="user__first_name")
    def display_name(self, obj: Agent) -> str:
        return obj.display_name

    @admin.display(description=_("username"), ordering="user__username")
    def username(self, obj: Agent) -> str:
        return obj.user.get_username()

    @admin.display(description=_("queues"))
    def queue_names(self, obj: Agent) -> str:
        return ", ".join(queue.name for queue in obj.queues.all()) or "–"


class AgentInline(admin.StackedInline):
    model = Agent
    form = AgentForm
    can_delete = True
    extra = 0
    max_num = 1
    fields = ["presence", "presence_auto", "capacity", "email_notifications", "queues"]
    verbose_name = _("agent profile")
    verbose_name_plural = _("agent profile (add one to make this user an agent)")
    # The stock template titles a one-form inline with verbose_name only; this one uses
    # verbose_name_plural, with its hint, while the user has no profile yet.
    template = "admin/agents/agent/user_inline.html"


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [*DjangoUserAdmin.inlines, AgentInline]

    def save_formset(self, request, form, formset, change):
        if formset.model is not Agent:
            return super().save_formset(request, form, formset, change)
        saved = formset.save(commit=False)  # the inline's user set on a new profile, nothing written
        for agent in formset.deleted_objects:
            agent.delete()
        for agent_form in formset.forms:
            if agent_form.instance in saved:
                agent_form.save_profile()
        return None


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API keys of users (``Authorization: Token``, the agent socket). Adding one shows its key
    once, on the page that answers the save: only a digest is stored, and the key goes into
    no message, session or log. Revoking is deleting (one or many, with the admin's action)."""

    list_display = ["__str__", "name", "user", "created"]
    list_display_links = ["__str__", "name"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username", "user__first_name", "user__last_name"]
    autocomplete_fields = ["user"]
    readonly_fields = ["user", "prefix", "created"]

    class Media:
        js = ["admin.js"]  # the Copy button of the new key

    def get_fields(self, request, obj=None):
        return ["user", "name", "prefix", "created"] if obj else ["user", "name"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def save_model(self, request, obj, form, change):
        if not change:
            request.issued_api_key = obj.new_key()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("New API token"),
            "token": obj,
            "key": request.issued_api_key,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/agents/apitoken/issued.html", context)
