import functools

from django.urls import reverse
from rest_framework import serializers

from core.values import Outcome, Recommendation, Sentiment
from learning.models import AILearningData


class AnalysisSerializer(serializers.ModelSerializer):
    # Blank until known: declared here because a read-only model field loses its blank=True.
    outcome = serializers.ChoiceField(Outcome.choices, allow_blank=True, read_only=True)
    recommendation = serializers.ChoiceField(Recommendation.choices, allow_blank=True, read_only=True)
    market_sentiment = serializers.ChoiceField(Sentiment.choices, allow_blank=True, read_only=True)
    chart_url = serializers.SerializerMethodField(help_text="The chart the analyst saw (PNG), for you only.")
    trade = serializers.IntegerField(source="trade_pk", read_only=True, allow_null=True)
    llm_call = serializers.ChoiceField(
        AILearningData.Call.choices,
        allow_blank=True,
        read_only=True,
        help_text="ASKED: this analysis paid for the model's call (its tokens and cost). REUSED: the answer "
        "to an identical request (the same model, prompt and chart) asked for another analysis, reused at "
        "no cost. Blank for the technical analyst.",
    )
    prompt_version = serializers.CharField(
        source="prompt_sha256", read_only=True, allow_null=True, help_text="SHA-256 of the prompt given."
    )

    class Meta:
        model = AILearningData
        fields = (
            "id", "bot", "session", "cycle_run", "trade", "symbol", "timeframe", "recommendation",
            "market_sentiment", "confidence_score", "regime", "predicted_price", "analysis_data",
            "market_conditions", "feedback_data", "outcome", "actual_price", "accuracy_score", "outcome_r",
            "untraded", "resolved_at", "analyst", "model_name", "prompt_version", "prompt_tokens",
            "completion_tokens", "cost_usd", "billed_to", "model_connection", "llm_call", "chart_url",
            "created_at",
        )  # fmt: skip
        read_only_fields = fields

    method_columns = ("screenshot",)  # what get_chart_url reads of a row (core/api_lists.py)

    def get_chart_url(self, obj) -> str | None:
        # A model instance's FieldFile, or a row's file name (core.api_lists): both empty without a chart.
        if not obj.screenshot:
            return None
        before, after = self._chart_url
        return f"{before}{obj.pk}{after}"

    @functools.cached_property
    def _chart_url(self) -> tuple[str, str]:
        """The chart's URL around the analysis's id, resolved once for the serializer (a list's page of
        them): reverse() and build_absolute_uri() for each row were half of writing a page's rows."""
        url = self.context["request"].build_absolute_uri(reverse("analysis-chart", args=[0]))
        before, after = url.rsplit("/0/", 1)
        return f"{before}/", f"/{after}"
