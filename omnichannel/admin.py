"""The admin site: the product's configuration first, then agents and conversations, then
Django's own users and groups. Every admin view refuses forged input that would reach the database as a
500: a null character in the query string (PostgreSQL refuses it in any text parameter of a
changelist filter, a search or an autocomplete) and selected ids of an action that are no ids."""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import BadRequest, ValidationError
from django.db import connection

APP_ORDER = ["workstreams", "agents", "conversations", "auth"]


class OmnichannelAdminSite(admin.AdminSite):
    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        position = {label: index for index, label in enumerate(APP_ORDER)}
        return sorted(apps, key=lambda app: position.get(app["app_label"], len(APP_ORDER)))

    def admin_view(self, view, cacheable=False):
        """Every view of the site and of every ModelAdmin goes through here (``get_urls``), so
        a new ModelAdmin or list filter cannot escape the checks: a 400, never a 500."""
        inner = super().admin_view(view, cacheable)
        model_admin = getattr(view, "__self__", None)
        pk_field = model_admin.model._meta.pk if isinstance(model_admin, admin.ModelAdmin) else None

        @wraps(inner)
        def checked(request, *args, **kwargs):
            if any("\x00" in key or "\x00" in value for key, values in request.GET.lists() for value in values):
                raise BadRequest("A null character in the query string.")
            if pk_field is not None and request.method == "POST":
                if not all(_is_pk(pk_field, value) for value in request.POST.getlist(ACTION_CHECKBOX_NAME)):
                    raise BadRequest("A selected object's id is not an id.")
            return inner(request, *args, **kwargs)

        return checked


def _is_pk(field, value: str) -> bool:
    """Whether ``value`` is a value of the primary key ``field`` its column can hold (SQLite's
    driver raises OverflowError for an integer past 64 bits)."""
    try:
        value = field.to_python(value)
    except ValidationError:
        return False
    if isinstance(value, int):
        low, high = connection.ops.integer_field_range(field.get_internal_type())
        return (low is None or value >= low) and (high is None or value <= high)
    return True
