"""OpenAPI generation: every operation also documents the error responses it can give, in the one error format."""

from drf_spectacular.openapi import AutoSchema

from radiology.api.serializers import ErrorSerializer

ERROR_DESCRIPTIONS = {
    "400": "Invalid input: `fields` names each field and why.",
    "401": "Not authenticated: send `Authorization: Token <key>` or log in.",
    "403": "Your role does not allow this.",
    "404": "Not found.",
    "429": "Rate limit exceeded: retry after the `Retry-After` header's seconds.",
}
BODY_ERROR_DESCRIPTIONS = {"413": "The request body is larger than the server accepts."}


class ErrorDocumentingAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = dict(ERROR_DESCRIPTIONS)
        if self.method in ("POST", "PUT", "PATCH"):
            errors.update(BODY_ERROR_DESCRIPTIONS)
        for code, description in errors.items():
            if code not in responses:
                responses[code] = {
                    **self._get_response_for_code(ErrorSerializer, code, direction=direction),
                    "description": description,
                }
        return responses
