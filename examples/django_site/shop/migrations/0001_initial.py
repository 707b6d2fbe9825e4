from django.db import migrations, models


def add_customers(apps, schema_editor):
    customer = apps.get_model("shop", "Customer")
    for name in ("ada", "grace"):
        customer.objects.using(schema_editor.connection.alias).create(name=name)


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Customer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("loyalty_points", models.IntegerField(default=0)),
            ],
        ),
        migrations.RunPython(add_customers, migrations.RunPython.noop),
    ]
