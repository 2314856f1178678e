"""The conversation engine: every change of conversation state, and nothing else.

Each function runs in one transaction, locks what it changes (the conversation first, then
the agent), checks the transition table, raises a typed ``DomainError``, and publishes with
``transaction.on_commit`` (conversations.events). Views, consumers, tasks and the admin call
these functions and nothing else writes ``Conversation.status`` or creates a ``Message``.

Adapters call the engine through this package (``services.customer_message_send(...)``); its
modules, each importing only those after it in this list:

- ``continuity``: beyond the tab: unread answers by email, replies by email, transcripts,
  offline messages (conversations.emails composes and sends)
- ``feedback``: the customer's satisfaction survey (CSAT) of a conversation
- ``labels``: the contact reasons agents set on a conversation
- ``messages``: a customer or an agent writes (an agent also internal notes), an agent reads;
  the same rule carried out on the event loop's connection for a socket's message that only
  appends
- ``prechat``: the answers to a workstream's pre-chat form a conversation starts with
- ``lifecycle``: wait, resume, end, close, transfer, force-close, auto-close, affinity timeout
- ``presence``: an agent's presence, and an administrator's edit of the agent; a customer: who
  it is and its open sockets
- ``assignment``: push assignment in batches, pick, assign, drains, who works in a queue, live
  queue messages and the average wait they tell
- ``common``: the steps of every service (lock, move, append a message, save and publish)
- ``attachments``: a customer's or an agent's upload, checked by what its bytes are; the uploads
  a message carries; removing those never sent
- ``sql``: every statement written out by hand

Who may take a conversation, and in which order, is decided by conversations.policy; Celery
work is asked for by task name through conversations.jobs.
"""

from conversations.services.assignment import (
    conversation_assign,
    conversation_pick,
    queue_agents_set,
    queue_drain,
    queue_positions_publish,
    queue_wait_update,
    queues_drain,
    queues_drain_request,
)
from conversations.services.attachments import (
    MAX_ATTACHMENTS,
    agent_attachment_upload,
    attachments_sweep,
    customer_attachment_upload,
)
from conversations.services.continuity import (
    agent_notices_email,
    conversation_transcript_email,
    conversation_unread_replies_email,
    customer_email_reply,
    customer_email_unsubscribe,
    customer_messages_fetched,
    customer_offline_message,
)
from conversations.services.feedback import CSAT_WINDOW, MAX_CSAT_COMMENT, customer_csat_submit
from conversations.services.labels import MAX_LABELS, conversation_labels_set
from conversations.services.lifecycle import (
    conversation_affinity_expire,
    conversation_auto_close,
    conversation_close,
    conversation_end,
    conversation_force_close,
    conversation_resume,
    conversation_transfer,
    conversation_wait,
    customer_conversation_end,
)
from conversations.services.messages import (
    MAX_BODY,
    MAX_CLIENT_ID,
    SendResult,
    aagent_message_append,
    acustomer_message_append,
    agent_message_send,
    clean_body,
    clean_client_id,
    clean_internal,
    conversation_mark_read,
    customer_message_send,
)
from conversations.services.prechat import clean_prechat
from conversations.services.presence import (
    agent_inbox_close,
    agent_inbox_open,
    agent_presence_refresh,
    agent_presence_set,
    agent_presence_sync,
    agent_profile_update,
    customer_connect,
    customer_disconnect,
    customer_upsert,
)

__all__ = [
    "CSAT_WINDOW",
    "MAX_ATTACHMENTS",
    "MAX_BODY",
    "MAX_CLIENT_ID",
    "MAX_CSAT_COMMENT",
    "MAX_LABELS",
    "SendResult",
    "aagent_message_append",
    "acustomer_message_append",
    "agent_attachment_upload",
    "agent_inbox_close",
    "agent_inbox_open",
    "agent_message_send",
    "agent_notices_email",
    "agent_presence_refresh",
    "agent_presence_set",
    "agent_presence_sync",
    "agent_profile_update",
    "attachments_sweep",
    "clean_body",
    "clean_client_id",
    "clean_internal",
    "clean_prechat",
    "conversation_affinity_expire",
    "conversation_assign",
    "conversation_auto_close",
    "conversation_close",
    "conversation_end",
    "conversation_force_close",
    "conversation_labels_set",
    "conversation_mark_read",
    "conversation_pick",
    "conversation_resume",
    "conversation_transcript_email",
    "conversation_transfer",
    "conversation_unread_replies_email",
    "conversation_wait",
    "customer_attachment_upload",
    "customer_connect",
    "customer_conversation_end",
    "customer_csat_submit",
    "customer_disconnect",
    "customer_email_reply",
    "customer_email_unsubscribe",
    "customer_message_send",
    "customer_messages_fetched",
    "customer_offline_message",
    "customer_upsert",
    "queue_agents_set",
    "queue_drain",
    "queue_positions_publish",
    "queue_wait_update",
    "queues_drain",
    "queues_drain_request",
]
