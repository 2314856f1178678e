from django.urls import path

from agents import views

app_name = "agents"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("sidebar/", views.sidebar, name="sidebar"),
    path("presence/", views.presence, name="presence"),
    path("conversations/<int:pk>/", views.inbox, name="conversation"),
    path("conversations/<int:pk>/read/", views.mark_read, name="mark-read"),
    path("conversations/<int:pk>/transcript.txt", views.transcript, name="transcript"),
    path("conversations/<int:pk>/history/", views.earlier_transcript, name="history"),
    path("conversations/<int:pk>/email-transcript/", views.email_transcript, name="email-transcript"),
    path("conversations/<int:pk>/labels/", views.labels, name="labels"),
    path("conversations/<int:pk>/<slug:action>/", views.conversation_action, name="action"),
    path("supervisor/", views.supervisor, name="supervisor"),
    path("supervisor/conversations/<int:pk>/<slug:action>/", views.supervisor_action, name="supervisor-action"),
]
