from django.apps import AppConfig


class InspectionConfig(AppConfig):
    name = "inspection"

    def ready(self) -> None:
        # Connecting a receiver and declaring a job kind only; nothing is loaded here.
        from inspection import champion, events, orphans, retention, retrain, to_dataset
        from models_registry.signals import deployment_changed

        def broadcast(sender, *, station, deployment, **kwargs) -> None:
            events.deployment_changed(station, deployment)

        deployment_changed.connect(
            broadcast, weak=False, dispatch_uid="inspection.deployment_changed"
        )
        to_dataset.register()
        orphans.register()
        retention.register()
        champion.register()
        retrain.register()
