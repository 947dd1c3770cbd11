from django.apps import AppConfig


class StatePluginConfig(AppConfig):
    """A project's own replicated state, as a test plugs it in
    (RAFT_STATE_APPS=tests.stateplugin)."""

    name = "tests.stateplugin"
    label = "stateplugin"
