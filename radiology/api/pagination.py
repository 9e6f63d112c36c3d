from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """`?page=N`, and `?page_size=N` up to a bound so that one request cannot ask for everything."""

    page_size_query_param = "page_size"
    max_page_size = 200
