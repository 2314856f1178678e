from django.core.management.base import BaseCommand, CommandError

from workstreams.demo import TokenTooLong, demo_token
from workstreams.models import AuthenticationSetting


class Command(BaseCommand):
    help = 'Print a customer JWT for the "Demo site" authentication setting (run seed_demo first).'

    def add_arguments(self, parser):
        parser.add_argument("sub", help="The customer's id (the token's sub claim).")
        parser.add_argument("--name", help="Display name (the name claim).")
        parser.add_argument("--email", help="Email address (the email claim).")
        parser.add_argument("--ttl", type=int, default=3600, help="Lifetime in seconds (default 3600).")

    def handle(self, *args, sub, name, email, ttl, **options):
        if ttl <= 0:
            raise CommandError("--ttl must be positive.")
        try:
            token = demo_token(sub, name=name, email=email, ttl=ttl)
        except AuthenticationSetting.DoesNotExist:
            raise CommandError('No "Demo site" authentication setting: run "manage.py seed_demo" first.') from None
        except TokenTooLong as exc:
            raise CommandError(
                f"--ttl is longer than the Demo site's maximum token lifetime ({exc.maximum} seconds): "
                "such a token would be refused. Raise the maximum in the admin, or ask for less."
            ) from None
        self.stdout.write(token)
