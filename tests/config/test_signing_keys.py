"""Label Studio image URLs are signed with a key of their own, rotated through fallbacks,
and live a week by default (issue 16, item 7)."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

from annotator.labelstudio.convert import (
    IMAGE_SIGNING_SALT,
    image_id_from_signature,
    signed_image_path,
)

OWN_KEY = "label-studio-only-key-0123456789-0123456789-0123456789"
OLD_KEY = "label-studio-previous-key-0123456789-0123456789-012345"


def token_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


def test_urls_are_signed_with_their_own_key(settings):
    settings.LABEL_STUDIO_SIGNING_KEY = OWN_KEY
    token = token_of(signed_image_path(42))
    assert image_id_from_signature(token, max_age=60) == 42
    # knowing SECRET_KEY is not enough to mint one
    minted = signing.dumps(43, key=settings.SECRET_KEY, salt=IMAGE_SIGNING_SALT, compress=True)
    assert image_id_from_signature(minted, max_age=60) is None


def test_a_rotated_key_keeps_pushed_urls_working_while_it_is_a_fallback(settings):
    settings.LABEL_STUDIO_SIGNING_KEY = OLD_KEY
    token = token_of(signed_image_path(7))
    settings.LABEL_STUDIO_SIGNING_KEY = OWN_KEY
    settings.LABEL_STUDIO_SIGNING_KEY_FALLBACKS = [OLD_KEY]
    assert image_id_from_signature(token, max_age=60) == 7
    settings.LABEL_STUDIO_SIGNING_KEY_FALLBACKS = []
    assert image_id_from_signature(token, max_age=60) is None


def test_urls_live_a_week_by_default():
    assert settings.LABEL_STUDIO_IMAGE_URL_MAX_AGE == 7 * 24 * 3600
