"""API test helpers: a client authenticated with a user's token, and the error body."""

from rest_framework.test import APIClient

from radiology.actions import tokens


def token_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {tokens.issue_api_token(user, user).key}")
    return client


def error_of(response):
    """The `error` object of the API's one error format (fails the test if the body is not in it)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == response.status_code
    return body["error"]
