import zoneinfo

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django_otp.admin import OTPAdminAuthenticationForm

from core.outbound import UnsafeServerUrlError, server_url
from market.exchanges import KeyPermissionsUnknownError, is_ccxt_exchange, key_permissions
from market.names import normalise_exchange

from .lockout import LockoutFormMixin
from .models import AuditEvent, ExchangeAccount, ModelConnection, User
from .services import exchange_account_add, model_connection_save


class SignUpForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self):
        return self.cleaned_data["email"].lower()

    def validate_unique(self):
        # A taken address is answered like a new one (accounts.auth_views.signup mails its owner): an error
        # here would tell anyone which addresses have an account.
        pass


class EmailAuthenticationForm(LockoutFormMixin, AuthenticationForm):
    username = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True}))


class ThrottledAdminAuthenticationForm(LockoutFormMixin, OTPAdminAuthenticationForm):
    """The admin's sign-in, under the site's lockout: an operator's password is the better prize."""


class ExchangeAccountForm(forms.ModelForm):
    """Takes the key and secret in, encrypts them, and never renders them back (render_value=False)."""

    api_key = forms.CharField(label="API key", max_length=500, widget=forms.PasswordInput(render_value=False))
    secret = forms.CharField(
        label="API secret", max_length=500, widget=forms.PasswordInput(render_value=False)
    )
    password = forms.CharField(
        label="Passphrase",
        max_length=500,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Only for exchanges that issue one (OKX, KuCoin, Coinbase).",
    )

    class Meta:
        model = ExchangeAccount
        fields = ("label", "exchange", "sandbox")

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_exchange(self):
        exchange = normalise_exchange(self.cleaned_data["exchange"])
        if not is_ccxt_exchange(exchange):
            raise forms.ValidationError(
                f"'{exchange}' is not an exchange TradingAI can trade on (a ccxt id)."
            )
        return exchange

    def clean_label(self):
        label = self.cleaned_data["label"]
        if ExchangeAccount.objects.filter(owner=self.owner, label=label).exists():
            raise forms.ValidationError("You already have an exchange account with this label.")
        return label

    def clean(self):
        """Asks the exchange what the key may do, where it says: a key that can withdraw is refused (a
        stolen one could empty the account, where a trading key can only trade); one without an IP
        restriction is taken with a warning, as is one whose exchange cannot tell (`key_note`)."""
        cleaned = super().clean()
        self.key_note = ""
        if self.errors:
            return cleaned  # no call to the exchange for a form that is refused anyway
        try:
            permissions = key_permissions(self._account())
        except KeyPermissionsUnknownError as e:
            self.key_note = (
                f"The key's permissions could not be checked ({e}). Make sure it cannot withdraw funds."
            )
            return cleaned
        if permissions.can_withdraw:
            raise forms.ValidationError(
                {"api_key": "This key can withdraw funds; create a key without withdrawal permission."}
            )
        notes = []
        if not permissions.ip_restricted:
            notes.append(
                "This key has no IP restriction: whoever obtains it can use it from anywhere. Restrict it to "
                "this server's addresses on the exchange."
            )
        if not permissions.can_trade:
            notes.append("This key cannot trade spot: a live bot's orders with it will be refused.")
        self.key_note = " ".join(notes)
        return cleaned

    def _account(self) -> ExchangeAccount:
        """The account the form describes, unsaved."""
        fields = {name: self.cleaned_data.get(name) for name in ("label", "exchange", "sandbox")}
        return self._with_credentials(ExchangeAccount(owner=self.owner, **fields))

    def _with_credentials(self, account: ExchangeAccount) -> ExchangeAccount:
        account.set_credentials(
            self.cleaned_data["api_key"].strip(),
            self.cleaned_data["secret"].strip(),
            self.cleaned_data["password"].strip(),
        )
        return account

    def save(self, commit=True):
        account = self._with_credentials(super().save(commit=False))
        account.owner = self.owner
        account.key_note = self.key_note
        if commit:
            exchange_account_add(account, actor=self.owner)
        return account


class ModelConnectionForm(forms.ModelForm):
    """A model server of the user's own. The key goes in and is never rendered back: left empty on an edit
    it stays as it is, and `remove_api_key` takes it away."""

    api_key = forms.CharField(
        label="API key",
        max_length=500,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again. A local server may need none.",
    )
    remove_api_key = forms.BooleanField(label="Remove the stored key", required=False)

    class Meta:
        model = ModelConnection
        fields = ("label", "base_url")

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        if self.instance.pk:
            self.fields[
                "api_key"
            ].help_text = (
                f"Now {self.instance.masked_key}. Leave empty to keep it; stored encrypted, never shown."
            )
        else:
            del self.fields["remove_api_key"]

    def clean_label(self):
        label = self.cleaned_data["label"].strip()
        taken = ModelConnection.objects.filter(owner=self.owner, label=label).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("You already have a model connection with this label.")
        return label

    def clean_base_url(self):
        try:
            return server_url(
                self.cleaned_data["base_url"].strip(), allow_private=settings.ALLOW_PRIVATE_MODEL_SERVERS
            )
        except UnsafeServerUrlError as e:
            raise forms.ValidationError(str(e)) from None

    def clean(self):
        cleaned = super().clean()
        moved = self.instance.pk and "base_url" in self.changed_data and self.instance.has_api_key
        keeps_key = not cleaned.get("api_key", "").strip() and not cleaned.get("remove_api_key")
        if moved and keeps_key:
            # Else whoever holds the session could send the stored key to a server of theirs and read it
            # there, which write-only keys are meant to prevent.
            self.add_error(
                "api_key",
                "Enter the key again (or remove it) to change the base URL: a key is sent only to the "
                "server it was given for.",
            )
        return cleaned

    def save(self, commit=True):
        connection = super().save(commit=False)
        connection.owner = self.owner
        key = self.cleaned_data["api_key"].strip()
        if key or self.cleaned_data.get("remove_api_key") or not connection.pk:
            connection.set_api_key(key)
        if commit:
            model_connection_save(connection)
        return connection


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="To tell your tokens apart, e.g. the script that uses it."
    )


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(choices=[("", "All actions"), *AuditEvent.Action.choices], required=False)

    def filter(self, events):
        if not self.is_valid():
            return events.none()
        action = self.cleaned_data["action"]
        return events.filter(action=action) if action else events


class TimeZoneForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=[(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())],
        help_text="Dates and times on every page are shown in it.",
    )

    class Meta:
        model = User
        fields = ("time_zone",)
