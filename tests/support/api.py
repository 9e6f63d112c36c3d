"""API test helpers: a client authenticated with a user's token, and the error body."""

import itertools

from rest_framework.test import APIClient

from radiology.actions import tokens

CLIENT_NUMBERS = itertools.count()


def token_client(user):
    # Each client its own token: issuing one under a name in use would revoke the other's.
    token = tokens.issue_api_token(user, user, name=f"test client {next(CLIENT_NUMBERS)}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def error_of(response):
    """The `error` object of the API's one error format (fails the test if the body is not in it)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == response.status_code
    return body["error"]
