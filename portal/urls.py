from django.contrib.auth import views as auth_views
from django.urls import path

from portal import views
from tenants.forms import SignInForm

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="portal/login.html", authentication_form=SignInForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
