# One way of writing a date and a time on every page (FORMAT_MODULE_PATH), in the user's time zone
# (accounts.middleware): templates write `|date:"DATETIME_FORMAT"` or `|date:"DATE_FORMAT"`, and a bare
# {{ datetime }} renders the same.
DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = DATE_FORMAT
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
