from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Server",
            fields=[
                (
                    "id",
                    models.CharField(max_length=300, primary_key=True, serialize=False),
                ),
            ],
            options={
                "verbose_name": "server",
                "verbose_name_plural": "servers",
                "managed": False,
            },
        ),
    ]
