from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from agents.api import AgentMeApi
from conversations import api
from omnichannel.api import not_found
from omnichannel.csp import CSP, csp_override

# Swagger UI comes from its CDN (drf-spectacular's default) and sets inline styles; its start-up
# script is a separate same-origin request (the "split" view), so scripts stay strict.
SWAGGER_CDN = "https://cdn.jsdelivr.net"
api_docs = csp_override(
    {
        "script-src": [CSP.SELF, SWAGGER_CDN],
        "style-src": [CSP.SELF, SWAGGER_CDN, "'unsafe-inline'"],
        "img-src": [CSP.SELF, "data:", SWAGGER_CDN],
    }
)(SpectacularSwaggerSplitView.as_view(url_name="api-schema"))

widget = "v1/widget/<slug:widget_key>/"
conversation = "v1/agent/conversations/<int:conversation_id>/"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", api_docs, name="api-docs"),
    path(widget, api.WidgetConfigApi.as_view(), name="api-widget"),
    path(widget + "visitor/", api.VisitorTokenApi.as_view(), name="api-widget-visitor"),
    path(widget + "conversation/", api.CustomerConversationApi.as_view(), name="api-widget-conversation"),
    path(widget + "conversation/messages/", api.CustomerMessagesApi.as_view(), name="api-widget-messages"),
    path(widget + "conversation/end/", api.CustomerEndApi.as_view(), name="api-widget-end"),
    path(widget + "conversation/transcript/", api.CustomerTranscriptApi.as_view(), name="api-widget-transcript"),
    path(widget + "conversation/attachments/", api.CustomerAttachmentsApi.as_view(), name="api-widget-attachments"),
    path(widget + "csat/", api.CsatApi.as_view(), name="api-widget-csat"),
    path(widget + "offline-message/", api.OfflineMessageApi.as_view(), name="api-widget-offline-message"),
    path("v1/inbound-email/", api.InboundEmailApi.as_view(), name="api-inbound-email"),
    path("v1/agent/me/", AgentMeApi.as_view(), name="api-agent-me"),
    path("v1/agent/conversations/", api.AgentConversationsApi.as_view(), name="api-agent-conversations"),
    path("v1/agent/queue/", api.AgentQueueApi.as_view(), name="api-agent-queue"),
    path(conversation, api.AgentConversationApi.as_view(), name="api-agent-conversation"),
    path(conversation + "messages/", api.AgentMessagesApi.as_view(), name="api-agent-messages"),
    path(conversation + "pick/", api.PickApi.as_view(), name="api-agent-pick"),
    path(conversation + "wait/", api.WaitApi.as_view(), name="api-agent-wait"),
    path(conversation + "resume/", api.ResumeApi.as_view(), name="api-agent-resume"),
    path(conversation + "end/", api.EndApi.as_view(), name="api-agent-end"),
    path(conversation + "close/", api.CloseApi.as_view(), name="api-agent-close"),
    path(conversation + "transfer/", api.TransferApi.as_view(), name="api-agent-transfer"),
    path(conversation + "transcript/", api.AgentTranscriptApi.as_view(), name="api-agent-transcript"),
    path(conversation + "attachments/", api.AgentAttachmentsApi.as_view(), name="api-agent-attachments"),
    path(conversation + "labels/", api.LabelsApi.as_view(), name="api-agent-labels"),
    path("v1/agent/labels/", api.LabelListApi.as_view(), name="api-agent-label-list"),
    re_path(r"^", not_found, name="api-not-found"),  # keep last: everything else under /api/
]
