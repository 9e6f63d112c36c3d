from django.urls import path

from radiology.pacs import views

urlpatterns = [
    path("", views.pacs_status, name="pacs_status"),
    path("instances/<int:pk>/retry/", views.retry_conflict, name="pacs_retry_conflict"),
]
