from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """`?page=N`, and `?page_size=N` up to a bound so that one request cannot ask for everything.

    A page size that is not one whole number in range is refused (DRF would quietly use the
    default), and the schema states the range."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        if len(values) > 1 or not values[0].isdecimal() or not 1 <= int(values[0]) <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [f"One whole number from 1 to {self.max_page_size}."]})
        return int(values[0])

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1, "maximum": self.max_page_size}
        return parameters
