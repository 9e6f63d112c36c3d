"""DRF's rate limits, counting anonymous callers by radiology.client_address (not DRF's own reading of X-Forwarded-For)."""

from rest_framework import throttling

from radiology.client_address import client_address


class ClientAddressIdent:
    def get_ident(self, request):
        return client_address(request)


class AnonRateThrottle(ClientAddressIdent, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(ClientAddressIdent, throttling.UserRateThrottle):
    pass
