"""Chart errors separate "try again later" from "no chart can be made this way"."""


class ChartError(Exception):
    """No chart: a setting needs a human, or the page gave something that is not the chart."""


class ChartTemporaryError(ChartError):
    """The browser crashed or the page did not render in time: the same capture may succeed later."""


class ChartDeadlineError(ChartTemporaryError):
    """No chart within its deadline (CHART_DEADLINE_SECONDS); the call was abandoned."""
