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
BODY_ERROR_DESCRIPTIONS = {
    "413": "The request body is larger than the server accepts.",
    "415": "The request body's content type is not one this operation takes.",
}


class ErrorDocumentingAutoSchema(AutoSchema):
    def _map_basic_serializer(self, serializer, direction):
        # A field shown by role (RoleFieldsMixin) is absent for other roles: not required.
        schema = super()._map_basic_serializer(serializer, direction)
        role_fields = getattr(serializer, "role_fields", {})
        if role_fields and "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in role_fields]
            if not schema["required"]:
                del schema["required"]
        return schema

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
