"""URLs of the review area: ``api_urlpatterns`` go under ``/api/``, ``urlpatterns`` are pages."""

from django.urls import include, path

from annotator.review import api, views

review_api = [
    path("datasets/<int:pk>/worklist/", api.worklist, name="review-api-worklist"),
    path("datasets/<int:pk>/next/", api.next_image, name="review-api-next"),
    path("datasets/<int:pk>/previous/", api.previous_image, name="review-api-previous"),
    path("datasets/<int:pk>/stats/", api.stats, name="review-api-stats"),
    path("images/<int:pk>/", api.preview, name="review-api-preview"),
    path("images/<int:pk>/open/", api.open_image, name="review-api-open"),
    path("images/<int:pk>/pixels/", api.pixels, name="review-api-pixels"),
    path("images/<int:pk>/heartbeat/", api.heartbeat, name="review-api-heartbeat"),
    path("images/<int:pk>/annotations/", api.create_box, name="review-api-create-box"),
    path("images/<int:pk>/accept-all/", api.accept_all, name="review-api-accept-all"),
    path("images/<int:pk>/finish/", api.finish, name="review-api-finish"),
    path("annotations/<int:pk>/", api.change_box, name="review-api-box"),
    path("annotations/<int:pk>/accept/", api.accept_box, name="review-api-accept"),
]

api_urlpatterns = [path("review/", include(review_api))]

urlpatterns = [
    path("review/", views.home, name="review-home"),
    path("review/datasets/<int:pk>/", views.worklist, name="review-worklist"),
    path("review/datasets/<int:pk>/read/", views.reader, name="review-reader"),
    path("review/datasets/<int:pk>/stats/", views.stats, name="review-stats"),
]
