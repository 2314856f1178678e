"""The admin site: the product's configuration first, then agents and conversations, then
Django's own users and tokens."""

from __future__ import annotations

from django.contrib import admin

APP_ORDER = ["workstreams", "agents", "conversations", "auth", "authtoken"]


class OmnichannelAdminSite(admin.AdminSite):
    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        position = {label: index for index, label in enumerate(APP_ORDER)}
        return sorted(apps, key=lambda app: position.get(app["app_label"], len(APP_ORDER)))
