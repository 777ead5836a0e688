from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils.html import format_html

from learning.insights import as_text, compute_insights

from .models import ExchangeAccount, Plan, User


class UserChange(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class UserCreation(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("email",)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserChange
    add_form = UserCreation
    ordering = ("email",)
    list_display = (
        "email",
        "display_name",
        "plan",
        "trading_halted",
        "is_active",
        "is_staff",
        "date_joined",
        "last_login",
    )
    list_filter = ("is_active", "is_staff", "trading_halted", "plan")
    search_fields = ("email", "display_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name", "plan", "trading_halted")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
        ("Learning", {"fields": ("insights",)}),
    )
    readonly_fields = ("insights",)
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    @admin.display(description="Insights")
    def insights(self, obj):
        """What the user's analyses and trades say, computed now (database aggregates)."""
        if obj.pk is None:
            return "-"
        return format_html("<pre>{}</pre>", as_text(compute_insights(obj), obj.email))


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "max_running_bots")
    list_filter = ("max_running_bots",)
    search_fields = ("name",)


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    """Operators see which accounts exist, never their keys: the encrypted columns are not fields here,
    and only the owner can enter credentials (in the app), so the admin has no form for them."""

    list_display = ("label", "owner", "exchange", "sandbox", "masked_key", "created_at")
    list_filter = ("exchange", "sandbox")
    search_fields = ("label", "owner__email", "exchange")
    list_select_related = ("owner",)
    fields = ("owner", "label", "exchange", "sandbox", "masked_key", "created_at", "updated_at")
    readonly_fields = ("owner", "exchange", "masked_key", "created_at", "updated_at")

    def has_add_permission(self, request):
        return False

    @admin.display(description="API key")
    def masked_key(self, obj):
        return obj.masked_key
