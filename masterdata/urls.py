from django.urls import path

from masterdata import account

urlpatterns = [
    path("token/", account.api_token, name="account-token"),
]
