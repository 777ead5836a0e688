"""The one structure every analyst returns. It is also the JSON schema sent to OpenAI's
structured outputs in strict mode, so every field is required (nullable where it may be absent) and the
ranges are checked by validators rather than by schema keywords strict mode may not accept."""

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# No NaN or infinity anywhere: the SDK's JSON parser reads NaN, Infinity and 1e999; a NaN price passes the
# range check and every level check (a BUY at NaN looked consistent); and the database refuses the recorded
# answer that holds one (SQLite's JSON_VALID, PostgreSQL's jsonb), failing the cycle at "record".
ANSWER_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


class KeyLevels(BaseModel):
    model_config = ANSWER_CONFIG

    support: list[float] = Field(description="Support prices below the current price, nearest first.")
    resistance: list[float] = Field(description="Resistance prices above the current price, nearest first.")


class Analysis(BaseModel):
    model_config = ANSWER_CONFIG

    summary: str = Field(description="One or two sentences on the chart.")
    market_sentiment: Literal["BULLISH", "BEARISH", "NEUTRAL"]
    key_levels: KeyLevels
    recommendation: Literal["BUY", "SELL", "HOLD"]
    confidence: int = Field(description="0 to 100: how likely the recommendation is to work out.")
    reasoning: str
    entry: float | None = Field(description="Entry price for BUY or SELL; null for HOLD.")
    stop_loss: float | None = Field(description="Stop-loss price for BUY or SELL; null for HOLD.")
    take_profit: float | None = Field(description="Take-profit price for BUY or SELL; null for HOLD.")
    predicted_price: float | None = Field(description="Expected price at the end of the horizon.")
    horizon: int = Field(description="Number of candles over which the prediction should play out (1-500).")

    @classmethod
    def model_validate_json(cls, json_data, *args, **kwargs) -> "Analysis":
        """As pydantic reads it, except that text holding a lone UTF-16 surrogate (`"\\ud800"`, which JSON
        can spell and a model can answer) is read by Python's json, which keeps it, rather than refused
        whole by pydantic's parser: the answer is then held to the same schema, and its text made storable
        by `service.storable_result`, instead of the whole analysis being lost. The OpenAI SDK's `parse`
        reads the answer through here."""
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as refused:
            if not any(e["type"] in ("json_invalid", "string_unicode") for e in refused.errors()):
                raise
            try:
                data = json.loads(json_data)
            except ValueError:
                raise refused from None
            return cls.model_validate(data, *args, **kwargs)

    @field_validator("confidence")
    @classmethod
    def _confidence_range(cls, value: int) -> int:
        if not 0 <= value <= 100:
            raise ValueError("confidence must be between 0 and 100")
        return value

    @field_validator("horizon")
    @classmethod
    def _horizon_range(cls, value: int) -> int:
        if not 1 <= value <= 500:
            raise ValueError("horizon must be between 1 and 500 candles")
        return value

    @field_validator("entry", "stop_loss", "take_profit", "predicted_price")
    @classmethod
    def _positive_price(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("prices must be positive")
        return value
