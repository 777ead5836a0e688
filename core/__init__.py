"""The floor every app may import: the values the apps share and the helpers of their pages, API and
commands. It imports no app (see docs/architecture.md, "Dependencies between apps")."""
