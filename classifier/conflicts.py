"""A refusal of input that is valid in form but conflicts with the current state."""

from django.core.exceptions import ValidationError


class StateConflict(ValidationError):
    """A change the current state does not allow (a model version that is not the challenger, a
    scan already predicted): pages show it as any validation error, the API answers 409."""
