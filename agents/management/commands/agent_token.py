from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Print (creating it if needed) the DRF API token of an agent."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        User = get_user_model()
        try:
            user = User.objects.select_related("agent").get(username=username)
        except User.DoesNotExist:
            raise CommandError(f'No user "{username}".') from None
        if not hasattr(user, "agent"):
            raise CommandError(f'"{username}" is not an agent.')
        token, _created = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
