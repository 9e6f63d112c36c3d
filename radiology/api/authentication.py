"""`Authorization: Token <key>` against the hashed, expiring tokens of radiology.actions.tokens."""

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from radiology.actions import tokens


class HashedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        token = tokens.authenticate_key(key)
        if token is None:
            raise AuthenticationFailed("Invalid or expired token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return token.user, token
