"""Plotly figures (plain data, drawn in the browser by static/js/plots.js) of the insights and of the
equity. Every point carries its n and its 95 % interval, so a plot claims no more than the figures do."""

from collections import defaultdict

from trades.models import Trade

ACCENT, MUTED, GRID = "#2454d6", "#667085", "#e4e7ec"

_LAYOUT = {
    "margin": {"l": 48, "r": 12, "t": 8, "b": 40},
    "height": 260,
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "showlegend": False,
}


def _percent_axis(title: str) -> dict:
    return {
        "title": {"text": title},
        "range": [0, 100],
        "ticksuffix": "%",
        "gridcolor": GRID,
        "zeroline": False,
    }


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _interval(rows: list[dict]) -> dict:
    """Asymmetric error bars from the Wilson bounds: the interval is not centred on the rate."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [_pct(row["high"] - row["rate"]) for row in rows],
        "arrayminus": [_pct(row["rate"] - row["low"]) for row in rows],
        "color": MUTED,
        "thickness": 1.2,
    }


def _hover(rows: list[dict]) -> list[str]:
    return [
        f"{_pct(row['rate'])}% right of n={row['n']}<br>95% CI {_pct(row['low'])}-{_pct(row['high'])}%"
        for row in rows
    ]


def _rates(rows: list[dict], x: list, heading, **style) -> dict:
    """A trace of the rows' hit rates, with their Wilson intervals as error bars and n on hover, each hover
    headed by `heading(row)`."""
    return {
        "x": x,
        "y": [_pct(row["rate"]) for row in rows],
        "error_y": _interval(rows),
        "hovertext": [f"{heading(row)}<br>{text}" for row, text in zip(rows, _hover(rows), strict=True)],
        "hoverinfo": "text",
        **style,
    }


def _category(group: str) -> str:
    """A group's label on two lines at most, so that regimes such as RANGE_HIGH_VOL fit side by side on a
    phone: "RANGE<br>HIGH VOL"."""
    words = (group or "unknown").replace("_", " ").split(" ", 1)
    return "<br>".join(words)


def accuracy_by(rows: list[dict]) -> dict | None:
    """Bars of accuracy per group, labelled with n; None when no group has a resolved analysis."""
    rows = [row for row in rows if row["n"]]
    if not rows:
        return None
    return {
        "data": [
            _rates(
                rows,
                [_category(row["group"]) for row in rows],
                lambda row: row["group"] or "unknown",
                type="bar",
                text=[f"n={row['n']}" for row in rows],
                textposition="inside",
                insidetextanchor="start",
                marker={"color": ACCENT},
            )
        ],
        "layout": {
            **_LAYOUT,
            # The card's heading names the groups; an axis title would collide with long labels.
            "xaxis": {"type": "category", "tickangle": 0, "automargin": True},
            "yaxis": _percent_axis("accuracy"),
        },
    }


def accuracy_over_time(weeks: list[dict]) -> dict | None:
    weeks = [row for row in weeks if row["n"]]
    if not weeks:
        return None
    return {
        "data": [
            _rates(
                weeks,
                [row["week"] for row in weeks],
                lambda row: f"week of {row['week']}",
                type="scatter",
                mode="lines+markers",
                line={"color": ACCENT},
                marker={"size": [min(4 + row["n"] ** 0.5, 14) for row in weeks]},
            )
        ],
        "layout": {
            **_LAYOUT,
            "xaxis": {"title": {"text": "week"}, "gridcolor": GRID},
            "yaxis": _percent_axis("accuracy"),
        },
    }


def calibration(rows: list[dict]) -> dict | None:
    """Stated confidence against how often the calls were right; a calibrated analyst sits on the diagonal."""
    rows = [row for row in rows if row["n"]]
    if not rows:
        return None
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "x": [0, 100],
                "y": [0, 100],
                "line": {"color": MUTED, "dash": "dot", "width": 1},
                "hoverinfo": "skip",
            },
            _rates(
                rows,
                [row["mean_confidence"] for row in rows],
                lambda row: f"said {row['mean_confidence']:.0f}% ({row['bucket']})",
                type="scatter",
                mode="markers",
                marker={"color": ACCENT, "size": [min(6 + row["n"] ** 0.5, 18) for row in rows]},
            ),
        ],
        "layout": {
            **_LAYOUT,
            "xaxis": {**_percent_axis("stated confidence")},
            "yaxis": _percent_axis("right"),
        },
    }


def equity(user) -> dict | None:
    """Cumulative net P&L of each bot's closed trades, one line per bot, in the order they closed."""
    closed = (
        Trade.objects.filter(owner=user, status=Trade.Status.CLOSED, closed_at__isnull=False)
        .order_by("closed_at", "pk")
        .values_list("bot__name", "closed_at", "pnl")
    )
    lines: dict[str, list[tuple]] = defaultdict(list)
    totals: dict[str, float] = defaultdict(float)
    for bot_name, closed_at, pnl in closed:
        name = bot_name or "deleted bot"
        totals[name] += float(pnl or 0)
        lines[name].append((closed_at, round(totals[name], 2)))
    figure = series(lines, "net P&L", shape="hv")
    if figure:
        figure["layout"]["yaxis"]["zerolinecolor"] = MUTED
    return figure


def series(lines: dict[str, list[tuple]], title: str, shape: str = "linear") -> dict | None:
    """Lines over time, one per name: [(time, value), ...]; None when all are empty."""
    lines = {name: points for name, points in lines.items() if points}
    if not lines:
        return None
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "x": [_time(t) for t, _ in points],
                "y": [v for _, v in points],
                "line": {"shape": shape},
            }
            for name, points in lines.items()
        ],
        "layout": {
            **_LAYOUT,
            "showlegend": len(lines) > 1,
            "legend": {"orientation": "h", "y": -0.25},
            "xaxis": {"gridcolor": GRID},
            "yaxis": {"title": {"text": title}, "gridcolor": GRID},
        },
    }


def _time(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
