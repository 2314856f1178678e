from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from conversations import views as customer_views
from omnichannel import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("omnichannel.api_urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("agent/", include("agents.urls")),
    path("widget/<slug:widget_key>/", customer_views.widget_panel, name="widget-panel"),
    path("widget/<slug:widget_key>/demo/", customer_views.widget_demo, name="widget-demo"),
    path("files/<str:token>/", customer_views.attachment_file, name="attachment-file"),
    path("email/unsubscribe/<str:token>/", customer_views.email_unsubscribe, name="email-unsubscribe"),
]
