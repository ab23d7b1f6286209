from django.apps import AppConfig


class AnnotatorConfig(AppConfig):
    name = "annotator"
    verbose_name = "Fracture annotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from annotator.audit import signals as audit_signals
        from annotator.datasets import receivers as dataset_receivers
        from annotator.learning import listeners as learning_listeners

        audit_signals.connect()
        dataset_receivers.connect()
        learning_listeners.connect()
