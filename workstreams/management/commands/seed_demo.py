from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import reverse

from workstreams.demo import seed_demo


class Command(BaseCommand):
    help = "Create or update the demo data of PROTOCOL.md (idempotent) and print the logins."

    def handle(self, *args, **options):
        result = seed_demo()
        base = settings.SITE_URL
        self.stdout.write(self.style.SUCCESS("Demo data is in place."))
        self.stdout.write("Logins (username / password):")
        for username, password in result.passwords.items():
            self.stdout.write(f"  {username:8} {password}")
        self.stdout.write(f"Admin:  {base}{reverse('admin:index')}")
        self.stdout.write(f"Inbox:  {base}{reverse('agents:inbox')}")
        for widget in result.widgets:
            self.stdout.write(f"Widget: {base}{reverse('widget-demo', args=[widget.widget_key])}")
