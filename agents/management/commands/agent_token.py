from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agents.models import ApiToken


class Command(BaseCommand):
    help = (
        "Issue a new API token for an agent and print its key. Only a digest of the key is stored, "
        "so it cannot be shown again: each call issues another (revoke old ones in the admin)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="manage.py agent_token", help="What the token is for.")

    def handle(self, *args, username, name, **options):
        User = get_user_model()
        try:
            user = User.objects.select_related("agent").get(username=username)
        except User.DoesNotExist:
            raise CommandError(f'No user "{username}".') from None
        if not hasattr(user, "agent"):
            raise CommandError(f'"{username}" is not an agent.')
        _token, key = ApiToken.objects.issue(user=user, name=name)
        self.stdout.write(key)
