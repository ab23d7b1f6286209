"""Serializer building blocks shared by the areas."""

from rest_framework import serializers


class StrictFieldsMixin:
    """Refuse input keys that are not writable fields of the serializer (400 naming
    each), instead of DRF's default of silently ignoring them."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data.keys()) - writable)
            if unknown:
                raise serializers.ValidationError(
                    {name: "unknown or read-only field" for name in unknown}
                )
        return super().to_internal_value(data)
