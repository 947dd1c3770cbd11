from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "nodes"
    verbose_name = "Nodes"

    def ready(self):
        from django.conf import settings

        from .forwarding import Forwarder
        from .tls import node_ca, node_cert

        # One per process, owned here rather than by a module, so that
        # forwarded requests reuse connections to the leader and tests can
        # put another in its place.
        self.forwarder = Forwarder(
            ca=node_ca(), cert=node_cert(), secret=settings.RAFT_CLUSTER_SECRET
        )
