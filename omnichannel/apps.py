from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class OmnichannelConfig(AppConfig):
    default = True  # this module also defines the admin's config
    name = "omnichannel"
    verbose_name = _("Omnichannel")

    def ready(self) -> None:
        from omnichannel import schema  # noqa: F401 - registers the OpenAPI extensions


class OmnichannelAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "omnichannel.admin.OmnichannelAdminSite"
