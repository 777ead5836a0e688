"""Two-factor authentication with TOTP (django-otp): a user turns it on in Settings (scan the QR code or type
the secret, confirm with a code) and off (with a code); sign-in then asks for the code after the password.
It is required to switch a bot to live trading (automation.forms) and for staff in the admin (OTPAdminSite,
tradingai/urls.py)."""

import time
from base64 import b32encode

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from .forms import EmailAuthenticationForm
from .models import User

PENDING = "two_factor_pending"  # session key: who gave the right password, waiting for their code
PENDING_SECONDS = 300  # the code must follow the password within this
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
LIVE_NEEDS_TWO_FACTOR = "Turn on two-factor authentication first (Settings → Two-factor authentication)."


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def has_two_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def __init__(self, *args, device: TOTPDevice, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_code(self):
        # django-otp's throttle: after a wrong code each try waits twice as long as the last.
        allowed, why = self.device.verify_is_allowed()
        if not allowed:
            until = (why or {}).get("locked_until")
            wait = max(1, round((until - timezone.now()).total_seconds())) if until else 1
            raise forms.ValidationError(f"Too many wrong codes: try again in {wait} seconds.")
        code = self.cleaned_data["code"].replace(" ", "")
        if not self.device.verify_token(code):
            raise forms.ValidationError(
                "That code is not right, or has expired: enter the one your app shows now."
            )
        return code


class LoginView(auth_views.LoginView):
    """The password first; for a user with two-factor authentication on, nothing is signed in until the code
    follows (login_code)."""

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        user = form.get_user()
        if not has_two_factor(user):
            return super().form_valid(form)
        self.request.session[PENDING] = {"user": user.pk, "next": self.get_success_url(), "at": time.time()}
        return redirect("login_code")


def login_code(request):
    pending = request.session.get(PENDING)
    if not pending or time.time() - pending["at"] > PENDING_SECONDS:
        request.session.pop(PENDING, None)
        messages.info(request, "Sign in with your password first.")
        return redirect("login")
    user = User.objects.get(pk=pending["user"])
    device = confirmed_device(user)
    if device is None:  # turned off meanwhile: the password was enough
        return redirect("login")
    form = CodeForm(request.POST or None, device=device)
    if request.method == "POST" and form.is_valid():
        del request.session[PENDING]
        login(request, user, backend=MODEL_BACKEND)
        otp_login(request, device)  # this session is verified: the admin and live trading accept it
        target = pending["next"]
        safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
        return redirect(target if safe else "dashboard")
    return render(request, "registration/login_code.html", {"form": form})


def _unconfirmed_device(user) -> TOTPDevice:
    """The device being set up: one per user, kept until confirmed so the QR code stays the same on reload."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


@login_required
def settings_page(request):
    user = request.user
    device = confirmed_device(user)
    if device is not None:
        form = CodeForm(request.POST or None, device=device)
        if request.method == "POST" and form.is_valid():
            TOTPDevice.objects.filter(user=user).delete()
            messages.success(
                request, "Two-factor authentication is off: signing in needs your password only."
            )
            return redirect("settings")
        return render(request, "accounts/two_factor.html", {"form": form, "enabled": True})

    device = _unconfirmed_device(user)
    form = CodeForm(request.POST or None, device=device)
    if request.method == "POST" and form.is_valid():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        otp_login(request, device)
        messages.success(request, "Two-factor authentication is on: signing in will ask for a code.")
        return redirect("settings")
    secret = b32encode(device.bin_key).decode()
    spaced = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render(request, "accounts/two_factor.html", {"form": form, "enabled": False, "secret": spaced})


@login_required
def qr_code(request):
    """The QR code of the device being set up (never of a confirmed one: its secret is not shown again)."""
    device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first()
    if device is None:
        raise Http404
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    response = HttpResponse(image.to_string(), content_type="image/svg+xml")
    response["Cache-Control"] = "no-store"
    return response
