from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("django-admin/", admin.site.urls),
    path("api/", include("radiology.api.urls")),
    path("pacs/", include("radiology.pacs.urls")),
    path("", include("radiology.web.urls")),
]

handler400 = "radiology.web.errors.bad_request"
