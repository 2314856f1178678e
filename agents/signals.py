"""The end of an agent's access closes its sockets (4401, within moments): it logs out, its
user is deactivated or deleted, it loses its agent profile, or its API token is deleted. The
announcement is sent after the commit that ended the access (conversations.events)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from agents.access import session_credential, token_credential
from agents.models import Agent, ApiToken
from conversations.events import publish_access_revoked


@receiver(user_logged_out, dispatch_uid="agents_revoke_on_logout")
def on_logout(sender, request, user, **kwargs):
    if user is None or request is None:
        return
    credential = session_credential(getattr(request.session, "session_key", None))
    if credential is not None:
        publish_access_revoked(user.pk, credential)


@receiver(post_save, sender=get_user_model(), dispatch_uid="agents_revoke_on_deactivation")
def on_user_saved(sender, instance, created, **kwargs):
    if not created and not instance.is_active:
        publish_access_revoked(instance.pk)


@receiver(post_delete, sender=get_user_model(), dispatch_uid="agents_revoke_on_user_deletion")
def on_user_deleted(sender, instance, **kwargs):
    publish_access_revoked(instance.pk)


@receiver(post_delete, sender=Agent, dispatch_uid="agents_revoke_on_agent_deletion")
def on_agent_deleted(sender, instance, **kwargs):
    publish_access_revoked(instance.user_id)


@receiver(post_delete, sender=ApiToken, dispatch_uid="agents_revoke_on_token_deletion")
def on_token_deleted(sender, instance, **kwargs):
    publish_access_revoked(instance.user_id, token_credential(instance))
