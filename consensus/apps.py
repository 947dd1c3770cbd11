from django.apps import AppConfig


class ConsensusConfig(AppConfig):
    name = "consensus"
    verbose_name = "Consensus"
    # The NodeRuntime serving in this process, set by runnode's worker;
    # None in processes that only run client commands or tests.
    runtime = None
