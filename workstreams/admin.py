from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminTimeWidget
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_duration
from django.utils.duration import duration_string
from django.utils.html import escape, format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from agents.models import Presence
from conversations import services
from workstreams.models import (
    AuthenticationKey,
    AuthenticationSetting,
    AutomatedMessage,
    ChatWidget,
    ClosedDate,
    OperatingHours,
    OperatingInterval,
    PrechatField,
    Queue,
    QuickReply,
    Workstream,
    default_allowed_presences,
)

# --- Widgets shared by several pages --------------------------------------------------------------


class DurationPartsWidget(forms.MultiWidget):
    """A duration as days, hours, minutes and seconds (“2 d 0 h 0 min 0 s”) instead of
    Django's “2 00:00:00”. A plain duration string posted under the field's own name
    (API clients, tests) is still accepted."""

    units = (
        (pgettext_lazy("duration unit", "d"), _("days"), 86400),
        (pgettext_lazy("duration unit", "h"), _("hours"), 3600),
        (pgettext_lazy("duration unit", "min"), _("minutes"), 60),
        (pgettext_lazy("duration unit", "s"), _("seconds"), 1),
    )

    def __init__(self, attrs=None):
        widgets = [forms.NumberInput(attrs={"min": 0, "class": "vDurationPart"}) for _unit in self.units]
        super().__init__(widgets, attrs)

    def id_for_label(self, id_):
        return f"{id_}_0" if id_ else id_  # the field's label focuses the days

    def decompress(self, value):
        if isinstance(value, str):
            value = parse_duration(value.strip()) if value.strip() else None
        if not isinstance(value, timedelta):
            return [None] * len(self.units)
        rest = int(value.total_seconds())
        parts = []
        for _symbol, _name, seconds in self.units:
            count, rest = divmod(rest, seconds)
            parts.append(count)
        return parts

    def value_from_datadict(self, data, files, name):
        if name in data:
            return data[name]
        parts = super().value_from_datadict(data, files, name)
        if all(part in (None, "") for part in parts):
            return ""
        try:
            total = sum(
                float(str(part or 0).replace(",", ".")) * seconds
                for part, (_symbol, _name, seconds) in zip(parts, self.units, strict=True)
            )
            return duration_string(timedelta(seconds=round(total)))
        except (ValueError, OverflowError):
            return " ".join(str(part) for part in parts)  # not a duration: the form field says so

    def value_omitted_from_data(self, data, files, name):
        return name not in data and super().value_omitted_from_data(data, files, name)

    def render(self, name, value, attrs=None, renderer=None):
        values = value if isinstance(value, list) else self.decompress(value)
        attrs = self.build_attrs(self.attrs, attrs)
        field_id = attrs.pop("id", None)
        attrs.pop("required", None)  # an empty part means 0
        parts = []
        for index, ((symbol, unit_name, _seconds), widget) in enumerate(zip(self.units, self.widgets, strict=True)):
            part_attrs = {**attrs, "aria-label": unit_name}
            if field_id:
                part_attrs["id"] = f"{field_id}_{index}"
            parts.append(
                format_html(
                    '<span class="duration-part">{}<span class="duration-unit" title="{}">{}</span></span>',
                    widget.render(f"{name}_{index}", values[index], part_attrs, renderer),
                    unit_name,
                    symbol,
                )
            )
        return format_html(
            '<div class="duration-parts">{}</div>', format_html_join("", "{}", ((part,) for part in parts))
        )


class DistinctRowsFormSet(forms.BaseInlineFormSet):
    """Refuses two rows with the same ``distinct_fields`` values. An inline form leaves out
    the parent, so Django cannot check a unique constraint on (parent, fields…) that has a
    condition; without this the database refuses the save with a server error."""

    distinct_fields: tuple[str, ...] = ()
    distinct_message = ""

    def clean(self):
        super().clean()
        seen = set()
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or (self.can_delete and self._should_delete_form(form)):
                continue
            values = tuple(form.cleaned_data.get(name) for name in self.distinct_fields)
            if any(value in (None, "") for value in values):
                continue  # an empty row, or a value the constraint does not cover (an empty key id)
            if values in seen:
                form.add_error(self.distinct_fields[0], self.distinct_message)
            seen.add(values)


def _links(url_name: str, objects) -> str:
    """Comma-separated change links, or “–” for none."""
    objects = list(objects)
    if not objects:
        return "–"
    return format_html_join(", ", '<a href="{}">{}</a>', ((reverse(url_name, args=[o.pk]), str(o)) for o in objects))


