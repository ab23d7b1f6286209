"""factory-boy factories for rows. Images made here have a real PNG file."""

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from annotator import models
from annotator.imaging import encode_png, pixel_sha256
from tests.imaging.samples import gradient


def unique_pixels(seed: int):
    """A 64x48 gradient with the seed written into two pixels."""
    pixels = gradient((64, 48), 8).copy()
    pixels[0, 0], pixels[0, 1] = seed % 256, seed // 256 % 256
    return pixels


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Dataset

    name = factory.Sequence(lambda n: f"dataset {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Membership

    dataset = factory.SubFactory(DatasetFactory)
    user = factory.SubFactory(UserFactory)
    role = models.Role.RADIOLOGIST


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Category

    dataset = factory.SubFactory(DatasetFactory)
    coco_id = factory.Sequence(lambda n: n + 1)
    name = factory.Sequence(lambda n: f"category {n}")


class ImageFactory(factory.django.DjangoModelFactory):
    """A 64x48 8-bit image; ``pixels_seed`` makes each image's pixels (and digest) unique."""

    class Meta:
        model = models.Image

    class Params:
        pixels_seed = factory.Sequence(lambda n: n)
        pixels = factory.LazyAttribute(lambda o: unique_pixels(o.pixels_seed))

    dataset = factory.SubFactory(DatasetFactory)
    file_name = factory.Sequence(lambda n: f"image_{n}.png")
    width = 64
    height = 48
    bit_depth = 8
    window_center = 128.0
    window_width = 256.0
    source = models.ImageSource.API
    split = models.Split.POOL

    sha256 = factory.LazyAttribute(lambda o: pixel_sha256(o.pixels))
    file = factory.LazyAttribute(lambda o: ContentFile(encode_png(o.pixels), name=o.file_name))
