"""What a call to a model costs: the operator's table of prices (automation.ModelPrice, edited in the
admin), else OPENAI_INPUT_USD_PER_MTOK / OPENAI_OUTPUT_USD_PER_MTOK. The price is read when the analyst is
built, before the call, so that the call itself (in a thread of its own, analysis.within) reads nothing from
the database."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

# Prices are quoted per million tokens.
TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
# A micro-dollar: one call to a small model costs fractions of a cent, so cents would round it to zero.
COST_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class Price:
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        spent = prompt_tokens * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok
        return (spent / TOKENS_PER_PRICE_UNIT).quantize(COST_QUANTUM)


def default_price() -> Price:
    """The settings' price, for a model the table does not list."""
    # Through str(): a float such as 0.15 has no exact binary value, and Decimal(0.15) would keep the error.
    return Price(
        Decimal(str(settings.OPENAI_INPUT_USD_PER_MTOK)), Decimal(str(settings.OPENAI_OUTPUT_USD_PER_MTOK))
    )


def price_of(model: str) -> Price:
    """The price of `model` as a bot asks for it (the table's row), else the default."""
    from automation.models import ModelPrice  # the analysts are loaded before the apps' models are

    row = ModelPrice.objects.filter(model=model).values_list("input_usd_per_mtok", "output_usd_per_mtok")
    found = row.first()
    return Price(*found) if found else default_price()
