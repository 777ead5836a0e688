from decimal import Decimal

from django.db import migrations

# OpenAI's list prices (US$ per 1M tokens, input and output) of the vision models the analyst is known to
# work with; gpt-4o-mini is the default (OPENAI_MODEL). Operators change them, or add rows, in the admin.
PRICES = {
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1": ("2.00", "8.00"),
}


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("automation", "ModelPrice")
    for model, (input_price, output_price) in PRICES.items():
        ModelPrice.objects.get_or_create(
            model=model,
            defaults={"input_usd_per_mtok": Decimal(input_price), "output_usd_per_mtok": Decimal(output_price)},
        )


class Migration(migrations.Migration):
    dependencies = [("automation", "0008_own_models_and_prices")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
