from django.contrib.auth import views as auth_views
from django.urls import path

from radiology.web import admin_views, audit_views, review_views, session_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The link an administrator sends instead of setting someone's password.
    path("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    # Everyone changes their own password (Django's views; at least 12 characters).
    path("account/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("session/status.json", session_views.session_status, name="session_status"),
    path("session/keep-alive/", session_views.session_keep_alive, name="session_keep_alive"),
    path("", views.home, name="home"),
    # Radiographer
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("upload/", views.upload, name="upload"),
    path("scans/status/", views.scan_status, name="scan_status"),
    path("scans/status.json", views.scan_status_json, name="scan_status_json"),
    # Images, for whoever may see them
    path("scans/<int:pk>/image/", review_views.scan_image, name="scan_image"),
    path("scans/<int:pk>/heatmap/", review_views.scan_heatmap, name="scan_heatmap"),
    # Doctor
    path("review/", review_views.queue, name="review_queue"),
    path("review/next/", review_views.review_next, name="review_next"),
    path("review/<int:pk>/", review_views.review, name="review"),
    path("review/<int:pk>/model-output/", review_views.show_model_output, name="show_model_output"),
    path("review/<int:pk>/reading/", review_views.reading_heartbeat, name="reading_heartbeat"),
    path("review/<int:pk>/reading/release/", review_views.reading_release, name="reading_release"),
    path("patients/<int:pk>/history/", review_views.patient_history, name="patient_history"),
    # Admin
    path("dashboard/", admin_views.dashboard_page, name="dashboard"),
    path(
        "model-versions/<int:pk>/threshold-from-reviews/",
        admin_views.record_threshold_from_reviews,
        name="record_threshold_from_reviews",
    ),
    path("audit/", audit_views.audit_trail, name="audit_trail"),
    path("audit/events.csv", audit_views.audit_trail_csv, name="audit_trail_csv"),
    path("dashboard/roc.png", admin_views.dashboard_roc_png, name="dashboard_roc_png"),
    path("dashboard/confusion.png", admin_views.dashboard_confusion_png, name="dashboard_confusion_png"),
    path("scans/failed/", admin_views.failed_scans, name="failed_scans"),
    path("scans/<int:pk>/requeue/", admin_views.requeue, name="requeue_scan"),
    path("models/", admin_views.model_versions, name="model_versions"),
    path("models/<int:pk>/activate/", admin_views.activate_model_version, name="activate_model_version"),
    path("models/<int:pk>/challenger/", admin_views.start_challenger, name="start_challenger"),
    path("models/<int:pk>/challenger/end/", admin_views.end_challenger, name="end_challenger"),
    path("models/<int:pk>/comparison/", admin_views.model_comparison, name="model_comparison"),
    path("models/<int:pk>/promote/", admin_views.promote_challenger, name="promote_challenger"),
]