# --- Operating hours ------------------------------------------------------------------------------


class OperatingIntervalInline(admin.TabularInline):
    model = OperatingInterval
    extra = 0
    fields = ["weekday", "opens_at", "closes_at"]
    classes = ["hide-original"]  # each row already shows its weekday and times
    formfield_overrides = {models.TimeField: {"widget": AdminTimeWidget(format="%H:%M")}}


class ClosedDateInline(admin.TabularInline):
    model = ClosedDate
    extra = 0
    fields = ["date", "label"]
    classes = ["hide-original"]


@admin.register(OperatingHours)
class OperatingHoursAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone", "open_now", "next_opening_display", "queue_names"]
    search_fields = ["name", "time_zone"]
    # Only the time zones in use, not the 600 the choice list offers.
    list_filter = [("time_zone", admin.AllValuesFieldListFilter)]
    inlines = [OperatingIntervalInline, ClosedDateInline]
    readonly_fields = ["open_now", "next_opening_display", "queue_names"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("intervals", "closed_dates", "queues")

    def get_fields(self, request, obj=None):
        if obj is None:  # the status needs saved intervals
            return ["name", "time_zone"]
        return ["name", "time_zone", "open_now", "next_opening_display", "queue_names"]

    @admin.display(boolean=True, description=_("open now"))
    def open_now(self, obj: OperatingHours) -> bool:
        return obj.is_open()

    @admin.display(description=_("next opening"))
    def next_opening_display(self, obj: OperatingHours) -> str:
        now = timezone.now()
        opening = obj.next_opening(now)
        if opening is None:
            return _("never")
        if opening == now:
            return _("open now")
        return opening.astimezone(obj.tz).strftime("%Y-%m-%d %H:%M %Z")

    @admin.display(description=_("queues"))
    def queue_names(self, obj: OperatingHours) -> str:
        return _links("admin:workstreams_queue_change", obj.queues.all())


# --- Queues ---------------------------------------------------------------------------------------


class QueueForm(forms.ModelForm):
    class Meta:
        model = Queue
        fields = ["name", "priority", "agents", "operating_hours"]

    def _save_m2m(self):
        """Who works in the queue, through the engine (``services.queue_agents_set``: an agent
        who joins drains the queue at once)."""
        agents = self.cleaned_data.get("agents")
        if agents is not None:
            services.queue_agents_set(queue_id=self.instance.pk, agent_ids=[agent.pk for agent in agents])


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    form = QueueForm
    list_display = ["name", "priority", "operating_hours", "agent_count", "workstream_names", "open_now"]
    list_editable = ["priority"]
    list_filter = ["operating_hours"]
    search_fields = ["name"]
    autocomplete_fields = ["agents", "operating_hours"]
    list_select_related = ["operating_hours"]
    fields = ["name", "priority", "agents", "operating_hours", "workstream_names", "average_wait_seconds"]
    readonly_fields = ["workstream_names", "average_wait_seconds"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related("agents", "workstreams", "operating_hours__intervals", "operating_hours__closed_dates")
        )

    @admin.display(description=_("agents"))
    def agent_count(self, obj: Queue) -> int:
        return len(obj.agents.all())

    @admin.display(description=_("workstreams"))
    def workstream_names(self, obj: Queue) -> str:
        if obj.pk is None:
            return "–"
        return _links("admin:workstreams_workstream_change", obj.workstreams.all())

    @admin.display(boolean=True, description=_("open now"))
    def open_now(self, obj: Queue) -> bool:
        return obj.is_open()


# --- Workstreams ----------------------------------------------------------------------------------


class WorkstreamForm(forms.ModelForm):
    allowed_presences = forms.MultipleChoiceField(
        label=capfirst(Workstream._meta.get_field("allowed_presences").verbose_name),
        choices=Presence.choices,
        initial=default_allowed_presences,
        widget=forms.CheckboxSelectMultiple,
        help_text=Workstream._meta.get_field("allowed_presences").help_text,
    )

    class Meta:
        model = Workstream
        fields = [field.name for field in Workstream._meta.get_fields() if getattr(field, "editable", False)]


class AutomatedMessageOverrideFormSet(DistinctRowsFormSet):
    distinct_fields = ("kind", "language")
    distinct_message = _("Another row already overrides this message in this language.")


class AutomatedMessageOverrideInline(admin.TabularInline):
    model = AutomatedMessage
    formset = AutomatedMessageOverrideFormSet
    extra = 0
    fields = ["kind", "language", "text"]
    verbose_name = _("automated message override")
    verbose_name_plural = _("automated message overrides (empty: the global defaults)")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "text":
            # The placeholders are the help text, which a table only shows as a tooltip.
            kwargs["widget"] = forms.Textarea(attrs={"rows": 2, "cols": 60, "placeholder": db_field.help_text})
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class QuickReplyInline(admin.TabularInline):
    model = QuickReply
    extra = 0
    fields = ["position", "title", "body"]
    verbose_name = _("quick reply")
    verbose_name_plural = _("quick replies (buttons in the agent's composer)")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "body":
            kwargs["widget"] = forms.Textarea(attrs={"rows": 2, "cols": 60})
        if db_field.name == "position":
            kwargs["widget"] = forms.NumberInput(attrs={"class": "position-input"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class PrechatFieldInline(admin.TabularInline):
    model = PrechatField
    extra = 0
    fields = ["position", "name", "label", "label_da", "type", "required", "choices"]
    verbose_name = _("pre-chat question")
    verbose_name_plural = _("pre-chat form (asked by the widget before the first message)")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "choices":
            kwargs["widget"] = forms.Textarea(attrs={"rows": 3, "cols": 24})
        if db_field.name == "position":
            kwargs["widget"] = forms.NumberInput(attrs={"class": "position-input"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Workstream)
class WorkstreamAdmin(admin.ModelAdmin):
    form = WorkstreamForm
    list_display = [
        "name",
        "mode_display",
        "queue",
        "distribution_mode",
        "capacity_units",
        "widgets_display",
    ]
    list_filter = ["persistent", "distribution_mode", "assignment_method", "queue"]
    search_fields = ["name", "queue__name"]
    list_select_related = ["queue"]
    autocomplete_fields = ["queue"]
    readonly_fields = ["widgets_display"]
    inlines = [PrechatFieldInline, QuickReplyInline, AutomatedMessageOverrideInline]
    formfield_overrides = {models.DurationField: {"widget": DurationPartsWidget}}
    fieldsets = [
        (_("Basics"), {"fields": ["name", "queue", "persistent", "widgets_display"]}),
        (
            _("Work distribution"),
            {"fields": ["distribution_mode", "assignment_method", "capacity_units", "allowed_presences"]},
        ),
        (_("Persistent chat"), {"fields": ["keep_same_agent", "affinity_timeout", "waiting_timeout"]}),
        (_("Timeouts"), {"fields": ["open_timeout", "disconnect_grace"]}),
        (_("Email"), {"fields": ["email_unread_after"]}),
        (_("Satisfaction survey"), {"fields": ["csat_enabled"]}),
        (_("Attachments"), {"fields": ["attachment_max_size", "attachment_types"]}),
        (
            _("Wrap-up"),
            {"fields": ["wrap_up_timeout", "wrap_up_capacity", "wrap_up_block_duration", "label_required"]},
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("widgets")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("distribution_mode")
        return fields

    @admin.display(boolean=True, description=_("persistent"), ordering="persistent")
    def mode_display(self, obj: Workstream) -> bool:
        return obj.persistent

    @admin.display(description=_("widgets"))
    def widgets_display(self, obj: Workstream | None) -> str:
        if obj is None or obj.pk is None:
            return _("Add widgets after saving the workstream.")
        add_link = format_html(
            '<a href="{}?workstream={}" class="addlink">{}</a>',
            reverse("admin:workstreams_chatwidget_add"),
            obj.pk,
            _("Add a widget"),
        )
        widgets = obj.widgets.all()
        if not widgets:
            return format_html("{} {}", _("No widget yet."), add_link)
        return _links("admin:workstreams_chatwidget_change", widgets)


# --- Authentication settings ----------------------------------------------------------------------


class AuthenticationKeyFormSet(DistinctRowsFormSet):
    distinct_fields = ("kid",)
    distinct_message = _("Another public key of this setting has this key id.")


class AuthenticationKeyInline(admin.StackedInline):
    model = AuthenticationKey
    formset = AuthenticationKeyFormSet
    extra = 0
    min_num = 1
    fields = ["kid", "public_key", "algorithm"]
    readonly_fields = ["algorithm"]


@admin.register(AuthenticationSetting)
class AuthenticationSettingAdmin(admin.ModelAdmin):
    list_display = ["name", "issuer", "audience", "key_count", "widget_names"]
    search_fields = ["name", "issuer", "audience"]
    inlines = [AuthenticationKeyInline]
    fields = ["name", "issuer", "audience", "max_token_lifetime", "widget_names"]
    readonly_fields = ["widget_names"]
    formfield_overrides = {models.DurationField: {"widget": DurationPartsWidget}}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("keys", "widgets")

    @admin.display(description=_("public keys"))
    def key_count(self, obj: AuthenticationSetting) -> int:
        return len(obj.keys.all())

    @admin.display(description=_("widgets"))
    def widget_names(self, obj: AuthenticationSetting) -> str:
        if obj.pk is None:
            return "–"
        return _links("admin:workstreams_chatwidget_change", obj.widgets.all())


# --- Widgets --------------------------------------------------------------------------------------


class ColourInput(forms.TextInput):
    input_type = "color"


class ChatWidgetForm(forms.ModelForm):
    class Meta:
        model = ChatWidget
        fields = [
            "workstream",
            "title",
            "subtitle",
            "widget_key",
            "colour",
            "language",
            "allowed_origins",
            "authentication_setting",
            "operating_hours",
        ]
        # Help for the read-only snippet, placed by the admin like any other help text.
        help_texts = {
            # escape(): the admin shows help texts as HTML.
            "embed_snippet_display": escape(
                _("Paste this before </body> on every page of the website that shows the chat.")
            )
        }


@admin.register(ChatWidget)
class ChatWidgetAdmin(admin.ModelAdmin):
    form = ChatWidgetForm
    list_display = ["title", "widget_key", "workstream", "language", "authentication_setting", "demo_link"]
    list_filter = ["language", "workstream", "authentication_setting"]
    search_fields = ["title", "widget_key", "workstream__name"]
    list_select_related = ["workstream", "authentication_setting"]
    autocomplete_fields = ["workstream", "authentication_setting", "operating_hours"]
    prepopulated_fields = {"widget_key": ["title"]}
    readonly_fields = ["embed_snippet_display", "demo_link"]

    class Media:
        js = ["admin.js"]  # the embed snippet's Copy button

    fieldsets = [
        (_("Basics"), {"fields": ["workstream", "title", "subtitle", "widget_key"]}),
        (_("Appearance"), {"fields": ["colour", "language"]}),
        (
            _("Access"),
            {"fields": ["allowed_origins", "authentication_setting", "operating_hours"]},
        ),
        (_("Embed"), {"fields": ["page_url", "embed_snippet_display", "demo_link"]}),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "colour":
            kwargs["widget"] = ColourInput
        elif db_field.name == "allowed_origins":
            kwargs["widget"] = forms.Textarea(attrs={"rows": 3, "cols": 60, "class": "vLargeTextField"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("embed snippet"))
    def embed_snippet_display(self, obj: ChatWidget | None) -> str:
        if obj is None or obj.pk is None:
            return _("Save the widget to get its snippet.")
        # No inline handlers (the policy refuses them): static/admin.js acts on the data attributes.
        return format_html(
            '<div class="embed-snippet">'
            '<textarea readonly rows="3" cols="90" class="vLargeTextField" id="embed-snippet" '
            'data-select-on-click aria-label="{}">{}</textarea>'
            '<button type="button" class="button" data-copy="embed-snippet" data-copied="{}">{}</button>'
            "</div>",
            _("embed snippet"),
            obj.embed_snippet(),
            _("Copied"),
            _("Copy"),
        )

    @admin.display(description=_("demo page"))
    def demo_link(self, obj: ChatWidget | None) -> str:
        if obj is None or obj.pk is None:
            return "–"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>',
            reverse("widget-demo", args=[obj.widget_key]),
            _("open"),
        )


# --- Automated messages ---------------------------------------------------------------------------


class ScopeFilter(admin.SimpleListFilter):
    title = _("scope")
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("default", _("Global default")), ("override", _("Workstream override"))]

    def queryset(self, request, queryset):
        if self.value() == "default":
            return queryset.filter(workstream__isnull=True)
        if self.value() == "override":
            return queryset.filter(workstream__isnull=False)
        return queryset


@admin.register(AutomatedMessage)
class AutomatedMessageAdmin(admin.ModelAdmin):
    list_display = ["kind", "language", "scope_display", "text"]
    list_filter = [ScopeFilter, "kind", "language", "workstream"]
    search_fields = ["text", "workstream__name"]
    list_select_related = ["workstream"]
    autocomplete_fields = ["workstream"]
    fields = ["workstream", "kind", "language", "text"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "text":
            kwargs["widget"] = forms.Textarea(attrs={"rows": 4, "cols": 60, "class": "vLargeTextField"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("scope"), ordering="workstream__name")
    def scope_display(self, obj: AutomatedMessage) -> str:
        return obj.workstream.name if obj.workstream_id else _("Global default")
