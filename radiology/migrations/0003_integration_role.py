from django.db import migrations


def create_integration_group(apps, schema_editor):
    # The group's permissions are set with the other roles' by ensure_roles after every migrate.
    apps.get_model("auth", "Group").objects.get_or_create(name="integration")


def remove_integration_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="integration").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("radiology", "0002_one_first_review_per_scan"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="review",
            options={
                "ordering": ["-created_at"],
                "permissions": [("view_review_note", "Can read the doctors' review notes")],
            },
        ),
        migrations.RunPython(create_integration_group, remove_integration_group),
    ]
