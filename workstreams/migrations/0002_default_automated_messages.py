from django.db import migrations

from workstreams.default_messages import DEFAULT_MESSAGES


def create_defaults(apps, schema_editor):
    AutomatedMessage = apps.get_model("workstreams", "AutomatedMessage")
    for kind, texts in DEFAULT_MESSAGES.items():
        for language, text in texts.items():
            AutomatedMessage.objects.get_or_create(
                workstream=None, kind=kind, language=language, defaults={"text": text}
            )


def remove_defaults(apps, schema_editor):
    AutomatedMessage = apps.get_model("workstreams", "AutomatedMessage")
    AutomatedMessage.objects.filter(workstream=None).delete()


class Migration(migrations.Migration):
    dependencies = [("workstreams", "0001_initial")]
    operations = [migrations.RunPython(create_defaults, remove_defaults)]
