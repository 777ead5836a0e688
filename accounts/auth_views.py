"""Sign-up, password change and reset, and the sign-in's second step: the pages that decide who a user is.

- Sign-up and password reset answer the same whether the address has an account (no enumeration): sign-up
  mails a link that creates the account, or tells an existing account's owner that someone tried.
- Mail sent on a stranger's request (sign-up, reset) is rate-limited per e-mail address and per client
  address, in the shared cache, so no one can flood an inbox through us.
- A password change or reset signs the user out everywhere else and revokes their API tokens."""

import hashlib
import secrets

from axes.utils import reset as reset_lockout
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse, reverse_lazy
from rest_framework.throttling import SimpleRateThrottle

from .forms import SignUpForm
from .lockout import client_address
from .models import ApiToken, User

SIGNUP_LINK_SECONDS = 48 * 3600
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


class MailThrottle(SimpleRateThrottle):
    """PASSWORD_RESETS_PER_HOUR requests an hour for one key, counted in the shared cache (DRF's throttle,
    keyed by what we give it instead of by a view's user)."""

    def __init__(self, purpose: str, key: str):
        self.rate = f"{settings.PASSWORD_RESETS_PER_HOUR}/hour"
        self.key = f"throttle_mail_{purpose}_{hashlib.sha256(key.encode()).hexdigest()}"
        super().__init__()

    def get_cache_key(self, request, view):
        return self.key


def mail_allowed(request, purpose: str, email: str) -> bool:
    """Whether to send a mail of this purpose to `email` for this client now; each call counts as one."""
    return all(
        MailThrottle(purpose, key).allow_request(request, None)
        for key in (f"address:{client_address(request)}", f"email:{email.strip().lower()}")
    )


def send(template: str, email: str, **context) -> None:
    subject = render_to_string(f"registration/{template}_subject.txt", context).strip()
    body = render_to_string(f"registration/{template}_email.txt", {"email": email, **context})
    send_mail(subject, body, None, [email])


def _pending_key(link_key: str) -> str:
    # Only a hash of the link's key is stored: the cache's contents alone open no account.
    return "signup_" + hashlib.sha256(link_key.encode()).hexdigest()


def signup(request):
    """A new address gets a link that creates the account; a taken one gets a note that someone tried.
    Either way the page says the same, and takes as long: the password is hashed in both cases."""
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        hashed = make_password(form.cleaned_data["password1"])
        if mail_allowed(request, "signup", email):
            login_url = request.build_absolute_uri(reverse("login"))
            if User.objects.filter(email__iexact=email).exists():
                reset_url = request.build_absolute_uri(reverse("password_reset"))
                send("signup_taken", email, login_url=login_url, reset_url=reset_url)
            else:
                link_key = secrets.token_urlsafe(32)
                cache.set(_pending_key(link_key), {"email": email, "password": hashed}, SIGNUP_LINK_SECONDS)
                link = request.build_absolute_uri(reverse("signup_confirm", args=[link_key]))
                send("signup", email, link=link, hours=SIGNUP_LINK_SECONDS // 3600)
        return render(request, "registration/signup_sent.html", {"email": email})
    return render(request, "registration/signup.html", {"form": form})


def signup_confirm(request, key):
    """The link of the sign-up mail: a button (a mail scanner's GET must not spend the link), then the
    account, signed in."""
    pending = cache.get(_pending_key(key))
    if pending is None:
        return render(request, "registration/signup_confirm.html", {"invalid": True}, status=404)
    if request.method != "POST":
        return render(request, "registration/signup_confirm.html", {"email": pending["email"]})
    if not cache.delete(_pending_key(key)):  # a second click at the same moment: the first one won
        return redirect("login")
    try:
        user = User.objects.create(email=pending["email"], password=pending["password"])
    except IntegrityError:  # someone finished signing up with the address meanwhile
        messages.info(request, "This address already has an account: log in.")
        return redirect("login")
    login(request, user, backend=MODEL_BACKEND)
    messages.success(request, "Welcome to TradingAI. Create your first bot to get started.")
    return redirect("dashboard")


def signed_out_elsewhere(request, user) -> None:
    """After a password change or reset: revoke the user's API tokens and say what happened. Their other
    sessions end by themselves: Django ties each session to the password hash, which just changed."""
    revoked, _ = ApiToken.objects.filter(user=user).delete()
    messages.success(
        request,
        f"Password changed. You were signed out everywhere else, and {revoked} API "
        f"token{'' if revoked == 1 else 's'} revoked: issue new ones for your scripts.",
    )


class PasswordChangeView(auth_views.PasswordChangeView):
    success_url = reverse_lazy("settings")

    def form_valid(self, form):
        response = super().form_valid(form)  # keeps this session signed in
        signed_out_elsewhere(self.request, form.user)
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Answers the same whether or not the address has an account; past the limit, sends nothing."""

    def form_valid(self, form):
        if mail_allowed(self.request, "reset", form.cleaned_data["email"]):
            return super().form_valid(form)
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form):
        response = super().form_valid(form)
        # The lockout's message offers a reset as the way back in: honour it at every address.
        reset_lockout(username=form.user.email)
        signed_out_elsewhere(self.request, form.user)
        return response
