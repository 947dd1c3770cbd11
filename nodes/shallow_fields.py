"""A serializer whose fields are copied shallowly for each instance.

DRF deep-copies a serializer's declared fields for every instance, and a
field's deep copy runs its __init__ again (validators included): a fifth of
POST /api/commands' request handling. Binding a field to its serializer
sets attributes on the field only, so a shallow copy per instance keeps
instances apart as well, for serializers of plain fields (no nested
serializers, no field whose validation changes its own lists or dicts).
"""

import copy


class ShallowFieldsMixin:
    def get_fields(self):
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}
