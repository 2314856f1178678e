from django.contrib import admin
from django.urls import include, path

from conversations import views as customer_views
from omnichannel import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("omnichannel.api_urls")),
    path("agent/", views.agent_inbox, name="agent-inbox"),
    path("widget/<slug:widget_key>/", customer_views.widget_panel, name="widget-panel"),
    path("widget/<slug:widget_key>/demo/", customer_views.widget_demo, name="widget-demo"),
]
