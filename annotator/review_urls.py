"""URLs of the review page and its API (``/review/...`` pages, ``/api/review/...``)."""

from django.urls import include, path

from annotator import quick_read, review_api, review_views

api = [
    path("datasets/<int:pk>/worklist/", review_api.worklist, name="review-api-worklist"),
    path("datasets/<int:pk>/next/", review_api.next_image, name="review-api-next"),
    path("datasets/<int:pk>/previous/", review_api.previous_image, name="review-api-previous"),
    path("datasets/<int:pk>/stats/", review_api.stats, name="review-api-stats"),
    path("images/<int:pk>/", review_api.preview, name="review-api-preview"),
    path("images/<int:pk>/open/", review_api.open_image, name="review-api-open"),
    path("images/<int:pk>/pixels/", review_api.pixels, name="review-api-pixels"),
    path("images/<int:pk>/heartbeat/", review_api.heartbeat, name="review-api-heartbeat"),
    path("images/<int:pk>/annotations/", review_api.create_box, name="review-api-create-box"),
    path("images/<int:pk>/accept-all/", review_api.accept_all, name="review-api-accept-all"),
    path("images/<int:pk>/finish/", review_api.finish, name="review-api-finish"),
    path("annotations/<int:pk>/", review_api.change_box, name="review-api-box"),
    path("annotations/<int:pk>/accept/", review_api.accept_box, name="review-api-accept"),
    path("quick-reads/<int:pk>/", quick_read.quick_read_status, name="review-api-quick-read"),
]

urlpatterns = [
    path("review/", review_views.home, name="review-home"),
    path("review/datasets/<int:pk>/", review_views.worklist, name="review-worklist"),
    path("review/datasets/<int:pk>/read/", review_views.reader, name="review-reader"),
    path("review/datasets/<int:pk>/stats/", review_views.stats, name="review-stats"),
    path("review/quick-read/", quick_read.quick_read_page, name="quick-read"),
    path("review/quick-read/<int:pk>/", quick_read.quick_read_result, name="quick-read-result"),
    path("api/review/", include(api)),
]
