from django.apps import AppConfig


class AnnotatorConfig(AppConfig):
    name = "annotator"
    verbose_name = "Fracture annotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from annotator import audit_signals

        audit_signals.connect()
