"""What trades tells the apps above it without importing them (notifications listens): sent once per
change, by the compare-and-swap that made it, inside its transaction."""

from django.dispatch import Signal

trade_opened = Signal()  # trade=: a trade now OPEN (a paper fill, or a live order's fill recorded)
trade_closed = Signal()  # trade=: a trade now CLOSED, with its outcome and P&L
