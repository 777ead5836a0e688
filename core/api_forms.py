"""API serializers that validate through the app's Django form, so the web page and the API apply one
set of rules (a bot's live-trading checks, an exchange id ccxt knows, a label of one's own) and report them
the same way: a 400 with each field and its reason."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.forms.models import model_to_dict
from rest_framework import serializers


class FormValidatedSerializer(serializers.ModelSerializer):
    form_class = None  # a ModelForm taking `owner=`
    # Field name: the function that writes its value as stored (market.names'), applied before the model's
    # validators read it, so that `btc/usdt` is BTC/USDT here as on the web form rather than a 400.
    normalise = {}

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = {
                **data,
                **{
                    name: f(data[name])
                    for name, f in self.normalise.items()
                    if isinstance(data.get(name), str)
                },
            }
        return super().to_internal_value(data)

    def validate(self, data):
        request = self.context["request"]
        # A partial update is checked as the whole object it makes, as the form would see it.
        fields = self.form_class._meta.fields
        if self.instance:
            initial = model_to_dict(self.instance, fields=fields)
        else:
            # What an API client leaves out takes the model's default, as the web form shows it pre-filled.
            model = self.form_class._meta.model
            initial = {
                f.name: f.get_default() for f in model._meta.fields if f.name in fields and f.has_default()
            }
        submitted = {
            **initial,
            **{name: self._form_value(value) for name, value in self.initial_data.items()},
        }
        self.form = self.form_class(data=submitted, instance=self.instance, owner=request.user)
        if not self.form.is_valid():
            errors = dict(self.form.errors)
            if "__all__" in errors:
                errors["non_field_errors"] = errors.pop("__all__")
            raise serializers.ValidationError({name: list(messages) for name, messages in errors.items()})
        return data

    @staticmethod
    def _form_value(value):
        # JSON's null and booleans, as a form's fields read them.
        return "" if value is None else value

    def create(self, validated_data):
        try:
            return self.form.save()
        except DjangoValidationError as e:
            # What is checked as the row is written (a plan's quota), after the form's validation.
            raise serializers.ValidationError(serializers.as_serializer_error(e)) from None

    def update(self, instance, validated_data):
        return self.form.save()


class StrictBooleanField(serializers.BooleanField):
    """true or false, as JSON says them: not 0, 1, "yes" or "off", which DRF's BooleanField also takes. For
    switches, where a 0 sent by mistake must not turn a safety off."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
