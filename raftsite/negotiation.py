"""DRF's content negotiation with a shortcut for what every client and peer
sends: no Accept header, ``*/*`` or the first renderer's own media type
(an empty header is DRF's 406, as before).

Those pick the first renderer in DRF too; parsing the Accept header to find
that out was a tenth of a client command's request handling. Anything else
(another media type, ``?format=``) goes through DRF's negotiation as before,
406 included.
"""

from rest_framework.negotiation import DefaultContentNegotiation


class ShortcutContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0] if renderers else None
        if first is not None and format_suffix is None and ";" not in first.media_type:
            accept = request.META.get("HTTP_ACCEPT")
            format_query_param = self.settings.URL_FORMAT_OVERRIDE
            if accept in (None, "*/*", first.media_type) and not (
                format_query_param and format_query_param in request.query_params
            ):
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
