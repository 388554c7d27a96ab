from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    name = "models_registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from models_registry.datasets import kinds
        from models_registry.evaluation import kinds as evaluation_kinds
        from models_registry.training import kinds as training_kinds
        from models_registry.validation import jobs as validation_jobs

        kinds.register()
        evaluation_kinds.register()
        training_kinds.register()
        validation_jobs.register()
