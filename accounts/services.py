"""State changes of accounts that the audit log records, each in one transaction with its event; the web
pages, the API and the admin all go through these."""

from django.db import transaction

from . import audit
from .models import ExchangeAccount, ModelConnection, User
from .quotas import room_for

Action = audit.Action


def exchange_account_add(account: ExchangeAccount, *, actor) -> None:
    """Store a new exchange account (its credentials already set); QuotaExceededError when the owner holds
    as many as their plan allows."""
    held = ExchangeAccount.objects.filter(owner=account.owner)
    with room_for(account.owner, "max_exchange_accounts", held):
        account.save()
        _record_account(account, account.pk, Action.EXCHANGE_ACCOUNT_ADDED, "added", actor)


def exchange_account_delete(account: ExchangeAccount, *, actor) -> None:
    """Delete the account; ProtectedError, and nothing recorded, while a bot uses it."""
    with transaction.atomic():
        account_id = account.pk  # delete() clears it
        account.delete()
        _record_account(account, account_id, Action.EXCHANGE_ACCOUNT_DELETED, "deleted", actor)


def _record_account(account: ExchangeAccount, account_id: int, action: Action, done: str, actor) -> None:
    network = ", test network" if account.sandbox else ""
    audit.record(
        account.owner,
        action,
        f"Exchange account “{account.label}” ({account.exchange}{network}, key {account.masked_key}) {done}.",
        actor=actor,
        exchange_account_id=account_id,
        label=account.label,
        exchange=account.exchange,
        sandbox=account.sandbox,
        key_hint=account.api_key_hint,
    )


def model_connection_save(connection: ModelConnection) -> None:
    """Store the connection; a new one only while the owner holds fewer than their plan allows
    (QuotaExceededError otherwise)."""
    if connection.pk:
        connection.save()
        return
    with room_for(connection.owner, "max_model_connections", connection.owner.model_connections.all()):
        connection.save()


def trading_halt_set(user: User, halted: bool, *, actor) -> bool:
    """Turn the user's own kill switch on or off; False if it already was. A compare-and-swap on the old
    state, so of two people flipping it at once only one changes it, and only that change is recorded."""
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk, trading_halted=not halted).update(trading_halted=halted)
        if changed:
            audit.record(
                user,
                Action.TRADING_HALTED if halted else Action.TRADING_RESUMED,
                "Trading halted: no bot of this account opens a trade until it is resumed."
                if halted
                else "Trading resumed: this account's bots may open trades again.",
                actor=actor,
            )
    user.trading_halted = halted
    return bool(changed)
