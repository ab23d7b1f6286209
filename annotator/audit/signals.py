"""Sign-in events for the audit log (the throttle counts them), and the revocation of a
user's API tokens when the password changes or the user signs out; connected in
``AnnotatorConfig.ready``. The areas record their own events (box revisions in
``datasets/receivers.py``, promotions in ``learning/listeners.py``)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import pre_save
from knox.models import AuthToken

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event


def login_failed(sender, credentials: dict, request=None, **kwargs) -> None:
    username = str(credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or "")
    record_event(request, None, AuditAction.LOGIN_FAILED, actor_username=username[:150])


def logged_in(sender, request, user, **kwargs) -> None:
    record_event(request, user, AuditAction.LOGIN_SUCCEEDED)


def revoke_tokens_on_sign_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        AuthToken.objects.filter(user=user).delete()


def revoke_tokens_on_password_change(sender, instance, **kwargs) -> None:
    if instance.pk is None:
        return
    stored = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        AuthToken.objects.filter(user_id=instance.pk).delete()


def connect() -> None:
    user_login_failed.connect(login_failed, dispatch_uid="audit-login-failed")
    user_logged_in.connect(logged_in, dispatch_uid="audit-logged-in")
    user_logged_out.connect(revoke_tokens_on_sign_out, dispatch_uid="audit-revoke-tokens-on-sign-out")
    pre_save.connect(revoke_tokens_on_password_change, sender=get_user_model(),
                     dispatch_uid="audit-revoke-tokens-on-password-change")
